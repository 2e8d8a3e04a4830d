"""How every tool of ``mc`` reads its ``key``: an int seed becomes a Philox key (or threefry's),
a key passed in keeps its own generator, and results record which generator drew them."""

from __future__ import annotations

from typing import Any

import jax

from flaxinit.prng import is_philox, philox_key
from flaxinit.tooling import check_choice, check_key

#: The generators an int seed can select.
PRNGS = ("philox", "threefry")


def as_key(key: Any, prng: str = "philox") -> jax.Array:
    """A tool's key: a key as given (it keeps its own impl: a threefry key gives the bits it
    always gave), an int seed as a key of ``prng`` (``"philox"``, the default:
    :func:`flaxinit.prng.philox_key`; or ``"threefry"``: ``jax.random.key``).

    Examples:
      >>> prng_name(as_key(0)), prng_name(as_key(0, "threefry"))
      ('philox4x32_10', 'threefry2x32')
    """
    check_choice(prng, "prng", PRNGS)
    if isinstance(key, int) and not isinstance(key, bool) and prng == "philox":
        return philox_key(key)
    return check_key(key, seeds=True)


def prng_name(key: jax.Array) -> str:
    """The generator behind ``key``, as results record it: ``"philox4x32_10"``, ``"threefry2x32"``, ..."""
    if is_philox(key):
        return "philox4x32_10"
    if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return "threefry2x32"  # a legacy raw key: jax's default impl
    return str(jax.random.key_impl(key)).removeprefix("PRNGSpec(").strip("')\"")


__all__ = ["PRNGS", "as_key", "prng_name"]
