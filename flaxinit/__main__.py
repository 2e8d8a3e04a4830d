"""``python -m flaxinit``: a one-screen table of g(n) and the schemes' magnitudes.

For several fan-ins: the exact ``g(n)``, the all-ones-input magnitude of standard
Xavier (``g(n)/sqrt(n)``) and of standard Letkeman (exactly 1), and the relative error
of the article's stand-in ``M(n)`` for ``g(n)/sqrt(n)``.
"""

from __future__ import annotations

import math

from flaxinit import letkeman_standard, xavier_standard
from flaxinit.magnitude import article_standard, expected_abs_sum, expected_standard


def main() -> None:
    print(f"{'fan_in':>8} {'g(n)':>14} {'Xavier |z|':>11} {'Letkeman |z|':>13} {'article M(n) error':>19}")
    for n in (1, 2, 3, 5, 10, 25, 100, 300, 1000, 10**6):
        shape = (n, 1)
        g = expected_abs_sum(n)
        xavier = expected_standard(n, xavier_standard().bound(shape))
        letkeman = expected_standard(n, letkeman_standard().bound(shape))
        error = article_standard(n) / (g / math.sqrt(n)) - 1
        print(f"{n:>8} {g:>14.10f} {xavier:>11.6f} {letkeman:>13.10f} {error:>+19.2e}")


if __name__ == "__main__":
    main()
