"""Infinite axes, fans and roles of every parameter: :class:`InfShape` and :func:`infshapes`.

A parameter's axes are compared between a base model and the target (and, if given, a
*delta* model that differs from the base in every dimension that grows): an axis is
infinite where the two differ. Which axes feed a parameter's fan-in and which its fan-out
follows Flax's conventions (``Dense``/``Conv`` kernels ``(..., in, out)``, ``Embed`` tables
``(vocab, features)``, attention kernels by name), ``fans=`` overriding them per path.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

ROLES = ("input", "hidden", "output", "finite")
#: The parameter name of :class:`flaxinit.mup.Readout`'s kernel: a readout in Table 8's form.
READOUT_KERNEL = "readout_kernel"
_ATTENTION_IN = ("query", "key", "value")
_ATTENTION_OUT = ("out",)


@dataclasses.dataclass(frozen=True)
class InfShape:
    """One parameter's shape against the base model's, and what μP makes of it.

    Attributes:
      path: the parameter's ``/``-joined path (``"Dense_0/kernel"``).
      shape: its shape in the target model.
      base_shape: its shape in the base model.
      infinite: per axis, whether it grows with width.
      fan_in, fan_out: its fans in the target (a 1-D parameter, a bias, has fan-in 1).
      fan_in_mult: ``fan_in / base_fan_in`` over the infinite axes (1 if none feeds the fan-in).
      fan_out_mult: the same for the fan-out.
      role: ``"input"`` (only the fan-out grows: input kernels, embeddings, biases and norm
        parameters of a growing width), ``"hidden"`` (both grow), ``"output"`` (only the
        fan-in grows: the readout) or ``"finite"`` (nothing grows).
      readout: a :class:`flaxinit.mup.Readout` kernel (Table 8's form: a forward multiplier
        instead of a rescaled init and LR).
      block: inside a residual block (``infshapes(..., blocks=...)``), for the depth rules.
    """

    path: str
    shape: tuple[int, ...]
    base_shape: tuple[int, ...]
    infinite: tuple[bool, ...]
    fan_in: int
    fan_out: int
    fan_in_mult: float
    fan_out_mult: float
    role: str
    readout: bool = False
    block: bool = False


# --- trees ---------------------------------------------------------------------------------------


def _is_param(x: Any) -> bool:
    from flax import nnx
    from flax.core import meta

    if isinstance(x, meta.AxisMetadata | nnx.Variable):
        return True
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, Mapping)


def _unboxed(x: Any) -> Any:
    from flax import nnx
    from flax.core import meta

    if isinstance(x, nnx.Variable):
        return x.get_value() if hasattr(x, "get_value") else x.value
    if isinstance(x, meta.AxisMetadata):
        return x.unbox()
    return x


def _names(keys: Sequence[Any]) -> list[str]:
    """The names of a key path; nnx Variables' and linen boxes' attribute ``.value`` left out
    (a module named ``value``, attention's value projection, stays)."""
    keys = [k for k in keys if not (isinstance(k, jax.tree_util.GetAttrKey) and k.name == "value")]
    return [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in keys]


def parameters(tree: Any, argument: str) -> tuple[Any, list[tuple[str, Any]]]:
    """``(the parameter tree, [(path, array or ShapeDtypeStruct)])`` of a linen variables
    dict (its ``params``), a linen params dict, an nnx ``State`` or any tree of arrays."""
    if isinstance(tree, Mapping) and "params" in tree and isinstance(tree["params"], Mapping):
        tree = tree["params"]
    try:
        flat = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_param)[0]
    except Exception as e:
        raise TypeError(f"{argument} must be a tree of parameters, got {type(tree).__name__}") from e
    out = []
    for keys, leaf in flat:
        names = _names(keys)
        if not _is_param(leaf):
            raise TypeError(f"{argument} must hold arrays or jax.ShapeDtypeStruct, got {type(leaf).__name__} at "
                            f"{'/'.join(names)!r}")  # fmt: skip
        out.append(("/".join(names), _unboxed(leaf)))
    if not out:
        raise ValueError(f"{argument} has no parameters")
    return tree, out


def path_of(keys: Sequence[Any]) -> str:
    """The ``/``-joined path of a ``tree_flatten_with_path`` key sequence (``params`` and
    nnx's ``value`` left out), as :func:`parameters` names them."""
    names = _names(keys)
    if names and names[0] == "params":
        names = names[1:]
    return "/".join(names)


# --- fans -----------------------------------------------------------------------------------------


