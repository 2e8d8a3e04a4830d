"""Signal propagation through any Flax model at init: :func:`audit` and :func:`correlation_map`.

Each Monte Carlo iteration is one independent initialization of the model (its own key)
run forward on the inputs and backward from a fixed output cotangent. The layers are the
model's submodules, each named by its path and listed in the order their calls return
(a submodule before the module that contains it; the model itself last, as
``"(output)"``); a submodule called twice appears twice (``path#2``). Only array outputs
count (a module returning a tuple is skipped), and only calls made by the model's own
trace: layers inside a lifted transform (``nn.scan``, ``nnx.scan``) are measured as a
whole, by the scanned module's output.

How outputs and their gradients are captured:

* ``flax.linen``: ``nn.intercept_methods`` wraps every ``__call__`` of the model's
  submodules; the wrapper records the output and adds a zero *probe* to it, so the
  gradient with respect to the probe is the gradient with respect to the output.
* ``flax.nnx`` (a factory ``rngs -> Module``): the model is built inside the traced
  iteration, and the ``__call__`` of each of its module classes is wrapped for the
  duration of the trace (special methods are looked up on the type), recording the outputs
  of the model's own instances, matched by identity, and adding the same probes.

A device evaluates a fixed number of initializations at once (vmapped), set by the model's
memory (:data:`CPU_AUDIT_BYTES`), never by ``chunk_size`` or the device count: the
compiled statistic has one batch shape, so the results are bit-identical for any chunk
size and device count.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jex_core

from flaxinit import tooling
from flaxinit.tooling import check_int, check_real
from mc._engine import BLOCK, Accumulator, Engine
from mc._protocols import Task, as_key, prng_name
from mc._results import _AsDict

#: The name of the model's own output among the layers.
OUTPUT = "(output)"
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


@dataclasses.dataclass(frozen=True)
class _Model:
    """A model as pure functions: ``init(key, x) -> params`` and
    ``apply(params, x, probes) -> (y, [(path, output)])``, outputs in call order with the
    probe of each added; ``probes=None`` adds nothing."""

    name: str
    api: str
    init: Callable[[jax.Array, jax.Array], Any]
    apply: Callable[[Any, jax.Array, dict[str, jax.Array] | None], tuple[jax.Array, list]]


def _unique(paths: list[str]) -> list[str]:
    """``path``, ``path#2``, ... for a submodule called more than once."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        seen[p] = seen.get(p, 0) + 1
        out.append(p if seen[p] == 1 else f"{p}#{seen[p]}")
    return out


def _path(names: Sequence[Any]) -> str:
    return "/".join(str(n) for n in names) or OUTPUT


def _trace_state() -> Any:
    return jex_core.get_opaque_trace_state(convention="flax")


def _probed(records: list, probes: dict[str, jax.Array] | None, base: Any, path: str, out: Any) -> Any:
    """Records ``out`` under its unique name, plus its probe (if any): the one hook of both APIs.

    Calls made inside a lifted transform (``nn.scan``, ``nnx.scan``, ``jax.lax.scan`` ...)
    run under another trace than the model's (``base``): their outputs are the body's
    values, not the layer's, and are skipped.
    """
    if not isinstance(out, jax.Array) or _trace_state() != base:
        return out  # tuples, dicts, ...: not a layer output the audit can measure
    name = _unique([*(p for p, _ in records), path])[-1]
    if probes is not None:
        out = out + probes[name]
    records.append((name, out))
    return out


def _linen(model) -> _Model:
    import flax.linen as nn

    def init(key, x):
        return model.init({"params": key}, x)

    def apply(variables, x, probes):
        records: list = []
        base = _trace_state()

        def interceptor(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            if context.method_name != "__call__":
                return out
            return _probed(records, probes, base, _path(context.module.path), out)

        with nn.intercept_methods(interceptor):
            y = model.apply(variables, x)
        return y, records

    return _Model(type(model).__name__, "linen", init, apply)


def _nnx(factory) -> _Model:
    from flax import nnx

    def build(key):
        return nnx.split(factory(nnx.Rngs(key)), nnx.Param, ...)

    graph = {}

    def init(key, x):
        graphdef, params, rest = build(key)
        graph["def"] = graphdef
        return params, rest

    def apply(state, x, probes):
        params, rest = state
        copy = nnx.merge(graph["def"], params, rest)
        records: list = []
        probe = functools.partial(_probed, records, probes, _trace_state())
        with tooling.nnx_call_hook(copy, lambda path, layer, out: probe(_path(path), out)):
            y = copy(x)
        return y, records

    name = getattr(factory, "__name__", type(factory).__name__)
    return _Model(name, "nnx", init, apply)


def _as_model(model: Any) -> _Model:
    import flax.linen as nn

    if isinstance(model, nn.Module):
        return _linen(model)
    if callable(model):
        return _nnx(model)
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


def _flat(tree: Any) -> list[tuple[str, jax.Array]]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    out = []
    for keys, leaf in leaves:
        names = [getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))) for k in keys]
        names = [n for n in names if n != "value"]  # nnx Variables wrap their array in .value
        out.append(("/".join(str(n) for n in names), leaf))
    return out


