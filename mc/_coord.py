"""The coordinate check (SPEC §10; microsoft/mup's ``get_coord_data``): :func:`coord_check`.

For each width, every seed's model is initialized, then trained ``steps`` steps on one
fixed batch; before each update (step ``t = 1`` is at init) the forward pass records every
layer output's mean |a| — the layers the audit captures (:mod:`mc._capture`), so stacks,
remat and nnx models are seen as :func:`mc.audit` sees them. All seeds of a width are one
compiled program: ``vmap`` over seeds of a ``lax.scan`` over steps (the last step a forward
pass only: its update would not be read).

Seed ``s`` draws its model from ``fold_in(key, s)`` at every width, so the bits of a width's
rows depend only on ``(key, seeds)`` and that width's arguments, not on the other widths.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax

from flaxinit.tooling import AsDict
from mc._keys import as_key, prng_name
from mc._model import Layout, as_model, watch_of
from mc._sweep import UNSET, as_mapping, check_sweep, measure, renamed
from mc._training import optimizer_name


@dataclasses.dataclass(frozen=True)
class CoordRow(AsDict):
    """One layer at one width and step: mean |a| over the output's elements, averaged over
    seeds, and its standard error (the seeds' std / sqrt(seeds))."""

    width: int
    step: int
    path: str
    mean_abs: float
    mean_abs_se: float


def least_squares_slope(x: Sequence[float], y: Sequence[float], y_se: Sequence[float]) -> tuple[float, float]:
    """The ordinary least-squares slope of ``y`` on ``x`` and its standard error, from the
    independent errors ``y_se`` of the ``y`` (``se^2 = sum(((x_i - mean x) / Sxx)^2 y_se_i^2)``).

    Examples:
      >>> from mc._coord import least_squares_slope
      >>> least_squares_slope([0, 1, 2], [1.0, 3.0, 5.0], [0.0, 0.0, 0.0])
      (2.0, 0.0)
    """
    x, y, s = (np.asarray(v, np.float64) for v in (x, y, y_se))
    dx = x - x.mean()
    sxx = float(np.sum(dx * dx))
    slope = float(np.sum(dx * (y - y.mean())) / sxx)
    return slope, float(math.sqrt(np.sum((dx / sxx) ** 2 * s * s)))


@dataclasses.dataclass(frozen=True)
class CoordCheckResult(AsDict):
    """What :func:`coord_check` measured.

    Attributes:
      model: the model's class name.
      parametrization: ``"mup"`` or ``"sp"``.
      optimizer: ``"adam"`` or ``"sgd"``.
      lr: the learning rate.
      widths: the widths, increasing.
      base_width: the base model's width.
      steps: steps recorded (``t = 1`` at init).
      seeds: models per width.
      rows: a :class:`CoordRow` per (width, step, layer), layers in call order.
      losses: per width, per step, the loss before the update (mean over seeds).
      prng: the generator of the keys.

    ``to_dict()`` adds ``slopes``; ``from_dict`` (recomputing them) loads a stored check for
    replotting or comparison.

    Examples:
      >>> import jax, mc
      >>> from flaxinit.tooling import to_json
      >>> x = jax.random.normal(jax.random.key(0), (16, 8))
      >>> y = jax.random.randint(jax.random.key(1), (16,), 0, 10)
      >>> r = mc.coord_check(mc.width_model("mlp"), [32, 64], x, y, base=32, lr=0.01, steps=1, seeds=2)
      >>> mc.CoordCheckResult.from_dict(to_json(r.to_dict())) == r
      True
    """

    DERIVED: ClassVar[tuple[str, ...]] = ("slopes",)

    model: str
    parametrization: str
    optimizer: str
    lr: float
    widths: tuple[int, ...]
    base_width: int
    steps: int
    seeds: int
    rows: tuple[CoordRow, ...]
    losses: tuple[tuple[float, ...], ...]
    prng: str

    @property
    def paths(self) -> tuple[str, ...]:
        """The layers, in call order."""
        return tuple(dict.fromkeys(r.path for r in self.rows))

    def series(self, path: str, step: int) -> tuple[list[int], list[float], list[float]]:
        """``(widths, mean_abs, mean_abs_se)`` of one layer at one step."""
        rows = [r for r in self.rows if r.path == path and r.step == step]
        if not rows:
            raise KeyError(f"no layer {path!r} at step {step}; layers: {list(self.paths)}, steps 1..{self.steps}")
        return [r.width for r in rows], [r.mean_abs for r in rows], [r.mean_abs_se for r in rows]

    def slope(self, path: str, step: int) -> tuple[float, float]:
        """The least-squares slope of ``log2 mean|a|`` against ``log2 width`` and its standard
        error, propagated from the per-width SEs (``se(log2 m) = se(m) / (m ln 2)``).

        0 when the layer's scale does not depend on the width (μP's promise); 0.5 when it
        grows like ``sqrt(width)``; NaN for a layer that is exactly zero at some width."""
        widths, m, se = self.series(path, step)
        m, se = np.asarray(m), np.asarray(se)
        if not np.all(m > 0):  # a layer that is exactly zero (a zero-initialized readout at t = 1) has no slope
            return math.nan, math.nan
        return least_squares_slope(np.log2(widths), np.log2(m), se / (m * math.log(2)))

    def slopes(self) -> list[dict[str, Any]]:
        """``{"path", "step", "slope", "slope_se"}`` for every layer and step."""
        out = []
        for step in range(1, self.steps + 1):
            for path in self.paths:
                slope, se = self.slope(path, step)
                out.append({"path": path, "step": step, "slope": slope, "slope_se": se})
        return out

    def plot(self, path: str | Path, *, title: str | None = None) -> None:
        """microsoft/mup's ``plot_coord_data``: one panel per step, mean |a| against width on
        log-log axes, one line per layer; written atomically (the format from the suffix)."""
        plot_coord_data([self], path, titles=[title] if title else None)


def plot_coord_data(
    results: Sequence[CoordCheckResult], path: str | Path, *, titles: Sequence[str] | None = None
) -> None:
    """One row of panels per result (one panel per step, sharing the y axis, so growth shows as
    a steeper line), as microsoft/mup's ``plot_coord_data``."""
    from flaxinit.tooling import colormap, new_figure, save_figure

    steps = max(r.steps for r in results)
    fig, axes = new_figure(len(results), steps, figsize=(3.2 * steps, 2.8 * len(results)), squeeze=False, sharey="row")
    for row, result in enumerate(results):
        colors = colormap()(np.linspace(0, 1, max(2, len(result.paths))))
        for step in range(1, result.steps + 1):
            ax = axes[row, step - 1]
            for color, layer in zip(colors, result.paths, strict=False):
                widths, m, se = result.series(layer, step)
                ax.errorbar(widths, m, yerr=se, color=color, label=layer, lw=1, marker=".", ms=3)
            ax.set(xscale="log", yscale="log", xlabel="width", title=f"t = {step}")
            ax.set_xscale("log", base=2)
            if step == 1:
                name = titles[row] if titles else f"{result.model} {result.parametrization} {result.optimizer}"
                ax.set_ylabel(f"{name}\nmean |a|")
        if len(result.paths) <= 12:
            axes[row, -1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1, 0.5))
    save_figure(fig, path, dpi=110)


