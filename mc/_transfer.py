"""Learning-rate transfer (SPEC §10, Tensor Programs V's Figure 1): :func:`lr_transfer`.

For each size (a width; a depth with ``sweep="depth"``; a batch size or a number of steps
at a fixed width with ``sweep="batch"`` or ``"steps"``), every learning rate of a log2
grid is trained from several seeds; the figure of merit of a run is its
training loss averaged over the last steps. Every (learning rate, seed) run of a size is
one compiled program: ``vmap`` over runs of a ``lax.scan`` over steps, each step the
project's one :func:`flaxinit.tooling.train_step`, from the seeds' models (a smaller
program draws each seed's model once: compiled apart, the two compile faster than one).

Seed ``s`` draws its model from ``fold_in(fold_in(key, s), 0)`` and its minibatches from
``fold_in(fold_in(key, s), 1)``: step ``i`` trains on ``batch_size`` rows drawn uniformly
with replacement (``jax.random.randint(fold_in(fold_in(data_key, i), 0), ...)``). So every
learning rate of a seed starts from the same parameters and sees the same batches (a
paired comparison), and a size's bits depend only on ``(key, seeds, log2_lrs)`` and that
size's arguments, never on the other sizes. In a steps sweep the first steps of a longer
run are a shorter run's steps (the same batches); in a batch sweep the rows of a step differ
with the batch size.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flaxinit.tooling import check_int, train_step
from mc._cache import PROGRAMS
from mc._keys import as_key, prng_name
from mc._model import as_model
from mc._sweep import SWEEPS, SWEPT_ARGUMENT, TRANSFER_SWEEPS, check_sweep
from mc._training import optimizer_name, trainee
from mc._transfer_result import SIZE_NAMES, TransferResult, check_grid, optimal_log2_lr, plot_transfer

# --- the runs --------------------------------------------------------------------------------


def _size_programs(t, loss_fn, steps: int, batch_size: int) -> Callable[..., jax.Array]:
    """``(lrs[runs], seed_of_run[runs], init_keys[seeds], data_keys[seeds], inputs, targets) ->
    losses[runs, steps]``: one jitted program initializes every seed's model (once per seed, so
    every learning rate of a seed starts from the same parameters), one trains every run."""

    def init(init_key, inputs):
        return t.init(init_key, inputs[:batch_size])

    def one_run(lr, seed, models, data_keys, inputs, targets):
        full, trainable = jax.tree.map(lambda a: a[seed], models)
        data_key = data_keys[seed]
        n = inputs.shape[0]
        tx = t.optimizer(lr)

        def objective(params, x, y, key):
            out, _, _ = t.model.apply(t.with_params(full, params), x, None, key)
            return loss_fn(out, y)

        update = train_step(objective, tx)

        def step(carry, i):
            params, opt_state = carry
            step_key = jax.random.fold_in(data_key, i)
            rows = jax.random.randint(jax.random.fold_in(step_key, 0), (batch_size,), 0, n)
            params, opt_state, loss = update(params, opt_state, inputs[rows], targets[rows],
                                             jax.random.fold_in(step_key, 1))  # fmt: skip
            return (params, opt_state), loss

        _, losses = jax.lax.scan(step, (trainable, tx.init(trainable)), jnp.arange(steps))
        return losses

    init_all = jax.jit(jax.vmap(init, in_axes=(0, None)))
    train_all = jax.jit(jax.vmap(one_run, in_axes=(0, 0, None, None, None, None)))

    def run(lrs, seed_of_run, init_keys, data_keys, inputs, targets):
        return train_all(lrs, seed_of_run, init_all(init_keys, inputs), data_keys, inputs, targets)

    return run


def _figure_of_merit(losses: np.ndarray, last: int) -> np.ndarray:
    """Per run, the mean loss over the last ``last`` steps; inf where any step's loss was not finite."""
    losses = np.asarray(losses, np.float64)
    merit = losses[..., -last:].mean(axis=-1)
    return np.where(np.isfinite(losses).all(axis=-1), merit, np.inf)


