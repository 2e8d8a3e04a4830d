"""Kaiming (He) schemes: ``N(0, 2/fan)`` and its uniform twin, with the leaky-ReLU gain."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Literal

from flaxinit import _checks, _sampling
from flaxinit._base import FanScheme, UniformScheme

__all__ = ["kaiming_normal", "kaiming_uniform"]

_MODES = ("fan_in", "fan_out")


@dataclasses.dataclass(frozen=True, kw_only=True)
class _KaimingMixin:
    mode: str = "fan_in"
    negative_slope: float = 0.0

    def _check_kaiming(self) -> None:
        _checks.check_choice(self.mode, "mode", _MODES)
        slope = _checks.check_real(self.negative_slope, "negative_slope", minimum=0.0)
        object.__setattr__(self, "negative_slope", slope)

    def _needed_fans(self):
        return self.mode == "fan_in", self.mode == "fan_out"

    def _unit_stddev(self, fan_in, fan_out) -> float:
        fan = fan_in if self.mode == "fan_in" else fan_out
        return math.sqrt(2.0 / (1.0 + self.negative_slope**2) / fan)


@dataclasses.dataclass(frozen=True, kw_only=True)
class KaimingNormal(_KaimingMixin, FanScheme):
    name = "kaiming_normal"

    def __post_init__(self):
        super().__post_init__()
        self._check_kaiming()

    def stddev(self, shape: tuple[int, ...]) -> float:
        """The standard deviation for a kernel of ``shape`` (a Python float)."""
        return self.gain * self._unit_stddev(*self.fans(_checks.check_shape(shape)))

    def expected_abs_sum(self, shape, terms):
        return self.stddev(shape) * math.sqrt(2.0 * terms / math.pi)  # |N(0, terms s^2)|

    def _draw(self, key, shape, dtype, out_sharding):
        return _sampling.normal(key, shape, dtype, self.stddev(shape), out_sharding)


@dataclasses.dataclass(frozen=True, kw_only=True)
class KaimingUniform(_KaimingMixin, UniformScheme):
    name = "kaiming_uniform"

    def __post_init__(self):
        super().__post_init__()
        self._check_kaiming()

    def _unit_bound(self, fan_in, fan_out):
        return math.sqrt(3.0) * self._unit_stddev(fan_in, fan_out)


def kaiming_normal(
    mode: Literal["fan_in", "fan_out"] = "fan_in",
    negative_slope: float = 0.0,
    *,
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (),
    fan_in: int | None = None,
    fan_out: int | None = None,
    gain: float = 1.0,
) -> KaimingNormal:
    r"""Kaiming (He) normal: ``N(0, s^2)``, ``s = gain * sqrt(2 / ((1 + slope^2) fan))``.

    ``mode="fan_in"`` keeps the forward pass's variance, ``"fan_out"`` the backward
    pass's. This is the plain normal of He et al.; ``jax.nn.initializers.he_normal``
    truncates at two standard deviations instead.

    Args:
      mode: ``"fan_in"`` or ``"fan_out"``.
      negative_slope: the leaky-ReLU slope (>= 0; 0 is ReLU).
      in_axis: axis or axes of the kernel's input dimension.
      out_axis: axis or axes of the kernel's output dimension.
      batch_axis: axis or axes to ignore.
      fan_in: overrides the fan-in (``fan_in=1``: Active Node Method).
      fan_out: overrides the fan-out.
      gain: positive factor on the standard deviation.

    Returns:
      An initializer ``init(key, shape, dtype=jnp.float32) -> jax.Array``.

    Examples:
      >>> import flaxinit
      >>> flaxinit.kaiming_normal().stddev((8, 3))
      0.5
    """
    return KaimingNormal(
        mode=mode,
        negative_slope=negative_slope,
        in_axis=in_axis,
        out_axis=out_axis,
        batch_axis=batch_axis,
        fan_in=fan_in,
        fan_out=fan_out,
        gain=gain,
    )


def kaiming_uniform(
    mode: Literal["fan_in", "fan_out"] = "fan_in",
    negative_slope: float = 0.0,
    *,
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (),
    fan_in: int | None = None,
    fan_out: int | None = None,
    gain: float = 1.0,
) -> KaimingUniform:
    r"""Kaiming (He) uniform: ``U(-b, b)``, ``b = gain * sqrt(6 / ((1 + slope^2) fan))``.

    The uniform twin of :func:`kaiming_normal`, with the same variance.

    Args:
      mode: ``"fan_in"`` or ``"fan_out"``.
      negative_slope: the leaky-ReLU slope (>= 0; 0 is ReLU).
      in_axis: axis or axes of the kernel's input dimension.
      out_axis: axis or axes of the kernel's output dimension.
      batch_axis: axis or axes to ignore.
      fan_in: overrides the fan-in (``fan_in=1``: Active Node Method).
      fan_out: overrides the fan-out.
      gain: positive factor on the bound.

    Returns:
      An initializer ``init(key, shape, dtype=jnp.float32) -> jax.Array``.

    Examples:
      >>> import flaxinit
      >>> round(flaxinit.kaiming_uniform("fan_out").bound((5, 6)), 12)  # sqrt(6 / 6)
      1.0
    """
    return KaimingUniform(
        mode=mode,
        negative_slope=negative_slope,
        in_axis=in_axis,
        out_axis=out_axis,
        batch_axis=batch_axis,
        fan_in=fan_in,
        fan_out=fan_out,
        gain=gain,
    )