def size_program(t, layout: Layout, loss_fn, steps: int, watch: bool = False) -> Callable[..., Any]:
    """``(keys[seeds], inputs, targets, lr) -> (mean_abs[seeds, steps, rows], loss[seeds, steps])``, jitted.

    Steps ``1 .. steps - 1`` each record the forward pass and update (a ``lax.scan``); the
    last step records a forward pass only, since nothing reads the update after it
    (microsoft/mup's loop computes that gradient and update too). With ``watch`` (the
    layout traced with it too) the parameters before the last update are carried along, and
    the rows include each leaf layer's update effect and every attention's logits (0 at
    ``t = 1``, where nothing has been updated).

    The seeds run ``vmap``-ed on accelerators; on CPUs one after another inside the same
    program (``lax.map``: XLA's CPU backend runs the batched matrix products of a ``vmap``
    about half as fast as the plain ones, measured in ``benchmarks/bench_coord.py``)."""
    counts = jnp.asarray([math.prod(shape) for _, dims, shape in layout.layers for _ in np.ndindex(dims)], jnp.float32)

    def one_seed(key, inputs, targets, lr):
        tx = t.optimizer(lr)
        full, trainable = t.init(key, inputs)

        def objective(params, previous):
            w = watch_of(previous) if watch else None
            y, records, _ = t.model.apply(t.with_params(full, params), inputs, None, key, w)
            return loss_fn(y, targets), records

        def mean_abs(records):
            return layout.flat_sum(records, jnp.abs) / counts

        def step(carry, _):
            params, previous, opt_state = carry
            (loss, records), grads = jax.value_and_grad(objective, has_aux=True)(params, previous)
            updates, opt_state = tx.update(grads, opt_state, params)
            # without a watch nothing reads the previous parameters: None carries nothing
            return (optax.apply_updates(params, updates), params if watch else None, opt_state), (mean_abs(records),
                                                                                                  loss)  # fmt: skip

        start = (trainable, trainable if watch else None, tx.init(trainable))
        (params, previous, _), (stats, losses) = jax.lax.scan(step, start, None, length=steps - 1)
        loss, records = objective(params, previous)
        return jnp.concatenate([stats, mean_abs(records)[None]]), jnp.concatenate([losses, loss[None]])

    def program(keys, inputs, targets, lr):
        if jax.default_backend() == "cpu":
            return jax.lax.map(lambda k: one_seed(k, inputs, targets, lr), keys)
        return jax.vmap(one_seed, in_axes=(0, None, None, None))(keys, inputs, targets, lr)

    return jax.jit(program)


