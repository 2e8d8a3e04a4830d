"""Signal propagation through any Flax model at init: :func:`audit` and :func:`correlation_map`.

Each Monte Carlo iteration is one independent initialization of the model (its own key)
run forward on the inputs and backward from a fixed output cotangent. The layers are the
model's submodules, each named by its path and listed in the order their calls return
(a submodule before the module that contains it; the model itself last, as
``"(output)"``); a submodule called twice appears twice (``path#2``). Only floating-point
array outputs count (a module returning a tuple is skipped). Layers inside a layer stack
(``nn.scan``, ``nn.vmap``, ``nnx.scan``, ``nnx.vmap``) get a row per layer of the stack
(``ScanBlock_0[3]/Dense_0``), and ``nn.remat``/``nnx.remat`` is seen through.

How outputs and their gradients are captured is :mod:`mc._capture`'s: every submodule
call's output is recorded with a zero *probe* added, so the gradient with respect to the
probe is the gradient with respect to the output. This module turns a model into pure
``init``/``apply`` functions (linen: mutable non-parameter collections, every RNG stream it
asks for, ``call_kwargs`` and ``method``; nnx: the model rebuilt in the traced iteration
from its state) and the records into one engine statistic. What is recorded for each
pattern: ``docs/audit.md``.

A device evaluates a fixed number of initializations at once (vmapped), set by the model's
memory (:data:`CPU_AUDIT_BYTES`), never by ``chunk_size`` or the device count: the
compiled statistic has one batch shape, so the results are bit-identical for any chunk
size and device count.
"""

from __future__ import annotations

import dataclasses
import math
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flaxinit.tooling import check_int, check_real
from mc import _capture
from mc._engine import BLOCK, Accumulator, Engine
from mc._protocols import Task, as_key, prng_name
from mc._results import _AsDict

#: The name of the model's own output among the layers.
OUTPUT = _capture.OUTPUT
#: Device memory for the initializations evaluated at once (vmapped): on CPUs larger than the
#: engine's default, since a model's many small operations each cost a dispatch.
CPU_AUDIT_BYTES = 64 * 2**20
ACCELERATOR_AUDIT_BYTES = 512 * 2**20


# --- results ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LayerAudit(_AsDict):
    """One layer's output over the initializations (mean over iterations, each with its ``_se``).

    Attributes:
      path: the submodule's path (``"block_2/Dense_0"``), ``"(output)"`` for the model's.
      shape: the output's shape.
      mean_abs: mean |activation| over the output's elements.
      rms: root mean square of the activations (the square root of the mean square over
        elements and iterations; its SE by the delta method).
      zero_fraction: fraction of elements exactly zero (dead ReLU units, for instance).
      grad_rms: root mean square of the loss's gradient with respect to the output.
    """

    path: str
    shape: tuple[int, ...]
    mean_abs: float
    rms: float
    zero_fraction: float
    grad_rms: float
    mean_abs_se: float
    rms_se: float
    zero_fraction_se: float
    grad_rms_se: float


@dataclasses.dataclass(frozen=True)
class ParamAudit(_AsDict):
    """One parameter over the initializations.

    Attributes:
      path: the parameter's path (``"Dense_0/kernel"``).
      shape: its shape.
      rms: root mean square of its entries.
      grad_rms: root mean square of the loss's gradient with respect to it.
      expected_std: the standard deviation the given initializer draws for a kernel of
        this shape (``init.stddev(shape)``), for kernels only; None where unknown.
    """

    path: str
    shape: tuple[int, ...]
    rms: float
    grad_rms: float
    rms_se: float
    grad_rms_se: float
    expected_std: float | None


