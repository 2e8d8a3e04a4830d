"""jax's variance-scaling family: ``variance_scaling`` and its aliases, with jax's names and meanings.

``variance_scaling(scale, mode, distribution)`` draws weights of variance ``scale / n``
with ``n`` the fan ``mode`` names; the aliases are two-line calls of it, as in
``jax.nn.initializers``. For float32 and float64 a given key gives jax's values up to one
rounding of the scale (jax computes the scale in the weights' dtype, flaxinit in float64
once); narrow dtypes are drawn in float32 and rounded once, where jax draws in the narrow
type itself. Complex64 and complex128 weights are jax's complex draws, by jax's own
arithmetic in the complex dtype (the same bits as jax's jitted initializer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Unpack

from jax.typing import DTypeLike

from flaxinit import _checks
from flaxinit._base import FanOptions, FanScheme

__all__ = [
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "variance_scaling",
]

Mode = Literal["fan_in", "fan_out", "fan_avg", "fan_geo_avg"]
Distribution = Literal["truncated_normal", "normal", "uniform"]
_DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")
Axes = int | Sequence[int]


def variance_scaling(
    scale: float,
    mode: Mode,
    distribution: Distribution,
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
    **options: Unpack[FanOptions],
) -> FanScheme:
    r"""Weights of variance ``scale / n`` (times ``gain**2``), as ``jax.nn.initializers.variance_scaling``.

    ``n`` is ``fan_in``, ``fan_out``, ``fan_avg = (fan_in + fan_out) / 2`` or
    ``fan_geo_avg = sqrt(fan_in * fan_out)``. ``"uniform"`` draws ``U(±sqrt(3 scale / n))``,
    ``"normal"`` ``N(0, scale / n)``, ``"truncated_normal"`` ``N(0, 1)`` truncated to
    ``[-2, 2]`` and divided by its standard deviation ``0.8796...``, so the weights' variance
    is ``scale / n`` in every case. With ``scale = gain(activation)**2`` and ``"fan_in"``,
    the pre-activations of a layer fed unit-second-moment activations keep unit variance.

    Complex dtypes (complex64, complex128) are accepted, with jax's complex draws and
    values: ``"normal"`` is ``jax.random.normal``'s complex normal (independent real and
    imaginary parts), ``"uniform"`` is uniform on a disk, ``"truncated_normal"`` a complex
    normal with its modulus truncated at 2, each scaled so that ``E|w|^2 = scale / n``
    (for ``"truncated_normal"``, jax divides by the constant 0.9531..., whereas the
    truncated draw's root mean square is 0.9620, so ``E|w|^2`` is 1.019 ``scale / n``;
    flaxinit keeps jax's values).

    Args:
      scale: the variance scale, > 0: a real number or a 0-d array (a traced one, inside
        ``jit``, is used in at least float32 arithmetic and is not checked for sign).
      mode: ``"fan_in"``, ``"fan_out"``, ``"fan_avg"`` or ``"fan_geo_avg"``.
      distribution: ``"truncated_normal"``, ``"normal"`` or ``"uniform"``.
      in_axis: the kernel's input axis or axes (jax's position and default).
      out_axis: its output axis or axes.
      batch_axis: its batch axes, counted in neither fan.
      dtype: the default dtype of the weights (jax's position; a call's ``dtype`` wins).
      **options: the other :class:`flaxinit.FanOptions` (``einsum``, fan overrides, ``gain``).

    Returns:
      A :class:`flaxinit.FanScheme`.

    Examples:
      >>> import jax, jax.numpy as jnp, flaxinit
      >>> flaxinit.variance_scaling(2.0, "fan_in", "normal").stddev((8, 3))
      0.5
      >>> flaxinit.he_uniform()(jax.random.key(0), (8, 3), jnp.complex64).dtype
      dtype('complex64')
    """
    _checks.check_choice(distribution, "distribution", _DISTRIBUTIONS)
    params = {"scale": scale, "mode": mode, "distribution": distribution}
    options = {**options, "in_axis": in_axis, "out_axis": out_axis, "batch_axis": batch_axis}
    return FanScheme.build("variance_scaling", distribution, "variance_scaling", params, options, dtype)


def glorot_uniform(
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
    **options: Unpack[FanOptions],
) -> FanScheme:
    """``variance_scaling(1.0, "fan_avg", "uniform")``: the same distribution as :func:`flaxinit.xavier_normalized`."""
    return variance_scaling(1.0, "fan_avg", "uniform", in_axis, out_axis, batch_axis, dtype, **options)


def glorot_normal(
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
    **options: Unpack[FanOptions],
) -> FanScheme:
    """``variance_scaling(1.0, "fan_avg", "truncated_normal")``, as jax's ``glorot_normal``."""
    return variance_scaling(1.0, "fan_avg", "truncated_normal", in_axis, out_axis, batch_axis, dtype, **options)


def he_uniform(
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
    **options: Unpack[FanOptions],
) -> FanScheme:
    """``variance_scaling(2.0, "fan_in", "uniform")``: the same distribution as :func:`flaxinit.kaiming_uniform`."""
    return variance_scaling(2.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype, **options)


def he_normal(
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
    **options: Unpack[FanOptions],
) -> FanScheme:
    """``variance_scaling(2.0, "fan_in", "truncated_normal")``, as jax's ``he_normal`` (truncated, unlike
    :func:`flaxinit.kaiming_normal`)."""
    return variance_scaling(2.0, "fan_in", "truncated_normal", in_axis, out_axis, batch_axis, dtype, **options)


def lecun_uniform(
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
    **options: Unpack[FanOptions],
) -> FanScheme:
    """``variance_scaling(1.0, "fan_in", "uniform")``, as jax's ``lecun_uniform``."""
    return variance_scaling(1.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype, **options)


def lecun_normal(
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
    **options: Unpack[FanOptions],
) -> FanScheme:
    """``variance_scaling(1.0, "fan_in", "truncated_normal")``, as jax's ``lecun_normal`` (flax's default kernel)."""
    return variance_scaling(1.0, "fan_in", "truncated_normal", in_axis, out_axis, batch_axis, dtype, **options)
