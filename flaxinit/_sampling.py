"""The one sampling path that every random scheme goes through.

A scheme's weights are a unit draw times one Python-float scale: ``U(-1, 1)`` for the
symmetric uniform schemes (so, for one key, every uniform scheme's weights are exact
rescalings of the same draws: common random numbers, and a scheme differs from another
only by its bound), ``U[0, 1)`` for jax's ``uniform(scale)``, ``N(0, 1)``, or ``N(0, 1)``
truncated to ``[lower, upper]``. Narrow float types (float16, bfloat16, float8) are
sampled in float32 and rounded once, which keeps their full resolution and never piles
values onto the bounds. A scale given as a traced jax array (inside ``jit``) is cast to
the sampling dtype and multiplied in it; complex weights (jax's ``normal`` and
``variance_scaling`` take complex dtypes) are jax's complex draws, by jax's arithmetic
(:func:`complex_draw`). ``out_sharding`` places the result (``jax.device_put``; under
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


def scaled_jit(fn=None, *, static: tuple[int, ...], scale: int = 3):
    """``jax.jit`` of a sampler whose argument ``scale`` is its multiplier, ``static`` the static ones.

    Shape, dtype and a Python-number scale (every scheme's own) are static: an eager call
    then compiles the same program as a call inside a user's jit, so eager and jitted draws
    are bit-identical (XLA may otherwise regroup the constant factors of the normal sampler
    differently). An array scale (one given as a traced jax array, inside the caller's
    ``jit``) is a traced argument of a second compilation of the same function.
    """
    if fn is None:
        return functools.partial(scaled_jit, static=static, scale=scale)
    constant = jax.jit(fn, static_argnums=(*static, scale))
    traced = jax.jit(fn, static_argnums=static)

    @functools.wraps(fn)
    def call(*args):
        return (constant if isinstance(args[scale], int | float) else traced)(*args)

    return call


def _flat(draw, shape: tuple[int, ...]) -> jax.Array:
    """``draw(shape)`` made as a flat vector and reshaped: the same values (jax's random
    values are laid out by the flat index), and a program XLA's CPU backend compiles in a
    fraction of the time for kernels of rank 3 or more (measured: 0.3 s against 3 to 5 s for a
    ``(3, 3, 8, 16)`` conv kernel)."""
    return draw((int(np.prod(shape, dtype=np.int64)),)).reshape(shape)


def _times(x: jax.Array, scale) -> jax.Array:
    """``x * scale``, an array ``scale`` cast to ``x``'s dtype first (as jax casts its scale to the weights')."""
    return x * (scale if isinstance(scale, int | float) else jnp.asarray(scale, x.dtype))


@scaled_jit(static=(1, 2, 4, 5))
def uniform(key, shape, dtype, scale, out_sharding=None, minval=-1.0) -> jax.Array:
    """``scale`` times one ``U(minval, 1)`` draw: ``U(-b, b)`` weights for ``minval=-1``."""
    u = _flat(lambda flat: jax.random.uniform(key, flat, sampling_dtype(dtype), minval, 1.0), shape)
    return place(_times(u, scale).astype(dtype), out_sharding)


@scaled_jit(static=(1, 2, 4))
def normal(key, shape, dtype, stddev, out_sharding=None) -> jax.Array:
    """``N(0, stddev^2)`` weights: ``stddev`` times one standard-normal draw."""
    z = _flat(lambda flat: jax.random.normal(key, flat, sampling_dtype(dtype)), shape)
    return place(_times(z, stddev).astype(dtype), out_sharding)


@scaled_jit(static=(1, 2, 4, 5, 6))
def truncated_normal(key, shape, dtype, scale, lower, upper, out_sharding=None) -> jax.Array:
    """``scale`` times one draw of ``N(0, 1)`` truncated to ``[lower, upper]``."""
    z = _flat(lambda flat: jax.random.truncated_normal(key, lower, upper, flat, sampling_dtype(dtype)), shape)
    return place(_times(z, scale).astype(dtype), out_sharding)


# --- complex weights, as jax draws them ---------------------------------------------------------
#
# jax's variance_scaling and normal take complex dtypes; flaxinit's draws are jax's, by the
# same operations in the same order (jax/_src/nn/initializers.py, unchanged from jax 0.10 to
# 0.12), so a key gives jax's bits: the unit draws below, times the scale that jax computes
# in the complex dtype itself (the stddev cast to it; or the square root of the variance cast
# to it, over the truncated draw's constant).

#: jax's constant for ``variance_scaling(..., "truncated_normal")`` with complex weights (its
#: comment: "stddev of complex standard normal truncated to 2"); taken as jax states it.
COMPLEX_TRUNCATED_STD_2 = 0.95311164380491208


def _real(dtype: np.dtype) -> np.dtype:
    return np.array(0, dtype).real.dtype


def complex_uniform(key: jax.Array, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
    """Uniform on the disk of radius ``sqrt(2)`` (zero mean, unit variance ``E|w|^2``), as jax's."""
    key_r, key_theta = jax.random.split(key)
    r = jnp.sqrt(2 * jax.random.uniform(key_r, shape, _real(dtype))).astype(dtype)
    theta = 2 * np.pi * jax.random.uniform(key_theta, shape, _real(dtype)).astype(dtype)
    return r * jnp.exp(1j * theta)


def complex_truncated_normal(key: jax.Array, upper: float, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
    """The complex normal of unit variance, its modulus truncated to ``upper``, as jax's."""
    key_r, key_theta = jax.random.split(key)
    u = jax.random.uniform(key_r, shape, _real(dtype)).astype(dtype)
    t = (1 - jnp.exp(jnp.array(-(upper**2), dtype))) * u
    r = jnp.sqrt(-jnp.log(1 - t))
    theta = 2 * np.pi * jax.random.uniform(key_theta, shape, _real(dtype)).astype(dtype)
    return r * jnp.exp(1j * theta)


@scaled_jit(static=(1, 2, 4, 5, 6, 7), scale=3)
def complex_draw(key, shape, dtype, value, gain, distribution, form, out_sharding=None) -> jax.Array:
    """Complex weights: the unit draw of ``distribution`` times ``gain`` times jax's scale.

    ``form`` says what ``value`` is: ``"stddev"`` (jax's ``normal(stddev)``: the multiplier
    itself) or ``"variance"`` (jax's ``variance_scaling``: ``scale / n``).
    """
    v = jnp.asarray(value, dtype)
    scale = v if form == "stddev" else jnp.sqrt(v)
    if distribution == "normal":
        unit = _flat(lambda flat: jax.random.normal(key, flat, dtype), shape)
    elif distribution == "uniform":
        unit = _flat(lambda flat: complex_uniform(key, flat, dtype), shape)
    else:
        unit = _flat(lambda flat: complex_truncated_normal(key, 2, flat, dtype), shape)
        scale = scale / jnp.asarray(COMPLEX_TRUNCATED_STD_2, dtype)
    w = unit * scale
    return place(w if gain == 1.0 else w * gain, out_sharding)
