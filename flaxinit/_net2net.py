"""Proxy-trained initialization: Net2Net widening, weight selection, and a proxy-training convenience.

* :func:`net2wider` — Net2WiderNet (Chen, Goodfellow & Shlens, arXiv:1511.05641): widen
  the hidden layers of a trained narrow network so that the wide one computes exactly
  the same function.
* :func:`weight_selection` — Xu et al., "Initializing Models with Larger Ones"
  (arXiv:2311.18823): a smaller network from evenly spaced slices of a larger one.
* :func:`proxy_init` — train a narrow proxy for ``steps`` optax steps, then widen it
  into the target network's parameters.

Parameter structure
-------------------
:func:`net2wider` works on a **chain** of dense/conv layers: a params tree whose nodes
holding a ``"kernel"`` (shape ``(..., in, out)``; dense ``(in, out)``, conv
``(kh, kw, in, out)``) and optionally a ``"bias"`` (``(out,)``) are the layers, and
nothing else: ``{"Dense_0": {"kernel", "bias"}, "Dense_1": {...}, ...}`` as
``flax.linen`` builds for a stack of ``nn.Dense``/``nn.Conv`` (also nested, e.g.
``nn.Sequential``'s ``layers_0``), or the ``nnx.Param`` state of an nnx model
(``nnx.Linear``/``nnx.Conv`` attributes, ``nnx.List``/``nnx.Sequential`` entries).
Layer ``i``'s outputs feed layer ``i + 1``'s inputs through elementwise functions only
(activations; no LayerNorm, BatchNorm or attention in between), either directly
(``in_{i+1} = out_i``) or through a flatten of a channels-last conv output
(``in_{i+1} = positions * out_i``, input index ``p * out_i + c``, as
``x.reshape(n, -1)`` of an NHWC array gives). The order of the layers is the natural
sort of their paths (``Dense_2`` before ``Dense_10``; ``Conv_*`` before ``Dense_*``),
which is the call order of flax's auto-named layers; pass ``layers=`` (paths in
forward order) otherwise. :func:`weight_selection` works leaf by leaf on any tree.

Every function accepts, as ``source`` and ``target``, the parameters in any form
:mod:`flaxinit._params` reads (the same as :func:`flaxinit.lsuv`): a linen params tree
or variables dict (a target's leaves may be arrays or ``jax.ShapeDtypeStruct``, from
``jax.eval_shape(module.init, ...)``: only their shapes and dtypes are read), an
``nnx.State``, or an ``nnx.Module``. The result is always the new parameters in the
target's form: a new linen tree (pure), a new ``nnx.State``, or, for a target module,
which is updated in place with ``nnx.update``, its new ``nnx.State`` of ``nnx.Param``.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, traverse_util
from flax.core import frozen_dict

from flaxinit import _checks
from flaxinit._params import ParamTree, Path, read
from flaxinit._paths import path_str
from flaxinit.tooling import train_step

__all__ = ["ProxyInitResult", "net2wider", "proxy_init", "selection_indices", "weight_selection"]

# --- the layers of a chain ------------------------------------------------------------------


def _natural_key(name: str) -> list[Any]:
    return [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", name) if t]


def _chain(tree: ParamTree, role: str, layers: Sequence[str] | None) -> list[Path]:
    """The layer paths of a dense/conv chain, in forward order."""
    found: dict[str, Path] = {}
    for key in tree.flat:
        if key[-1] == "kernel":
            found[path_str(key[:-1])] = key[:-1]
    for key in tree.flat:
        if key[-1] not in ("kernel", "bias") or path_str(key[:-1]) not in found:
            raise ValueError(
                f"{role} has a parameter {path_str(key)!r} that is neither a layer's 'kernel' nor its 'bias'; "
                "net2wider "
                "widens chains of dense/conv layers only (see flaxinit._net2net's docstring)"
            )
    if not found:
        raise ValueError(f"{role} has no layer (no parameter named 'kernel')")
    if layers is None:
        return [found[n] for n in sorted(found, key=_natural_key)]
    if isinstance(layers, str) or sorted(layers) != sorted(found):
        raise ValueError(
            f"layers must list every layer of {role} once, in forward order: {sorted(found, key=_natural_key)}; "
            f"got {layers!r}"
        )
    return [found[n] for n in layers]


def _shape(leaf: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in np.shape(leaf))


# --- Net2WiderNet ------------------------------------------------------------------------


def net2wider(
    source: Any,
    target: Any,
    *,
    key: jax.Array | int = 0,
    noise: float = 0.0,
    layers: Sequence[str] | None = None,
) -> Any:
    """Widens a trained dense/conv chain into ``target``'s widths, preserving its function (Net2WiderNet).

    For each hidden layer ``i`` (every layer but the last) with ``n`` outputs widened to
    ``q``, the random mapping ``g(j) = j`` for ``j < n`` and ``g(j) ~ U{0, ..., n-1}``
    for ``n <= j < q`` defines the wide layer:

    * incoming: ``W'_i[..., :, j] = W_i[..., :, g(j)]``, ``b'_i[j] = b_i[g(j)]``;
    * outgoing: ``W'_{i+1}[..., j, :] = W_{i+1}[..., g(j), :] / c(g(j))`` with
      ``c(k) = |{j : g(j) = k}|`` the replica count of unit ``k``.

    Replicas compute the same value, and their outgoing weights sum to the original, so
    the wide network computes the narrow one's function (to float32 round-off: the
    division by ``c`` and the longer sums round). With ``noise > 0``, every new unit's
    incoming weights ``W'_i[..., :, j]`` (``j >= n``) get iid ``N(0, (noise * std(W_i))^2)``
    added to break the replicas' symmetry; the function then changes by about that much.

    Args:
      source: the trained narrow network's params (see the module docstring for the
        accepted structure): a linen params/variables tree or an nnx Module.
      target: the wide network: params (arrays or ``jax.ShapeDtypeStruct``; only shapes
        and dtypes are used) or an nnx Module (updated in place). Same layers as
        ``source``; same input size of the first layer, same output size of the last, and
        hidden widths ``>=`` the source's.
      key: PRNG key or int seed for the mapping ``g`` and the noise: layer ``i`` draws both
        from NumPy's default generator seeded with the data of ``fold_in(key, i)`` (the
        widening runs on the host, in NumPy; the results are jax arrays).
      noise: relative standard deviation of the symmetry-breaking noise, ``>= 0``.
      layers: layer paths in forward order, if the natural sort of the paths is not it.

    Returns:
      The widened params in ``target``'s form (see the module docstring; an nnx module
      target is also updated in place).

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, flaxinit
      >>> narrow = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)])
      >>> wide = nn.Sequential([nn.Dense(20), nn.relu, nn.Dense(3)])
      >>> x = jax.random.normal(jax.random.key(0), (5, 4))
      >>> params = narrow.init(jax.random.key(1), x)
      >>> wide_params = flaxinit.net2wider(params, jax.eval_shape(wide.init, jax.random.key(2), x))
      >>> wide_params["params"]["layers_0"]["kernel"].shape
      (4, 20)
      >>> bool(jnp.allclose(wide.apply(wide_params, x), narrow.apply(params, x), atol=1e-6))
      True
    """
    noise = _checks.check_real(noise, "noise", minimum=0.0)
    src, tgt = read(source, "source"), read(target, "target")
    order = _chain(src, "source", layers)
    if sorted(map(path_str, _chain(tgt, "target", None))) != sorted(map(path_str, order)):
        raise ValueError(
            f"source and target must have the same layers; source: {sorted(map(path_str, order), key=_natural_key)}, "
            f"target: {sorted(map(path_str, _chain(tgt, 'target', None)), key=_natural_key)}"
        )
    for path in order:
        if ((*path, "bias") in src.flat) != ((*path, "bias") in tgt.flat):
            raise ValueError(f"layer {path_str(path)!r} has a bias in only one of source and target")
    _check_chain(src, tgt, order)
    key = _checks.check_key(key, seeds=True)
    out: dict[Path, Any] = {}
    previous: tuple[np.ndarray, np.ndarray] | None = None  # (g, counts) of the layer before
    for i, path in enumerate(order):
        original = np.asarray(src.flat[(*path, "kernel")])
        work = np.result_type(original.dtype, np.float32)  # float32, or float64 under jax_enable_x64
        kernel = original.astype(work)
        bias = src.flat.get((*path, "bias"))
        bias = None if bias is None else np.asarray(bias).astype(work)
        if previous is not None:
            g, counts = previous
            positions = kernel.shape[-2] // counts.size
            rows = (np.arange(positions)[:, None] * counts.size + g[None, :]).ravel()
            kernel = kernel[..., rows, :] / np.tile(counts[g], positions).astype(work)[:, None]
        previous = None
        if i < len(order) - 1:
            n, q = kernel.shape[-1], _shape(tgt.flat[(*path, "kernel")])[-1]
            rng = _generator(key, i)
            g = np.concatenate([np.arange(n), rng.integers(0, n, size=q - n)])
            kernel, bias = kernel[..., g], None if bias is None else bias[g]
            if noise > 0 and q > n:
                scale = noise * float(np.std(original, dtype=np.float64))
                kernel[..., n:] += (scale * rng.standard_normal((*kernel.shape[:-1], q - n))).astype(work)
            previous = (g, np.bincount(g, minlength=n))
        out[(*path, "kernel")] = jnp.asarray(kernel.astype(_dtype(tgt.flat[(*path, "kernel")])))
        if bias is not None:
            out[(*path, "bias")] = jnp.asarray(bias.astype(_dtype(tgt.flat[(*path, "bias")])))
    return tgt.write(out)


def _generator(key: jax.Array, i: int) -> np.random.Generator:
    """NumPy's default generator seeded with the data of ``fold_in(key, i)``: reproducible from the key."""
    return np.random.default_rng(np.asarray(jax.random.key_data(jax.random.fold_in(key, i))).ravel().tolist())


