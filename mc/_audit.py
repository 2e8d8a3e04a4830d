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
import fnmatch
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flaxinit.tooling import AsDict, check_int, check_real, flat_paths, initializer_shape
from mc import _capture
from mc._cache import PROGRAMS
from mc._engine import BLOCK, Accumulator, Engine
from mc._keys import as_key, prng_name
from mc._model import Layout, Model, as_model, check_call_options, trace_layout
from mc._protocols import Task

#: The name of the model's own output among the layers.
OUTPUT = _capture.OUTPUT
#: Device memory for the initializations evaluated at once (vmapped): on CPUs larger than the
#: engine's default, since a model's many small operations each cost a dispatch.
CPU_AUDIT_BYTES = 64 * 2**20
ACCELERATOR_AUDIT_BYTES = 512 * 2**20


# --- results ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LayerAudit(AsDict):
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
class ParamAudit(AsDict):
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
class AuditResult(AsDict):
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

    def layer(self, path: str) -> LayerAudit:
        """The layer at ``path``."""
        for layer in self.layers:
            if layer.path == path:
                return layer
        raise KeyError(f"no layer {path!r}; layers: {[x.path for x in self.layers]}")


@dataclasses.dataclass(frozen=True)
class CorrelationResult(AsDict):
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
        """Every field, ``layers`` as records ``{"path", "correlation", "correlation_se"}``."""
        out = super().to_dict()
        out["layers"] = [{"path": p, "correlation": c, "correlation_se": s} for p, c, s in self.layers]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CorrelationResult:
        """The result whose ``to_dict()``, as read back from strict JSON, is ``data``."""
        layers = [(r["path"], r["correlation"], r["correlation_se"]) for r in data["layers"]]
        return super().from_dict({**data, "layers": layers})


# --- the statistic --------------------------------------------------------------------------------


def _sum(x: jax.Array, stacked: int = 0) -> jax.Array:
    """The sum over the axes after the first ``stacked`` (the index in its stacks), flat.

    The statistic is always compiled for the same batch shape (``_at_once``), so XLA's own
    reduction order is fixed too: no need for ``tree_sum``'s spelled-out order, and a much
    smaller program to compile for models with hundreds of layers."""
    return jnp.sum(x, axis=tuple(range(stacked, x.ndim)), dtype=jnp.float32).reshape(-1)


def _square(x: jax.Array) -> jax.Array:
    return jnp.square(jnp.abs(x)) if jnp.iscomplexobj(x) else x * x


def _loss_fn(loss: Callable | None) -> Callable[[jax.Array], jax.Array]:
    if loss is None:  # a cotangent of ones at the output
        return lambda y: jnp.sum(y, dtype=jnp.float32)
    return loss


#: The layer statistics, in the order the statistic vector holds them (each over every layer row).
_LAYER_STATS = ("mean_abs", "mean_square", "zero_fraction", "grad_square")


def _audit_engine(model: Model, layout: Layout, shape: tuple[int, ...], fresh: bool, loss) -> Engine:
    """The audit's statistic: ``(key, inputs) -> [1, stats]``, sums over elements per layer row
    (each of :data:`_LAYER_STATS` over every row), then per parameter (and index in its stacks)
    the sums of squares of its entries and of their gradients; the host divides."""
    loss_fn = _loss_fn(loss)
    stacked = {path: k for path, k, _ in layout.params}

    def stat(k, inputs=None):  # inputs: None where fresh ones are drawn
        k_init, k_x = jax.random.split(k)
        x = jax.random.normal(k_x, shape, jnp.float32) if fresh else inputs
        full = model.init(k_init, x)

        def objective(trainable, probes):
            y, records, _ = model.apply(model.with_params(full, trainable), x, probes, k_init)
            return loss_fn(y), records

        trainable = model.params(full)
        (grad_params, grad_records), records = jax.grad(objective, argnums=(0, 1), has_aux=True)(
            trainable, layout.probes()
        )
        sums = [
            layout.flat_sum(records, jnp.abs),
            layout.flat_sum(records, _square),
            layout.flat_sum(records, lambda a: (a == 0).astype(jnp.float32)),
            layout.flat_sum(grad_records, _square),
        ]
        grad_flat = dict(flat_paths(grad_params))
        for path, w in flat_paths(trainable):
            sums += [_sum(_square(w), stacked[path]), _sum(_square(grad_flat[path]), stacked[path])]
        return jnp.concatenate(sums)[None]

    width = len(_LAYER_STATS) * sum(math.prod(dims) for _, dims, _ in layout.layers)
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


def _init_of(init: Any, path: str) -> Any:
    """The initializer ``audit(init=...)`` gives a parameter: one for every kernel (a parameter
    named ``kernel``), or per path glob (the first that matches)."""
    if isinstance(init, Mapping):
        return next((i for glob, i in init.items() if fnmatch.fnmatchcase(path, glob)), None)
    return init if path.rsplit("/", 1)[-1] == "kernel" else None