def _axis_kinds(path: str, shape: tuple[int, ...], option: Any) -> list[str]:
    """Per axis: ``"in"`` (feeds the fan-in), ``"out"``, ``"both"`` (a receptive field) or
    ``"none"`` (a batch axis)."""
    ndim = len(shape)
    if option is not None:
        return _kinds_from_option(path, shape, option)
    names = path.split("/")
    name, parent = names[-1], (names[-2] if len(names) > 1 else "")
    if ndim <= 1 or name == "bias":
        return ["out"] * ndim  # biases and norm parameters: fan-in 1
    if ndim == 3 and name == "kernel" and parent in _ATTENTION_IN:
        return ["in", "out", "out"]  # (features, heads, head_dim)
    if ndim == 3 and name == "kernel" and parent in _ATTENTION_OUT:
        return ["in", "in", "out"]  # (heads, head_dim, features)
    return ["both"] * (ndim - 2) + ["in", "out"]  # Dense/Conv (..., in, out); Embed (vocab, features)


def _kinds_from_option(path: str, shape: tuple[int, ...], option: Any) -> list[str]:
    ndim = len(shape)
    if not isinstance(option, Mapping):
        raise TypeError(f"fans for {path!r} must be a mapping of fan options (in_axis, out_axis, batch_axis, or "
                        f"einsum), got {option!r}")  # fmt: skip
    unknown = set(option) - {"in_axis", "out_axis", "batch_axis", "einsum"}
    if unknown:
        raise ValueError(f"fans for {path!r}: unknown options {sorted(unknown)}; expected in_axis, out_axis, "
                         "batch_axis or einsum")  # fmt: skip
    if "einsum" in option:
        equation = option["einsum"].replace(" ", "")
        lhs, rest = equation.split(",", 1)
        kernel, out = rest.split("->")
        if len(kernel) != ndim:
            raise ValueError(f"fans for {path!r}: einsum {equation!r} has a {len(kernel)}-axis kernel, the "
                             f"parameter has shape {shape}")  # fmt: skip
        return ["none" if c in out and c in lhs else "out" if c in out else "in" for c in kernel]

    def axes(value: Any) -> set[int]:
        value = (value,) if isinstance(value, int) else tuple(value)
        return {a % ndim for a in value}

    ins, outs = axes(option.get("in_axis", -2)), axes(option.get("out_axis", -1))
    batch = axes(option.get("batch_axis", ()))
    return ["none" if i in batch else "in" if i in ins else "out" if i in outs else "both" for i in range(ndim)]


def _fan_option(fans: Any, path: str, shape: tuple[int, ...]) -> Any:
    if fans is None:
        return None
    if callable(fans):
        return fans(path, shape)
    if not isinstance(fans, Mapping):
        raise TypeError(f"fans must be a mapping of path globs to fan options, or a callable, got {fans!r}")
    for glob, option in fans.items():
        if fnmatch.fnmatchcase(path, glob):
            return option
    return None


def _in_block(blocks: Any, path: str) -> bool:
    if blocks is None:
        return False
    if callable(blocks):
        return bool(blocks(path))
    globs = (blocks,) if isinstance(blocks, str) else tuple(blocks)
    return any(fnmatch.fnmatchcase(path, g) for g in globs)


def _infshape(path: str, base: tuple[int, ...], target: tuple[int, ...], delta: tuple[int, ...] | None,
              option: Any, block: bool) -> InfShape:  # fmt: skip
    if len(base) != len(target) or (delta is not None and len(delta) != len(target)):
        raise ValueError(f"parameter {path!r} has shape {target} in target but {base} in base"
                         + ("" if delta is None else f" and {delta} in delta"))  # fmt: skip
    kinds = _axis_kinds(path, target, option)
    infinite = tuple((b != d) for b, d in zip(base, delta if delta is not None else target, strict=True))
    if any(k == "both" and inf for k, inf in zip(kinds, infinite, strict=True)):
        raise ValueError(f"cannot tell the fans of parameter {path!r} (shape {target}, base {base}): an axis that "
                         "grows is neither its input nor its output axis by Flax's conventions; pass "
                         f"fans={{{path!r}: {{'in_axis': ..., 'out_axis': ...}}}} or an einsum")  # fmt: skip

    def fan(which: tuple[str, ...], shape: tuple[int, ...]) -> int:
        return math.prod(d for d, k in zip(shape, kinds, strict=True) if k in which)

    def mult(which: tuple[str, ...]) -> float:
        return float(math.prod(t / b for t, b, k, inf in zip(target, base, kinds, infinite, strict=True)
                         if k in which and inf))  # fmt: skip

    grows_in = any(inf and k in ("in", "both") for k, inf in zip(kinds, infinite, strict=True))
    grows_out = any(inf and k in ("out", "both") for k, inf in zip(kinds, infinite, strict=True))
    role = {(False, True): "input", (True, True): "hidden", (True, False): "output"}.get(
        (grows_in, grows_out), "finite"
    )
    readout = path.split("/")[-1] == READOUT_KERNEL
    return InfShape(path, target, base, infinite, fan(("in", "both"), target), fan(("out", "both"), target),
                    mult(("in", "both")), mult(("out", "both")), role, readout, block)  # fmt: skip