def _qualname(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _dtype(leaf: Any) -> Any:
    return np.dtype(leaf.dtype) if hasattr(leaf, "dtype") else np.asarray(leaf).dtype


def _check_chain(src: ParamTree, tgt: ParamTree, order: list[Path]) -> None:
    """Shapes: same spatial kernel sizes, same network input/output, hidden widths >= source, a consistent chain."""
    shapes = [(_shape(src.flat[(*p, "kernel")]), _shape(tgt.flat[(*p, "kernel")])) for p in order]
    for path, (s, t) in zip(order, shapes, strict=True):
        name = path_str(path)
        if len(s) < 2 or len(s) != len(t) or s[:-2] != t[:-2]:
            raise ValueError(f"layer {name!r}: source kernel {s} and target kernel {t} must be (..., in, out) alike")
        bias = src.flat.get((*path, "bias"))
        if bias is not None and _shape(bias) != (s[-1],):
            raise ValueError(f"layer {name!r}: bias of shape {_shape(bias)}, expected {(s[-1],)}")
    for i in range(1, len(order)):
        (ps, pt), (s, t) = shapes[i - 1], shapes[i]
        name, before = path_str(order[i]), path_str(order[i - 1])
        positions, rest = divmod(s[-2], ps[-1])
        if rest or positions == 0 or (positions > 1 and len(s) > 2):
            raise ValueError(
                f"layer {name!r} takes {s[-2]} inputs, which {before!r}'s {ps[-1]} outputs cannot feed (directly, or "
                f"flattened from a conv); the layers, in the order used: {', '.join(map(path_str, order))}. "
                "Pass layers= in forward order if that order is wrong"
            )
        if pt[-1] < ps[-1]:
            raise ValueError(
                f"net2wider only widens: layer {before!r} has {ps[-1]} outputs in source but {pt[-1]} in target "
                "(use weight_selection to go from large to small)"
            )
        if t[-2] != positions * pt[-1]:
            raise ValueError(
                f"layer {name!r} in target takes {t[-2]} inputs; widening {before!r} to {pt[-1]} outputs gives "
                f"{positions * pt[-1]}"
            )
    first, last = shapes[0], shapes[-1]
    if first[0][-2] != first[1][-2]:
        raise ValueError(
            f"the first layer {path_str(order[0])!r} must keep its input size: "
            f"source {first[0][-2]}, target {first[1][-2]}"
        )
    if last[0][-1] != last[1][-1]:
        raise ValueError(
            f"the last layer {path_str(order[-1])!r} must keep its output size: "
            f"source {last[0][-1]}, target {last[1][-1]}"
        )


# --- weight selection --------------------------------------------------------------------


def selection_indices(large: int, small: int) -> np.ndarray:
    """The ``small`` evenly spaced indices out of ``range(large)`` that weight selection keeps.

    ``arange(small) * (large // small)`` when ``small`` divides ``large``, else
    ``round(linspace(0, large - 1, small))`` (half to even), as in Xu et al.'s code.

    Examples:
      >>> from flaxinit._net2net import selection_indices
      >>> selection_indices(8, 4).tolist(), selection_indices(10, 4).tolist(), selection_indices(10, 3).tolist()
      ([0, 2, 4, 6], [0, 3, 6, 9], [0, 4, 9])
    """
    large = _checks.check_int(large, "large")
    small = _checks.check_int(small, "small")
    if small > large:
        raise ValueError(f"cannot select {small} of {large} entries")
    if large % small == 0:
        return np.arange(small) * (large // small)
    return np.round(np.linspace(0, large - 1, small)).astype(np.int64)


def weight_selection(source: Any, target: Any) -> Any:
    """Initializes a smaller network from evenly spaced slices of a larger trained one (Xu et al., 2023).

    Every parameter of ``target`` is taken from the parameter at the same path in
    ``source``: along each axis of size ``d`` cut from ``D``, the entries at
    :func:`selection_indices` ``(D, d)`` are kept (``W_small = W_large[ix_(idx_0, idx_1, ...)]``).
    The same rule on both sides of a hidden layer keeps units consistent: small unit
    ``k`` is large unit ``idx[k]``, with its incoming weights from the kept inputs.
    Layers are matched by path; to drop layers (the paper's "first-N" layer selection),
    give ``target`` fewer layers: ``source``'s extra parameters are ignored. Any tree
    works (not only chains); biases, norm scales and embeddings are sliced alike.

    Args:
      source: the larger trained network: params tree or nnx Module.
      target: the smaller network: params (arrays or ``jax.ShapeDtypeStruct``) or an nnx
        Module (updated in place). Every leaf needs a source leaf at the same path, of the
        same rank and at least as large along every axis.

    Returns:
      The selected params in ``target``'s form (see the module docstring; an nnx module
      target is also updated in place).

    Examples:
      >>> import jax.numpy as jnp, flaxinit
      >>> big = {"Dense_0": {"kernel": jnp.arange(80.0).reshape(8, 10), "bias": jnp.arange(10.0)}}
      >>> small = flaxinit.weight_selection(big, {"Dense_0": {"kernel": jnp.zeros((4, 3)), "bias": jnp.zeros(3)}})
      >>> small["Dense_0"]["kernel"].tolist(), small["Dense_0"]["bias"].tolist()
      ([[0.0, 4.0, 9.0], [20.0, 24.0, 29.0], [40.0, 44.0, 49.0], [60.0, 64.0, 69.0]], [0.0, 4.0, 9.0])
    """
    src, tgt = read(source, "source"), read(target, "target")
    missing = [path_str(k) for k in tgt.flat if k not in src.flat]
    if missing:
        raise ValueError(f"target has parameters that source lacks: {', '.join(missing)}")
    out = {}
    for path, leaf in tgt.flat.items():
        large = np.asarray(src.flat[path])
        shape = _shape(leaf)
        if large.ndim != len(shape) or any(t > s for s, t in zip(large.shape, shape, strict=True)):
            raise ValueError(
                f"parameter {path_str(path)!r}: source shape {large.shape} cannot be cut to target shape {shape} "
                "(same rank, no axis larger than the source's)"
            )
        for axis, (s, t) in enumerate(zip(large.shape, shape, strict=True)):
            if t != s:
                large = np.take(large, selection_indices(s, t), axis=axis)
        out[path] = jnp.asarray(large.astype(_dtype(leaf)))
    return tgt.write(out)


# --- proxy training ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ProxyInitResult:
    """What :func:`proxy_init` produced.

    Attributes:
      params: the widened target params, as :func:`net2wider` returns them (linen: a params
        tree; nnx: the target's new ``nnx.State`` of ``nnx.Param``, also written into it).
      proxy_params: the trained proxy's params (linen: a params tree; nnx: the proxy's new
        ``nnx.State``, also written into it).
      losses: the proxy's training loss at each step, before that step's update (float64).
    """

    params: Any
    proxy_params: Any
    losses: np.ndarray

    @property
    def steps(self) -> int:
        return int(self.losses.size)


def proxy_init(
    proxy: nn.Module | nnx.Module,
    target: nn.Module | nnx.Module,
    data: Iterable[tuple[Any, Any]],
    loss_fn: Callable[[jax.Array, Any], jax.Array],
    optimizer: optax.GradientTransformation,
    steps: int,
    *,
    key: jax.Array | int = 0,
    noise: float = 0.0,
    proxy_params: Any = None,
) -> ProxyInitResult:
    """Trains a narrow proxy for ``steps`` optimizer steps, then widens it into ``target`` (Net2WiderNet).

    The proxy and the target must be the same dense/conv chain at different hidden widths
    (see :func:`net2wider`); the target starts from the proxy's trained function exactly
    (``noise=0``) or up to the noise.

    Args:
      proxy: the narrow network, a ``flax.linen`` or a ``flax.nnx`` module (an nnx
        proxy is trained in place).
      target: the wide network, of the same API as ``proxy`` (an nnx target is
        overwritten in place).
      data: an iterable of ``(inputs, labels)`` batches; ``steps`` are taken from it (use
        ``itertools.cycle`` or a generator for several epochs). Linen params are
        initialized from the first batch's inputs.
      loss_fn: ``loss_fn(outputs, labels) -> scalar``.
      optimizer: an optax transformation (e.g. ``optax.adam(1e-3)``).
      steps: proxy training steps, ``>= 1``.
      key: PRNG key or int seed: the linen proxy's init and the widening use
        ``fold_in(key, 0)`` and ``fold_in(key, 1)``.
      noise: :func:`net2wider`'s relative symmetry-breaking noise.
      proxy_params: linen only: the proxy's initial params (default ``proxy.init``).

    Returns:
      A :class:`ProxyInitResult`.

    Examples:
      >>> import itertools, jax, jax.numpy as jnp, flax.linen as nn, optax, flaxinit
      >>> x = jax.random.normal(jax.random.key(0), (32, 4)); y = x @ jnp.ones((4, 1))
      >>> mse = lambda out, labels: jnp.mean((out - labels) ** 2)
      >>> proxy = nn.Sequential([nn.Dense(4), nn.relu, nn.Dense(1)])
      >>> target = nn.Sequential([nn.Dense(16), nn.relu, nn.Dense(1)])
      >>> result = flaxinit.proxy_init(proxy, target, itertools.repeat((x, y)), mse, optax.adam(1e-2), 50)
      >>> bool(result.losses[-1] < result.losses[0]), result.params["layers_0"]["kernel"].shape
      (True, (4, 16))
      >>> wide_out = target.apply({"params": result.params}, x)
      >>> bool(jnp.allclose(wide_out, proxy.apply({"params": result.proxy_params}, x), atol=1e-5))
      True
    """
    steps = _checks.check_int(steps, "steps")
    noise = _checks.check_real(noise, "noise", minimum=0.0)
    key = _checks.check_key(key, seeds=True)
    batches = iter(data)
    first = next(batches, None)
    if first is None:
        raise ValueError("data is empty: proxy_init needs at least one (inputs, labels) batch")
    apply, params, widen_into, keep = _proxy_model(proxy, target, first[0], key, proxy_params)
    params, losses = _train_proxy(apply, params, loss_fn, optimizer, itertools.chain([first], batches), steps)
    return ProxyInitResult(
        net2wider(params, widen_into, key=jax.random.fold_in(key, 1), noise=noise), keep(params), losses
    )


def _proxy_model(proxy, target, inputs, key, proxy_params):
    """``(apply(params, x), initial params, what to widen into, keep(trained) -> proxy params)`` per API."""
    if isinstance(proxy, nn.Module) and isinstance(target, nn.Module):
        if proxy_params is None:
            proxy_params = proxy.init(jax.random.fold_in(key, 0), inputs)["params"]
        params = frozen_dict.unfreeze(proxy_params)
        params = params["params"] if isinstance(params.get("params"), Mapping) else params
        shapes = jax.eval_shape(target.init, jax.random.fold_in(key, 0), inputs)["params"]
        return (lambda p, x: proxy.apply({"params": p}, x)), params, shapes, lambda p: p
    if isinstance(proxy, nnx.Module) and isinstance(target, nnx.Module):
        if proxy_params is not None:
            raise TypeError("proxy_params applies to flax.linen; an nnx proxy starts from its own state")
        graphdef, state, rest = nnx.split(proxy, nnx.Param, ...)
        tree = read(proxy, "proxy")

        def keep(trained: Any) -> nnx.State:  # the trained values go into the proxy, in place
            return tree.write(traverse_util.flatten_dict(trained))

        return (lambda p, x: nnx.merge(graphdef, p, rest)(x)), nnx.to_pure_dict(state), target, keep
    raise TypeError(
        "proxy and target must both be flax.linen modules or both flax.nnx modules, got "
        f"{_qualname(proxy)} and {_qualname(target)}"
    )


def _train_proxy(apply, params, loss_fn, optimizer, batches, steps: int) -> tuple[Any, np.ndarray]:
    """``steps`` jitted optax steps on ``(inputs, labels)`` batches; the params and the loss before each step."""
    step = jax.jit(train_step(lambda p, x, y: loss_fn(apply(p, x), y), optimizer))
    opt_state = optimizer.init(params)
    losses = []
    for i in range(steps):
        batch = next(batches, None)
        if batch is None:
            raise ValueError(f"data ran out after {i} batches; proxy_init needs steps={steps}")
        params, opt_state, loss = step(params, opt_state, *batch)
        losses.append(loss)
    losses_np = np.asarray(jax.device_get(losses), dtype=np.float64)
    if not np.all(np.isfinite(losses_np)):
        raise ValueError(
            f"the proxy's training loss became non-finite (first at step {np.argmin(np.isfinite(losses_np))})"
        )
    return params, losses_np