@dataclasses.dataclass(frozen=True)
class AuditResult:
    """What :func:`audit` measured: per layer (call order) and per parameter.

    Attributes:
      model: the model's class name.
      api: ``"linen"`` or ``"nnx"``.
      inputs: ``"fixed"`` (the batch given) or ``"normal"`` (a fresh standard-normal batch
        of its shape per iteration).
      iterations: initializations averaged over.
      layers: a :class:`LayerAudit` per layer, in call order.
      params: a :class:`ParamAudit` per parameter.
      prng: the generator of the keys.
    """

    model: str
    api: str
    inputs: str
    iterations: int
    layers: tuple[LayerAudit, ...]
    params: tuple[ParamAudit, ...]
    prng: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (layers and params as lists of dicts)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["layers"] = [layer.to_dict() for layer in self.layers]
        out["params"] = [param.to_dict() for param in self.params]
        return out

    def layer(self, path: str) -> LayerAudit:
        """The layer at ``path``."""
        for layer in self.layers:
            if layer.path == path:
                return layer
        raise KeyError(f"no layer {path!r}; layers: {[x.path for x in self.layers]}")


@dataclasses.dataclass(frozen=True)
class CorrelationResult:
    """What :func:`correlation_map` measured at one input correlation ``c``.

    Attributes:
      c: the correlation of the two inputs' elements.
      iterations: initializations (each with its own pair of inputs) averaged over.
      input_correlation: the mean cosine similarity of the two inputs themselves (``c``
        up to the sampling error of their finite size), and its SE.
      layers: ``(path, correlation, correlation_se)`` per layer, in the audit's order:
        the mean over iterations of the cosine similarity of the layer's two outputs.
      prng: the generator of the keys.
    """

    c: float
    iterations: int
    input_correlation: float
    input_correlation_se: float
    layers: tuple[tuple[str, float, float], ...]
    prng: str

    @property
    def correlation(self) -> tuple[float, ...]:
        return tuple(x[1] for x in self.layers)

    @property
    def correlation_se(self) -> tuple[float, ...]:
        return tuple(x[2] for x in self.layers)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["layers"] = [{"path": p, "correlation": c, "correlation_se": s} for p, c, s in self.layers]
        return out


# --- the two model APIs -----------------------------------------------------------------------


@dataclasses.dataclass
class _Model:
    """A model as pure functions: ``init(key, x) -> variables`` and
    ``apply(variables, x, probes, key) -> (y, records, capture layout)`` (:mod:`mc._capture`),
    with every RNG stream the model asks for while it runs drawn from ``key``; ``probes=None``
    adds nothing."""

    name: str
    api: str
    init: Callable[[jax.Array, jax.Array], Any]
    apply: Callable[[Any, jax.Array, Any, jax.Array], tuple[jax.Array, Any, _capture.Layout]]
    streams: list[str] = dataclasses.field(default_factory=list)


def _stream_keys(key: jax.Array, streams: Sequence[str]) -> dict[str, jax.Array]:
    """One key per named RNG stream, from the iteration's key and the stream's name."""
    return {name: jax.random.fold_in(key, zlib.crc32(name.encode())) for name in streams}


def _linen(model, method: str | None, call_kwargs: dict[str, Any]) -> _Model:
    def init(key, x):
        return model.init({"params": key, **_stream_keys(key, m.streams)}, x, method=method, **call_kwargs)

    def apply(variables, x, probes, key):
        mutable = [c for c in variables if c != "params"] or False  # batch statistics: updated, dropped
        (y, _), records, layout = _capture.linen_apply(
            model, variables, x, probes, rngs=_stream_keys(key, m.streams), method=method, mutable=mutable,
            **call_kwargs,
        )  # fmt: skip
        return y, records, layout

    m = _Model(type(model).__name__, "linen", init, apply)
    return m


def _nnx(factory, method: str | None, call_kwargs: dict[str, Any]) -> _Model:
    from flax import nnx

    graph = {}

    def init(key, x):
        # the engine lays iterations along its own mesh: sharding annotations
        # (nnx.with_partitioning) stay metadata, as linen's boxes do
        with nnx.use_eager_sharding(False):
            model = factory(nnx.Rngs(key))
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        graph["def"] = graphdef
        return params, rest

    def apply(state, x, probes, key):
        # new Variables in this trace (batch statistics and RNG counts are updated in place)
        model = nnx.merge(graph["def"], *jax.tree.map(lambda leaf: leaf, state))
        return _capture.nnx_apply(model, x, probes, method=method, call_kwargs=call_kwargs)

    name = getattr(factory, "__name__", type(factory).__name__)
    return _Model(name, "nnx", init, apply)


