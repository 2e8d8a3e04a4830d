"""Constant schemes: the article's cautionary all-zeros and all-ones baselines."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from flaxinit import _checks
from flaxinit._base import Initializer

__all__ = ["constant", "ones", "zeros"]


@dataclasses.dataclass(frozen=True)
class Constant(Initializer):
    name = "constant"
    value: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _checks.check_real(self.value, "value"))

    def expected_abs_sum(self, shape, terms):
        return abs(terms * self.value)

    def _draw(self, key, shape, dtype, out_sharding):
        del key  # deterministic
        return jnp.full(shape, self.value, dtype, out_sharding=out_sharding)


@dataclasses.dataclass(frozen=True)
class Zeros(Constant):
    name = "zeros"
    value: float = dataclasses.field(default=0.0, init=False, repr=False)

    def get_config(self):
        return {"name": self.name}


@dataclasses.dataclass(frozen=True)
class Ones(Constant):
    name = "ones"
    value: float = dataclasses.field(default=1.0, init=False, repr=False)

    def get_config(self):
        return {"name": self.name}


def zeros() -> Zeros:
    """Every weight 0. The key is ignored; any rank is accepted (biases included).

    Examples:
      >>> import jax, flaxinit
      >>> flaxinit.zeros()(jax.random.key(0), (2, 3))
      Array([[0., 0., 0.],
             [0., 0., 0.]], dtype=float32)
    """
    return Zeros()


def ones() -> Ones:
    """Every weight 1: the article's example of a symmetric, untrainable start.

    Examples:
      >>> import jax, flaxinit
      >>> flaxinit.ones()(jax.random.key(0), (2,))
      Array([1., 1.], dtype=float32)
    """
    return Ones()


def constant(value: float) -> Constant:
    """Every weight ``value`` (a finite real number).

    Examples:
      >>> import jax, jax.numpy as jnp, flaxinit
      >>> flaxinit.constant(0.5)(jax.random.key(0), (3,), jnp.bfloat16)
      Array([0.5, 0.5, 0.5], dtype=bfloat16)
    """
    return Constant(value)