def _expected_std(init: Any, path: str, shape: tuple[int, ...], stacked: int) -> float | None:
    """The std ``init`` draws for the parameter as its Flax layer calls it (attention kernels
    flat, :func:`flaxinit.tooling.initializer_shape`); None where unknown."""
    init = _init_of(init, path)
    if init is None or not hasattr(init, "stddev"):
        return None
    try:
        return float(init.stddev(initializer_shape(path, shape, stacked=stacked)))
    except (TypeError, ValueError):
        return None


def _finalize_audit(model: Model, layout: Layout, fresh: bool, init: Any, prng: str):
    rows = sum(math.prod(dims) for _, dims, _ in layout.layers)
    positions = layout.positions()

    def finalize(acc: Accumulator) -> AuditResult:
        means, ses = acc.moments()
        layers = []
        for (e, index), path in zip(layout.rows(), layout.row_paths(), strict=True):
            count = math.prod(layout.layers[e][2])
            (a, a_se), (sq, sq_se), (z, z_se), (g, g_se) = (
                (means[s * rows + positions[e, index]], ses[s * rows + positions[e, index]])
                for s in range(len(_LAYER_STATS))
            )
            rms, rms_se = _rms(sq / count, sq_se / count)
            grad, grad_se = _rms(g / count, g_se / count)
            layers.append(LayerAudit(path, layout.layers[e][2], a / count, rms, z / count, grad, a_se / count, rms_se,
                                     z_se / count, grad_se))  # fmt: skip
        params, at = [], len(_LAYER_STATS) * rows
        for path, k, full_shape in layout.params:
            shape, count, n = full_shape[k:], math.prod(full_shape[k:]), math.prod(full_shape[:k])
            expected = _expected_std(init, path, full_shape, k)
            for i, index in enumerate(np.ndindex(full_shape[:k])):
                rms, rms_se = _rms(means[at + i] / count, ses[at + i] / count)
                grad, grad_se = _rms(means[at + n + i] / count, ses[at + n + i] / count)
                name = path + "".join(f"[{j}]" for j in index)
                params.append(ParamAudit(name, shape, rms, grad, rms_se, grad_se, expected))
            at += 2 * n
        inputs = "normal" if fresh else "fixed"
        return AuditResult(model.name, model.api, inputs, acc.iterations_done, tuple(layers), tuple(params), prng)

    return finalize


def _check_inputs(inputs: Any, fresh: bool) -> jax.Array:
    if not isinstance(inputs, jax.Array | np.ndarray) or inputs.dtype == bool:
        raise TypeError(f"inputs must be an array (a batch for the model), got {inputs!r:.80}")
    if fresh and not jnp.issubdtype(inputs.dtype, jnp.floating):
        raise TypeError(f"fresh_inputs draws standard-normal inputs: inputs must be floating point, got {inputs.dtype}")
    return jnp.asarray(inputs)


def _check_init(init: Any) -> Any:
    if init is None or hasattr(init, "stddev") or callable(init):
        return init
    if isinstance(init, Mapping) and all(isinstance(glob, str) for glob in init):
        return dict(init)
    raise TypeError(f"init must be an initializer, or a mapping of parameter path globs to initializers, got {init!r}")


def audit_task(
    model, inputs, iterations, *, key, fresh_inputs=False, loss=None, init=None, call_kwargs=None, method=None,
    output=None, prng="philox",
) -> Task:  # fmt: skip
    """The task behind :func:`audit` (same arguments), not yet run."""
    key, iterations = as_key(key, prng), check_int(iterations, "iterations")
    fresh = bool(fresh_inputs)
    inputs = _check_inputs(inputs, fresh)
    if loss is not None and not callable(loss):
        raise TypeError(f"loss must be a function of the model's output returning a scalar, got {loss!r}")
    init = _check_init(init)
    check_call_options(method, call_kwargs, output)

    def build():
        m = as_model(model, method, call_kwargs, output)
        layout = trace_layout(m, inputs)
        return m, layout, _audit_engine(m, layout, inputs.shape, fresh, loss)

    signature = ("audit", model, method, call_kwargs, output, jax.typeof(inputs), fresh, loss, jax.default_backend())
    m, layout, engine = PROGRAMS.get(signature, build)
    finalize = _finalize_audit(m, layout, fresh, init, prng_name(key))
    return Task(f"audit {m.name}", engine, key, iterations, finalize, data=None if fresh else inputs)


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
    output: int | str | Callable[[Any], jax.Array] | None = None,
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

    A second audit of the same model (equal linen Modules, the same nnx factory), called the
    same way on inputs of the same shape and dtype, reuses the first's compiled program (the
    16 most recent are kept); the inputs' values are an argument of it.

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
      init: for :attr:`ParamAudit.expected_std` only (the model draws its parameters with
        its own initializers): the initializer every kernel (a parameter named ``kernel``)
        was drawn with, or a mapping of path globs to initializers (``{"*/embedding":
        flaxinit.normal(1.0), "*/kernel": flaxinit.lecun_normal()}``, the first glob that
        matches wins) for a model that mixes them. The std is the one it draws for the
        parameter as its layer calls it: attention kernels flat (``(features, heads *
        head_dim)``), as linen and nnx draw them.
      call_kwargs: keyword arguments of every call of the model (``{"train": True}``): a
        linen model runs with its non-parameter collections mutable (BatchNorm's batch
        statistics; the updates are dropped) and with every RNG stream it asks for
        (``dropout``, names of its own) drawn from the iteration's key.
      method: the name of the model's method to call instead of ``__call__``.
      output: what the model returns, when not one array: the index (a tuple) or key (a
        dict) of its output, or a function of the return value (``lambda r: r[0]``); the
        backward pass starts there, and it is the ``"(output)"`` layer.
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
        method=method, output=output,
    )  # fmt: skip
    return task.run(chunk_size=None if chunk_size is None else check_int(chunk_size, "chunk_size"))