def _as_model(model: Any, method: Any = None, call_kwargs: Any = None) -> _Model:
    import flax.linen as nn

    if method is not None and not isinstance(method, str):
        raise TypeError(f"method must be the name of the model's method to call, got {method!r}")
    if call_kwargs is None:
        call_kwargs = {}
    if not isinstance(call_kwargs, Mapping) or not all(isinstance(k, str) for k in call_kwargs):
        raise TypeError(
            f"call_kwargs must be a mapping of keyword arguments (e.g. {{'train': True}}), got {call_kwargs!r}"
        )
    call_kwargs = dict(call_kwargs)
    if isinstance(model, nn.Module):
        if method is not None and not callable(getattr(model, method, None)):
            raise ValueError(f"method must name a method of {type(model).__name__}, got {method!r}")
        return _linen(model, method, call_kwargs)
    if callable(model):
        return _nnx(model, method, call_kwargs)
    raise TypeError(
        f"model must be a flax.linen Module or a flax.nnx factory (rngs -> Module), got {type(model).__name__}"
    )


# --- the statistic --------------------------------------------------------------------------------


def _params_of(model: _Model, params: Any) -> Any:
    """The trainable parameters: linen's ``params`` collection, nnx's ``nnx.Param`` state."""
    return params["params"] if model.api == "linen" else params[0]


def _with_params(model: _Model, full: Any, trainable: Any) -> Any:
    if model.api == "linen":
        return {**full, "params": trainable}
    return (trainable, full[1])


def _sum(x: jax.Array, stacked: int = 0) -> jax.Array:
    """The sum over the axes after the first ``stacked`` (the layer's index in its stacks), flat.

    The statistic is always compiled for the same batch shape (``_at_once``), so XLA's own
    reduction order is fixed too: no need for ``tree_sum``'s spelled-out order, and a much
    smaller program to compile for models with hundreds of layers."""
    return jnp.sum(x, axis=tuple(range(stacked, x.ndim)), dtype=jnp.float32).reshape(-1)


def _square(x: jax.Array) -> jax.Array:
    return jnp.square(jnp.abs(x)) if jnp.iscomplexobj(x) else x * x


def _draw_inputs(inputs: jax.Array, fresh: bool):
    if fresh:
        return lambda k: jax.random.normal(k, inputs.shape, jnp.float32)
    return lambda k: inputs


def _loss_fn(loss: Callable | None) -> Callable[[jax.Array], jax.Array]:
    if loss is None:  # a cotangent of ones at the output
        return lambda y: jnp.sum(y, dtype=jnp.float32)
    return loss


@dataclasses.dataclass(frozen=True)
class _Layout:
    """What one abstract pass found: the capture's layout and its records' shapes (the probes'
    template); per layer ``(template, stack dims, shape)``, per parameter ``(path, stacked
    axes, shape)``."""

    capture: _capture.Layout
    records: Any
    layers: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]
    params: tuple[tuple[str, int, tuple[int, ...]], ...]
    groups: tuple[int, ...]

    def rows(self) -> list[tuple[int, tuple[int, ...]]]:
        """``(layer entry, index in its stacks)`` in call order."""
        return _capture.call_order([(t, dims, g) for (t, dims, _), g in zip(self.layers, self.groups, strict=True)])

    def probes(self) -> Any:
        return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), self.records)


def _discover_streams(model: _Model, x: jax.Array) -> None:
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


