"""Flax's parameter layouts: which axes of a parameter feed its fan-in, which its fan-out.

A Flax layer stores its parameters in a fixed layout that its name tells: ``Dense`` and
``Conv`` kernels ``(..., in, out)`` (the leading axes a receptive field), ``Embed`` tables
``(vocab, features)``, biases and norm scales ``(features,)``, and the attention kernels
of linen's ``MultiHeadDotProductAttention`` and nnx's ``MultiHeadAttention`` by their
projection's name: ``query``/``key``/``value`` ``(features, heads, head_dim)``, ``out``
``(heads, head_dim, features)``. A layer stack (``nn.scan``, ``nn.vmap``, ``nnx.vmap``)
adds leading *stack* axes, one per level, to every parameter of the stacked layers.

:func:`axis_kinds` gives each axis its kind from that layout (or from explicit fan options:
axes or an einsum equation), :func:`detect_stacks` finds the stack axes of a parameter tree
from the layouts alone, and :func:`initializer_shape` is the shape a Flax layer passes to
its initializer (attention kernels are drawn flat). :mod:`flaxinit.mup` reads fans and
roles from them; ``mc.audit`` the standard deviation an initializer draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from flaxinit._fans import parse_einsum

__all__ = [
    "ATTENTION_IN",
    "ATTENTION_OUT",
    "KINDS",
    "axis_kinds",
    "detect_stacks",
    "guessed_layout",
    "initializer_shape",
]

#: An axis feeds the fan-in, the fan-out, both (a receptive field), neither (an einsum's batch
#: axis), or is a layer stack's.
KINDS = ("in", "out", "both", "batch", "stack")
#: The names of attention's input projections (kernels ``(features, heads, head_dim)``) and of
#: its output projection (``(heads, head_dim, features)``), in linen and nnx.
ATTENTION_IN = ("query", "key", "value")
ATTENTION_OUT = ("out",)
#: Parameter names whose layout Flax's layers fix (besides attention kernels and 1-D parameters).
_KNOWN_NAMES = ("kernel", "embedding", "bias", "scale", "readout_kernel")


def _names(path: str) -> tuple[str, str]:
    """``(parameter name, its module's name)`` of a ``/``-joined path."""
    parts = path.split("/")
    return parts[-1], (parts[-2] if len(parts) > 1 else "")


def _attention_kernel(path: str) -> bool:
    name, parent = _names(path)
    return name == "kernel" and parent in ATTENTION_IN + ATTENTION_OUT


def _by_name(path: str, ndim: int) -> list[str]:
    name, parent = _names(path)
    if ndim <= 1 or name == "bias":
        return ["out"] * ndim  # biases and norm parameters: fan-in 1
    if ndim == 3 and name == "kernel" and parent in ATTENTION_IN:
        return ["in", "out", "out"]  # (features, heads, head_dim)
    if ndim == 3 and name == "kernel" and parent in ATTENTION_OUT:
        return ["in", "in", "out"]  # (heads, head_dim, features)
    return ["both"] * (ndim - 2) + ["in", "out"]  # Dense/Conv (..., in, out); Embed (vocab, features)


def _from_option(path: str, shape: tuple[int, ...], option: Any) -> list[str]:
    ndim = len(shape)
    if not isinstance(option, Mapping):
        raise TypeError(f"fans for {path!r} must be a mapping of fan options (in_axis, out_axis, batch_axis, or "
                        f"einsum), got {option!r}")  # fmt: skip
    unknown = set(option) - {"in_axis", "out_axis", "batch_axis", "einsum"}
    if unknown:
        raise ValueError(f"fans for {path!r}: unknown options {sorted(unknown)}; expected in_axis, out_axis, "
                         "batch_axis or einsum")  # fmt: skip
    if "einsum" in option:
        lhs, kernel, out = parse_einsum(option["einsum"])
        if len(kernel) != ndim:
            raise ValueError(f"fans for {path!r}: einsum {option['einsum']!r} has a {len(kernel)}-axis kernel, the "
                             f"parameter has shape {shape}")  # fmt: skip
        return ["batch" if c in out and c in lhs else "out" if c in out else "in" for c in kernel]

    def axes(value: Any) -> set[int]:
        value = (value,) if isinstance(value, int) else tuple(value)
        return {a % ndim for a in value}

    ins, outs = axes(option.get("in_axis", -2)), axes(option.get("out_axis", -1))
    batch = axes(option.get("batch_axis", ()))
    return ["batch" if i in batch else "in" if i in ins else "out" if i in outs else "both" for i in range(ndim)]


def axis_kinds(path: str, shape: Sequence[int], *, option: Any = None, stacked: int = 0) -> tuple[str, ...]:
    """Per axis of a parameter, its kind (:data:`KINDS`): ``stacked`` leading ``"stack"`` axes,
    then the layout that ``option`` states (``{"in_axis": ..., "out_axis": ...,
    "batch_axis": ...}`` or ``{"einsum": "lhs,kernel->out"}`` of the unstacked parameter)
    or, without one, the layout Flax's layers give a parameter of that name.

    Examples:
      >>> from flaxinit.tooling import axis_kinds
      >>> axis_kinds("Dense_0/kernel", (64, 128))
      ('in', 'out')
      >>> axis_kinds("ScanBlock_0/attention/query/kernel", (6, 64, 4, 16), stacked=1)
      ('stack', 'in', 'out', 'out')
      >>> axis_kinds("qkv/kernel", (3, 8, 64, 16), option={"einsum": "BTD,SNDH->SBTNH"})
      ('out', 'out', 'in', 'out')
    """
    shape = tuple(shape)
    if not 0 <= stacked <= len(shape):
        raise ValueError(f"parameter {path!r} of shape {shape} cannot have {stacked} stacked axes")
    inner = shape[stacked:]
    kinds = _by_name(path, len(inner)) if option is None else _from_option(path, inner, option)
    return ("stack",) * stacked + tuple(kinds)


def guessed_layout(path: str, ndim: int) -> bool:
    """Whether Flax's layouts do not tell the layout of an (unstacked) parameter of this path and
    rank: a name no Flax layer gives a matrix (``w``, ``wq``), or a kernel of rank 3 or more of an
    einsum layer (a module named ``*einsum*``), whose axes only its equation tells."""
    name, parent = _names(path)
    if ndim <= 1 or (_attention_kernel(path) and ndim == 3):
        return False
    if name not in _KNOWN_NAMES:
        return True
    return name == "kernel" and ndim >= 3 and "einsum" in parent.lower()


def initializer_shape(path: str, shape: Sequence[int], *, stacked: int = 0) -> tuple[int, ...]:
    """The shape a Flax layer passes to its initializer for this parameter: attention kernels
    are drawn flat, ``(fan_in, fan_out)`` (linen's ``DenseGeneral`` and nnx's ``LinearGeneral``
    draw ``(features, heads * head_dim)`` and reshape), every other parameter as it is stored
    (without its stack axes).

    Examples:
      >>> from flaxinit.tooling import initializer_shape
      >>> initializer_shape("MultiHeadDotProductAttention_0/query/kernel", (32, 4, 8))
      (32, 32)
      >>> initializer_shape("ScanBlock_0/Dense_0/kernel", (3, 8, 16), stacked=1)
      (8, 16)
    """
    inner = tuple(shape)[stacked:]
    if not (_attention_kernel(path) and len(inner) == 3):
        return inner
    kinds = _by_name(path, 3)
    fan_in = math.prod(d for d, k in zip(inner, kinds, strict=True) if k == "in")
    return fan_in, math.prod(inner) // fan_in


# --- stacks from the layouts alone ------------------------------------------------------------------


def _module_stacks(params: Sequence[tuple[str, tuple[int, ...]]]) -> int | None:
    """The stack axes of one module's parameters, from those whose layout fixes their rank
    (attention kernels 3, norm scales and biases 1, embedding tables 2; a kernel's bias matches
    its trailing axes); None where none tells or they disagree."""
    shapes = {path.rsplit("/", 1)[-1]: shape for path, shape in params}
    sure: set[int] = set()
    for path, shape in params:
        name = path.rsplit("/", 1)[-1]
        if _attention_kernel(path):
            sure.add(len(shape) - 3)
        elif name == "scale" or (name == "bias" and "kernel" not in shapes):
            sure.add(len(shape) - 1)
        elif name == "embedding":
            sure.add(len(shape) - 2)
    sure = {k for k in sure if k >= 0}
    if len(sure) == 1:
        return sure.pop()
    if sure or "kernel" not in shapes or "bias" not in shapes:
        return None
    kernel, bias = shapes["kernel"], shapes["bias"]

    def fits(k: int) -> bool:  # bias = kernel's k stack axes + its trailing (output) axes
        rest = len(bias) - k
        return kernel[:k] == bias[:k] and rest >= 1 and kernel[len(kernel) - rest :] == bias[k:]

    return next((k for k in range(len(bias)) if fits(k)), None)


def detect_stacks(params: Sequence[tuple[str, Sequence[int]]]) -> dict[str, int]:
    """``{path: stack axes}`` of the parameters a layer stack holds, found from Flax's layouts
    alone (what a parameter tree shows; a traced model tells exactly, which ``mc`` uses).

    A module whose parameters have a fixed rank (attention kernels, norm scales and biases,
    embedding tables, a kernel's bias) and hold ``k`` more axes is stacked ``k`` times; the
    stack covers the largest enclosing module (below the model itself) all of whose
    parameters share those leading axes, so a kernel without a bias inside a stacked block
    is found too. Parameters no such module covers have none.

    Examples:
      >>> from flaxinit.tooling import detect_stacks
      >>> detect_stacks([("Dense_0/kernel", (8, 16)), ("Dense_0/bias", (16,)),
      ...                ("Scan_0/Dense_0/kernel", (3, 16, 16)), ("Scan_0/Dense_0/bias", (3, 16)),
      ...                ("Scan_0/Dense_1/kernel", (3, 16, 16))])
      {'Scan_0/Dense_0/kernel': 1, 'Scan_0/Dense_0/bias': 1, 'Scan_0/Dense_1/kernel': 1}
    """
    params = [(path, tuple(shape)) for path, shape in params]
    modules: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    for path, shape in params:
        modules.setdefault(path.rpartition("/")[0], []).append((path, shape))
    found: dict[str, int] = {}
    for module, members in modules.items():
        k = _module_stacks(members)
        if not k:
            continue
        lead = members[0][1][:k]
        if any(shape[:k] != lead for _, shape in members):
            continue
        # the largest enclosing module below the root whose parameters all share the leading axes
        parts = module.split("/")
        root = module
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            under = [s for p, s in params if p.startswith(prefix + "/")]
            if all(len(s) > k and s[:k] == lead for s in under):
                root = prefix
                break
        for path, shape in params:
            inside = path.startswith(root + "/") if root else path.rpartition("/")[0] == ""  # root: a bare stack
            if inside and len(shape) > k and shape[:k] == lead:
                found.setdefault(path, k)
    return {path: found[path] for path, _ in params if path in found}
