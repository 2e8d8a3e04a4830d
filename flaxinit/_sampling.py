"""The one sampling path that every random scheme goes through.

Uniform schemes draw ``u ~ U(-1, 1)`` and return ``bound * u``; so, for one key, every
uniform scheme's weights are exact rescalings of the same draws (common random numbers),
and a scheme differs from another only by its bound. Narrow float types (float16,
bfloat16, float8) are sampled in float32 and rounded once, which keeps their full
resolution and never piles values onto the bounds.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def sampling_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype random draws are made in before the final cast to ``dtype``."""
    return np.dtype(jnp.float32) if jnp.finfo(dtype).bits < 32 else dtype


# Jitted with static shape, dtype and scale: an eager call then compiles the same program
# as a call inside a user's jit, so eager and jitted draws are bit-identical (XLA may
# otherwise regroup the constant factors of the normal sampler differently).
_static = functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))


@_static
def uniform(key: jax.Array, shape: tuple[int, ...], dtype: np.dtype, bound: float, out_sharding=None) -> jax.Array:
    """``U(-bound, bound)`` weights: ``bound`` times one ``U(-1, 1)`` draw."""
    u = jax.random.uniform(key, shape, sampling_dtype(dtype), -1.0, 1.0, out_sharding=out_sharding)
    return (u * bound).astype(dtype)


@_static
def normal(key: jax.Array, shape: tuple[int, ...], dtype: np.dtype, stddev: float, out_sharding=None) -> jax.Array:
    """``N(0, stddev^2)`` weights: ``stddev`` times one standard-normal draw."""
    z = jax.random.normal(key, shape, sampling_dtype(dtype), out_sharding=out_sharding)
    return (z * stddev).astype(dtype)
