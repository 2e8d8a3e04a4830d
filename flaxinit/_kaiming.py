"""Kaiming (He) schemes: ``N(0, 2/fan)`` and its uniform twin, with the leaky-ReLU gain."""

from __future__ import annotations

from typing import Literal, Unpack

from flaxinit._base import FanOptions, FanScheme

__all__ = ["kaiming_normal", "kaiming_uniform"]


def kaiming_normal(
    mode: Literal["fan_in", "fan_out"] = "fan_in", negative_slope: float = 0.0, **options: Unpack[FanOptions]
) -> FanScheme:
    r"""Kaiming (He) normal: ``N(0, s^2)``, ``s = gain * sqrt(2 / ((1 + slope^2) fan))``.

    ``mode="fan_in"`` keeps the forward pass's variance, ``"fan_out"`` the backward
    pass's. This is the plain normal of He et al.; ``jax.nn.initializers.he_normal`` (and
    jax's own ``kaiming_normal``) truncate at two standard deviations instead, as
    :func:`flaxinit.he_normal` does.

    Args:
      mode: ``"fan_in"`` or ``"fan_out"``.
      negative_slope: the leaky-ReLU slope (>= 0; 0 is ReLU).
      **options: the :class:`flaxinit.FanOptions`.

    Returns:
      A :class:`flaxinit.FanScheme`.

    Examples:
      >>> import flaxinit
      >>> flaxinit.kaiming_normal().stddev((8, 3))
      0.5
    """
    params = {"mode": mode, "negative_slope": negative_slope}
    return FanScheme.build("kaiming_normal", "normal", "kaiming", params, options)


def kaiming_uniform(
    mode: Literal["fan_in", "fan_out"] = "fan_in", negative_slope: float = 0.0, **options: Unpack[FanOptions]
) -> FanScheme:
    r"""Kaiming (He) uniform: ``U(-b, b)``, ``b = gain * sqrt(6 / ((1 + slope^2) fan))``.

    The uniform twin of :func:`kaiming_normal`, with the same variance.

    Args:
      mode: ``"fan_in"`` or ``"fan_out"``.
      negative_slope: the leaky-ReLU slope (>= 0; 0 is ReLU).
      **options: the :class:`flaxinit.FanOptions`.

    Returns:
      A :class:`flaxinit.FanScheme`.

    Examples:
      >>> import flaxinit
      >>> round(flaxinit.kaiming_uniform("fan_out").bound((5, 6)), 12)  # sqrt(6 / 6)
      1.0
    """
    params = {"mode": mode, "negative_slope": negative_slope}
    return FanScheme.build("kaiming_uniform", "uniform", "kaiming", params, options)
