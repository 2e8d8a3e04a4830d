"""A Flax model as pure functions: the one adapter of ``mc``'s model tools.

:func:`as_model` turns a ``flax.linen`` Module or a ``flax.nnx`` factory (``rngs -> Module``)
into a :class:`Model`: ``init(key, x) -> variables`` and ``apply(variables, x, probes, key)
-> (output, records, capture layout)``, run under :mod:`mc._capture` (every layer's output
recorded, a zero probe added for its gradient). What a call of the model means is fixed
here, once, for the audit, the coordinate check and the LR sweep alike:

* linen: every non-parameter collection is mutable during the apply (batch statistics,
  a decode cache; the updates are dropped), and every RNG stream the model asks for
  (``dropout``, names of its own) is drawn from the iteration's key;
* nnx: the factory is called with ``nnx.Rngs(key)`` and the model rebuilt, in the traced
  call, from its state (its in-place updates stay in that copy);
* ``call_kwargs`` go to every call, ``method`` names the method to call, and ``output``
  picks the array the model returns (an index, a key, or a function of what it returns).

:func:`trace_layout` runs the model once abstractly: the layers in call order, the
parameters and which of them layer stacks hold stacked, and what its modules told
(einsum equations, tied readouts), from which :meth:`Layout.infshape_options` gives
:func:`flaxinit.mup.infshapes` exact stacks and fans.

**Initializations vmapped on a CPU.** jaxlib 0.10 and 0.11 run a batched LAPACK call
(``jnp.linalg.qr``: the orthogonal init of every recurrent cell flax ships) as tasks on
XLA's CPU thread pool and block a pool thread until they finish; two such calls running at
once (an LSTM's four recurrent kernels, vmapped over draws) can block every thread of the
pool, and the program never returns. A model whose initialization calls LAPACK is
therefore initialized one draw after another on CPUs (``jax.custom_batching.sequential_vmap``:
unbatched LAPACK calls run inline), with the same values; the rest stays vmapped.
"""

from __future__ import annotations

import dataclasses
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flaxinit.tooling import flat_paths
from mc import _capture, _records

#: The name of the model's own output among the layers.
OUTPUT = _capture.OUTPUT

Output = int | str | Callable[[Any], jax.Array] | None


@dataclasses.dataclass
class Model:
    """A model as pure functions, with every RNG stream it asks for drawn from one key.

    Attributes:
      name: the model's class name (an nnx factory's name).
      api: ``"linen"`` or ``"nnx"``.
      streams: the linen RNG streams the model asks for while it runs (found by
        :func:`trace_layout`).
      sequential_init: initialize one draw after another when vmapped (a LAPACK call in the
        initialization on a CPU; set by :func:`trace_layout`).
    """

    name: str
    api: str
    _init: Callable[[jax.Array, jax.Array], Any]
    _apply: Callable[..., tuple[jax.Array, Any, _capture.Layout]]
    streams: list[str] = dataclasses.field(default_factory=list)
    sequential_init: bool = False

    def init(self, key: jax.Array, x: jax.Array) -> Any:
        """Every variable of the model drawn from ``key`` (``x``: an input batch)."""
        if self.sequential_init:
            return jax.custom_batching.sequential_vmap(self._init)(key, x)
        return self._init(key, x)

    def apply(
        self, variables: Any, x: jax.Array, probes: Any, key: jax.Array, watch: _capture.Watch | None = None
    ) -> tuple[jax.Array, Any, Any]:
        """``(output, records, capture layout)`` of the model on ``x``; ``probes=None`` adds none;
        ``watch``: what to record besides every layer's output (:class:`mc._capture.Watch`)."""
        return self._apply(variables, x, probes, key, watch)

    def params(self, variables: Any) -> Any:
        """The trainable parameters: linen's ``params`` collection, nnx's ``nnx.Param`` state."""
        return variables["params"] if self.api == "linen" else variables[0]

    def with_params(self, variables: Any, trainable: Any) -> Any:
        """``variables`` with ``trainable`` in place of its parameters."""
        if self.api == "linen":
            return {**variables, "params": trainable}
        return (trainable, variables[1])


