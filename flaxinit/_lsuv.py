"""LSUV: layer-sequential unit-variance initialization (Mishkin & Matas, arXiv:1511.06422).

LSUV needs the model, its parameters and a batch of data, so it is a transform of a
model's parameters, not an ``init(key, shape)`` function. The algorithm:

1. Pre-initialize every selected dense/conv kernel orthonormally and set its bias to 0.
   A kernel of shape ``(..., in, out)`` is drawn as ``jax.nn.initializers.orthogonal()``
   of the matrix ``(prod(...) * in, out)`` (inputs x outputs) and reshaped back.
2. For each selected layer, in the order the forward pass calls them: run the batch,
   measure the variance ``v`` of the layer's output (its pre-activation: the value the
   ``Dense``/``Conv`` call returns, before whatever the model applies next), and
   multiply the kernel by ``sqrt(target / v)``; repeat until ``|v - target| < tol`` or
   ``max_iter`` rescalings. With ``mode="std"`` the statistic is the standard deviation
   ``s`` and the rescaling ``target / s``.

``v`` is the population variance over every element of the output (batch, spatial
positions and channels together), in float32. A layer called more than once per
forward pass (shared weights) is measured over all its calls together.

For a layer with zero bias and a fixed input, the output is linear in the kernel, so
one rescaling lands on the target to float32 round-off: LSUV converges in one
iteration per layer unless a layer's input depends on its own kernel (shared
weights). One forward pass serves two purposes: it confirms layer ``k`` and measures
layer ``k + 1``, so a network of ``L`` layers costs ``L + 1`` passes when every layer
converges in one iteration.

How outputs are captured
------------------------
* ``flax.linen``: ``module.apply(..., capture_intermediates=filter, mutable=True)``,
  the filter accepting the ``__call__`` of the selected ``nn.Dense``/``nn.Conv``/
  ``nn.ConvTranspose`` instances by path. The filter runs after each call returns, in
  call order, so one abstract pass (``jax.eval_shape``) also records the forward order
  and validates the batch. ``mutable=True`` lets models with ``BatchNorm`` in training
  mode run; every mutated collection is discarded.
* ``flax.nnx``: Linear/Conv do not ``sow`` their outputs and Python looks special
  methods up on the type, so the ``__call__`` of each layer class in the model
  (``nnx.Linear``, ``nnx.Conv``, ``nnx.ConvTranspose`` and subclasses) is wrapped for
  the duration of a trace; the wrapper records the output of the model's own layer
  instances (matched by identity) and nothing else. Traces run inside ``jax.jit`` /
  ``jax.eval_shape`` on ``nnx.merge(graphdef, params, rest)``, so the model itself is
  only touched at the end, by ``nnx.update``. Because patching a class is process-wide
  for the length of a trace, do not trace the same layer classes from another thread
  meanwhile. flax's own mechanism, ``nnx.capture(..., method_outputs=...)`` (flax 0.12),
  does not avoid that: it too patches the classes of the model's modules for the call
  (``_add_capturing(type(m))``), and its result, a ``State`` keyed by module path, loses
  the call order that LSUV's forward order comes from.

Both APIs share one algorithm (:func:`_run`), which sees the parameters as a flat dict
(read and written back by :mod:`flaxinit._params`, as for Net2Net) and the model as a
jitted ``measure(params) -> {layer: variance}``.

Not supported: layers inside lifted transforms (``nn.scan``, ``nn.vmap``,
``nnx.scan``, ...), whose kernels carry an extra axis (linen: selecting such a layer is
a clear error, exclude it with ``layers=``; nnx: the transform calls copies of the
layer, so it is never seen, and a warning names it), and ``DenseGeneral``/``Einsum``/
``LinearGeneral`` kernels (not selected). Normalization layers have no kernel and are
never selected. Put Dropout in deterministic mode (``call_kwargs`` or
``model.eval()``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import errors as flax_errors
from flax import nnx, traverse_util
from flax.core import frozen_dict

from flaxinit import _checks, _params
from flaxinit._calls import nnx_call_hook
from flaxinit._params import Path
from flaxinit._paths import path_str
from flaxinit._serial import AsDict

__all__ = ["LSUVLayer", "LSUVReport", "LSUVResult", "lsuv", "orthonormal"]

logger = logging.getLogger(__name__)

#: Layer types LSUV selects: their kernel is ``(..., in, out)``, their output ``(..., out)``.
LINEN_LAYERS: tuple[type[nn.Module], ...] = (nn.Dense, nn.Conv, nn.ConvTranspose)
NNX_LAYERS: tuple[type[nnx.Module], ...] = (nnx.Linear, nnx.Conv, nnx.ConvTranspose)

MODES = ("variance", "std")

LayerSpec = Sequence[str] | Callable[[str], bool] | None


@dataclasses.dataclass(frozen=True)
class LSUVLayer(AsDict):
    """What LSUV did to one layer.

    Attributes:
      path: the layer's path, its names joined by ``/`` (``"Dense_0"``, ``"layers/2"``).
      variance_before: output variance at the layer's first measurement (after the
        orthonormal pre-init and the rescaling of every earlier layer).
      variance_after: output variance after the last rescaling (measured, not assumed).
      iterations: rescalings applied (0 if the first measurement was within ``tol``).
      converged: whether the final statistic is within ``tol`` of the target.
    """

    path: str
    variance_before: float
    variance_after: float
    iterations: int
    converged: bool


@dataclasses.dataclass(frozen=True)
class LSUVReport(AsDict):
    """Per-layer results of :func:`lsuv`, in forward order."""

    layers: tuple[LSUVLayer, ...]
    target: float
    tol: float
    mode: str
    max_iter: int
    forward_passes: int

    @property
    def converged(self) -> bool:
        """Whether every layer ended within ``tol`` of the target."""
        return all(layer.converged for layer in self.layers)

    def __str__(self) -> str:
        width = max([len("layer"), *(len(layer.path) for layer in self.layers)])
        lines = [
            f"LSUV ({self.mode} target {self.target:g}, tol {self.tol:g}, max_iter {self.max_iter}): "
            f"{len(self.layers)} layers, {self.forward_passes} forward passes",
            f"{'layer':<{width}}  {'var before':>12}  {'var after':>12}  iters  converged",
        ]
        for layer in self.layers:
            lines.append(
                f"{layer.path:<{width}}  {layer.variance_before:>12.6g}  {layer.variance_after:>12.6g}  "
                f"{layer.iterations:>5}  {'yes' if layer.converged else 'NO'}"
            )
        return "\n".join(lines)


class LSUVResult(NamedTuple):
    """What :func:`lsuv` returns (also as ``params, report = lsuv(...)``).

    Attributes:
      params: the new parameters in the caller's form: for a linen module, the new
        ``params`` (or variables) tree, the input left untouched; for an nnx model, which
        is updated in place, its new ``nnx.State`` of ``nnx.Param``.
      report: the :class:`LSUVReport`.
    """

    params: Any
    report: LSUVReport


def lsuv(
    model: nn.Module | nnx.Module,
    batch: Any,
    *,
    params: Any = None,
    layers: LayerSpec = None,
    target: float = 1.0,
    tol: float = 0.1,
    max_iter: int = 10,
    mode: str = "variance",
    key: jax.Array | int = 0,
    pre_init: bool = True,
    call_kwargs: Mapping[str, Any] | None = None,
) -> LSUVResult:
    """Layer-sequential unit-variance initialization of a ``flax.linen`` or ``flax.nnx`` model.

    Every selected dense/conv kernel ``W`` (shape ``(..., in, out)``) is first drawn
    orthonormal as a ``(prod(...) * in, out)`` matrix and its bias set to 0; then, layer
    by layer in forward order, ``W <- W * sqrt(target / v)`` with ``v`` the variance of
    the layer's output on ``batch``, until ``|v - target| < tol`` or ``max_iter``
    rescalings (``mode="std"``: ``s`` the standard deviation, ``W <- W * target / s``,
    until ``|s - target| < tol``). See the module docstring for the details.

    Call it as::

        params, report = lsuv(linen_module, batch, params=variables)  # pure
        params, report = lsuv(nnx_model, batch)                        # nnx_model updated in place

    Args:
      model: a ``flax.linen.Module`` (then pass ``params=``) or a ``flax.nnx.Module``
        (which carries its own parameters).
      batch: the model's input: ``model(batch, **call_kwargs)`` must run. An array or a
        pytree of arrays; floating leaves must be finite, and none may be empty.
      params: linen only: the ``params`` collection, or the whole variables dict
        (``{"params": ..., "batch_stats": ...}``); the result has the same form. Only the
        selected layers' kernels and biases change.
      layers: which dense/conv layers to process: ``None`` (all that the forward pass
        calls), a sequence of paths (``["Dense_0", "block/Conv_1"]``; nnx list indices
        as digits, ``"layers/0"``), or a predicate ``path -> bool``. Only selected
        layers are pre-initialized and rescaled; the rest are left as they are.
      target: the target variance (or standard deviation with ``mode="std"``); > 0.
      tol: the tolerance on ``|v - target|``; > 0. The paper uses 0.1.
      max_iter: the most rescalings per layer; the paper uses 10. A layer that does not
        reach ``tol`` in ``max_iter`` rescalings is reported (``converged=False``) with a
        warning, not an error.
      mode: ``"variance"`` (the paper's statistic) or ``"std"``.
      key: a PRNG key or int seed for the orthonormal pre-init; layer ``i`` (in forward
        order among the selected) uses ``jax.random.fold_in(key, i)``, so a linen and an
        nnx version of one architecture get the same kernels.
      pre_init: ``False`` skips step 1 (keeps the current kernels and biases: LSUV on
        top of another initializer).
      call_kwargs: extra keyword arguments of the forward call: for linen, of
        ``module.apply`` (``rngs=``, ``method=``, or the module's own, e.g.
        ``train=False``); for nnx, of ``model(batch, ...)``.

    Returns:
      An :class:`LSUVResult` ``(params, report)``. Each layer's result is also logged at
      INFO level on the ``flaxinit._lsuv`` logger.

    Raises:
      ValueError: an empty batch; NaN or inf in the batch; a batch the model rejects; no
        dense/conv layer selected; a layer whose output variance on the batch is 0 (or
        not finite); bad ``target``/``tol``/``max_iter``/``mode``.
      TypeError: a model that is neither linen nor nnx; ``params`` missing for linen or
        given for nnx; a bad ``key``.

    In the example, ``nn.Sequential`` names its layers ``layers_0``, ``layers_2``, ...

    Examples:
      >>> import jax, flax.linen as nn, flaxinit
      >>> model = nn.Sequential([nn.Dense(32), nn.tanh, nn.Dense(32), nn.tanh, nn.Dense(32)])
      >>> x = 3.0 * jax.random.normal(jax.random.key(0), (256, 32))
      >>> params, report = flaxinit.lsuv(model, x, params=model.init(jax.random.key(1), x))
      >>> [(layer.path, layer.iterations, round(layer.variance_after, 4)) for layer in report.layers]
      [('layers_0', 1, 1.0), ('layers_2', 1, 1.0), ('layers_4', 1, 1.0)]
    """
    options = _Options(
        target=_checks.check_real(target, "target", minimum=0.0, strict=True),
        tol=_checks.check_real(tol, "tol", minimum=0.0, strict=True),
        max_iter=_checks.check_int(max_iter, "max_iter"),
        mode=_checks.check_choice(mode, "mode", MODES),
        key=_checks.check_key(key, seeds=True),
        pre_init=bool(pre_init),
    )
    kwargs = dict(call_kwargs or {})
    if isinstance(model, nn.Module):
        if params is None:
            raise TypeError("lsuv of a flax.linen module needs its parameters: lsuv(module, batch, params=variables)")
        return _lsuv_linen(model, _params.read(params, "params"), batch, layers, options, kwargs)
    if isinstance(model, nnx.Module):
        if params is not None:
            raise TypeError("an nnx model carries its own parameters: call lsuv(model, batch) without params=")
        return _lsuv_nnx(model, batch, layers, options, kwargs)
    raise TypeError(f"model must be a flax.linen.Module or a flax.nnx.Module, got {type(model).__name__}")


# --- the shared algorithm ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Options:
    target: float
    tol: float
    max_iter: int
    mode: str
    key: jax.Array
    pre_init: bool


@dataclasses.dataclass(frozen=True)
class _Layer:
    path: Path  # within the model (the names to join)
    kernel: Path  # key of the kernel in the flat parameter dict
    bias: Path | None  # key of the bias, if the layer has one

    @property
    def name(self) -> str:
        return path_str(self.path)


def _run(
    flat: dict[Path, jax.Array],
    selected: list[_Layer],
    measure: Callable[[dict[Path, jax.Array]], dict[str, float]],
    options: _Options,
) -> tuple[dict[Path, jax.Array], LSUVReport]:
    """LSUV on a flat parameter dict: pre-init, then rescale each layer in order."""
    flat = dict(flat)
    if options.pre_init:
        for i, layer in enumerate(selected):
            kernel = flat[layer.kernel]
            flat[layer.kernel] = orthonormal(jax.random.fold_in(options.key, i), kernel.shape).astype(kernel.dtype)
            if layer.bias is not None:
                flat[layer.bias] = jnp.asarray(np.zeros(np.shape(flat[layer.bias]), flat[layer.bias].dtype))
    variances = measure(flat)
    passes = 1
    results = []
    for layer in selected:
        v = _checked_variance(variances, layer, options)
        before, iterations = v, 0
        while not _within(v, options) and iterations < options.max_iter:
            kernel = flat[layer.kernel]  # rescaled on the host: no compilation per kernel shape
            scaled = np.asarray(kernel, np.float32) * np.float32(_scale(v, options))
            flat[layer.kernel] = jnp.asarray(scaled.astype(kernel.dtype))
            variances = measure(flat)
            passes += 1
            iterations += 1
            v = _checked_variance(variances, layer, options)
        result = LSUVLayer(layer.name, before, v, iterations, _within(v, options))
        logger.info(
            "LSUV %s: variance %.6g -> %.6g in %d iteration(s)%s",
            result.path,
            before,
            v,
            iterations,
            "" if result.converged else " (not converged)",
        )
        results.append(result)
    report = LSUVReport(tuple(results), options.target, options.tol, options.mode, options.max_iter, passes)
    stuck = [layer.path for layer in report.layers if not layer.converged]
    if stuck:
        warnings.warn(
            f"LSUV: {len(stuck)} layer(s) did not reach |{options.mode} - {options.target:g}| < {options.tol:g} in "
            f"max_iter={options.max_iter} rescalings: {', '.join(stuck)}",
            RuntimeWarning,
            stacklevel=3,
        )
    return flat, report


def orthonormal(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """An orthonormal float32 kernel of ``shape``, for LSUV's pre-init.

    ``jax.nn.initializers.orthogonal()(key, (prod(shape[:-1]), shape[-1]))`` reshaped to
    ``shape``: the kernel as an inputs x outputs matrix has orthonormal columns if it has
    at least as many inputs as outputs, else orthonormal rows. Compiled once per shape.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> m = orthonormal(jax.random.key(0), (3, 3, 8, 16)).reshape(72, 16)
      >>> bool(jnp.allclose(m.T @ m, jnp.eye(16), atol=1e-5))
      True
    """
    return _orthonormal(key, tuple(int(d) for d in shape))


@functools.partial(jax.jit, static_argnums=1)
def _orthonormal(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    matrix = jax.nn.initializers.orthogonal()(key, (math.prod(shape[:-1]), shape[-1]), jnp.float32)
    return matrix.reshape(shape)


def _statistic(v: float, options: _Options) -> float:
    return v if options.mode == "variance" else math.sqrt(v)


def _within(v: float, options: _Options) -> bool:
    return abs(_statistic(v, options) - options.target) < options.tol


def _scale(v: float, options: _Options) -> float:
    """The kernel factor that moves variance ``v`` onto the target (exact for a linear layer)."""
    return math.sqrt(options.target / v) if options.mode == "variance" else options.target / math.sqrt(v)


def _checked_variance(variances: dict[str, float], layer: _Layer, options: _Options) -> float:
    v = variances[layer.name]
    if not math.isfinite(v):
        raise ValueError(
            f"LSUV: the output of layer {layer.name!r} has a non-finite variance ({v}) on the batch; the forward "
            "pass overflowed or produced NaN at or before this layer"
        )
    if v == 0:
        raise ValueError(
            f"LSUV: the output of layer {layer.name!r} has variance 0 on the batch, so no rescaling of its kernel "
            f"can reach {options.mode} {options.target:g}: its input is constant (an all-zero or constant batch, "
            "dead ReLUs upstream, or a zeroed earlier layer); exclude it with layers= or use another batch"
        )
    return v


def _variances(outputs: Mapping[str, Sequence[jax.Array]]) -> dict[str, jax.Array]:
    """Population variance, in float32, over every element of every call's output, per layer."""
    return {
        name: jnp.var(jnp.concatenate([jnp.ravel(o).astype(jnp.float32) for o in outs]))
        for name, outs in outputs.items()
    }


def _check_batch(batch: Any) -> None:
    leaves = jax.tree_util.tree_leaves(batch)
    if not leaves:
        raise ValueError("batch is empty: it contains no arrays")
    for leaf in leaves:
        shape = np.shape(leaf)
        if math.prod(shape) == 0:
            raise ValueError(f"batch is empty: it has an array of shape {shape} with no elements")
        values = np.asarray(leaf)  # checked on the host: no compilation per batch shape
        if jnp.issubdtype(values.dtype, jnp.inexact):
            bad = int(np.sum(~np.isfinite(values)))
            if bad:
                raise ValueError(
                    f"batch contains NaN or inf ({bad} of {values.size} values in an array of shape {shape}); "
                    "LSUV's variances would be meaningless"
                )


def _shapes(batch: Any) -> str:
    return ", ".join(str(tuple(np.shape(leaf))) for leaf in jax.tree_util.tree_leaves(batch))


def _discover(trace: Callable[[], None], batch: Any) -> None:
    """Runs the abstract forward pass, turning a rejected batch into a clear error."""
    try:
        trace()
    except (TypeError, ValueError, IndexError, flax_errors.FlaxError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ValueError(
            f"the model rejected the batch (array shapes {_shapes(batch)}): {type(err).__name__}: {first}"
        ) from err


def _select(order: list[_Layer], layers: LayerSpec, kind: str) -> list[_Layer]:
    names = [layer.name for layer in order]
    if not order:
        raise ValueError(f"the model calls no dense/conv layer ({kind}) on this batch; LSUV has nothing to do")
    if layers is None:
        return order
    if isinstance(layers, str):
        raise TypeError(f"layers must be a sequence of layer paths or a predicate, not a str; use [{layers!r}]")
    if callable(layers):
        chosen = [layer for layer in order if layers(layer.name)]
    else:
        wanted = list(layers)
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise ValueError(
                f"no dense/conv layer called {', '.join(map(repr, unknown))} runs on this batch; the model's "
                f"dense/conv layers, in forward order: {', '.join(names)}"
            )
        chosen = [layer for layer in order if layer.name in set(wanted)]
    if not chosen:
        raise ValueError(
            f"layers= matched none of the model's dense/conv layers; they are, in forward order: {', '.join(names)}"
        )
    return chosen


def _check_kernels(order: list[_Layer], flat: Mapping[Path, Any], ndims: Mapping[str, int]) -> None:
    for layer in order:
        if layer.kernel not in flat:
            raise ValueError(f"layer {layer.name!r} has no kernel at {path_str(layer.kernel)!r} in the parameters")
        shape = np.shape(flat[layer.kernel])
        if len(shape) != ndims[layer.name]:
            raise ValueError(
                f"layer {layer.name!r} has a kernel of shape {shape}, not a plain {ndims[layer.name]}-d dense/conv "
                "kernel (a layer inside a lifted transform such as scan or vmap?); LSUV does not support it: "
                "leave it out with layers="
            )


def _measure_fn(run: Callable[[Any, Any], dict[str, list[jax.Array]]], unflatten, batch: Any):
    jitted = jax.jit(lambda tree, b: _variances(run(tree, b)))
    batch = jax.tree_util.tree_map(jnp.asarray, batch)  # on the device once, not at every pass

    def measure(flat: dict[Path, jax.Array]) -> dict[str, float]:
        return {k: float(v) for k, v in jax.device_get(jitted(unflatten(flat), batch)).items()}

    return measure


# --- flax.linen --------------------------------------------------------------------------


def _lsuv_linen(module, tree: _params.ParamTree, batch, layers, options, call_kwargs) -> LSUVResult:
    _check_batch(batch)

    def run(variables, b, selected=None, seen=None):
        def keep(mdl: nn.Module, method: str) -> bool:
            if method != "__call__" or not isinstance(mdl, LINEN_LAYERS):
                return False
            name = path_str(mdl.path)
            if seen is not None:
                ndim = 2 if isinstance(mdl, nn.Dense) else len(_as_tuple(mdl.kernel_size)) + 2
                seen.append((tuple(mdl.path), ndim))
            return selected is None or name in selected

        _, state = module.apply(variables, b, capture_intermediates=keep, mutable=True, **call_kwargs)
        inter = traverse_util.flatten_dict(frozen_dict.unfreeze(state.get("intermediates", {})))
        return {path_str(k[:-1]): list(v) for k, v in inter.items() if k[-1] == "__call__"}

    seen: list[tuple[Path, int]] = []
    variables = tree.variables(tree.flat)
    _discover(lambda: jax.eval_shape(functools.partial(run, seen=seen), variables, batch), batch)
    return _lsuv(tree, seen, layers, "flax.linen Dense/Conv/ConvTranspose", run, tree.variables, batch, options)


def _lsuv(tree, seen, layers, kind, run, tree_of, batch, options) -> LSUVResult:
    """The steps after the abstract pass, the same for both APIs: select, check, measure, rescale, write."""
    order, ndims = _ordered(seen)
    selected = _select(order, layers, kind)
    _check_kernels(selected, tree.flat, ndims)
    selected = _drop_missing_biases(selected, tree.flat)
    names = frozenset(layer.name for layer in selected)
    measure = _measure_fn(lambda t, b: run(t, b, selected=names), tree_of, batch)
    new_flat, report = _run(tree.flat, selected, measure, options)
    return LSUVResult(tree.write(new_flat), report)


def _as_tuple(size: int | Sequence[int]) -> tuple[int, ...]:
    return (size,) if isinstance(size, int) else tuple(size)


def _ordered(seen: list[tuple[Path, int]]) -> tuple[list[_Layer], dict]:
    """Unique layers in first-call order (each with its kernel/bias keys) and their kernel ranks."""
    order: dict[Path, int] = {}
    for path, ndim in seen:
        order.setdefault(path, ndim)
    layers = [_Layer(p, (*p, "kernel"), (*p, "bias")) for p in order]
    return layers, {path_str(p): n for p, n in order.items()}


def _drop_missing_biases(order: list[_Layer], flat: Mapping[Path, Any]) -> list[_Layer]:
    return [dataclasses.replace(layer, bias=layer.bias if layer.bias in flat else None) for layer in order]


# --- flax.nnx ----------------------------------------------------------------------------


@contextlib.contextmanager
def _record_nnx_calls(model: nnx.Module) -> Iterator[list[tuple[Path, nnx.Module, jax.Array]]]:
    """Records ``(path, layer, output)`` for every call of one of ``model``'s Linear/Conv layers
    (:func:`flaxinit._calls.nnx_call_hook`; why not ``nnx.capture``: the module docstring)."""
    calls: list[tuple[Path, nnx.Module, jax.Array]] = []

    def record(path, layer, out):
        calls.append((path, layer, out))
        return out

    with nnx_call_hook(model, record, NNX_LAYERS):
        yield calls


def _lsuv_nnx(model, batch, layers, options, call_kwargs) -> LSUVResult:
    _check_batch(batch)
    tree = _params.read(model, "model")
    graphdef, _, rest = nnx.split(model, nnx.Param, ...)

    def run(pure, b, selected=None, seen=None):
        copy = nnx.merge(graphdef, pure, rest)
        with _record_nnx_calls(copy) as calls:
            copy(b, **call_kwargs)
        outputs: dict[str, list[jax.Array]] = {}
        for path, layer, out in calls:
            if seen is not None:
                seen.append((path, layer.kernel.get_value().ndim))
            if selected is None or path_str(path) in selected:
                outputs.setdefault(path_str(path), []).append(out)
        return outputs

    seen: list[tuple[Path, int]] = []
    pure = traverse_util.unflatten_dict(tree.flat)
    _discover(lambda: jax.eval_shape(functools.partial(run, seen=seen), pure, batch), batch)
    called = {path for path, _ in seen}
    unseen = [path_str(p) for p, m in nnx.iter_modules(model) if isinstance(m, NNX_LAYERS) and tuple(p) not in called]
    if unseen:
        warnings.warn(
            f"LSUV leaves {unseen} unchanged: the forward pass did not call them as the model's own "
            "layers (unused, or inside nnx.scan/nnx.vmap, which call copies)",
            stacklevel=3,
        )
    kind = "flax.nnx Linear/Conv/ConvTranspose"
    return _lsuv(tree, seen, layers, kind, run, traverse_util.unflatten_dict, batch, options)