def _sum(x: jax.Array) -> jax.Array:
    # the statistic is always compiled for the same batch shape (_at_once), so XLA's own
    # reduction order is fixed too: no need for tree_sum's spelled-out order, and a much
    # smaller program to compile for models with hundreds of layers
    return jnp.sum(x, dtype=jnp.float32)


def _draw_inputs(inputs: jax.Array, fresh: bool):
    if fresh:
        return lambda k: jax.random.normal(k, inputs.shape, jnp.float32)
    return lambda k: inputs


def _loss_fn(loss: Callable | None) -> Callable[[jax.Array], jax.Array]:
    if loss is None:  # a cotangent of ones at the output
        return lambda y: _sum(y)
    return loss


@dataclasses.dataclass(frozen=True)
class _Layout:
    layers: tuple[tuple[str, tuple[int, ...]], ...]
    params: tuple[tuple[str, tuple[int, ...]], ...]


def _layout(model: _Model, x: jax.Array) -> _Layout:
    """The layers (call order) and parameters, with their shapes, from one abstract pass."""
    names: list[str] = []

    def trace(key, x):
        full = model.init(key, x)
        y, records = model.apply(full, x, None)
        names[:] = [p for p, _ in records]
        return y, [out for _, out in records], [leaf for _, leaf in _flat(_params_of(model, full))], full

    y, outs, leaves, full = jax.eval_shape(trace, jax.random.key(0), x)
    if not isinstance(y, jax.ShapeDtypeStruct):
        raise TypeError(f"the model's output must be one array, got {jax.tree_util.tree_structure(y)}")
    params = [p for p, _ in _flat(_params_of(model, full))]
    return _Layout(
        tuple((n, tuple(o.shape)) for n, o in zip(names, outs, strict=True)),
        tuple((p, tuple(leaf.shape)) for p, leaf in zip(params, leaves, strict=True)),
    )


def _audit_engine(model: _Model, layout: _Layout, inputs, fresh: bool, loss) -> Engine:
    draw_x = _draw_inputs(inputs, fresh)
    loss_fn = _loss_fn(loss)

    def stat(k):  # [1, 4 * layers + 2 * params]: sums over elements; the host divides
        k_init, k_x = jax.random.split(k)
        x = draw_x(k_x)
        full = model.init(k_init, x)
        probes = {path: jnp.zeros(shape, jnp.float32) for path, shape in layout.layers}

        def objective(trainable, probes):
            y, records = model.apply(_with_params(model, full, trainable), x, probes)
            return loss_fn(y), dict(records)

        trainable = _params_of(model, full)
        grads, outputs = jax.grad(objective, argnums=(0, 1), has_aux=True)(trainable, probes)
        grad_params, grad_outputs = grads
        sums = []
        for path, _ in layout.layers:
            a, g = outputs[path], grad_outputs[path]
            sums += [_sum(jnp.abs(a)), _sum(a * a), _sum((a == 0).astype(jnp.float32)), _sum(g * g)]
        grad_flat = dict(_flat(grad_params))
        for path, w in _flat(trainable):
            g = grad_flat[path]
            sums += [_sum(w * w), _sum(g * g)]
        return jnp.stack(sums)[None]

    size = sum(math.prod(s) for _, s in layout.layers) + sum(math.prod(s) for _, s in layout.params)
    per_iteration = 64 + 16 * size
    return Engine(stat, 4 * len(layout.layers) + 2 * len(layout.params), per_iteration, at_once=_at_once(per_iteration))


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
        it = iter(zip(means, ses, strict=True))
        layers = []
        for path, shape in layout.layers:
            count = math.prod(shape)
            (a, a_se), (sq, sq_se), (z, z_se), (g, g_se) = (next(it) for _ in range(4))
            rms, rms_se = _rms(sq / count, sq_se / count)
            grad, grad_se = _rms(g / count, g_se / count)
            layers.append(
                LayerAudit(path, shape, a / count, rms, z / count, grad, a_se / count, rms_se, z_se / count, grad_se)
            )
        params = []
        for path, shape in layout.params:
            count = math.prod(shape)
            (sq, sq_se), (g, g_se) = next(it), next(it)
            rms, rms_se = _rms(sq / count, sq_se / count)
            grad, grad_se = _rms(g / count, g_se / count)
            params.append(ParamAudit(path, shape, rms, grad, rms_se, grad_se, _expected_std(init, path, shape)))
        inputs = "normal" if fresh else "fixed"
        return AuditResult(model.name, model.api, inputs, acc.iterations_done, tuple(layers), tuple(params), prng)

    return finalize