def _layout(model: _Model, x: jax.Array) -> _Layout:
    """The layers (call order) and parameters, with their shapes, from one abstract pass."""
    if model.api == "linen":
        _discover_streams(model, x)
    found: dict[str, Any] = {}

    def trace(key, x):
        full = model.init(key, x)
        y, records, layout = model.apply(full, x, None, key)
        found["layout"] = layout
        flat = _capture.flat_paths(_params_of(model, full))
        found["paths"] = [p for p, _ in flat]
        return y, records, [leaf for _, leaf in flat]

    y, records, leaves = jax.eval_shape(trace, jax.random.key(0), x)
    params = list(zip(found["paths"], leaves, strict=True))
    if not isinstance(y, jax.ShapeDtypeStruct):
        raise TypeError(f"the model's output must be one array, got {jax.tree_util.tree_structure(y)}")
    layout = found["layout"]
    layers, groups = [], []
    for template, out, group in _capture.entries(layout, records):
        k = template.count(_capture.SLOT)
        layers.append((template, tuple(out.shape[:k]), tuple(out.shape[k:])))
        groups.append(group)
    stacked = _capture.stacked_params(layout, [(p, tuple(leaf.shape)) for p, leaf in params])
    params_out = tuple((p, stacked.get(p, 0), tuple(leaf.shape)) for p, leaf in params)
    return _Layout(layout, records, tuple(layers), params_out, tuple(groups))


def _audit_engine(model: _Model, layout: _Layout, inputs, fresh: bool, loss) -> Engine:
    draw_x = _draw_inputs(inputs, fresh)
    loss_fn = _loss_fn(loss)

    def stat(k):  # [1, stats]: sums over elements per layer (and index in its stacks); the host divides
        k_init, k_x = jax.random.split(k)
        x = draw_x(k_x)
        full = model.init(k_init, x)

        def objective(trainable, probes):
            y, records, _ = model.apply(_with_params(model, full, trainable), x, probes, k_init)
            return loss_fn(y), records

        trainable = _params_of(model, full)
        (grad_params, grad_records), records = jax.grad(objective, argnums=(0, 1), has_aux=True)(
            trainable, layout.probes()
        )
        sums = []
        outputs = _capture.entries(layout.capture, records)
        gradients = _capture.entries(layout.capture, grad_records)
        for (template, a, _), (_, g, _) in zip(outputs, gradients, strict=True):
            k = template.count(_capture.SLOT)
            sums += [
                _sum(jnp.abs(a), k),
                _sum(_square(a), k),
                _sum((a == 0).astype(jnp.float32), k),
                _sum(_square(g), k),
            ]
        grad_flat = dict(_capture.flat_paths(grad_params))
        stacked = {path: k for path, k, _ in layout.params}
        for path, w in _capture.flat_paths(trainable):
            g = grad_flat[path]
            sums += [_sum(_square(w), stacked[path]), _sum(_square(g), stacked[path])]
        return jnp.concatenate(sums)[None]

    width = 4 * sum(math.prod(dims) for _, dims, _ in layout.layers)
    width += 2 * sum(math.prod(shape[:k]) for _, k, shape in layout.params)
    size = sum(math.prod(dims) * math.prod(s) for _, dims, s in layout.layers) + sum(
        math.prod(s) for _, _, s in layout.params
    )
    per_iteration = 64 + 16 * size
    return Engine(stat, width, per_iteration, at_once=_at_once(per_iteration))