def _summary(per_seed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds (the last axis) and its SE; inf and nan where a seed diverged."""
    finite = np.isfinite(per_seed).all(axis=-1)
    safe = np.where(np.isfinite(per_seed), per_seed, 0.0)
    mean = np.where(finite, safe.mean(axis=-1), np.inf)
    se = np.where(finite, safe.std(axis=-1, ddof=1) / math.sqrt(per_seed.shape[-1]), np.nan)
    return mean, se


def _check_done(done: Any, n_lrs: int, seeds: int) -> dict[int, np.ndarray]:
    if done is None:
        return {}
    if not isinstance(done, Mapping):
        raise TypeError(f"done must map a size to its losses [learning rate][seed], got {type(done).__name__}")
    out = {}
    for size, values in done.items():
        try:
            array = np.asarray([[np.inf if v is None else v for v in row] for row in values], np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"done[{size!r}] must be losses [learning rate][seed] (numbers or None)") from None
        if array.shape != (n_lrs, seeds):
            raise ValueError(
                f"done[{size!r}] must have shape ({n_lrs}, {seeds}) [learning rate][seed], got {array.shape}"
            )
        out[size] = np.where(np.isnan(array), np.inf, array)
    return out


def lr_transfer(
    model: Callable[[int], Any],
    sizes: Sequence[int],
    log2_lrs: Sequence[float],
    inputs: Any,
    targets: Any,
    *,
    base: int,
    parametrization: str = "mup",
    optimizer: str | Callable[[Any, Any], Any] = "adam",
    init: Callable[[Any, Any], Any] | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    seeds: int = 3,
    key: jax.Array | int = 0,
    loss: str | Callable[[jax.Array, jax.Array], jax.Array] = "xent",
    last: int | None = None,
    sweep: str = "width",
    width: int | Sequence[int] | None = None,
    alpha: float | None = None,
    blocks: Any = None,
    fans: Any = None,
    zero_query: bool = False,
    call_kwargs: Mapping[str, Any] | None = None,
    method: str | None = None,
    output: int | str | Callable[[Any], jax.Array] | None = None,
    on_size: Callable[[int, list[list[float]]], None] | None = None,
    done: Mapping[int, Sequence[Sequence[float | None]]] | None = None,
) -> TransferResult:
    """Learning-rate transfer (SPEC §10, Tensor Programs V's Figure 1): the optimal learning
    rate of each size over a log2 grid, and its spread across sizes.

    For each size, ``seeds`` models ``model(size)`` per learning rate ``2**log2_lr`` are
    trained ``steps`` steps on minibatches of ``batch_size`` rows of ``(inputs, targets)``
    with Adam (:func:`flaxinit.mup.adamw`, no weight decay) or SGD (:func:`flaxinit.mup.sgd`,
    no momentum). A run's figure of merit is its training loss (on each step's minibatch,
    before the update) averaged over the last ``last`` steps; a run whose loss is not finite
    at any step diverged and counts as +inf. Per (size, learning rate) the mean over seeds
    and its standard error; per size the optimum, :func:`optimal_log2_lr` of the means.

    ``sweep="batch"`` and ``sweep="steps"`` (SPEC §11, other axes): the sizes are batch
    sizes or numbers of steps of the model at one ``width``; the figure of merit of a steps
    sweep is each run's loss over its own last 10% (unless ``last`` is given). A rule for
    the swept axis is an ``optimizer`` function with a ``size`` keyword: it is called
    ``optimizer(lr, shapes, size=(size, base))`` (e.g. ``lambda lr, s, size:
    mup.adamw(lr, shapes=s, weight_decay=0.1, batch=size)``, :func:`flaxinit.mup.batch_length_rule`),
    in every sweep.

    Every learning rate of a seed starts from the same parameters and trains on the same
    minibatches (see the module's docstring), and all runs of a size are one compiled program
    (after one that draws each seed's model). The programs are kept in the one program cache
    of the model tools (:data:`mc._cache.PROGRAMS`, which :func:`mc.coord_check` and
    :func:`mc.verify` use too): a second sweep of the same model compiles nothing.

    Args:
      model: ``size -> flax.linen Module`` (or nnx factory): a width, or with
        ``sweep="depth"`` a number of blocks (:func:`mc.width_model`); batch and steps
        sweeps call it with ``width``.
      sizes: at least two widths (depths, batch sizes, numbers of steps).
      log2_lrs: at least three distinct log2 learning rates (the base model's under μP), in
        any order (the result holds them sorted).
      inputs: the training inputs, examples along the first axis.
      targets: their targets (integer labels for ``"xent"``).
      base: ``sweep="width"``: the base width (μP is the identity there; ignored by SP);
        ``sweep="depth"``: the base depth of the depth rules; ``"batch"``, ``"steps"``: the
        base batch size or number of steps (of the ``size=`` an optimizer function gets).
      parametrization: ``"mup"`` (the init rescaled, per-parameter learning rates, against
        ``model(base)``) or ``"sp"`` (the model's own init, the plain optimizer). With
        ``sweep="depth"`` the width rules are the identity either way.
      optimizer: ``"adam"`` (ε 1e-8), ``"sgd"``, or a function ``(learning_rate, shapes) ->
        optax.GradientTransformation`` (as for :func:`mc.coord_check`).
      init: a function ``(params, shapes) -> params`` giving the initial parameters from a
        draw of the model (as for :func:`mc.coord_check`).
      steps: training steps per run (not given in a steps sweep).
      batch_size: rows per step, at most the number of examples (drawn with replacement; not
        given in a batch sweep).
      seeds: runs per learning rate (at least 2, for a standard error).
      key: a PRNG key or an int seed (a Philox key, as everywhere in ``mc``).
      loss: ``"xent"``, ``"mse"`` or ``(outputs, targets) -> scalar``.
      last: steps averaged at the end (default: the last 10% of each run's steps, at least 1).
      sweep: ``"width"``, ``"depth"``, ``"batch"`` or ``"steps"``.
      width: batch and steps sweeps only (required there): the model's width, or ``(width,
        base_width)`` for μP's width rules against ``model(base_width)`` (a single width is
        its own base: every width rule is the identity).
      alpha: with ``sweep="depth"``, the optimizer's depth rules ``depth=(size, base,
        alpha)`` for the parameters that ``blocks`` selects (1: CompleteP, 1/2:
        depth-μP; Adam only); ``None``: none. The model's own branch multiplier is the
        model's (``mc.width_model(..., alpha=)``); a :class:`mc.WidthModel` must agree.
      blocks: path globs of the parameters inside residual blocks (``"block_*"``), as for
        :func:`flaxinit.mup.infshapes`.
      fans: as for :func:`flaxinit.mup.infshapes`.
      zero_query: under μP, attention query kernels start at zero (microsoft/mup's advice).
      call_kwargs: keyword arguments of every call of the model, as for :func:`mc.audit`
        (``{"train": True}``: dropout drawn per seed and step from the seed's data key).
      method: the name of the model's method to call, as for :func:`mc.audit`.
      output: what the model returns, when not one array (an index, a key, or a function of
        the return value), as for :func:`mc.audit`: the loss is computed on it.
      on_size: called after each size with its per-run figures of merit ``[lr][seed]``
        (progress, saving a partial result).
      done: figures of merit ``[lr][seed]`` of sizes already measured (``None`` for a
        diverged run, as JSON stores it): not run again.

    Returns:
      A :class:`TransferResult`: per (size, learning rate) the loss, per size the optimum,
      ``spread``, ``plot(path)``.

    Examples:
      >>> import jax, mc
      >>> x = jax.random.normal(jax.random.key(0), (64, 8))
      >>> y = jax.random.randint(jax.random.key(1), (64,), 0, 10)
      >>> r = mc.lr_transfer(mc.width_model("mlp"), [16, 32], [-8, -6, -4], x, y, base=16,
      ...                    steps=4, batch_size=16, seeds=2)
      >>> len(r.loss_mean), len(r.loss_mean[0]), len(r.loss_seeds[0][0])
      (2, 3, 2)
    """
    steps, batch_size = _check_axes(sweep, sizes, steps, batch_size)
    run = check_sweep(
        model, sizes, base, sweep=sweep, alpha=alpha, parametrization=parametrization, optimizer=optimizer,
        init=init, lr=1.0, steps=steps, seeds=seeds, loss=loss, fans=fans, blocks=blocks, zero_query=zero_query,
        zero_output=False, call_kwargs=call_kwargs, method=method, output=output, sweeps=TRANSFER_SWEEPS,
    )  # fmt: skip
    runs = _check_runs(run, log2_lrs, inputs, targets, batch_size, last, done, key, _check_width(width, run))
    per_size, name = [], ""
    for size in run.sizes:
        if size in runs.finished:
            merit = runs.finished[size]
        else:
            merit, name = _measure_size(model, run, runs, size)
        if on_size is not None:
            on_size(size, merit.tolist())
        per_size.append(merit)
    first = runs.width[0] if runs.width is not None else run.sizes[0]
    name = name or as_model(model(first), *run.call).name  # every size done before: none measured
    return _assemble(name, run, runs, np.stack(per_size), loss)


def _check_axes(sweep: Any, sizes: Any, steps: Any, batch_size: Any) -> tuple[int, int]:
    """``(steps, batch_size)`` as :func:`mc._sweep.check_sweep` checks them: the swept one is
    not given (a placeholder of 1 stands for it); the other is required."""
    swept = SWEPT_ARGUMENT.get(sweep)
    given = {"steps": steps, "batch_size": batch_size}
    for name, value in given.items():
        if name == swept and value is not None:
            what = "batch sizes" if sweep == "batch" else "numbers of steps"
            raise ValueError(f"sweep={sweep!r}: the sizes are the runs' {what}; do not give {name}")
        if name != swept and value is None:
            raise TypeError(f"{name} is required (training {name.replace('_', ' ')} of every run)")
    return (1 if steps is None else steps), (1 if batch_size is None else batch_size)


def _check_width(width: Any, run: Any) -> tuple[int, int | None] | None:
    """``(width, base_width or None)`` of a batch or steps sweep; ``None`` for the others."""
    if run.sweep not in SWEPT_ARGUMENT:
        if width is not None:
            raise ValueError(f"width applies to sweep='batch' and 'steps' only (the sizes of sweep={run.sweep!r} "
                             "say the model's shape)")  # fmt: skip
        return None
    if width is None:
        raise TypeError(f"sweep={run.sweep!r} needs width= (the model's width, or (width, base_width) for μP)")
    if isinstance(width, Sequence) and not isinstance(width, str):
        if len(width) != 2:
            raise ValueError(f"width must be a width or (width, base_width), got {width!r}")
        return check_int(width[0], "width"), check_int(width[1], "base_width")
    return check_int(width, "width"), None


@dataclasses.dataclass(frozen=True)
class _Runs:
    """What every size of a transfer sweep shares: the sorted grid, the data, the keys, the
    sizes done before, the fixed width of a batch or steps sweep. Run ``r`` trains learning
    rate ``r // seeds`` from seed ``r % seeds``."""

    grid: np.ndarray
    batch_size: int
    last: int | None  # None: each size's last 10%
    inputs: jax.Array
    targets: jax.Array
    key: jax.Array
    finished: dict[int, np.ndarray]
    width: tuple[int, int | None] | None = None

    def at(self, run: Any, size: int) -> tuple[int, int, int]:
        """``(steps, batch_size, last)`` of a size's runs."""
        steps = size if run.sweep == "steps" else run.steps
        batch_size = size if run.sweep == "batch" else self.batch_size
        return steps, batch_size, (max(1, steps // 10) if self.last is None else self.last)

    def operands(self, seeds: int) -> tuple[jax.Array, ...]:
        """The learning rate and seed of every run, each seed's init and data key."""
        seed_keys = [jax.random.fold_in(self.key, s) for s in range(seeds)]
        return (
            jnp.asarray(np.repeat(np.exp2(self.grid), seeds), jnp.float32),
            jnp.asarray(np.tile(np.arange(seeds), len(self.grid)), jnp.int32),
            jnp.stack([jax.random.fold_in(k, 0) for k in seed_keys]),
            jnp.stack([jax.random.fold_in(k, 1) for k in seed_keys]),
        )


def _check_runs(run, log2_lrs, inputs, targets, batch_size, last, done, key, width) -> _Runs:
    """:func:`lr_transfer`'s own arguments, checked (:func:`mc._sweep.check_sweep` has the rest)."""
    grid, batch_size = np.sort(check_grid(log2_lrs)), check_int(batch_size, "batch_size")
    fewest = min(run.sizes) if run.sweep == "steps" else run.steps
    if last is None:
        last = None if run.sweep == "steps" else max(1, run.steps // 10)
    elif check_int(last, "last") > fewest:
        raise ValueError(f"last must be at most the fewest steps of a run ({fewest}), got {last}")
    inputs, targets = jnp.asarray(inputs), jnp.asarray(targets)
    if inputs.ndim == 0 or targets.ndim == 0 or inputs.shape[0] != targets.shape[0]:
        raise ValueError(
            f"inputs and targets must hold the same number of examples along their first axis, "
            f"got shapes {inputs.shape} and {targets.shape}"
        )
    largest = max(run.sizes) if run.sweep == "batch" else batch_size
    if largest > inputs.shape[0]:
        what = "the largest batch size (sizes)" if run.sweep == "batch" else "batch_size"
        raise ValueError(f"{what} must be at most the number of examples ({inputs.shape[0]}), got {largest}")
    finished = _check_done(done, len(grid), run.seeds)
    return _Runs(grid, batch_size, last, inputs, targets, as_key(key, "philox"), finished, width)


def _measure_size(model: Callable[[int], Any], run: Any, runs: _Runs, size: int) -> tuple[np.ndarray, str]:
    """One size's figures of merit ``[lr, seed]`` and the model's name, from its program
    (built once per size and settings, kept in :data:`mc._cache.PROGRAMS`)."""
    steps, batch_size, last = runs.at(run, size)
    x = runs.inputs[:batch_size]
    if runs.width is not None:  # batch or steps: the model at one width, its μP base given or itself
        model_size, base = runs.width
    else:
        model_size, base = size, (run.base if run.sweep == "width" else None)

    def build():
        depth = (size, run.base, run.alpha) if run.alpha is not None else None
        t, _ = trainee(model, model_size, x, base=base, parametrization=run.parametrization, optimizer=run.optimizer,
                       init=run.init, fans=run.fans, blocks=run.blocks, depth=depth, zero_query=run.zero_query,
                       call=run.call, draws=dict(run.draws) if isinstance(run.draws, tuple) else run.draws,
                       sweep_size=(size, run.base))  # fmt: skip
        return t, _size_programs(t, run.loss_fn, steps, batch_size)

    signature = ("lr transfer", model, size, run.settings(), runs.width, steps, batch_size, jax.typeof(runs.inputs),
                 jax.typeof(runs.targets), jax.default_backend())  # fmt: skip
    t, program = PROGRAMS.get(signature, build)
    losses = program(*runs.operands(run.seeds), runs.inputs, runs.targets)
    return _figure_of_merit(np.asarray(losses), last).reshape(len(runs.grid), run.seeds), t.model.name


def _assemble(name: str, run: Any, runs: _Runs, merits: np.ndarray, loss: Any) -> TransferResult:
    """The result of figures of merit ``[size, lr, seed]``."""
    mean, se = _summary(merits)
    optima = [optimal_log2_lr(runs.grid, row) for row in mean]
    width, base_width = runs.width if runs.width is not None else (None, None)
    return TransferResult(
        name, run.parametrization, optimizer_name(run.optimizer), run.sweep, run.sizes, run.base, run.alpha,
        tuple(float(v) for v in runs.grid), None if run.sweep == "steps" else run.steps,
        None if run.sweep == "batch" else runs.batch_size, run.seeds, runs.last,
        loss if isinstance(loss, str) else "custom", _nested(merits), _nested(mean), _nested(se),
        tuple(v for v, _ in optima), tuple(e for _, e in optima), prng_name(runs.key), width, base_width,
    )  # fmt: skip


def _nested(array: np.ndarray) -> Any:
    if array.ndim == 1:
        return tuple(float(v) for v in array)
    return tuple(_nested(a) for a in array)


__all__ = [
    "SIZE_NAMES",
    "SWEEPS",
    "TRANSFER_SWEEPS",
    "TransferResult",
    "lr_transfer",
    "optimal_log2_lr",
    "plot_transfer",
]
