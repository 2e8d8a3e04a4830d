"""Constant schemes: the article's cautionary all-zeros and all-ones baselines, and any constant."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
from jax.typing import DTypeLike

from flaxinit import _checks, _sampling
from flaxinit._base import Initializer

__all__ = ["constant", "ones", "zeros"]


@dataclasses.dataclass(frozen=True)
class Constant(Initializer):
    """Every weight ``value``; the key is ignored and any rank is accepted (biases included).

    ``zeros()`` and ``ones()`` are constants named for their value (their configs carry
    only the name).
    """

    name: str = "constant"
    value: float = 0.0
    dtype: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _checks.check_scalar(self.value, "value"))
        if self.dtype is not None:
            object.__setattr__(self, "dtype", self._check_dtype(self.dtype).name)

    def _complex_ok(self) -> bool:
        return True  # as jax's constants: a real value in a complex dtype

    def expected_abs_sum(self, shape, terms):
        return abs(terms * self.value)

    def stacked(self) -> Constant:
        return self  # any shape is a stack of constant kernels

    def get_config(self) -> dict[str, Any]:
        config = {"name": self.name, "dtype": self.dtype}
        return config if self.name in ("zeros", "ones") else {**config, "value": self.value}

    def _draw(self, key, shape, dtype, out_sharding):
        del key  # deterministic
        return _sampling.place(jnp.full(shape, self.value, dtype), out_sharding)


def zeros(dtype: DTypeLike | None = None) -> Constant:
    """Every weight 0.

    Examples:
      >>> import jax, flaxinit
      >>> flaxinit.zeros()(jax.random.key(0), (2, 3))
      Array([[0., 0., 0.],
             [0., 0., 0.]], dtype=float32)
    """
    return Constant("zeros", 0.0, dtype)


def ones(dtype: DTypeLike | None = None) -> Constant:
    """Every weight 1: the article's example of a symmetric, untrainable start.

    Examples:
      >>> import jax, flaxinit
      >>> flaxinit.ones()(jax.random.key(0), (2,))
      Array([1., 1.], dtype=float32)
    """
    return Constant("ones", 1.0, dtype)


def constant(value: float, dtype: DTypeLike | None = None) -> Constant:
    """Every weight ``value``, as ``jax.nn.initializers.constant``.

    ``value`` is a finite real number or a 0-d array (jax also takes a complex number or
    an array to broadcast; flaxinit does not). Any real or complex dtype, as jax's (so are
    :func:`zeros` and :func:`ones`).

    Examples:
      >>> import jax, jax.numpy as jnp, flaxinit
      >>> flaxinit.constant(0.5)(jax.random.key(0), (3,), jnp.bfloat16)
      Array([0.5, 0.5, 0.5], dtype=bfloat16)
      >>> flaxinit.constant(0.5)(jax.random.key(0), (2,), jnp.complex64)
      Array([0.5+0.j, 0.5+0.j], dtype=complex64)
    """
    return Constant("constant", value, dtype)
