"""What a Flax model's layers output while it runs, layer stacks included: the audit's capture.

A model is applied under a *capture*: every call of one of its submodules passes through an
interceptor (linen's ``nn.intercept_methods``; for nnx, ``flaxinit.tooling.nnx_intercept_calls``
on its module classes), which records the call's output (floating-point arrays only) and
adds a zero *probe* to it, so that the gradient with respect to the probe is the gradient
with respect to the output.

Layer stacks. A lifted transform (``nn.scan``, ``nn.vmap``, ``nn.remat``, ``nnx.scan``,
``nnx.vmap``, ``nnx.remat``) runs its body under another trace than the model's, whose values
are the body's, not the model's. While the model runs, ``jax.lax.scan``, ``jax.vmap`` and
``jax.checkpoint`` (``jax.remat``) are therefore wrapped (and restored after): the wrapper
opens a *frame* for the body, and the outputs recorded in it leave the transform as extra
outputs: stacked by ``scan`` and ``vmap`` (one leading axis per stack, so a 6-layer scan
gives one row per layer, its path indexed: ``ScanBlock_0[3]/Dense_0``), unchanged by
``checkpoint``. The probes of a body's records enter it the same way (scanned over, mapped
over, or passed through), so gradients reach every layer of a stack. A transform whose
body calls no layer is left as it was (the wrapper adds nothing but an empty output), and
any other transform (``lax.cond``, ``lax.while_loop``, ...) keeps its layers unseen.

The layers of a stack are named by the stacked module's path with the index after it
(the *root*: the first module the body calls). In linen that path is the module's own. In
nnx a transform's body calls new instances (the transform splits the model and merges the
slices), so the root instance is matched to the model's module of the same class whose
variables are its variables stacked (one more leading axis, the same trailing shape); the
rest of the body's modules are named by their path under the root.

The layout of what is recorded (names, order, stacks) is a Python side effect of tracing
the model, the same on every trace: :func:`capture` returns it with the outputs, and the
probes of a later trace are built from an earlier one's outputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
from jax.extend import core as jex_core

from flaxinit import mup, tooling
from flaxinit.tooling import flat_paths

#: The name of the model's own output among the layers.
OUTPUT = "(output)"
#: Where a stack's index goes in a template name (one per stack axis, outer first).
SLOT = "\x00"
#: The suffixes of what a :class:`Watch` records beside a layer's output: the change of its
#: output due to its own parameters' change, and an attention's logits.
UPDATE, LOGITS = "@update", "@logits"


@dataclasses.dataclass(frozen=True)
class Watch:
    """What a capture records besides every layer's output (``mc.verify``'s quantities).

    Attributes:
      previous: per leaf layer (a module whose parameters are all its own), its parameters
        before the last update, ``{module path: {name: array}}``: the layer is run again on
        the same input with them, and ``output - output before`` recorded as
        ``path@update`` (the update effect ``ΔW·x``; layers of the model's own frame, not
        inside layer stacks).
      logits: record every attention's logits ``q·k / sqrt(d_head)`` (as flax's
        ``dot_product_attention_weights`` computes them, after μP's query scale) as
        ``path@logits``, ``path`` the attention module's (stacks included).
    """

    previous: Any = None
    logits: bool = False


def _trace_state() -> Any:
    return jex_core.get_opaque_trace_state(convention="flax")


def leaf_layers(params: Any) -> dict[str, dict[str, jax.Array]]:
    """``{module path: {name: array}}`` of the modules whose parameters are all their own (no
    submodule holds any): the layers a :class:`Watch` runs again with ``previous``."""
    modules: dict[str, dict[str, jax.Array]] = {}
    for path, leaf in flat_paths(params):
        module, _, name = path.rpartition("/")
        modules.setdefault(module, {})[name] = leaf

    def nests(outer: str, inner: str) -> bool:
        return inner != outer and (outer == "" or inner.startswith(outer + "/"))

    return {m: p for m, p in modules.items() if not any(nests(m, other) for other in modules)}


# --- frames --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Layout:
    """What one frame recorded: ``order`` of events (``("record", name)`` or
    ``("stack", kind, Layout)``), the frame's ``root`` (stack frames) and the shapes of the
    parameters the root holds inside the body (``params``: path -> shape), which tell which
    of the model's parameters the stack holds stacked; and, for the model's own frame, the
    ``facts`` its modules told while it ran (:func:`module_facts`)."""

    order: tuple[tuple[Any, ...], ...]
    root: str | None
    params: tuple[tuple[str, tuple[int, ...]], ...]
    facts: tuple[tuple[str, str, Any], ...] = ()


@dataclasses.dataclass(eq=False)
class _Frame:
    trace: Any
    probes: Any  # {"records": {name: array}, "stacks": (probes of each stack, ...)} or None
    parent: _Frame | None
    kind: str | None = None  # the transform whose body this frame is ("scan", "vmap", "remat"); None: the model's
    watch: Watch | None = None  # the model's frame: what it records besides outputs
    facts: dict[tuple[str, str], Any] = dataclasses.field(default_factory=dict)  # (fact, path) -> value (the model's)
    records: dict[str, jax.Array] = dataclasses.field(default_factory=dict)
    stacks: list[Any] = dataclasses.field(default_factory=list)  # the stacks' outputs
    order: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    active: list[str | None] = dataclasses.field(default_factory=list)  # paths being called (None: another trace)
    root: str | None = None
    params: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    modules: dict[int, tuple[str, Any]] = dataclasses.field(default_factory=dict)  # nnx: id -> (path, module)
    claimed: dict[str, int] = dataclasses.field(default_factory=dict)  # nnx: module path -> stack index

    def here(self) -> bool:
        return _trace_state() == self.trace

    def record(self, path: str, out: Any) -> Any:
        """``out`` plus its probe, recorded under ``path`` (``path#2`` for a second call)."""
        if not isinstance(out, jax.Array) or not jnp.issubdtype(out.dtype, jnp.inexact) or not self.here():
            return out  # tuples, integer outputs, values of another trace: not a layer the audit measures
        name, count = path, 1
        while name in self.records:
            count += 1
            name = f"{path}#{count}"
        if self.probes is not None:
            out = out + self.probes["records"][name]
        self.records[name] = out
        self.order.append(("record", name))
        return out

    def output(self) -> dict[str, Any]:
        return {"records": dict(self.records), "stacks": tuple(self.stacks)}

    def layout(self) -> Layout:
        facts = tuple((fact, path, value) for (fact, path), value in self.facts.items())
        return Layout(tuple(self.order), self.root, tuple(self.params.items()), facts)

    def top(self) -> _Frame:
        """The model's own frame."""
        frame = self
        while frame.parent is not None:
            frame = frame.parent
        return frame

    def tell(self, fact: str, path: str, value: Any = True) -> None:
        """Keeps a fact a module told while the model ran, on the model's own frame."""
        self.top().facts.setdefault((fact, path), value)

    def watch_update(self, path: str, out: Any, rerun: Callable[[Any], Any]) -> None:
        """Records ``path@update``: ``out`` minus ``rerun(previous parameters)`` (the layer on
        the same input with its parameters before the last update), where the watch has them."""
        watch = self.top().watch
        if watch is None or watch.previous is None or self.parent is not None or not self.here():
            return
        previous = watch.previous.get(path)
        if previous is None or not isinstance(out, jax.Array) or not jnp.issubdtype(out.dtype, jnp.inexact):
            return
        with _passing_through():
            before = rerun(previous)
        self.record(path + UPDATE, out - before)

    # a call: its path is active while it runs; the outermost call of the model's own frame is
    # the model itself, recorded by the caller as OUTPUT
    def call(
        self, path: str, params: Callable[[], list[tuple[str, Any]]], run: Callable[[], Any], layer_call: bool = True
    ) -> Any:
        """``run()``'s output, recorded under ``path`` if it is a layer's (``params``: the
        module's parameters, read when it is the root of a stack's body)."""
        here = self.here()
        if here and self.parent is not None and self.root is None:  # a stack's body: its first call is the root
            self.root = path
            self.params = {_join(path, p): tuple(leaf.shape) for p, leaf in params()}
            # a remat body's first call inside a stack's body (nn.scan(nn.remat(Block))) is the stack's root too
            frame = self
            while frame.kind == "remat" and frame.parent.parent is not None and frame.parent.root is None:
                frame = frame.parent
                frame.root, frame.params = self.root, dict(self.params)
        self.active.append(path if here else None)
        try:
            out = run()
        finally:
            self.active.pop()
        if not here or not layer_call:
            return out
        if self.parent is None and not self.active and not path:
            return out  # the model's own call
        if self.active and self.active[-1] == path:
            return out  # a module calling its own __call__ (super()): the outer call records it
        return self.record(path, out)

    # stacks
    def open_stack(self) -> tuple[int, Any]:
        index = len(self.stacks)
        self.stacks.append(None)  # reserved; the transform's outputs come later
        return index, None if self.probes is None else self.probes["stacks"][index]

    def close_stack(self, index: int, kind: str, layout: Layout, out: Any) -> None:
        self.stacks[index] = out
        self.order.append(("stack", kind, layout))


_state = threading.local()


@contextlib.contextmanager
def _passing_through() -> Iterator[None]:
    """Module calls made inside the block (a layer run again for its update effect) are not
    intercepted: they are not the model's."""
    _state.passthrough = getattr(_state, "passthrough", 0) + 1
    try:
        yield
    finally:
        _state.passthrough -= 1


def _passthrough() -> bool:
    return getattr(_state, "passthrough", 0) > 0


def _frames() -> list[_Frame]:
    if not hasattr(_state, "frames"):
        _state.frames = []
    return _state.frames


def _current() -> _Frame | None:
    """The innermost frame, if the caller runs under its trace."""
    frames = _frames()
    return frames[-1] if frames and frames[-1].here() else None


@contextlib.contextmanager
def _frame(probes: Any, parent: _Frame | None, kind: str | None = None) -> Iterator[_Frame]:
    frame = _Frame(_trace_state(), probes, parent, kind)
    _frames().append(frame)
    try:
        yield frame
    finally:
        _frames().pop()


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


# --- the transforms: a body's records leave it as outputs, its probes enter as inputs -------------

_REAL = {}


def _probes_first(parent: _Frame, fun: Callable[..., Any], box: dict[str, Layout], kind: str) -> Callable[..., Any]:
    """``fun`` as a ``kind`` transform's body that takes its frame's probes first and returns its
    records after its own output; the frame's layout (from the last trace) goes to ``box``."""

    def body(probes, *args, **kwargs):
        with _frame(probes, parent, kind) as frame:
            y = fun(*args, **kwargs)
        box["layout"] = frame.layout()
        return y, frame.output()

    return body


def _scan(f, init, xs=None, length=None, reverse=False, unroll=1, **kwargs):
    parent = _current()
    if parent is None:
        return _REAL["scan"](f, init, xs, length, reverse, unroll, **kwargs)
    index, probes = parent.open_stack()
    box: dict[str, Layout] = {}
    step = _probes_first(parent, f, box, "scan")

    def body(carry, packed):  # (carry, (x, probes)) -> (carry, (y, records))
        x, p = packed
        (carry, y), records = step(p, carry, x)
        return carry, (y, records)

    carry, (ys, out) = _REAL["scan"](body, init, (xs, probes), length, reverse, unroll, **kwargs)
    parent.close_stack(index, "scan", box["layout"], out)
    return carry, ys


def _vmap(fun, in_axes=0, out_axes=0, **kwargs):
    @functools.wraps(fun)
    def mapped(*args, **kw):
        parent = _current()
        if parent is None:
            return _REAL["vmap"](fun, in_axes, out_axes, **kwargs)(*args, **kw)
        index, probes = parent.open_stack()
        box: dict[str, Layout] = {}
        axes = tuple(in_axes) if isinstance(in_axes, list | tuple) else (in_axes,) * len(args)
        axes = (None if probes is None else 0, *axes)
        body = _probes_first(parent, fun, box, "vmap")
        y, out = _REAL["vmap"](body, axes, (out_axes, 0), **kwargs)(probes, *args, **kw)
        parent.close_stack(index, "vmap", box["layout"], out)
        return y

    return mapped


def _checkpoint(fun, **kwargs):
    @functools.wraps(fun)
    def rematted(*args, **kw):
        parent = _current()
        if parent is None:
            return _REAL["checkpoint"](fun, **kwargs)(*args, **kw)
        index, probes = parent.open_stack()
        box: dict[str, Layout] = {}
        static = kwargs.get("static_argnums", ())
        static = (static,) if isinstance(static, int) else tuple(static)
        shifted = {**kwargs, "static_argnums": tuple(i + 1 if i >= 0 else i for i in static)}
        y, out = _REAL["checkpoint"](_probes_first(parent, fun, box, "remat"), **shifted)(probes, *args, **kw)
        parent.close_stack(index, "remat", box["layout"], out)
        return y

    return rematted


_LOCK = threading.Lock()
_USERS = [0]  # captures running now, in any thread


@contextlib.contextmanager
def _lifted_transforms() -> Iterator[None]:
    """``jax.lax.scan``, ``jax.vmap``, ``jax.checkpoint``/``jax.remat`` wrapped while a capture
    runs, then restored. Process-wide (flax's lifted transforms look them up as module
    attributes), so counted under a lock: the first capture in wraps, the last one out
    restores, whatever the threads; the wrappers act only for a thread with a frame open
    (:func:`_current`) and pass every other call straight to jax."""
    with _LOCK:
        if _USERS[0] == 0:
            _REAL.update(scan=jax.lax.scan, vmap=jax.vmap, checkpoint=jax.checkpoint, remat=jax.remat)
            jax.lax.scan, jax.vmap, jax.checkpoint, jax.remat = _scan, _vmap, _checkpoint, _checkpoint
        _USERS[0] += 1
    try:
        yield
    finally:
        with _LOCK:
            _USERS[0] -= 1
            if _USERS[0] == 0:
                jax.lax.scan, jax.vmap = _REAL["scan"], _REAL["vmap"]
                jax.checkpoint, jax.remat = _REAL["checkpoint"], _REAL["remat"]  # _REAL kept: a call
                # that looked a wrapper up just before this still reaches jax


# --- the two model APIs ----------------------------------------------------------------------------


@contextlib.contextmanager
def _capture(probes: Any, watch: Watch | None = None) -> Iterator[_Frame]:
    logits = _watching_logits() if watch is not None and watch.logits else contextlib.nullcontext()
    with _lifted_transforms(), logits, _frame(probes, None) as top:
        top.watch = watch
        yield top


def _record_logits(real: Callable[..., Any], scale_of: Callable[[jax.Array, dict], Any]) -> Callable[..., Any]:
    """An attention function (``(query, key, ...)``, heads in the second-to-last axis) that
    records its logits ``q·k · scale_of(query, kwargs)`` in the calling attention's frame."""

    @functools.wraps(real)
    def attention(query, key, *args, **kwargs):
        frame = _current()
        if frame is not None and frame.active and frame.active[-1] is not None and not _passthrough():
            groups = query.shape[-2] // key.shape[-2]  # grouped-query attention: key heads shared
            keys = jnp.repeat(key, groups, axis=-2) if groups > 1 else key
            logits = jnp.einsum("...qhd,...khd->...hqk", query, keys) * scale_of(query, kwargs)
            frame.record(frame.active[-1] + LOGITS, logits)
        return real(query, key, *args, **kwargs)

    return attention


def _flax_scale(query: jax.Array, kwargs: dict) -> jax.Array:
    return 1 / jnp.sqrt(query.shape[-1]).astype(query.dtype)  # flax's dot_product_attention_weights


def _jax_scale(query: jax.Array, kwargs: dict) -> Any:
    scale = kwargs.get("scale")  # jax.nn.dot_product_attention's keyword, 1/sqrt(head_dim) by default
    return 1 / jnp.sqrt(query.shape[-1]).astype(query.dtype) if scale is None else scale


@contextlib.contextmanager
def _watching_logits() -> Iterator[None]:
    """linen's and nnx's ``dot_product_attention_weights`` (which their ``dot_product_attention``
    calls by its module's name) and ``jax.nn.dot_product_attention`` (nnx's fast path) record
    their logits, then are restored."""
    import flax.linen.attention as linen_attention
    from flax.nnx.nn import attention as nnx_attention

    patches = [(m, "dot_product_attention_weights", _flax_scale) for m in (linen_attention, nnx_attention)]
    patches.append((jax.nn, "dot_product_attention", _jax_scale))
    saved = [(m, name, getattr(m, name)) for m, name, _ in patches]
    try:
        for m, name, scale_of in patches:
            setattr(m, name, _record_logits(getattr(m, name), scale_of))
        yield
    finally:
        for m, name, real in saved:
            setattr(m, name, real)


def _tell_facts(frame: _Frame, path: str, module: Any, method: str, args: tuple, kwargs: dict) -> None:
    """What the μP checks need to know of a module that the parameters do not show: an
    ``Einsum``'s equation (``"einsum"``), a :class:`flaxinit.mup.Readout` (``"readout"``:
    ``(tied, base_width)``), an embedding read out through ``attend`` (``"attend"``)."""
    if method == "attend":
        frame.tell("attend", path)
    if type(module).__name__ == "Einsum":
        given = kwargs.get("einsum_str") or next((a for a in args[1:2] if isinstance(a, str)), None)
        equation = given or getattr(module, "einsum_str", None)
        if isinstance(equation, str):
            frame.tell("einsum", path, equation.replace(" ", ""))
    if isinstance(module, mup.linen.Readout | mup.nnx.Readout) and args:
        frame.tell("readout", path, (bool(module.tied), int(module.base_width), int(args[0].shape[-1])))
    base_head_dim = getattr(getattr(module, "attention_fn", None), "base_head_dim", None)
    if base_head_dim is not None and hasattr(module, "num_heads"):
        head_dim = getattr(module, "head_dim", None)  # nnx's; linen's from its qkv features
        if head_dim is None and args:
            head_dim = (getattr(module, "qkv_features", None) or args[0].shape[-1]) // module.num_heads
        frame.tell("attention", path, (int(base_head_dim), int(head_dim)))


def linen_apply(
    model: Any, variables: Any, x: jax.Array, probes: Any, select: Callable[[Any], Any] | None = None,
    watch: Watch | None = None, **apply_kwargs,
) -> tuple[Any, Any, Layout]:  # fmt: skip
    """``model.apply(variables, x, **apply_kwargs)`` under a capture: ``(apply's return,
    the records (the capture's output tree), their layout)``; ``select`` picks the model's
    output (the array recorded as :data:`OUTPUT`) from what it returns; ``watch``: what else
    to record."""
    import flax.linen as nn

    def interceptor(next_fun, args, kwargs, context):
        if _passthrough():
            return next_fun(*args, **kwargs)
        frame, path, module = _frames()[-1], "/".join(context.module.path), context.module
        _tell_facts(frame, path, module, context.method_name, args, kwargs)
        out = frame.call(
            path,
            lambda: flat_paths(module.variables.get("params", {})),
            lambda: next_fun(*args, **kwargs),
            layer_call=context.method_name == "__call__",
        )
        if context.method_name == "__call__" and set(module.variables) == {"params"}:
            rerun = module.clone(parent=None)
            frame.watch_update(path, out, lambda previous: rerun.apply({"params": previous}, *args, **kwargs))
        return out

    with _capture(probes, watch) as top, nn.intercept_methods(interceptor):
        result = model.apply(variables, x, **apply_kwargs)
        y, updates = result if apply_kwargs.get("mutable") else (result, None)
        y = top.record(OUTPUT, y if select is None else select(y))
    return (y, updates), top.output(), top.layout()


def nnx_apply(
    model: Any, x: jax.Array, probes: Any, *, method: str | None, call_kwargs: dict,
    select: Callable[[Any], Any] | None = None, watch: Watch | None = None,
) -> tuple[Any, Any, Layout]:  # fmt: skip
    """``model.method(x, **call_kwargs)`` (``model(x, ...)`` without a method) under a capture."""
    from flax import nnx

    with _capture(probes, watch) as top:
        top.modules = {id(m): ("/".join(str(p) for p in path), m) for path, m in nnx.iter_modules(model)}

        def interceptor(call, module, args, kwargs):
            if _passthrough():
                return call(*args, **kwargs)
            frame = _frames()[-1]
            path = _nnx_path(frame, module) if frame.here() else ""
            _tell_facts(frame, path, module, "__call__", args, kwargs)
            out = frame.call(path, lambda: flat_paths(nnx.state(module, nnx.Param)), lambda: call(*args, **kwargs))
            frame.watch_update(path, out, lambda previous: _nnx_rerun(module, previous, args, kwargs))
            return out

        with tooling.nnx_intercept_calls({type(m) for _, m in top.modules.values()}, interceptor):
            y = (model if method is None else getattr(model, method))(x, **call_kwargs)
            y = top.record(OUTPUT, y if select is None else select(y))
    return y, top.output(), top.layout()


def _nnx_rerun(module: Any, previous: dict[str, jax.Array], args: tuple, kwargs: dict) -> Any:
    """``module(*args, **kwargs)`` with its parameters replaced by ``previous`` (by name), on a copy."""
    from flax import nnx

    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    treedef = jax.tree_util.tree_structure(params)
    names = [name for name, _ in flat_paths(params)]
    copy = nnx.merge(graphdef, jax.tree_util.tree_unflatten(treedef, [previous[n] for n in names]), rest)
    return copy(*args, **kwargs)


def _nnx_path(frame: _Frame, module: Any) -> str:
    """The path of an nnx module called in ``frame``: known (the model's own, or already
    named in this body), else a transform's copy of one of the model's stacked modules."""
    from flax import nnx

    for f in _ancestry(frame):
        if id(module) in f.modules:
            return f.modules[id(module)][0]
    path = _stacked_origin(frame, module)
    for sub_path, sub in nnx.iter_modules(module):
        frame.modules[id(sub)] = (_join(path, "/".join(str(p) for p in sub_path)), sub)
    return path


def _ancestry(frame: _Frame | None) -> Iterator[_Frame]:
    while frame is not None:
        yield frame
        frame = frame.parent


def _stacked_origin(frame: _Frame, module: Any) -> str:
    """The path of the module of the same class, in the frames around ``frame``, whose
    variables are ``module``'s with one more leading axis (the first one not taken by another
    stack of the same parent); the class name if none is."""
    from flax import nnx

    def shapes(m):
        return [tuple(leaf.shape) for leaf in jax.tree.leaves(nnx.state(m))]

    parent = frame.parent
    if parent is None:  # a module the model creates while it runs
        return type(module).__name__
    inner = shapes(module)
    index = len(parent.stacks) - 1  # the stack being traced
    candidates = [pm for f in _ancestry(parent) for pm in f.modules.values() if type(pm[1]) is type(module)]
    for path, candidate in candidates:
        outer = shapes(candidate)
        stacked = len(outer) == len(inner) and all(
            len(o) == len(i) + 1 and o[1:] == i for o, i in zip(outer, inner, strict=True)
        )
        if stacked and parent.claimed.get(path, index) == index:
            parent.claimed[path] = index
            return path
    return type(module).__name__
