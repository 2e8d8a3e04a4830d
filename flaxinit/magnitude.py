r"""Exact expected magnitudes behind the Letkeman schemes.

Everything here is plain Python/NumPy arithmetic on layer sizes: it runs once per
kernel shape, at trace time, never per weight.

The central quantity is

.. math::

    g(n) = \mathbb{E}\,\lvert U_1 + \dots + U_n \rvert, \qquad U_i \sim U(-1, 1)\ \text{iid},

the expected magnitude of one pre-activation when a layer with ``n`` inputs and
weights ``U(-1, 1)`` is fed a vector of ones. A weight bound ``b`` scales it
linearly: the magnitude under ``U(-b, b)`` is ``b * g(n)``.

How ``g`` is evaluated (see ``docs/schemes.md`` for the derivation):

* ``n <= 32``: the exact rational value from the finite-difference formula
  ``g(n) = sum_k (-1)^(n-k) C(n, k) sign(2k-n) (2k-n)^(n+1) / (2^n (n+1)!)``
  in integer arithmetic, then one correctly rounded division.
* ``n > 32``: ``g(n) = sqrt(2n / (3 pi)) * (1 + sum_{k=1}^{12} c_k / n^k)``, the
  expansion of the characteristic-function integral
  ``g(n) = (2/pi) int_0^inf (1 - (sin t / t)^n) / t^2 dt``. The ``c_k`` are exact
  rationals derived here from the Bernoulli numbers; the truncation error is below
  1e-18 relative for ``n > 32`` (it shrinks like ``exp(-pi^2 n / 6)``), so the
  result is limited only by float64 rounding (a few ulps) up to ``n = 2**53``.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "ARTICLE_NORMALIZED_CONSTANTS",
    "ARTICLE_STANDARD_CONSTANTS",
    "NormalizedMagnitudes",
    "article_normalized",
    "article_standard",
    "expected_abs_sum",
    "expected_normalized",
    "expected_standard",
    "normalized_passes",
]

#: The normalized test's two ways of dividing its totals (see :func:`normalized_passes`).
CONVENTIONS = ("article", "per_node")

#: The article's hand-tuned constant of the standard stand-in ``M(n)``.
ARTICLE_STANDARD_CONSTANTS: dict[str, float] = {"a": 0.039}
#: The article's hand-tuned constants of the normalized stand-in ``A(n, m)``.
ARTICLE_NORMALIZED_CONSTANTS: dict[str, float] = {"a": 0.073, "b": -0.08}

# Largest n evaluated with exact integer arithmetic; above it the asymptotic series.
_EXACT_MAX_N = 32
# Number of terms of the asymptotic series (error < 1e-18 relative for n > 32).
_SERIES_TERMS = 12
# Largest n accepted: beyond 2**53 an integer size no longer has an exact float.
_MAX_N = 2**53

# The article's tabulated values of M(1), M(2), M(3) (they are g(n)/sqrt(n)).
_ARTICLE_M_SMALL = {1: 0.5, 2: 0.471404520791, 3: 0.469097093716}

_Ints = int | npt.ArrayLike


def _exact_fraction(n: int) -> Fraction:
    """Returns ``g(n)`` as an exact rational (cost grows like ``n^2 log n``)."""
    total = 0
    for k in range(n + 1):
        d = 2 * k - n
        term = math.comb(n, k) * d ** (n + 1)
        term = term if d >= 0 else -term  # sign(d) * d^(n+1)
        total += term if (n - k) % 2 == 0 else -term
    return Fraction(total, 2**n * math.factorial(n + 1))


def _bernoulli(count: int) -> list[Fraction]:
    """Bernoulli numbers ``B_0 .. B_count`` (with ``B_1 = -1/2``)."""
    b = [Fraction(1)]
    for m in range(1, count + 1):
        b.append(-sum(math.comb(m + 1, k) * b[k] for k in range(m)) / (m + 1))
    return b


@functools.cache
def _series_coefficients(terms: int = _SERIES_TERMS) -> tuple[float, ...]:
    """``c_1 .. c_terms`` of ``g(n) = sqrt(2n/(3 pi)) (1 + sum c_k n^-k)``.

    ``log(sin t / t) = sum_j a_j t^(2j)``. With ``t = s / sqrt(n)`` and ``h = 1/n``,
    ``(sin t / t)^n = exp(-s^2/6) exp(sum_{j>=2} a_j s^(2j) h^(j-1))``. The second
    factor is a power series in ``h`` whose coefficients are polynomials in ``s^2``;
    integrating each against ``exp(-s^2/6) / s^2`` gives Gaussian moments
    ``int_0^inf s^(2m-2) exp(-s^2/6) ds = sqrt(pi/6) (2m-3)!! 3^m``.
    """
    bern = _bernoulli(2 * terms + 2)
    a = {
        j: Fraction((-1) ** j * 2 ** (2 * j - 1)) * bern[2 * j] / (j * math.factorial(2 * j))
        for j in range(2, terms + 2)
    }
    # exponent[k] = {power of s^2: coefficient} of h^k; exp() by its power series.
    exponent = [{j: a[j]} if (j := k + 1) > 1 else {} for k in range(terms + 1)]
    series: list[dict[int, Fraction]] = [{0: Fraction(1)}] + [{} for _ in range(terms)]
    power: list[dict[int, Fraction]] = [dict(p) for p in series]
    for p in range(1, terms + 1):
        product: list[dict[int, Fraction]] = [{} for _ in range(terms + 1)]
        for k1, poly1 in enumerate(power):
            for k2 in range(1, terms + 1 - k1):
                for m1, c1 in poly1.items():
                    for m2, c2 in exponent[k2].items():
                        product[k1 + k2][m1 + m2] = product[k1 + k2].get(m1 + m2, 0) + c1 * c2 / p
        power = product
        for k, poly in enumerate(power):
            for m, c in poly.items():
                series[k][m] = series[k].get(m, 0) + c

    def double_factorial(x: int) -> int:
        return math.prod(range(x, 0, -2)) if x > 0 else 1

    return tuple(
        float(-sum(c * double_factorial(2 * m - 3) * 3**m for m, c in series[k].items())) for k in range(1, terms + 1)
    )


_SQRT_2_OVER_3PI = math.sqrt(2.0 / (3.0 * math.pi))


def _series(n: float | np.ndarray) -> float | np.ndarray:
    """The asymptotic series at ``n > 32`` (Horner in ``1/n``)."""
    h = 1.0 / n
    acc = 0.0
    for c in reversed(_series_coefficients()):
        acc = (acc + c) * h
    return _SQRT_2_OVER_3PI * np.sqrt(n) * (1.0 + acc)


@functools.lru_cache(maxsize=4096)
def _g_scalar(n: int) -> float:
    if n <= _EXACT_MAX_N:
        f = _exact_fraction(n)
        return f.numerator / f.denominator  # int / int is correctly rounded
    return float(_series(float(n)))


@functools.cache
def _small_table() -> np.ndarray:
    return np.array([np.nan] + [_g_scalar(n) for n in range(1, _EXACT_MAX_N + 1)])


def _as_sizes(n: _Ints, name: str) -> tuple[np.ndarray, bool]:
    """Validates layer sizes; returns them as int64 and whether the input was scalar."""
    if isinstance(n, bool | np.bool_):
        raise TypeError(f"{name} must be a positive integer, got the bool {n!r}")
    arr = np.asarray(n)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{name} must be a positive integer (or an array of them), got {n!r}")
    if np.any(arr < 1) or np.any(arr > _MAX_N):
        raise ValueError(f"{name} must be an integer in [1, 2**53], got {n!r}")
    return arr.astype(np.int64), arr.ndim == 0


def expected_abs_sum(n: _Ints) -> float | np.ndarray:
    r"""Returns ``g(n) = E|U_1 + ... + U_n|`` for iid ``U_i ~ U(-1, 1)``.

    ``g(1) = 1/2``, ``g(2) = 2/3``, ``g(3) = 13/16`` and ``g(n) -> sqrt(2n / (3 pi))``.
    The relative error is a few float64 ulps for every ``n`` in ``[1, 2**53]``;
    scalar calls are cached.

    Args:
      n: a positive integer, or an array of them.

    Returns:
      A Python float for a scalar ``n``, else a float64 array of ``n``'s shape.

    Examples:
      >>> from flaxinit.magnitude import expected_abs_sum
      >>> expected_abs_sum(1), expected_abs_sum(3)
      (0.5, 0.8125)
      >>> n = 10**12  # g(n) = sqrt(2n / (3 pi)) (1 + 1 / (20 n) + ...): the first correction, 5e-14
      >>> f"{expected_abs_sum(n) / (2 * n / (3 * 3.141592653589793)) ** 0.5 - 1:.1e}"
      '5.0e-14'
    """
    if type(n) is int and 1 <= n <= _MAX_N:  # fast path for the common scalar call
        return _g_scalar(n)
    sizes, scalar = _as_sizes(n, "n")
    if scalar:
        return _g_scalar(int(sizes))
    small = sizes <= _EXACT_MAX_N
    out = _series(np.maximum(sizes, _EXACT_MAX_N + 1).astype(np.float64))
    return np.where(small, _small_table()[np.where(small, sizes, 0)], out)


def article_standard(n: _Ints, a: float = ARTICLE_STANDARD_CONSTANTS["a"]) -> float | np.ndarray:
    r"""The article's stand-in ``M(n)`` for ``g(n) / sqrt(n)``.

    ``M(1) = 0.5``, ``M(2) = 0.471404520791``, ``M(3) = 0.469097093716`` and
    otherwise ``M(n) = (0.5 - a) + a / (2n - 1)``. The article's standard-Letkeman
    bound is ``1 / (sqrt(n) M(n))``.

    Args:
      n: fan-in, a positive integer or an array of them.
      a: the fitted constant (the article's 0.039, or a refitted one).

    Returns:
      ``M(n)``, a float or a float64 array.

    Examples:
      >>> from flaxinit.magnitude import article_standard
      >>> article_standard(2), round(article_standard(1000), 6)
      (0.471404520791, 0.46102)
    """
    sizes, scalar = _as_sizes(n, "n")
    general = (0.5 - a) + a / (2.0 * sizes - 1.0)
    out = general
    for k, v in _ARTICLE_M_SMALL.items():
        out = np.where(sizes == k, v, out)
    return float(out) if scalar else out


def article_normalized(
    n: _Ints,
    m: _Ints,
    a: float = ARTICLE_NORMALIZED_CONSTANTS["a"],
    b: float = ARTICLE_NORMALIZED_CONSTANTS["b"],
) -> float | np.ndarray:
    r"""The article's stand-in ``A(n, m)`` of the normalized-Letkeman bound.

    With ``h = max(n, m)`` and ``l = min(n, m)``:
    ``A = Aa(l) * Ab(h - l + 1) * Ac(h / l)``, ``Aa(k) = (0.866 - a) + a / sqrt(6k - 5)``,
    ``Ab(k) = (1 - b) + b / sqrt(6k - 5)`` and ``Ac(r) = 1 / sqrt(0.5 r + 0.5)``.
    The article's normalized-Letkeman bound is ``sqrt(6 / (n + m)) / A(n, m)``.

    Args:
      n: fan-in (positive integer or array).
      m: fan-out (positive integer or array, broadcast against ``n``).
      a: first fitted constant (article: 0.073).
      b: second fitted constant (article: -0.08).

    Returns:
      ``A(n, m)``, a float or a float64 array.

    Examples:
      >>> from flaxinit.magnitude import article_normalized
      >>> article_normalized(1, 1)  # so the (1, 1) bound is sqrt(3) / 0.866 = 2.0001, vs exact 2
      0.866
    """
    n_arr, n_scalar = _as_sizes(n, "n")
    m_arr, m_scalar = _as_sizes(m, "m")
    hi = np.maximum(n_arr, m_arr).astype(np.float64)
    lo = np.minimum(n_arr, m_arr).astype(np.float64)
    aa = (0.866 - a) + a / np.sqrt(6.0 * lo - 5.0)
    ab = (1.0 - b) + b / np.sqrt(6.0 * (hi - lo + 1.0) - 5.0)
    ac = 1.0 / np.sqrt(0.5 * (hi / lo) + 0.5)
    out = aa * ab * ac
    return float(out) if (n_scalar and m_scalar) else out


def expected_standard(n: _Ints, bound: float | npt.ArrayLike) -> float | np.ndarray:
    r"""Expected ``|sum of n weights|`` under ``U(-bound, bound)``: ``bound * g(n)``.

    This is the article's standard test (all-ones input, one output node).

    Examples:
      >>> from flaxinit.magnitude import expected_standard
      >>> expected_standard(4, 1 / expected_abs_sum(4))
      1.0
    """
    g = expected_abs_sum(n)
    out = np.asarray(bound, dtype=np.float64) * g
    return float(out) if out.ndim == 0 else out


class NormalizedMagnitudes(NamedTuple):
    """Expected values of the normalized test (SPEC section 3)."""

    forward: float | np.ndarray
    backward: float | np.ndarray
    avg: float | np.ndarray


def expected_normalized(
    n_in: _Ints,
    n_out: _Ints,
    bound: float | npt.ArrayLike,
    convention: Literal["article", "per_node"] = "article",
) -> NormalizedMagnitudes:
    r"""Expected values of the normalized test for weights ``U(-bound, bound)``.

    With ``W`` of shape ``(n_in, n_out)``, ``T_row = sum_i |sum_o W[i, o]|`` and
    ``T_col = sum_o |sum_i W[i, o]|`` have expectations
    ``n_in * bound * g(n_out)`` and ``n_out * bound * g(n_in)``.

    * ``"article"``: ``forward = T_row / n_out``, ``backward = T_col / n_in`` (the
      divisors the article's tables use).
    * ``"per_node"``: ``forward = T_col / n_out`` (mean |pre-activation|),
      ``backward = T_row / n_in`` (mean |back-propagated error|).

    Both give ``avg = (T_row + T_col) / (n_in + n_out)``.

    Args:
      n_in: fan-in of the layer.
      n_out: fan-out of the layer.
      bound: the weights' bound ``b``.
      convention: ``"article"`` or ``"per_node"``.

    Returns:
      A :class:`NormalizedMagnitudes` of floats (or arrays for array sizes).

    Examples:
      >>> from flaxinit.magnitude import expected_normalized
      >>> expected_normalized(1, 1, 2.0)
      NormalizedMagnitudes(forward=1.0, backward=1.0, avg=1.0)
    """
    _check_convention(convention)
    n_arr, _ = _as_sizes(n_in, "n_in")
    m_arr, _ = _as_sizes(n_out, "n_out")
    b = np.asarray(bound, dtype=np.float64)
    t_row = n_arr * b * expected_abs_sum(m_arr)
    t_col = m_arr * b * expected_abs_sum(n_arr)

    def out(x: np.ndarray) -> float | np.ndarray:
        return float(x) if np.ndim(x) == 0 else x

    return NormalizedMagnitudes(*map(out, normalized_passes(t_row, t_col, n_arr, m_arr, convention)))


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(map(repr, CONVENTIONS))}; got {convention!r}")


def normalized_passes(
    t_row: Any, t_col: Any, n_in: Any, n_out: Any, convention: str = "article"
) -> NormalizedMagnitudes:
    r"""(forward, backward, avg) of the normalized test from its row and column totals.

    ``t_row = sum_i |sum_o W[i, o]|`` and ``t_col = sum_o |sum_i W[i, o]|`` for a kernel of
    shape ``(n_in, n_out)``: the one place the two conventions are written down, used for
    the exact expectations here and for every Monte Carlo iteration in ``mc`` (plain
    arithmetic, so NumPy values and traced JAX arrays alike).

    Examples:
      >>> from flaxinit.magnitude import normalized_passes
      >>> normalized_passes(6.0, 4.0, 2, 3, "per_node")
      NormalizedMagnitudes(forward=1.3333333333333333, backward=3.0, avg=2.0)
    """
    _check_convention(convention)
    if convention == "article":
        forward, backward = t_row / n_out, t_col / n_in
    else:
        forward, backward = t_col / n_out, t_row / n_in
    return NormalizedMagnitudes(forward, backward, (t_row + t_col) / (n_in + n_out))