def _at_once(bytes_per_iteration: int) -> int:
    """Initializations a device evaluates at once: a power of two from the memory budget,
    fixed by the model (never by ``chunk_size`` or the device count), so every run compiles
    the same batch shape and gives the same bits."""
    budget = CPU_AUDIT_BYTES if jax.default_backend() == "cpu" else ACCELERATOR_AUDIT_BYTES
    fits = max(1, budget // bytes_per_iteration)
    return min(BLOCK, 1 << (fits.bit_length() - 1))


def _rms(mean_square: float, se: float) -> tuple[float, float]:
    rms = math.sqrt(max(mean_square, 0.0))
    return rms, (se / (2 * rms) if rms > 0 else 0.0)


def _expected_std(init: Any, path: str, shape: tuple[int, ...]) -> float | None:
    if init is None or not path.endswith("kernel") or not hasattr(init, "stddev"):
        return None
    try:
        return float(init.stddev(shape))
    except (TypeError, ValueError):
        return None


def _finalize_audit(model: _Model, layout: _Layout, fresh: bool, init: Any, prng: str):
    def finalize(acc: Accumulator) -> AuditResult:
        means, ses = acc.moments()
        at = 0

        def take(stats: int, count: int) -> list[list[tuple[float, float]]]:
            """``stats`` statistics of ``count`` indices, stored statistic-major: per index."""
            nonlocal at
            block = list(zip(means[at : at + stats * count], ses[at : at + stats * count], strict=True))
            at += stats * count
            return [[block[s * count + i] for s in range(stats)] for i in range(count)]

        measured = {}
        for e, (template, dims, shape) in enumerate(layout.layers):
            count = math.prod(shape)
            for index, stats in zip(np.ndindex(dims), take(4, math.prod(dims)), strict=True):
                (a, a_se), (sq, sq_se), (z, z_se), (g, g_se) = stats
                rms, rms_se = _rms(sq / count, sq_se / count)
                grad, grad_se = _rms(g / count, g_se / count)
                path = _capture.indexed(template, index)
                measured[e, index] = LayerAudit(
                    path, shape, a / count, rms, z / count, grad, a_se / count, rms_se, z_se / count, grad_se
                )
        layers = [measured[row] for row in layout.rows()]
        params = []
        for path, k, full_shape in layout.params:
            shape = full_shape[k:]
            count = math.prod(shape)
            for index, stats in zip(np.ndindex(full_shape[:k]), take(2, math.prod(full_shape[:k])), strict=True):
                (sq, sq_se), (g, g_se) = stats
                rms, rms_se = _rms(sq / count, sq_se / count)
                grad, grad_se = _rms(g / count, g_se / count)
                name = path + "".join(f"[{i}]" for i in index)
                params.append(ParamAudit(name, shape, rms, grad, rms_se, grad_se, _expected_std(init, path, shape)))
        inputs = "normal" if fresh else "fixed"
        return AuditResult(model.name, model.api, inputs, acc.iterations_done, tuple(layers), tuple(params), prng)

    return finalize


def _check_inputs(inputs: Any, fresh: bool) -> jax.Array:
    if not isinstance(inputs, jax.Array | np.ndarray) or inputs.dtype == bool:
        raise TypeError(f"inputs must be an array (a batch for the model), got {inputs!r:.80}")
    if fresh and not jnp.issubdtype(inputs.dtype, jnp.floating):
        raise TypeError(f"fresh_inputs draws standard-normal inputs: inputs must be floating point, got {inputs.dtype}")
    return jnp.asarray(inputs)


def audit_task(
    model, inputs, iterations, *, key, fresh_inputs=False, loss=None, init=None, call_kwargs=None, method=None,
    prng="philox",
) -> Task:  # fmt: skip
    """The task behind :func:`audit` (same arguments), not yet run."""
    key, iterations = as_key(key, prng), check_int(iterations, "iterations")
    inputs = _check_inputs(inputs, bool(fresh_inputs))
    if loss is not None and not callable(loss):
        raise TypeError(f"loss must be a function of the model's output returning a scalar, got {loss!r}")
    m = _as_model(model, method, call_kwargs)
    layout = _layout(m, inputs)
    engine = _audit_engine(m, layout, inputs, bool(fresh_inputs), loss)
    finalize = _finalize_audit(m, layout, bool(fresh_inputs), init, prng_name(key))
    return Task(f"audit {m.name}", engine, key, iterations, finalize)


def audit(
    model: Any,
    inputs: jax.Array,
    iterations: int,
    *,
    key: jax.Array | int,
    fresh_inputs: bool = False,
    loss: Callable[[jax.Array], jax.Array] | None = None,
    init: Any = None,
    call_kwargs: Mapping[str, Any] | None = None,
    method: str | None = None,
    chunk_size: int | None = None,
) -> AuditResult:
    """Per-layer forward and backward magnitudes of a Flax model, over many initializations.

    Each iteration initializes ``model`` with its own key, runs it forward on ``inputs``
    and backward from the output (a cotangent of ones, or the gradient of ``loss``), and
    records every submodule's output and gradient and every parameter and its gradient.
    Layers inside a layer stack (``nn.scan``, ``nn.vmap``, ``nnx.scan``, ``nnx.vmap``) get
    a row per layer (``ScanBlock_0[3]/Dense_0``) and their stacked parameters one per index
    (``ScanBlock_0/Dense_0/kernel[3]``); layers inside ``nn.remat``/``nnx.remat`` are seen
    as if it were not there. What is recorded for training-mode layers (batch statistics,
    dropout), RNG streams and stacks: ``docs/audit.md``.

    Args:
      model: a ``flax.linen`` Module, or a ``flax.nnx`` factory ``rngs -> Module`` (called
        with ``nnx.Rngs(key)`` once per iteration).
      inputs: the model's input batch (token ids too); with ``fresh_inputs``, a floating
        point example whose shape the fresh draws take.
      iterations: independent initializations.
      key: a PRNG key or an int seed (a Philox key, as in :func:`mc.standard_test`).
      fresh_inputs: draw a new standard-normal batch of ``inputs``' shape per iteration
        instead of reusing ``inputs``.
      loss: a function of the model's output returning a scalar, differentiated for the
        backward pass; default: the sum of the outputs (a cotangent of ones).
      init: the initializer of the model's kernels, for :attr:`ParamAudit.expected_std`.
      call_kwargs: keyword arguments of every call of the model (``{"train": True}``): a
        linen model runs with its non-parameter collections mutable (BatchNorm's batch
        statistics; the updates are dropped) and with every RNG stream it asks for
        (``dropout``, names of its own) drawn from the iteration's key.
      method: the name of the model's method to call instead of ``__call__``.
      chunk_size: initializations each device runs per call (see :func:`mc.standard_test`);
        those evaluated at once are fixed by the model's memory, so the bits never change.

    Returns:
      An :class:`AuditResult`; its bits depend only on ``(key, iterations)``, for any
      chunk size, device count and process count.

    Examples:
      >>> import jax.numpy as jnp, flax.linen as nn, flaxinit, mc
      >>> model = nn.Dense(8, use_bias=False, kernel_init=flaxinit.xavier_standard())
      >>> r = mc.audit(model, jnp.ones((4, 16)), 256, key=0, init=flaxinit.xavier_standard())
      >>> [layer.path for layer in r.layers], r.params[0].path
      (['(output)'], 'kernel')
      >>> abs(r.layers[0].rms ** 2 - 1 / 3) < 4 * 2 * r.layers[0].rms * r.layers[0].rms_se  # E z^2 = 16 / (3 * 16)
      True
    """
    task = audit_task(
        model, inputs, iterations, key=key, fresh_inputs=fresh_inputs, loss=loss, init=init, call_kwargs=call_kwargs,
        method=method,
    )  # fmt: skip
    return task.run(chunk_size=None if chunk_size is None else check_int(chunk_size, "chunk_size"))


# --- correlation maps -------------------------------------------------------------------------------


def _cmap_engine(model: _Model, layout: _Layout, shape: tuple[int, ...], c: float) -> Engine:
    partner = math.sqrt(max(0.0, 1.0 - c * c))

    def cosine(a, b, stacked=0):
        return _sum(a * b, stacked) / jnp.sqrt(_sum(a * a, stacked) * _sum(b * b, stacked))

    def stat(k):  # [1, 1 + layers]: the inputs' cosine, then each layer's (and index's)
        k_init, k_1, k_2 = jax.random.split(k, 3)
        z1 = jax.random.normal(k_1, shape, jnp.float32)
        z2 = jax.random.normal(k_2, shape, jnp.float32)
        x1, x2 = z1, c * z1 + partner * z2
        full = model.init(k_init, x1)
        first = _capture.entries(layout.capture, model.apply(full, x1, None, k_init)[1])
        second = _capture.entries(layout.capture, model.apply(full, x2, None, k_init)[1])
        cosines = [cosine(x1, x2)]
        cosines += [cosine(a, b, t.count(_capture.SLOT)) for (t, a, _), (_, b, _) in zip(first, second, strict=True)]
        return jnp.concatenate(cosines)[None]

    size = 2 * (
        sum(math.prod(dims) * math.prod(s) for _, dims, s in layout.layers)
        + sum(math.prod(s) for _, _, s in layout.params)
    )
    per_iteration = 64 + 16 * size
    return Engine(stat, 1 + sum(math.prod(dims) for _, dims, _ in layout.layers), per_iteration,
                  at_once=_at_once(per_iteration))  # fmt: skip


def correlation_task(model, inputs_shape, c, iterations, *, key, call_kwargs=None, method=None, prng="philox") -> Task:
    """The task behind :func:`correlation_map` (same arguments), not yet run."""
    key, iterations = as_key(key, prng), check_int(iterations, "iterations")
    c = check_real(c, "c")
    if not -1.0 <= c <= 1.0:
        raise ValueError(f"c must be a correlation in [-1, 1], got {c}")
    shape = tuple(check_int(d, "each dimension of inputs_shape") for d in inputs_shape)
    m = _as_model(model, method, call_kwargs)
    layout = _layout(m, jnp.zeros(shape, jnp.float32))
    positions = {(e, i): n for n, (e, i) in enumerate((e, i) for e, (_, dims, _) in enumerate(layout.layers)
                                                      for i in np.ndindex(dims))}  # fmt: skip
    prng_used = prng_name(key)

    def finalize(acc: Accumulator) -> CorrelationResult:
        means, ses = acc.moments()
        layers = tuple(
            (_capture.indexed(layout.layers[e][0], i), means[1 + positions[e, i]], ses[1 + positions[e, i]])
            for e, i in layout.rows()
        )
        return CorrelationResult(c, acc.iterations_done, means[0], ses[0], layers, prng_used)

    return Task(f"correlation map {m.name} c={c:g}", _cmap_engine(m, layout, shape, c), key, iterations, finalize)


def correlation_map(
    model: Any,
    inputs_shape: Sequence[int],
    c: float,
    iterations: int,
    *,
    key: jax.Array | int,
    call_kwargs: Mapping[str, Any] | None = None,
    method: str | None = None,
) -> CorrelationResult:
    """How much a model at init keeps two inputs of correlation ``c`` apart, per layer (a C-map).

    Each iteration initializes ``model`` and draws two standard-normal inputs of
    ``inputs_shape`` whose elements have correlation ``c`` (``x2 = c x1 + sqrt(1 - c^2) z``);
    per layer it records the cosine similarity of the layer's two outputs (flattened). Over
    a grid of ``c``, the map ``c -> correlation`` decides whether a deep network collapses
    distinct inputs (a fixed point at 1 that attracts) or keeps them apart. Closed forms
    exist for some layers: a linear layer keeps ``c`` (exactly, for an orthogonal kernel), a
    wide ReLU layer with Gaussian weights maps it to the arc-cosine kernel
    ``(sqrt(1 - c^2) + (pi - arccos c) c) / pi``.

    Args:
      model: a ``flax.linen`` Module or a ``flax.nnx`` factory, as for :func:`audit`.
      inputs_shape: the shape of one input batch.
      c: the correlation of the two inputs' elements, in ``[-1, 1]``.
      iterations: independent initializations, each with its own pair of inputs.
      key: a PRNG key or an int seed.
      call_kwargs: as for :func:`audit`; both inputs of an iteration see the same RNG
        streams (the same dropout mask).
      method: as for :func:`audit`.

    Returns:
      A :class:`CorrelationResult` (layers in the audit's order), with the inputs' own mean
      cosine similarity as ``input_correlation``.

    Examples:
      >>> import flax.linen as nn, flaxinit, mc
      >>> model = nn.Dense(64, use_bias=False, kernel_init=flaxinit.orthogonal())
      >>> r = mc.correlation_map(model, (1, 64), 0.5, 128, key=0)
      >>> abs(r.correlation[0] - r.input_correlation) < 1e-5  # an orthogonal map keeps angles
      True
    """
    return correlation_task(model, inputs_shape, c, iterations, key=key, call_kwargs=call_kwargs, method=method).run()


__all__ = [
    "AuditResult",
    "CorrelationResult",
    "LayerAudit",
    "ParamAudit",
    "audit",
    "audit_task",
    "correlation_map",
    "correlation_task",
]