def _stream_keys(key: jax.Array, streams: Sequence[str]) -> dict[str, jax.Array]:
    """One key per named RNG stream, from the iteration's key and the stream's name."""
    return {name: jax.random.fold_in(key, zlib.crc32(name.encode())) for name in streams}


def _selector(output: Output) -> Callable[[Any], Any] | None:
    if output is None:
        return None
    if callable(output):
        return output
    return lambda returned: returned[output]


def _linen(model: Any, method: str | None, call_kwargs: dict[str, Any], select) -> Model:
    def init(key, x):
        return model.init({"params": key, **_stream_keys(key, m.streams)}, x, method=method, **call_kwargs)

    def apply(variables, x, probes, key, watch):
        mutable = [c for c in variables if c != "params"] or False  # batch statistics, a cache: updated, dropped
        (y, _), records, layout = _capture.linen_apply(
            model, variables, x, probes, select, watch, rngs=_stream_keys(key, m.streams), method=method,
            mutable=mutable, **call_kwargs,
        )  # fmt: skip
        return y, records, layout

    m = Model(type(model).__name__, "linen", init, apply)
    return m


def _nnx(factory: Callable[..., Any], method: str | None, call_kwargs: dict[str, Any], select) -> Model:
    from flax import nnx

    # the structure of the factory's model, for apply to rebuild it: a pure function of the
    # factory, so any trace of init may record it and any trace of apply read it
    graph: dict[str, Any] = {}

    def init(key, x):
        # the engine lays iterations along its own mesh: sharding annotations
        # (nnx.with_partitioning) stay metadata, as linen's boxes do
        with nnx.use_eager_sharding(False):
            model = factory(nnx.Rngs(key))
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        graph["def"] = graphdef
        return params, rest

    def apply(state, x, probes, key, watch):
        # new Variables in this trace (batch statistics and RNG counts are updated in place)
        model = nnx.merge(graph["def"], *jax.tree.map(lambda leaf: leaf, state))
        return _capture.nnx_apply(model, x, probes, method=method, call_kwargs=call_kwargs, select=select,
                                  watch=watch)  # fmt: skip

    name = getattr(factory, "__name__", type(factory).__name__)
    return Model(name, "nnx", init, apply)


def check_call_options(method: Any, call_kwargs: Any, output: Any) -> tuple[str | None, dict[str, Any], Output]:
    """``method``, ``call_kwargs`` and ``output`` checked (one message per mistake, for every tool)."""
    if method is not None and not isinstance(method, str):
        raise TypeError(f"method must be the name of the model's method to call, got {method!r}")
    if call_kwargs is None:
        call_kwargs = {}
    if not isinstance(call_kwargs, Mapping) or not all(isinstance(k, str) for k in call_kwargs):
        raise TypeError(
            f"call_kwargs must be a mapping of keyword arguments (e.g. {{'train': True}}), got {call_kwargs!r}"
        )
    if isinstance(output, bool) or not (output is None or callable(output) or isinstance(output, int | str)):
        raise TypeError(
            "output must pick the model's output from what it returns: an index (a tuple), a key (a dict) or a "
            f"function of the return value, got {output!r}"
        )
    return method, dict(call_kwargs), output


def as_model(model: Any, method: Any = None, call_kwargs: Any = None, output: Any = None) -> Model:
    """The :class:`Model` of a linen Module or an nnx factory ``rngs -> Module``."""
    import flax.linen as nn

    method, call_kwargs, output = check_call_options(method, call_kwargs, output)
    if isinstance(model, nn.Module):
        if method is not None and not callable(getattr(model, method, None)):
            raise ValueError(f"method must name a method of {type(model).__name__}, got {method!r}")
        return _linen(model, method, call_kwargs, _selector(output))
    if callable(model):
        return _nnx(model, method, call_kwargs, _selector(output))
    raise TypeError(
        f"model must be a flax.linen Module or a flax.nnx factory (rngs -> Module), got {type(model).__name__}"
    )


