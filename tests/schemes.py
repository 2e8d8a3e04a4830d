"""Every scheme of ``flaxinit.available()`` built with example arguments, and what kernels each accepts.

Shared by the table-driven tests: ``make(name)`` builds a scheme (the few factories with
required arguments get example values); ``GENERIC`` are the schemes that take a kernel of
any rank >= 2 (every fan-based scheme, and orthogonal), the aliases left out (they build
the scheme they stand for); ``RANKS`` the structured schemes with rank limits.
"""

import flaxinit
from flaxinit._registry import ALIASES

REQUIRED = {
    "constant": {"value": 0.5},
    "variance_scaling": {"scale": 2.0, "mode": "fan_in", "distribution": "normal"},
}
#: Structured schemes that accept only some ranks: a kernel of another rank is an error.
RANKS = {"identity": (2,), "sparse": (2,), "dirac": (3, 4, 5), "delta_orthogonal": (3, 4, 5)}
NAMES = [n for n in flaxinit.available() if n not in ALIASES]
GENERIC = [n for n in NAMES if n not in RANKS]


def make(name: str, **kwargs) -> flaxinit.Initializer:
    """``flaxinit.get(name, ...)`` with the example values of required arguments."""
    return flaxinit.get(name, **{**REQUIRED.get(name, {}), **kwargs})


def draws_at_random(init: flaxinit.Initializer) -> bool:
    return not isinstance(init, flaxinit._constant.Constant) and init.name not in ("identity", "dirac")
