"""Infinite axes, fans and roles of every parameter: :class:`InfShape` and :func:`infshapes`.

A parameter's axes are compared between a base model and the target (and, if given, a
*delta* model that differs from the base in every dimension that grows): an axis is
infinite where the two differ. Which axes feed a parameter's fan-in and which its fan-out
follows Flax's layouts (:mod:`flaxinit._layouts`: ``Dense``/``Conv`` kernels ``(..., in,
out)``, ``Embed`` tables ``(vocab, features)``, attention kernels by name, the leading axes
of a layer stack), ``fans=`` and ``stacked=`` overriding them per path.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from flaxinit._layouts import axis_kinds, detect_stacks, guessed_layout
from flaxinit._paths import key_names

ROLES = ("input", "hidden", "output", "finite")
#: The parameter name of :class:`flaxinit.mup.Readout`'s kernel: a readout in Table 8's form.
READOUT_KERNEL = "readout_kernel"


class LayoutWarning(UserWarning):
    """:func:`infshapes` had to guess: a parameter's layout that Flax's layouts do not tell, or a
    growing model without a readout (the message names the parameters and what to pass)."""


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
      stacked: leading axes of a layer stack (``nn.scan``, ``nn.vmap``, ``nnx.vmap``): they
        count in neither fan, so a stacked parameter has its layer's fans and role.
      kinds: per axis, what it feeds (:func:`flaxinit.tooling.axis_kinds`: ``"in"``, ``"out"``,
        ``"both"`` (a receptive field), ``"batch"``, ``"stack"``); :func:`muon` orthogonalizes
        over the ``in``/``both`` and ``out`` axes, one matrix per index of the others.
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
    stacked: int = 0
    kinds: tuple[str, ...] = ()


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
        names = key_names(keys)
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
    names = key_names(keys)
    if names and names[0] == "params":
        names = names[1:]
    return "/".join(names)


# --- fans ---------------------------------------------------------------------------------------------


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


def _stack_axes(stacked: Any, path: str, shape: tuple[int, ...], detected: Mapping[str, int]) -> int:
    """The stack axes ``stacked=`` gives ``path`` (a count, path globs to counts, or a callable
    ``(path, shape) -> count or None``), else those :func:`detect_stacks` found."""
    given = None
    if callable(stacked):
        given = stacked(path, shape)
    elif isinstance(stacked, Mapping):
        given = next((n for glob, n in stacked.items() if fnmatch.fnmatchcase(path, glob)), None)
    elif stacked is not None:
        raise TypeError(f"stacked must map path globs to numbers of stacked axes, or be a callable, got {stacked!r}")
    if given is None:
        return detected.get(path, 0)
    if isinstance(given, bool) or not isinstance(given, int) or not 0 <= given <= len(shape):
        raise ValueError(f"stacked axes of parameter {path!r} (shape {shape}) must be an int in 0..{len(shape)}, "
                         f"got {given!r}")  # fmt: skip
    return given


def _infshape(path: str, base: tuple[int, ...], target: tuple[int, ...], delta: tuple[int, ...] | None,
              option: Any, block: bool, stacked: int) -> InfShape:  # fmt: skip
    if len(base) != len(target) or (delta is not None and len(delta) != len(target)):
        raise ValueError(f"parameter {path!r} has shape {target} in target but {base} in base"
                         + ("" if delta is None else f" and {delta} in delta"))  # fmt: skip
    kinds = axis_kinds(path, target, option=option, stacked=stacked)
    infinite = tuple((b != d) for b, d in zip(base, delta if delta is not None else target, strict=True))
    if any(k == "both" and inf for k, inf in zip(kinds, infinite, strict=True)):
        raise ValueError(f"cannot tell the fans of parameter {path!r} (shape {target}, base {base}): an axis that "
                         "grows is neither its input nor its output axis by Flax's layouts; pass "
                         f"fans={{{path!r}: {{'in_axis': ..., 'out_axis': ...}}}} or an einsum (and stacked= if it "
                         "is a layer stack's)")  # fmt: skip

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
                    mult(("in", "both")), mult(("out", "both")), role, readout, block, stacked, kinds)  # fmt: skip


def _warn_guesses(shapes: Sequence[InfShape], options: Mapping[str, Any], tied_readout: bool) -> None:
    """A :class:`LayoutWarning` for layouts guessed, and for a growing model with no readout."""
    # a guess matters where it reads a growing axis as the fan-in (hidden, output): a table
    # whose only growing axis is its last (a learned position embedding) is an input either way
    guessed = [s.path for s in shapes if options[s.path] is None and guessed_layout(s.path, len(s.shape) - s.stacked)
               and s.role in ("hidden", "output")]  # fmt: skip
    if guessed:
        shown = ", ".join(f"{p!r} {dict((s.path, s.shape) for s in shapes)[p]}" for p in guessed[:4])
        warnings.warn(
            f"infshapes guessed the layout of {len(guessed)} parameter(s) that Flax's layouts do not tell: {shown}"
            f"{', ...' if len(guessed) > 4 else ''}: read as (..., in, out). Pass fans={{'<path glob>': "
            "{'einsum': '<the layer's equation>'}}} (or in_axis/out_axis) for each; mc's checks read an nnx.Einsum's "
            "or nn.Einsum's equation themselves",
            LayoutWarning,
            stacklevel=3,
        )
    grows = any(any(s.infinite) for s in shapes)
    if grows and not tied_readout and not any(s.role == "output" or s.readout for s in shapes):
        tables = [s.path for s in shapes if s.path.split("/")[-1] == "embedding" and s.role == "input"]
        hint = (f" It reads out through an embedding table ({', '.join(map(repr, tables[:2]))}: Embed.attend or "
                "x @ table.T, a tied readout)?" if tables else "")  # fmt: skip
        warnings.warn(
            "infshapes found no output-role parameter (fan-in grows, fan-out fixed: the readout) in a model whose "
            f"width grows, so μP's readout rules apply to nothing.{hint} A tied readout needs Table 8's multiplier: "
            "make it mup.Readout(tied=True) and pass tied_readout=True; a readout whose layout Flax's layouts do not "
            "tell needs fans=",
            LayoutWarning,
            stacklevel=3,
        )


def infshapes(
    base: Any,
    target: Any,
    delta: Any = None,
    *,
    fans: Mapping[str, Any] | Callable[[str, tuple[int, ...]], Any] | None = None,
    blocks: str | Sequence[str] | Callable[[str], bool] | None = None,
    stacked: Mapping[str, int] | Callable[[str, tuple[int, ...]], int | None] | None = None,
    tied_readout: bool = False,
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
    A layer stack's parameters (``nn.scan``, ``nn.vmap``, ``nnx.vmap``: one leading axis per
    level) get their layer's fans and role: the stack axes are found from the layouts
    (:func:`flaxinit.tooling.detect_stacks`: a stacked module's biases, norm scales or
    attention kernels hold one more axis) or given by ``stacked=``.

    It warns (:class:`LayoutWarning`) where it has to guess: a parameter whose layout Flax's
    layouts do not tell (a name no Flax layer uses, ``w``; a kernel of rank 3 or more of a
    module named ``*einsum*``), read as ``(..., in, out)``, where that reading makes its
    fan-in grow (a hidden or output role); and a growing model with no output-role parameter
    (a readout tied to the embedding, unless ``tied_readout=True``).

    Args:
      base: the base model's parameters (where every rule is the identity).
      target: the model to train.
      delta: optional, the model at another width in every dimension that grows.
      fans: per path glob (``"*/qkv/kernel"``), the §7 fan options of a kernel Flax's
        layouts do not tell (``{"in_axis": 0, "out_axis": (1, 2)}`` or ``{"einsum":
        "btd,dnh->btnh"}``); or a callable ``(path, shape) -> options or None``. An option
        describes the parameter without the stack axes ``stacked=`` gives it (as stored if
        ``stacked=`` gives none).
      blocks: path globs (or a callable ``path -> bool``) of the parameters inside residual
        blocks, for the depth rules (``lr_multipliers(..., depth=...)``).
      stacked: per path glob, the number of leading stack axes of a parameter (``{"encoder/*":
        1}``), or a callable ``(path, shape) -> count or None``; paths it leaves out keep the
        stacks found from the layouts.
      tied_readout: the model reads out through its embedding table with
        :class:`~flaxinit.mup.Readout` ``(tied=True)``, so no parameter has the output role
        (no warning).

    Returns:
      A tree like ``target``'s parameters (for linen variables, their ``params``), with an
      :class:`InfShape` for every parameter.

    Raises:
      ValueError: the trees do not hold the same parameters with the same ranks, or a
        growing axis of a kernel is neither its input nor its output (pass ``fans=``).

    Warns:
      LayoutWarning: a guessed layout, or no readout in a growing model (see above).

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
    detected = detect_stacks([(path, tuple(leaf.shape)) for path, leaf in flat_target])
    shapes, options = [], {}
    for path, leaf in flat_target:
        shape = tuple(leaf.shape)
        d = None if flat_delta is None else tuple(flat_delta[path].shape)
        options[path] = option = _fan_option(fans, path, shape)
        # a fans= option describes the parameter without the stack axes stacked= gives it; with
        # none given, as stored (layouts' stacks are not guessed under an explicit option)
        k = _stack_axes(stacked, path, shape, detected if option is None else {})
        shapes.append(_infshape(path, tuple(base_by_path[path].shape), shape, d, option, _in_block(blocks, path), k))
    _warn_guesses(shapes, options, bool(tied_readout))
    treedef = jax.tree_util.tree_structure(tree, is_leaf=_is_param)
    return jax.tree_util.tree_unflatten(treedef, shapes)


def flat_infshapes(shapes: Any) -> dict[str, InfShape]:
    """``{path: InfShape}`` of a tree :func:`infshapes` returned."""
    leaves = jax.tree_util.tree_leaves(shapes, is_leaf=lambda x: isinstance(x, InfShape))
    if not leaves or not all(isinstance(x, InfShape) for x in leaves):
        raise TypeError("shapes must be the tree of InfShape that mup.infshapes returns")
    return {s.path: s for s in leaves}