# --- the layout: one abstract pass -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Layout:
    """What one abstract pass of a model found.

    Attributes:
      capture: the capture's own layout (:mod:`mc._capture`).
      records: the records' shapes (the probes' template).
      layers: per layer entry ``(template, stack dims, shape)``: a template holds one
        :data:`mc._records.SLOT` per stack around the layer, filled by its index.
      params: per parameter ``(path, stacked axes, shape)``.
      groups: per layer entry, the model's call or stack it belongs to (:meth:`rows`).
    """

    capture: _capture.Layout
    records: Any
    layers: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]
    params: tuple[tuple[str, int, tuple[int, ...]], ...]
    groups: tuple[int, ...]

    def rows(self) -> list[tuple[int, tuple[int, ...]]]:
        """``(layer entry, index in its stacks)`` in call order."""
        return _records.call_order([(t, dims, g) for (t, dims, _), g in zip(self.layers, self.groups, strict=True)])

    def row_paths(self) -> list[str]:
        """The layers' paths in call order (a stack's layers indexed: ``ScanBlock_0[3]/Dense_0``)."""
        return [_records.indexed(self.layers[e][0], index) for e, index in self.rows()]

    def positions(self) -> dict[tuple[int, tuple[int, ...]], int]:
        """``(layer entry, index) -> position`` in the flat per-layer vectors (entry by entry,
        each entry's indices in order), as :meth:`flat_sum` lays them out."""
        out, at = {}, 0
        for e, (_, dims, _) in enumerate(self.layers):
            for index in np.ndindex(dims):
                out[e, index] = at
                at += 1
        return out

    def flat_sum(self, records: Any, f: Callable[[jax.Array], jax.Array]) -> jax.Array:
        """``sum f(a)`` over each layer's elements, one value per layer and index in its stacks,
        entry by entry (the layout :meth:`positions` indexes), in float32."""
        sums = []
        for template, a, _ in _records.entries(self.capture, records):
            k = template.count(_capture.SLOT)
            sums.append(jnp.sum(f(a), axis=tuple(range(k, a.ndim)), dtype=jnp.float32).reshape(-1))
        return jnp.concatenate(sums)

    def probes(self) -> Any:
        return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), self.records)

    def facts(self, fact: str) -> dict[str, Any]:
        """``{module path: value}`` of one kind of fact the model's modules told (``"einsum"``:
        the equation; ``"readout"``: ``(tied, base_width, width)``; ``"attend"``)."""
        return {path: value for kind, path, value in self.capture.facts if kind == fact}

    def infshape_options(self, fans: Any = None) -> dict[str, Any]:
        """Keyword arguments of :func:`flaxinit.mup.infshapes` that this model's trace makes
        exact: every parameter's stack axes (``stacked``), an ``Einsum`` kernel's fans from its
        equation (``fans``, after the caller's own ``fans``, which win), and ``tied_readout``
        when a :class:`flaxinit.mup.Readout` reads the embedding."""
        stacks = {path: k for path, k, _ in self.params}
        equations = {f"{module}/kernel": {"einsum": eq} for module, eq in self.facts("einsum").items()}
        if callable(fans):
            given = fans

            def with_equations(path: str, shape: tuple[int, ...]) -> Any:
                option = given(path, shape)
                return equations.get(path) if option is None else option

            fans = with_equations
        elif equations:  # the caller's globs first: the first glob that matches wins
            fans = {**(fans or {}), **{_literal_glob(path): option for path, option in equations.items()}}
        tied = any(tied for tied, *_ in self.facts("readout").values())
        return {"stacked": lambda path, shape: stacks.get(path, 0), "fans": fans, "tied_readout": tied}