def coord_check(
    model: Callable[[int], Any],
    sizes: Sequence[int] | None = None,
    inputs: jax.Array | None = None,
    targets: jax.Array | None = None,
    *,
    base: int | None = None,
    lr: float,
    sweep: str = "width",
    alpha: float | None = None,
    parametrization: str = "mup",
    optimizer: str | Callable[[Any, Any], Any] = "adam",
    init: Callable[[Any, Any], Any] | None = None,
    steps: int = 3,
    seeds: int = 8,
    key: jax.Array | int = 0,
    loss: str | Callable[[jax.Array, jax.Array], jax.Array] = "xent",
    fans: Any = None,
    blocks: Any = None,
    zero_query: bool = False,
    zero_output: bool = False,
    call_kwargs: Mapping[str, Any] | None = None,
    method: str | None = None,
    output: int | str | Callable[[Any], jax.Array] | None = None,
    on_size: Callable[[int, list[CoordRow], list[float]], None] | None = None,
    done: Mapping[int, tuple[list[CoordRow], list[float]]] | None = None,
    widths: Any = UNSET,
    base_width: Any = UNSET,
    on_width: Any = UNSET,
) -> CoordCheckResult:
    """The coordinate check: every layer output's mean |a| over sizes, steps and seeds (SPEC §10).

    For each size (a width; with ``sweep="depth"`` a number of blocks), ``seeds`` models
    ``model(size)`` are initialized (under μP, a standard draw rescaled by
    :func:`flaxinit.mup.rescale` against ``model(base)``, or the caller's ``init``) and trained
    ``steps`` steps on the one batch ``(inputs, targets)`` with Adam
    (:func:`flaxinit.mup.adamw`), SGD (:func:`flaxinit.mup.sgd`) or the caller's optimizer;
    at step ``t``, before its update (``t = 1`` at init), every layer's mean |a| is recorded.
    Under correct μP every layer's scale is independent of the width at every step (slopes
    about 0); under SP with Adam the output's grows with the width from step 2.

    Each size's compiled program is kept (in ``mc``'s one program cache, the 64 most recent
    of every tool), keyed by ``model`` (the function itself: equal for a
    :func:`mc.width_model`, the same object otherwise), the size and every option (``fans``
    and ``call_kwargs`` dicts included) but ``lr``, the batch's values and ``key``, which are
    its arguments: a second check of the same model compiles nothing. The next sizes'
    programs compile on worker threads while a size runs. ``model`` is assumed to build the
    same module every time it is called with a size. :func:`mc.verify` runs the same check
    and judges it.

    Args:
      model: ``size -> flax.linen Module``, or ``size -> flax.nnx factory`` (``rngs -> Module``).
        The model must be μP itself where SPEC §10 says so (attention scale, tied readout).
      sizes: at least two widths (numbers of blocks with ``sweep="depth"``).
      inputs: the batch.
      targets: its targets (integer labels for ``"xent"``).
      base: the size where μP is the identity (a width: μP's infinite axes come from
        comparing ``model(base)`` with each size's model; a depth: the depth rules').
      lr: the learning rate (the base model's, under μP).
      sweep: ``"width"`` or ``"depth"`` (the width rules are then the identity).
      alpha: with ``sweep="depth"``, the optimizer's depth rules ``depth=(size, base,
        alpha)`` for the parameters ``blocks`` selects (1: CompleteP, 1/2: depth-μP).
      parametrization: ``"mup"``, or ``"sp"`` (the model's own init, the plain optimizer).
      optimizer: ``"adam"`` (no weight decay, ε 1e-8), ``"sgd"`` (no momentum), or a function
        ``(learning_rate, shapes) -> optax.GradientTransformation`` (the learning rate a
        traced scalar, ``shapes`` the parameters' :class:`flaxinit.mup.InfShape`).
      init: a function ``(params, shapes) -> params`` giving the initial parameters from a
        draw of the model, instead of ``mup.rescale`` (μP) or the draw itself (SP).
      steps: steps recorded, ``t = 1 .. steps``.
      seeds: models per size (at least 2, for a standard error).
      key: a PRNG key or an int seed (a Philox key, as everywhere in ``mc``).
      loss: ``"xent"``, ``"mse"`` or ``(outputs, targets) -> scalar``.
      fans: as for :func:`flaxinit.mup.infshapes`.
      blocks: as for :func:`flaxinit.mup.infshapes`.
      zero_query: under μP, attention query kernels start at zero (microsoft/mup's advice:
        attention is then uniform at init at every width).
      zero_output: under μP, the output weights (the readout's kernel) start at zero
        (microsoft/mup's other advice; the output is then 0 at ``t = 1``, with no slope).
      call_kwargs: keyword arguments of every call of the model, as for :func:`mc.audit`
        (``{"train": True}``: dropout drawn per seed and step from the seed's key).
      method: the name of the model's method to call, as for :func:`mc.audit`.
      output: what the model returns, when not one array (an index, a key, or a function of
        the return value), as for :func:`mc.audit`: the loss is computed on it.
      on_size: called after each size with its rows and losses (progress, saving).
      done: rows and losses of sizes already measured (``--resume``): not run again.
      widths: deprecated, ``sizes``.
      base_width: deprecated, ``base``.
      on_width: deprecated, ``on_size``.

    Returns:
      A :class:`CoordCheckResult`: rows per (size, step, layer), ``slope(path, step)``, a plot.

    Examples:
      >>> import jax, mc
      >>> x = jax.random.normal(jax.random.key(0), (16, 8))
      >>> y = jax.random.randint(jax.random.key(1), (16,), 0, 10)
      >>> r = mc.coord_check(mc.width_model("mlp"), [32, 64], x, y, base=32, lr=0.01, steps=2, seeds=2)
      >>> r.paths
      ('dense_0', 'dense_1', 'readout', '(output)')
      >>> len(r.rows), r.slope("dense_0", 1)[0] < 0.5
      (16, True)
    """
    sizes, base = renamed(sizes, widths, "sizes", "widths"), renamed(base, base_width, "base", "base_width")
    on_size = renamed(on_size, on_width, "on_size", "on_width")
    if inputs is None or targets is None:  # optional only while widths= may come by keyword
        raise TypeError("coord_check needs inputs and targets: the batch every step trains on")
    run = check_sweep(
        model, sizes, base, sweep=sweep, alpha=alpha, parametrization=parametrization, optimizer=optimizer,
        init=init, lr=lr, steps=steps, seeds=seeds, loss=loss, fans=fans, blocks=blocks, zero_query=zero_query,
        zero_output=zero_output, call_kwargs=call_kwargs, method=method, output=output,
    )  # fmt: skip
    done, key = as_mapping(done), as_key(key, "philox")
    runs = measure(model, run, jnp.asarray(inputs), jnp.asarray(targets), key, skip=tuple(done), program_of=_program)
    name, rows, losses = _collect(model, run, runs, done, on_size)
    return CoordCheckResult(name, parametrization, optimizer_name(run.optimizer), lr, run.sizes, run.base, steps,
                            seeds, tuple(rows), tuple(losses), prng_name(key))  # fmt: skip


def _collect(
    model: Any, run: Any, runs: Any, done: Mapping[int, Any], on_size: Callable[..., None] | None
) -> tuple[str, list[CoordRow], list[tuple[float, ...]]]:
    """The model's name and every size's rows and losses, measured (``runs``, lazily, size by
    size) or done before."""
    rows: list[CoordRow] = []
    losses: list[tuple[float, ...]] = []
    name = ""
    for size in run.sizes:
        if size in done:
            size_rows, size_losses = done[size]
        else:
            measured = next(runs)
            summary, size_losses = measured.summary()
            size_rows = [CoordRow(size, step, path, mean, se) for step, path, mean, se in summary]
            name = measured.trainee.model.name
        if on_size is not None:
            on_size(size, size_rows, size_losses)
        rows += size_rows
        losses.append(tuple(size_losses))
    return name or as_model(model(run.sizes[0]), *run.call).name, rows, losses  # "": every size done before


def _program(t, layout, loss_fn, steps, watch):
    return size_program(t, layout, loss_fn, steps, watch)


__all__ = ["CoordCheckResult", "CoordRow", "coord_check", "least_squares_slope", "plot_coord_data"]