def _check_inputs(inputs: Any, fresh: bool) -> jax.Array:
    if not isinstance(inputs, jax.Array | np.ndarray) or inputs.dtype == bool:
        raise TypeError(f"inputs must be an array (a batch for the model), got {inputs!r:.80}")
    if fresh and not jnp.issubdtype(inputs.dtype, jnp.floating):
        raise TypeError(f"fresh_inputs draws standard-normal inputs: inputs must be floating point, got {inputs.dtype}")
    return jnp.asarray(inputs)


def audit_task(model, inputs, iterations, *, key, fresh_inputs=False, loss=None, init=None, prng="philox") -> Task:
    """The task behind :func:`audit` (same arguments), not yet run."""
    key, iterations = as_key(key, prng), check_int(iterations, "iterations")
    inputs = _check_inputs(inputs, bool(fresh_inputs))
    if loss is not None and not callable(loss):
        raise TypeError(f"loss must be a function of the model's output returning a scalar, got {loss!r}")
    m = _as_model(model)
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
    chunk_size: int | None = None,
) -> AuditResult:
    """Per-layer forward and backward magnitudes of a Flax model, over many initializations.

    Each iteration initializes ``model`` with its own key, runs it forward on ``inputs``
    and backward from the output (a cotangent of ones, or the gradient of ``loss``), and
    records every submodule's output and gradient and every parameter and its gradient.

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
    task = audit_task(model, inputs, iterations, key=key, fresh_inputs=fresh_inputs, loss=loss, init=init)
    return task.run(chunk_size=None if chunk_size is None else check_int(chunk_size, "chunk_size"))


# --- correlation maps -------------------------------------------------------------------------------


def _cmap_engine(model: _Model, layout: _Layout, shape: tuple[int, ...], c: float) -> Engine:
    partner = math.sqrt(max(0.0, 1.0 - c * c))

    def cosine(a, b):
        return _sum(a * b) / jnp.sqrt(_sum(a * a) * _sum(b * b))

    def stat(k):  # [1, 1 + layers]
        k_init, k_1, k_2 = jax.random.split(k, 3)
        z1 = jax.random.normal(k_1, shape, jnp.float32)
        z2 = jax.random.normal(k_2, shape, jnp.float32)
        x1, x2 = z1, c * z1 + partner * z2
        full = model.init(k_init, x1)
        _, first = model.apply(full, x1, None)
        _, second = model.apply(full, x2, None)
        return jnp.stack([cosine(x1, x2)] + [cosine(a, b) for (_, a), (_, b) in zip(first, second, strict=True)])[None]

    size = 2 * (sum(math.prod(s) for _, s in layout.layers) + sum(math.prod(s) for _, s in layout.params))
    per_iteration = 64 + 16 * size
    return Engine(stat, 1 + len(layout.layers), per_iteration, at_once=_at_once(per_iteration))


def correlation_task(model, inputs_shape, c, iterations, *, key, prng="philox") -> Task:
    """The task behind :func:`correlation_map` (same arguments), not yet run."""
    key, iterations = as_key(key, prng), check_int(iterations, "iterations")
    c = check_real(c, "c")
    if not -1.0 <= c <= 1.0:
        raise ValueError(f"c must be a correlation in [-1, 1], got {c}")
    shape = tuple(check_int(d, "each dimension of inputs_shape") for d in inputs_shape)
    m = _as_model(model)
    layout = _layout(m, jnp.zeros(shape, jnp.float32))
    prng_used = prng_name(key)

    def finalize(acc: Accumulator) -> CorrelationResult:
        means, ses = acc.moments()
        layers = tuple((path, mean, se) for (path, _), mean, se in zip(layout.layers, means[1:], ses[1:], strict=True))
        return CorrelationResult(c, acc.iterations_done, means[0], ses[0], layers, prng_used)

    return Task(f"correlation map {m.name} c={c:g}", _cmap_engine(m, layout, shape, c), key, iterations, finalize)


def correlation_map(
    model: Any, inputs_shape: Sequence[int], c: float, iterations: int, *, key: jax.Array | int
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
    return correlation_task(model, inputs_shape, c, iterations, key=key).run()


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