def _literal_glob(path: str) -> str:
    """A glob that matches ``path`` alone."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in path)


def _discover_streams(model: Model, x: jax.Array) -> None:
    """The RNG streams a linen model asks for when it runs (``dropout``, or names of its own):
    applied abstractly with none, then with each stream it asked for."""
    from flax import errors

    while True:
        try:
            key = jax.random.key(0)
            jax.eval_shape(lambda k: model.apply(model.init(k, x), x, None, k)[0], key)
            return
        except errors.InvalidRngError as e:
            match = re.search(r'needs PRNG for "([^"]+)"', str(e))
            if match is None or match.group(1) in model.streams:
                raise
            model.streams.append(match.group(1))


#: jax.lax.linalg's primitives: LAPACK calls on a CPU.
_LINALG = frozenset(
    getattr(jax.lax.linalg, name).name
    for name in dir(jax.lax.linalg)
    if name.endswith("_p") and hasattr(getattr(jax.lax.linalg, name), "name")
)


def _calls_linalg(jaxpr: Any) -> bool:
    """Whether a jaxpr (or one nested in it: a scan's body, a cond's branches) calls LAPACK."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in _LINALG:
            return True
        for value in eqn.params.values():
            for inner in value if isinstance(value, tuple | list) else (value,):
                inner = getattr(inner, "jaxpr", inner)  # a ClosedJaxpr's
                if hasattr(inner, "eqns") and _calls_linalg(inner):
                    return True
    return False


def trace_layout(model: Model, x: jax.Array, *, watch: bool = False) -> Layout:
    """The layers (call order) and parameters of ``model`` on ``x``, with their shapes, from
    one abstract pass (after finding a linen model's RNG streams, and whether its
    initialization must run draw by draw: see the module's docstring); ``watch``: the rows
    include each leaf layer's update effect and every attention's logits (:func:`watch_of`)."""
    if model.api == "linen":
        _discover_streams(model, x)
    if jax.default_backend() == "cpu":
        model.sequential_init = _calls_linalg(jax.make_jaxpr(model._init)(jax.random.key(0), x).jaxpr)
    found: dict[str, Any] = {}

    def trace(key, x):
        full = model.init(key, x)
        y, records, layout = model.apply(full, x, None, key, watch_of(model.params(full)) if watch else None)
        found["layout"] = layout
        flat = flat_paths(model.params(full))
        found["paths"] = [p for p, _ in flat]
        return y, records, [leaf for _, leaf in flat]

    y, records, leaves = jax.eval_shape(trace, jax.random.key(0), x)
    params = list(zip(found["paths"], leaves, strict=True))
    if not isinstance(y, jax.ShapeDtypeStruct):
        raise TypeError(
            f"the model's output must be one array, got {jax.tree_util.tree_structure(y)}: pass output= (an index, "
            "a key, or a function of what the model returns) to pick it"
        )
    layout = found["layout"]
    layers, groups = [], []
    for template, out, group in _records.entries(layout, records):
        k = template.count(_capture.SLOT)
        layers.append((template, tuple(out.shape[:k]), tuple(out.shape[k:])))
        groups.append(group)
    stacked = _records.stacked_params(layout, [(p, tuple(leaf.shape)) for p, leaf in params])
    params_out = tuple((p, stacked.get(p, 0), tuple(leaf.shape)) for p, leaf in params)
    return Layout(layout, records, tuple(layers), params_out, tuple(groups))


def watch_of(previous: Any) -> _capture.Watch:
    """What ``mc.verify`` records besides the layers' outputs: each leaf layer's update effect
    against the ``previous`` parameters, and every attention's logits."""
    return _capture.Watch(previous=_capture.leaf_layers(previous), logits=True)


def param_shapes(model: Model, x: jax.Array) -> Any:
    """The model's parameters as ``jax.ShapeDtypeStruct`` (nothing is built)."""
    return jax.eval_shape(lambda k: model.params(model.init(k, x)), jax.random.key(0))


__all__ = [
    "OUTPUT",
    "Layout",
    "Model",
    "as_model",
    "check_call_options",
    "param_shapes",
    "trace_layout",
    "watch_of",
]