def infshapes(
    base: Any,
    target: Any,
    delta: Any = None,
    *,
    fans: Mapping[str, Any] | Callable[[str, tuple[int, ...]], Any] | None = None,
    blocks: str | Sequence[str] | Callable[[str], bool] | None = None,
) -> Any:
    """The :class:`InfShape` of every parameter of ``target`` against ``base``.

    ``base``, ``target`` and ``delta`` are the parameters of the same model at three widths:
    trees of arrays or ``jax.ShapeDtypeStruct`` (``jax.eval_shape(model.init, ...)`` builds
    none of them), linen variables (``{"params": ...}`` or the inner dict, ``nn.Partitioned``
    boxes included) or an nnx ``State``. An axis is infinite where ``base`` and ``delta``
    differ (``base`` and ``target`` without a delta). Fans follow Flax's layouts: ``Dense``
    and ``Conv`` kernels ``(..., in, out)``, ``Embed`` tables ``(vocab, features)`` (input
    weights), biases and norm scales fan-in 1, and attention kernels by their module's name:
    ``query``/``key``/``value`` ``(features, heads, head_dim)``, ``out`` ``(heads, head_dim,
    features)`` (linen's ``MultiHeadDotProductAttention``, nnx's ``MultiHeadAttention``).

    Args:
      base: the base model's parameters (where every rule is the identity).
      target: the model to train.
      delta: optional, the model at another width in every dimension that grows.
      fans: per path glob (``"*/qkv/kernel"``), the §7 fan options of a kernel Flax's
        layouts do not tell (``{"in_axis": 0, "out_axis": (1, 2)}`` or ``{"einsum":
        "btd,dnh->btnh"}``); or a callable ``(path, shape) -> options or None``.
      blocks: path globs (or a callable ``path -> bool``) of the parameters inside residual
        blocks, for the depth rules (``lr_multipliers(..., depth=...)``).

    Returns:
      A tree like ``target``'s parameters (for linen variables, their ``params``), with an
      :class:`InfShape` for every parameter.

    Raises:
      ValueError: the trees do not hold the same parameters with the same ranks, or a
        growing axis of a kernel is neither its input nor its output (pass ``fans=``).

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from flaxinit import mup
      >>> mlp = lambda w: nn.Sequential([nn.Dense(w), nn.relu, nn.Dense(w), nn.relu, nn.Dense(10)])
      >>> shapes_of = lambda w: jax.eval_shape(mlp(w).init, jax.random.key(0), jnp.ones((1, 784)))
      >>> s = mup.infshapes(shapes_of(64), shapes_of(256))
      >>> [(p, s[p]["kernel"].role, s[p]["kernel"].fan_in_mult) for p in ("layers_0", "layers_2", "layers_4")]
      [('layers_0', 'input', 1.0), ('layers_2', 'hidden', 4.0), ('layers_4', 'output', 4.0)]
    """
    tree, flat_target = parameters(target, "target")
    _, flat_base = parameters(base, "base")
    flat_delta = None if delta is None else dict(parameters(delta, "delta")[1])
    base_by_path = dict(flat_base)
    missing = [p for p, _ in flat_target if p not in base_by_path]
    extra = [p for p in base_by_path if p not in dict(flat_target)]
    if missing or extra:
        raise ValueError(f"base and target do not hold the same parameters: only in target {missing[:5]}, only in "
                         f"base {extra[:5]}")  # fmt: skip
    if flat_delta is not None and set(flat_delta) != set(base_by_path):
        raise ValueError(
            f"delta does not hold the same parameters as base: {sorted(set(flat_delta) ^ set(base_by_path))[:5]}"
        )
    shapes = []
    for path, leaf in flat_target:
        shape = tuple(leaf.shape)
        d = None if flat_delta is None else tuple(flat_delta[path].shape)
        option = _fan_option(fans, path, shape)
        shapes.append(_infshape(path, tuple(base_by_path[path].shape), shape, d, option, _in_block(blocks, path)))
    treedef = jax.tree_util.tree_structure(tree, is_leaf=_is_param)
    return jax.tree_util.tree_unflatten(treedef, shapes)


def flat_infshapes(shapes: Any) -> dict[str, InfShape]:
    """``{path: InfShape}`` of a tree :func:`infshapes` returned."""
    leaves = jax.tree_util.tree_leaves(shapes, is_leaf=lambda x: isinstance(x, InfShape))
    if not leaves or not all(isinstance(x, InfShape) for x in leaves):
        raise TypeError("shapes must be the tree of InfShape that mup.infshapes returns")
    return {s.path: s for s in leaves}
