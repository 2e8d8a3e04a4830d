"""Fan-in and fan-out of a kernel from its shape: jax's axis rules, or an einsum's labels."""

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
    *,
    einsum: str | None = None,
) -> tuple[int, int]:
    """Returns ``(fan_in, fan_out)`` of a kernel, as Python ints.

    By axes (the default): axes not named by ``in_axis``, ``out_axis`` or ``batch_axis``
    form the receptive field ``r`` (the spatial axes of a conv kernel);
    ``fan_in = r * prod(in dims)`` and ``fan_out = r * prod(out dims)``, exactly as
    ``jax.nn.initializers.variance_scaling`` counts them (an empty ``in_axis`` or
    ``out_axis``, ``()``, has size 1, as in jax: ``in_axis=0, out_axis=()`` gives the fans
    of a rank-1 kernel).

    By ``einsum="lhs,kernel->out"`` (the equation of the layer, the kernel its second
    operand, as ``nnx.Einsum`` and ``EinsumDense`` write it): ``fan_in`` is the product of
    the kernel's dimensions that the equation sums over (in ``lhs`` or only in the kernel,
    not in ``out``), ``fan_out`` the product of those that reach ``out`` but not from
    ``lhs``; dimensions in all three are batch dimensions and count in neither. This is
    what a layer computes: each output sums over ``fan_in`` products. A ``d,n,h`` attention
    kernel of ``"btd,dnh->btnh"`` has ``fan_in = d`` and ``fan_out = n * h``, where the
    axis rules give ``fan_in = d * n``.

    The standard meaning is used throughout: ``fan_in`` is the number of inputs feeding
    one output (the article calls this fan-out).

    Args:
      shape: the kernel's shape, every dimension positive, of a rank that has the axes
        named (rank >= 2 for the default axes).
      in_axis: axis or axes of the input dimension.
      out_axis: axis or axes of the output dimension.
      batch_axis: axis or axes to ignore (e.g. the head axis of a batched kernel).
      einsum: the layer's equation; then the axes must be left at their defaults.

    Returns:
      ``(fan_in, fan_out)`` as ints.

    Raises:
      ValueError: for a zero-size dimension, axes that are out of range for the rank (a
        kernel of rank < 2 with the default axes) or overlap, or an equation that is
        malformed or does not match ``shape``.

    Examples:
      >>> from flaxinit import compute_fans
      >>> compute_fans((3, 3, 16, 32))
      (144, 288)
      >>> compute_fans((8, 5, 7), batch_axis=0)
      (5, 7)
      >>> compute_fans((64, 4, 16), einsum="btd,dnh->btnh")
      (64, 64)
    """
    dims = check_shape(shape)
    if einsum is not None:
        if (in_axis, out_axis, batch_axis) != (-2, -1, ()):
            raise ValueError("einsum= and in_axis/out_axis/batch_axis are two ways to say the same thing: give one")
        return einsum_fans(dims, einsum)
    rank = len(dims)
    groups: dict[str, tuple[int, ...]] = {}
    owner: dict[int, str] = {}
    for name, spec in (("in_axis", in_axis), ("out_axis", out_axis), ("batch_axis", batch_axis)):
        axes: Axes = check_axes(spec, name)
        resolved = []
        for a in as_tuple(axes):
            if not -rank <= a < rank and rank < 2:
                raise ValueError(
                    f"cannot infer fans of a rank-{rank} kernel of shape {dims} with {name}={spec!r}: it needs "
                    "rank >= 2. Pass the fans explicitly instead, e.g. xavier_standard(fan_in=...) "
                    "(and fan_out=... for normalized schemes), or axes it has (an empty in_axis or out_axis has size 1)"
                )
            if not -rank <= a < rank:
                raise ValueError(f"{name}={spec!r} is out of range for a kernel of rank {rank} (shape {dims})")
            a %= rank
            if a in owner:
                raise ValueError(f"{name} and {owner[a]} overlap at axis {a} of shape {dims}")
            owner[a] = name
            resolved.append(a)
        groups[name] = tuple(resolved)
    receptive_field = math.prod(d for i, d in enumerate(dims) if i not in owner)
    fan_in = receptive_field * math.prod(dims[a] for a in groups["in_axis"])
    fan_out = receptive_field * math.prod(dims[a] for a in groups["out_axis"])
    return fan_in, fan_out


def parse_einsum(equation: str) -> tuple[str, str, str]:
    """``"lhs,kernel->out"`` as its three label strings, or a ValueError naming ``einsum``."""
    if not isinstance(equation, str):
        raise TypeError(f"einsum must be an equation string like 'btd,dnh->btnh', got {equation!r}")
    text = equation.replace(" ", "")
    operands, arrow, out = text.partition("->")
    parts = operands.split(",")
    if not arrow or len(parts) != 2 or not all(p.isalpha() for p in (*parts, out) if p):
        raise ValueError(f"einsum must look like 'lhs,kernel->out' with letter labels, got {equation!r}")
    lhs, kernel = parts
    for role, labels in (("lhs", lhs), ("kernel", kernel), ("out", out)):
        if len(set(labels)) != len(labels):
            raise ValueError(f"einsum {equation!r}: a label repeats within {role} ({labels!r}); not supported")
    if not kernel:
        raise ValueError(f"einsum {equation!r} has an empty kernel operand")
    if set(out) - set(lhs) - set(kernel):
        orphans = sorted(set(out) - set(lhs) - set(kernel))
        raise ValueError(f"einsum {equation!r}: output labels {orphans} come from no operand")
    return lhs, kernel, out


def einsum_fans(shape: tuple[int, ...], equation: str) -> tuple[int, int]:
    """The fans of the kernel operand of ``equation`` with ``shape`` (see :func:`compute_fans`)."""
    lhs, kernel, out = parse_einsum(equation)
    if len(kernel) != len(shape):
        raise ValueError(f"einsum {equation!r} gives the kernel {len(kernel)} axes ({kernel}), its shape has {shape}")
    size = dict(zip(kernel, shape, strict=True))
    fan_in = math.prod(size[c] for c in kernel if c not in out)
    fan_out = math.prod(size[c] for c in kernel if c in out and c not in lhs)
    return fan_in, fan_out
