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
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from flaxinit.tooling import check_int, check_real
from mc._cache import ProgramCache
from mc._model import Layout, as_model, check_call_options
from mc._protocols import as_key, prng_name
from mc._training import LOSSES, OPTIMIZERS, PARAMETRIZATIONS, check_choice, check_sizes, loss_function, trainee


@dataclasses.dataclass(frozen=True)
class CoordRow:
    """One layer at one width and step: mean |a| over the output's elements, averaged over
    seeds, and its standard error (the seeds' std / sqrt(seeds))."""

    width: int
    step: int
    path: str
    mean_abs: float
    mean_abs_se: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CoordRow:
        """The row whose ``to_dict()``, as read back from strict JSON (NaN as ``null``), is ``data``."""
        return cls(
            int(data["width"]), int(data["step"]), str(data["path"]), _float(data["mean_abs"]),
            _float(data["mean_abs_se"]),
        )  # fmt: skip


def _float(value: Any, missing: float = math.nan) -> float:
    """``value`` as a float; ``missing`` for ``null`` (strict JSON's NaN and infinities)."""
    return missing if value is None else float(value)


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
class CoordCheckResult:
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
    """

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

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["rows"] = [r.to_dict() for r in self.rows]
        out["slopes"] = self.slopes()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CoordCheckResult:
        """The result whose ``to_dict()``, as read back from JSON, is ``data`` (``slopes`` is
        recomputed): a stored check loads for replotting or comparison.

        Examples:
          >>> import jax, mc
          >>> from flaxinit.tooling import to_json
          >>> x = jax.random.normal(jax.random.key(0), (16, 8))
          >>> y = jax.random.randint(jax.random.key(1), (16,), 0, 10)
          >>> r = mc.coord_check(mc.width_model("mlp"), [32, 64], x, y, base_width=32, lr=0.01, steps=1, seeds=2)
          >>> mc.CoordCheckResult.from_dict(to_json(r.to_dict())) == r
          True
        """
        return cls(
            model=str(data["model"]),
            parametrization=str(data["parametrization"]),
            optimizer=str(data["optimizer"]),
            lr=float(data["lr"]),
            widths=tuple(int(w) for w in data["widths"]),
            base_width=int(data["base_width"]),
            steps=int(data["steps"]),
            seeds=int(data["seeds"]),
            rows=tuple(CoordRow.from_dict(r) for r in data["rows"]),
            losses=tuple(tuple(_float(v) for v in step_losses) for step_losses in data["losses"]),
            prng=str(data["prng"]),
        )

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


def _width_program(t, layout: Layout, loss_fn, steps: int) -> Callable[..., Any]:
    """``(keys[seeds], inputs, targets, lr) -> (mean_abs[seeds, steps, layers], loss[seeds, steps])``, jitted.

    Steps ``1 .. steps - 1`` each record the forward pass and update (a ``lax.scan``); the
    last step records a forward pass only, since nothing reads the update after it
    (microsoft/mup's loop computes that gradient and update too).

    The seeds run ``vmap``-ed on accelerators; on CPUs one after another inside the same
    program (``lax.map``: XLA's CPU backend runs the batched matrix products of a ``vmap``
    about half as fast as the plain ones, measured in ``benchmarks/bench_coord.py``)."""
    counts = jnp.asarray([math.prod(shape) for _, dims, shape in layout.layers for _ in np.ndindex(dims)], jnp.float32)

    def one_seed(key, inputs, targets, lr):
        tx = t.optimizer(lr)
        full, trainable = t.init(key, inputs)

        def objective(params):
            y, records, _ = t.model.apply(t.with_params(full, params), inputs, None, key)
            return loss_fn(y, targets), records

        def mean_abs(records):
            return layout.flat_sum(records, jnp.abs) / counts

        def step(carry, _):
            params, opt_state = carry
            (loss, records), grads = jax.value_and_grad(objective, has_aux=True)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), (mean_abs(records), loss)

        (params, _), (stats, losses) = jax.lax.scan(step, (trainable, tx.init(trainable)), None, length=steps - 1)
        loss, records = objective(params)
        return jnp.concatenate([stats, mean_abs(records)[None]]), jnp.concatenate([losses, loss[None]])

    def program(keys, inputs, targets, lr):
        if jax.default_backend() == "cpu":
            return jax.lax.map(lambda k: one_seed(k, inputs, targets, lr), keys)
        return jax.vmap(one_seed, in_axes=(0, None, None, None))(keys, inputs, targets, lr)

    return jax.jit(program)


#: Compiled programs of recent widths, by everything that determines them (not the learning
#: rate, the batch's values or the keys, which are arguments): a second check of the same
#: model compiles nothing.
_PROGRAMS: ProgramCache[tuple[Any, Layout, Callable[..., Any]]] = ProgramCache(32)


def coord_check(
    model: Callable[[int], Any],
    widths: Sequence[int],
    inputs: jax.Array,
    targets: jax.Array,
    *,
    base_width: int,
    parametrization: str = "mup",
    optimizer: str = "adam",
    lr: float,
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
    on_width: Callable[[int, list[CoordRow], list[float]], None] | None = None,
    done: dict[int, tuple[list[CoordRow], list[float]]] | None = None,
) -> CoordCheckResult:
    """The coordinate check: every layer output's mean |a| over widths, steps and seeds (SPEC §10).

    For each width ``w``, ``seeds`` models ``model(w)`` are initialized (under μP, a
    standard draw rescaled by :func:`flaxinit.mup.rescale` against ``model(base_width)``)
    and trained ``steps`` steps on the one batch ``(inputs, targets)`` with Adam
    (:func:`flaxinit.mup.adamw`) or SGD (:func:`flaxinit.mup.sgd`); at step ``t``, before
    its update (``t = 1`` at init), every layer's mean |a| is recorded. Under correct μP
    every layer's scale is independent of the width at every step (slopes about 0); under
    SP with Adam the output's grows with the width from step 2.

    Each width's compiled program is kept (the 32 most recent), keyed by ``model`` (the
    function itself: equal for a :func:`mc.width_model`, the same object otherwise), the
    width and every option (``fans`` and ``call_kwargs`` dicts included) but ``lr``, the
    batch's values and ``key``, which are its arguments: a second check of the same model
    compiles nothing. ``model`` is assumed to build the same module every time it is called
    with a width.

    Args:
      model: ``width -> flax.linen Module``, or ``width -> flax.nnx factory`` (``rngs -> Module``).
        The model must be μP itself where SPEC §10 says so (attention scale, tied readout).
      widths: at least two widths.
      inputs: the batch.
      targets: its targets (integer labels for ``"xent"``).
      base_width: the width where μP is the identity (μP's infinite axes come from
        comparing ``model(base_width)`` with each width's model).
      parametrization: ``"mup"``, or ``"sp"`` (the model's own init, the plain optimizer).
      optimizer: ``"adam"`` (no weight decay, ε 1e-8) or ``"sgd"`` (no momentum).
      lr: the learning rate (the base model's, under μP).
      steps: steps recorded, ``t = 1 .. steps``.
      seeds: models per width (at least 2, for a standard error).
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
      on_width: called after each width with its rows and losses (progress, saving).
      done: rows and losses of widths already measured (``--resume``): not run again.

    Returns:
      A :class:`CoordCheckResult`: rows per (width, step, layer), ``slope(path, step)``, a plot.

    Examples:
      >>> import jax, mc
      >>> x = jax.random.normal(jax.random.key(0), (16, 8))
      >>> y = jax.random.randint(jax.random.key(1), (16,), 0, 10)
      >>> r = mc.coord_check(mc.width_model("mlp"), [32, 64], x, y, base_width=32, lr=0.01, steps=2, seeds=2)
      >>> r.paths
      ('dense_0', 'dense_1', 'readout', '(output)')
      >>> len(r.rows), r.slope("dense_0", 1)[0] < 0.5
      (16, True)
    """
    widths = check_sizes(widths, "widths")
    base_width = check_int(base_width, "base_width")
    check_choice(parametrization, "parametrization", PARAMETRIZATIONS)
    check_choice(optimizer, "optimizer", OPTIMIZERS)
    lr = check_real(lr, "lr")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    steps, seeds = check_int(steps, "steps"), check_int(seeds, "seeds")
    if seeds < 2:
        raise ValueError(f"seeds must be at least 2 (a standard error needs two), got {seeds}")
    import flax.linen as nn

    if isinstance(model, nn.Module) or not callable(model):
        raise TypeError(
            f"model must be a function width -> flax.linen Module (or nnx factory), got {type(model).__name__}"
        )
    if not isinstance(loss, str) and not callable(loss):
        raise TypeError(f"loss must be one of {', '.join(LOSSES)} or a function, got {loss!r}")
    loss_fn = loss_function(loss)
    call = check_call_options(method, call_kwargs, output)
    key = as_key(key, "philox")
    inputs, targets = jnp.asarray(inputs), jnp.asarray(targets)
    keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.arange(seeds))

    rows: list[CoordRow] = []
    losses: list[tuple[float, ...]] = []
    name = ""
    for width in widths:
        if done and width in done:
            width_rows, width_losses = done[width]
        else:

            def build(width=width):
                t, layout = trainee(
                    model, width, inputs, base=base_width, parametrization=parametrization, optimizer=optimizer,
                    fans=fans, blocks=blocks, zero_query=zero_query, zero_output=zero_output, call=call,
                )  # fmt: skip
                return t, layout, _width_program(t, layout, loss_fn, steps)

            signature = (model, width, base_width, parametrization, optimizer, steps, loss, fans, blocks, zero_query,
                         zero_output, call, jax.typeof(inputs), jax.typeof(targets), jax.default_backend())  # fmt: skip
            t, layout, program = _PROGRAMS.get(signature, build)
            stats, step_losses = program(keys, inputs, targets, jnp.float32(lr))
            stats = np.asarray(stats, np.float64)  # [seeds, steps, layer entries]
            mean, se = stats.mean(axis=0), stats.std(axis=0, ddof=1) / math.sqrt(seeds)
            positions = layout.positions()
            width_rows = [
                CoordRow(width, s + 1, path, float(mean[s, positions[row]]), float(se[s, positions[row]]))
                for s in range(steps)
                for row, path in zip(layout.rows(), layout.row_paths(), strict=True)
            ]
            width_losses = [float(v) for v in np.asarray(step_losses, np.float64).mean(axis=0)]
            name = t.model.name
        if on_width is not None:
            on_width(width, width_rows, width_losses)
        rows += width_rows
        losses.append(tuple(width_losses))
    if not name:  # every width was done before
        name = as_model(model(widths[0]), *call).name
    return CoordCheckResult(name, parametrization, optimizer, lr, widths, base_width, steps, seeds, tuple(rows),
                            tuple(losses), prng_name(key))  # fmt: skip


__all__ = ["CoordCheckResult", "CoordRow", "coord_check", "least_squares_slope", "plot_coord_data"]
