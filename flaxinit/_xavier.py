"""Xavier (Glorot) schemes: standard ``U(±1/sqrt(n))`` and normalized ``U(±sqrt(6/(n+m)))``."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from flaxinit._base import UniformScheme

__all__ = ["xavier_normalized", "xavier_standard"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class XavierStandard(UniformScheme):
    name = "xavier_standard"

    def _needed_fans(self):
        return True, False

    def _unit_bound(self, fan_in, fan_out):
        return 1.0 / math.sqrt(fan_in)


@dataclasses.dataclass(frozen=True, kw_only=True)
class XavierNormalized(UniformScheme):
    name = "xavier_normalized"

    def _unit_bound(self, fan_in, fan_out):
        return math.sqrt(6.0 / (fan_in + fan_out))


def xavier_standard(
    *,
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (),
    fan_in: int | None = None,
    fan_out: int | None = None,
    gain: float = 1.0,
) -> XavierStandard:
    r"""Standard Xavier: ``U(-b, b)`` with ``b = gain / sqrt(fan_in)``.

    Glorot & Bengio's "commonly used heuristic". With an all-ones input its mean
    |pre-activation| is ``g(fan_in) / sqrt(fan_in)``, which falls from 0.5 to
    ``sqrt(2 / (3 pi)) = 0.4607`` as ``fan_in`` grows, not 1.

    Args:
      in_axis: axis or axes of the kernel's input dimension.
      out_axis: axis or axes of the kernel's output dimension.
      batch_axis: axis or axes to ignore.
      fan_in: overrides the fan-in from the shape; ``fan_in=1`` is the Active Node
        Method for one-hot or softmax inputs.
      fan_out: overrides the fan-out (unused by this scheme; accepted for uniformity).
      gain: positive factor on the bound.

    Returns:
      An initializer ``init(key, shape, dtype=jnp.float32) -> jax.Array``.

    Examples:
      >>> import jax, flaxinit
      >>> init = flaxinit.xavier_standard()
      >>> init.bound((4, 3))
      0.5
      >>> init(jax.random.key(0), (4, 3)).shape
      (4, 3)
    """
    return XavierStandard(
        in_axis=in_axis, out_axis=out_axis, batch_axis=batch_axis, fan_in=fan_in, fan_out=fan_out, gain=gain
    )


def xavier_normalized(
    *,
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (),
    fan_in: int | None = None,
    fan_out: int | None = None,
    gain: float = 1.0,
) -> XavierNormalized:
    r"""Normalized Xavier (Glorot uniform): ``U(-b, b)``, ``b = gain * sqrt(6 / (fan_in + fan_out))``.

    Same distribution as ``jax.nn.initializers.glorot_uniform()``.

    Args:
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
      >>> flaxinit.xavier_normalized().bound((2, 1))
      1.4142135623730951
    """
    return XavierNormalized(
        in_axis=in_axis, out_axis=out_axis, batch_axis=batch_axis, fan_in=fan_in, fan_out=fan_out, gain=gain
    )
