"""Fan-in and fan-out of a kernel from its shape (jax's axis rules)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from flaxinit._checks import Axes, as_tuple, check_axes, check_shape

__all__ = ["compute_fans"]


def compute_fans(
    shape: Sequence[int],
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (),
) -> tuple[int, int]:
    """Returns ``(fan_in, fan_out)`` of a kernel, as Python ints.

    Axes not named by ``in_axis``, ``out_axis`` or ``batch_axis`` form the receptive
    field ``r`` (the spatial axes of a conv kernel); ``fan_in = r * prod(in dims)``
    and ``fan_out = r * prod(out dims)``, exactly as ``jax.nn.initializers.variance_scaling``
    counts them. The standard meaning is used throughout: ``fan_in`` is the number of
    inputs feeding one output (the article calls this fan-out).

    Args:
      shape: the kernel's shape, rank >= 2, every dimension positive.
      in_axis: axis or axes of the input dimension.
      out_axis: axis or axes of the output dimension.
      batch_axis: axis or axes to ignore (e.g. the head axis of a batched kernel).

    Returns:
      ``(fan_in, fan_out)`` as ints.

    Raises:
      ValueError: for a kernel of rank < 2, a zero-size dimension, or axes that are
        out of range or overlap.

    Examples:
      >>> from flaxinit import compute_fans
      >>> compute_fans((3, 3, 16, 32))
      (144, 288)
      >>> compute_fans((8, 5, 7), batch_axis=0)
      (5, 7)
    """
    dims = check_shape(shape)
    if len(dims) < 2:
        raise ValueError(
            f"cannot infer fans of a rank-{len(dims)} kernel of shape {dims}: it needs rank >= 2. "
            "Pass the fans explicitly instead, e.g. xavier_standard(fan_in=...) "
            "(and fan_out=... for normalized schemes)"
        )
    rank = len(dims)
    groups: dict[str, tuple[int, ...]] = {}
    owner: dict[int, str] = {}
    for name, spec in (("in_axis", in_axis), ("out_axis", out_axis), ("batch_axis", batch_axis)):
        axes: Axes = check_axes(spec, name)
        resolved = []
        for a in as_tuple(axes):
            if not -rank <= a < rank:
                raise ValueError(f"{name}={spec!r} is out of range for a kernel of rank {rank} (shape {dims})")
            a %= rank
            if a in owner:
                raise ValueError(f"{name} and {owner[a]} overlap at axis {a} of shape {dims}")
            owner[a] = name
            resolved.append(a)
        groups[name] = tuple(resolved)
    if not groups["in_axis"] or not groups["out_axis"]:
        raise ValueError("in_axis and out_axis must each name at least one axis")
    receptive_field = math.prod(d for i, d in enumerate(dims) if i not in owner)
    fan_in = receptive_field * math.prod(dims[a] for a in groups["in_axis"])
    fan_out = receptive_field * math.prod(dims[a] for a in groups["out_axis"])
    return fan_in, fan_out
