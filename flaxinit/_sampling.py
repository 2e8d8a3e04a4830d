"""The one sampling path that every random scheme goes through.

A scheme's weights are a unit draw times one Python-float scale: ``U(-1, 1)`` for the
symmetric uniform schemes (so, for one key, every uniform scheme's weights are exact
rescalings of the same draws: common random numbers, and a scheme differs from another
only by its bound), ``U[0, 1)`` for jax's ``uniform(scale)``, ``N(0, 1)``, or ``N(0, 1)``
truncated to ``[lower, upper]``. Narrow float types (float16, bfloat16, float8) are
sampled in float32 and rounded once, which keeps their full resolution and never piles
values onto the bounds. ``out_sharding`` places the result (``jax.device_put``; under
``jit`` a sharding constraint, which XLA propagates into the generation): ``jax.random``'s
values do not depend on the sharding, so a sharded draw equals the unsharded one bit for
bit, with any mesh (jax's own initializers pass it to ``jax.random``, which accepts only
meshes with explicit axes).
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
def place(x: jax.Array, out_sharding) -> jax.Array:
    """``x`` with the sharding ``out_sharding`` (None: as it is): a constraint when traced."""
    if out_sharding is None:
        return x
    if not isinstance(x, jax.core.Tracer):
        return jax.device_put(x, out_sharding)
    mesh = getattr(out_sharding, "mesh", None)
    if mesh is not None and any(t == jax.sharding.AxisType.Explicit for t in getattr(mesh, "axis_types", ())):
        return jax.sharding.reshard(x, out_sharding)  # a mesh with explicit axes
    return jax.lax.with_sharding_constraint(x, out_sharding)


def _static(count: int):
    """``jax.jit`` with every argument after the key static."""
    return functools.partial(jax.jit, static_argnums=tuple(range(1, count)))


@_static(6)
def uniform(key, shape, dtype, scale, out_sharding=None, minval=-1.0) -> jax.Array:
    """``scale`` times one ``U(minval, 1)`` draw: ``U(-b, b)`` weights for ``minval=-1``."""
    u = jax.random.uniform(key, shape, sampling_dtype(dtype), minval, 1.0)
    return place((u * scale).astype(dtype), out_sharding)


@_static(5)
def normal(key, shape, dtype, stddev, out_sharding=None) -> jax.Array:
    """``N(0, stddev^2)`` weights: ``stddev`` times one standard-normal draw."""
    z = jax.random.normal(key, shape, sampling_dtype(dtype))
    return place((z * stddev).astype(dtype), out_sharding)


@_static(7)
def truncated_normal(key, shape, dtype, scale, lower, upper, out_sharding=None) -> jax.Array:
    """``scale`` times one draw of ``N(0, 1)`` truncated to ``[lower, upper]``."""
    z = jax.random.truncated_normal(key, lower, upper, shape, sampling_dtype(dtype))
    return place((z * scale).astype(dtype), out_sharding)