# --- correlation maps -------------------------------------------------------------------------------


def _cmap_engine(model: Model, layout: Layout, shape: tuple[int, ...], c: float) -> Engine:
    partner = math.sqrt(max(0.0, 1.0 - c * c))

    def stat(k):  # [1, 1 + layer rows]: the inputs' cosine, then each layer row's
        k_init, k_1, k_2 = jax.random.split(k, 3)
        z1 = jax.random.normal(k_1, shape, jnp.float32)
        z2 = jax.random.normal(k_2, shape, jnp.float32)
        x1, x2 = z1, c * z1 + partner * z2
        full = model.init(k_init, x1)
        first, second = model.apply(full, x1, None, k_init)[1], model.apply(full, x2, None, k_init)[1]
        dot = layout.flat_sum(jax.tree.map(jnp.multiply, first, second), lambda v: v)
        norms = layout.flat_sum(first, _square) * layout.flat_sum(second, _square)
        inputs = _sum(x1 * x2) / jnp.sqrt(_sum(x1 * x1) * _sum(x2 * x2))
        return jnp.concatenate([inputs, dot / jnp.sqrt(norms)])[None]

    size = 2 * (
        sum(math.prod(dims) * math.prod(s) for _, dims, s in layout.layers)
        + sum(math.prod(s) for _, _, s in layout.params)
    )
    per_iteration = 64 + 16 * size
    return Engine(stat, 1 + sum(math.prod(dims) for _, dims, _ in layout.layers), per_iteration,
                  at_once=_at_once(per_iteration))  # fmt: skip


def correlation_task(
    model, inputs_shape, c, iterations, *, key, call_kwargs=None, method=None, output=None, prng="philox"
) -> Task:
    """The task behind :func:`correlation_map` (same arguments), not yet run."""
    key, iterations = as_key(key, prng), check_int(iterations, "iterations")
    c = check_real(c, "c")
    if not -1.0 <= c <= 1.0:
        raise ValueError(f"c must be a correlation in [-1, 1], got {c}")
    shape = tuple(check_int(d, "each dimension of inputs_shape") for d in inputs_shape)
    check_call_options(method, call_kwargs, output)

    def build():
        m = as_model(model, method, call_kwargs, output)
        layout = trace_layout(m, jnp.zeros(shape, jnp.float32))
        return m, layout, _cmap_engine(m, layout, shape, c)

    signature = ("correlation", model, method, call_kwargs, output, shape, c, jax.default_backend())
    m, layout, engine = PROGRAMS.get(signature, build)
    positions = layout.positions()
    prng_used = prng_name(key)

    def finalize(acc: Accumulator) -> CorrelationResult:
        means, ses = acc.moments()
        layers = tuple(
            (path, means[1 + positions[row]], ses[1 + positions[row]])
            for row, path in zip(layout.rows(), layout.row_paths(), strict=True)
        )
        return CorrelationResult(c, acc.iterations_done, means[0], ses[0], layers, prng_used)

    return Task(f"correlation map {m.name} c={c:g}", engine, key, iterations, finalize)


def correlation_map(
    model: Any,
    inputs_shape: Sequence[int],
    c: float,
    iterations: int,
    *,
    key: jax.Array | int,
    call_kwargs: Mapping[str, Any] | None = None,
    method: str | None = None,
    output: int | str | Callable[[Any], jax.Array] | None = None,
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
      output: as for :func:`audit`.

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
    task = correlation_task(
        model, inputs_shape, c, iterations, key=key, call_kwargs=call_kwargs, method=method, output=output
    )
    return task.run()


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
