"""What the μP checks share: one vocabulary, checked once, and the run of a coordinate check
over sizes (:func:`measure`), which :func:`mc.coord_check` reports and :func:`mc.verify` judges.

The words, the same in every check and on the command line: ``sizes`` (widths, or numbers
of blocks with ``sweep="depth"``), ``base`` (the size where μP is the identity), ``sweep``,
``alpha`` (the depth exponent), ``key``, ``optimizer`` (``"adam"``, ``"sgd"`` or ``(lr,
shapes) -> optax optimizer``), ``init`` (``(params, shapes) -> params``), ``call_kwargs``,
``method``, ``output``, ``on_size``, ``done``. Earlier names (``widths``, ``base_width``,
``on_width``) still work for one release, with a ``DeprecationWarning``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flaxinit.tooling import check_choice, check_int, check_real
from mc import _cache
from mc._model import Layout, check_call_options
from mc._training import (
    LOSSES,
    PARAMETRIZATIONS,
    Trainee,
    check_optimizer,
    check_sizes,
    loss_function,
    trainee,
)
from mc._width_models import WidthModel

SWEEPS = ("width", "depth")
#: The sweeps of :func:`mc.lr_transfer` at a fixed width, and the argument their sizes replace.
SWEPT_ARGUMENT = {"batch": "batch_size", "steps": "steps"}
#: :func:`mc.lr_transfer`'s sweeps: also batch sizes and numbers of steps at a fixed width.
TRANSFER_SWEEPS = (*SWEEPS, *SWEPT_ARGUMENT)


#: The default of an argument's earlier name: not given.
UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET"})()


def renamed(value: Any, old_value: Any, name: str, old_name: str) -> Any:
    """``value`` (None: not given), or ``old_value`` given under the argument's earlier name
    (:data:`UNSET` where not given), with a ``DeprecationWarning``; both given is an error."""
    if old_value is UNSET:
        return value
    if value is not None:
        raise TypeError(f"{name} and {old_name} are the same argument ({old_name} is its earlier name): give {name}")
    warnings.warn(f"{old_name}= is deprecated: call it {name}= (it will be removed in the next release)",
                  DeprecationWarning, stacklevel=3)  # fmt: skip
    return old_value


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A check's settings, checked: what :func:`measure` runs."""

    sizes: tuple[int, ...]
    base: int
    sweep: str
    alpha: float | None
    parametrization: str
    optimizer: Any
    init: Any
    lr: float
    steps: int
    seeds: int
    loss: Any
    fans: Any
    blocks: Any
    zero_query: bool
    zero_output: bool
    call: tuple[Any, Any, Any]
    draws: Any = "fan_in"

    def settings(self) -> tuple[Any, ...]:
        """Everything that determines a size's compiled program (every field but the sizes and
        the learning rate, an argument of the program): the key of :data:`PROGRAMS`."""
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("sizes", "lr"))

    @property
    def loss_fn(self) -> Callable[[jax.Array, jax.Array], jax.Array]:
        return loss_function(self.loss)


def check_model(model: Any, sweep: str, alpha: float | None, base: int) -> None:
    """``model`` is ``size -> Module or nnx factory``; a :class:`mc.WidthModel` agrees with the sweep."""
    import flax.linen as nn

    if isinstance(model, nn.Module) or not callable(model):
        raise TypeError(
            f"model must be a function size -> flax.linen Module (or nnx factory), got {type(model).__name__}"
        )
    if isinstance(model, WidthModel):  # its own settings must agree
        if sweep in SWEPT_ARGUMENT:
            if model.sweep != "width":
                raise ValueError(f"sweep={sweep!r} runs the model at a fixed width: build it with sweep='width', "
                                 f"not {model.sweep!r}")  # fmt: skip
        elif model.sweep != sweep:
            raise ValueError(f"sweep={sweep!r} but the model was built with sweep={model.sweep!r}")
        if sweep == "depth" and model.alpha != alpha:
            raise ValueError(f"alpha={alpha!r} but the model's branch multiplier has alpha={model.alpha!r}")
        if sweep == "depth" and model.base_depth != base:
            raise ValueError(f"base={base} but the model's branch multiplier has base_depth={model.base_depth}")


def check_sweep(
    model: Any, sizes: Any, base: Any, *, sweep: str, alpha: Any, parametrization: str, optimizer: Any, init: Any,
    lr: Any, steps: Any, seeds: Any, loss: Any, fans: Any, blocks: Any, zero_query: bool, zero_output: bool,
    call_kwargs: Any, method: Any, output: Any, sweeps: tuple[str, ...] = SWEEPS,
) -> Sweep:  # fmt: skip
    """Every argument a check shares, checked (one message per mistake, naming the argument);
    ``sweeps``: the check's sweeps."""
    sizes = check_sizes(sizes, "sizes")
    if base is None:
        raise TypeError("base is required: the size where μP is the identity (the base model's width or depth)")
    base = check_int(base, "base")
    check_choice(sweep, "sweep", sweeps)
    check_choice(parametrization, "parametrization", PARAMETRIZATIONS)
    optimizer = check_optimizer(optimizer)
    if init is not None and not callable(init):
        raise TypeError(f"init must be a function (params, shapes) -> params, got {init!r}")
    lr = check_real(lr, "lr")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    steps, seeds = check_int(steps, "steps"), check_int(seeds, "seeds")
    if seeds < 2:
        raise ValueError(f"seeds must be at least 2 (a standard error needs two), got {seeds}")
    if not isinstance(loss, str) and not callable(loss):
        raise TypeError(f"loss must be one of {', '.join(LOSSES)} or a function, got {loss!r}")
    loss_function(loss)
    if alpha is not None:
        alpha = check_real(alpha, "alpha")
        if sweep != "depth":
            raise ValueError("alpha applies to sweep='depth' only (the depth rules of the optimizer)")
        if optimizer != "adam" and not callable(optimizer):
            raise ValueError("alpha needs optimizer='adam' (SPEC §10 states the depth rules for Adam)")
        if blocks is None:
            raise ValueError("alpha needs blocks= (the path globs of the parameters inside residual blocks)")
    check_model(model, sweep, alpha, base)
    call = check_call_options(method, call_kwargs, output)
    draws = freeze_draws(getattr(model, "draws", "fan_in"))  # a mc.WidthModel says how it draws
    return Sweep(sizes, base, sweep, alpha, parametrization, optimizer, init, lr, steps, seeds, loss, fans, blocks,
                 bool(zero_query), bool(zero_output), call, draws)  # fmt: skip


def freeze_draws(draws: Any) -> Any:
    """``draws`` hashable (a mapping as sorted pairs, read back by :func:`dict`)."""
    return tuple(sorted(draws.items())) if isinstance(draws, Mapping) else draws


@dataclasses.dataclass(frozen=True)
class SizeRun:
    """One size of a coordinate check: per seed and step every row's mean |q|, the losses,
    and the model's trainee and layout (the rows' names, its parameters' roles)."""

    size: int
    stats: np.ndarray  # [seeds, steps, rows], float64
    losses: np.ndarray  # [seeds, steps]
    trainee: Trainee
    layout: Layout

    def summary(self) -> tuple[list[tuple[int, str, float, float]], list[float]]:
        """``([(step, path, mean over seeds, its standard error)], mean loss per step)``."""
        seeds = self.stats.shape[0]
        mean, se = self.stats.mean(axis=0), self.stats.std(axis=0, ddof=1) / math.sqrt(seeds)
        positions = self.layout.positions()
        rows = [
            (s + 1, path, float(mean[s, positions[row]]), float(se[s, positions[row]]))
            for s in range(self.stats.shape[1])
            for row, path in zip(self.layout.rows(), self.layout.row_paths(), strict=True)
        ]
        return rows, [float(v) for v in self.losses.mean(axis=0)]


#: :data:`mc._cache.PROGRAMS`, the one program cache: a second check of the same model, or a
#: verdict after a coordinate check, compiles nothing.
PROGRAMS = _cache.PROGRAMS


#: Sizes whose programs compile ahead of the size running: XLA compiles in C++ with the GIL
#: released, so while one size's program runs (or the next is traced) the next sizes' compile
#: on the other cores (``benchmarks/bench_coord_microsoft.py`` measures a check in a fresh process).
COMPILE_AHEAD = 2


def measure(
    model: Callable[[int], Any],
    run: Sweep,
    inputs: jax.Array,
    targets: jax.Array,
    key: jax.Array,
    *,
    watch: bool = False,
    skip: Sequence[int] = (),
    program_of: Callable[..., Callable[..., Any]],
) -> Any:
    """Yields a :class:`SizeRun` per size not in ``skip``, in increasing order: ``seeds``
    models ``model(size)`` trained ``steps`` steps on the batch, every row recorded before
    each update (``watch``: update effects and logits too). ``program_of(trainee, layout,
    loss_fn, steps, watch)`` builds a size's jitted program (the caller's, so a test can count
    them); it is traced and lowered here, and compiled on a worker thread up to
    :data:`COMPILE_AHEAD` sizes ahead of the size running (kept in :data:`PROGRAMS`)."""
    keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.arange(run.seeds))
    lr = jnp.float32(run.lr)
    todo = [size for size in run.sizes if size not in skip]
    pool = ThreadPoolExecutor(max_workers=COMPILE_AHEAD, thread_name_prefix="mc-compile")

    def start(size: int) -> tuple[Trainee, Layout, Future]:
        def build() -> tuple[Trainee, Layout, Future]:
            depth = (size, run.base, run.alpha) if run.alpha is not None else None
            t, layout = trainee(
                model, size, inputs, base=run.base if run.sweep == "width" else None,
                parametrization=run.parametrization, optimizer=run.optimizer, init=run.init, fans=run.fans,
                blocks=run.blocks, depth=depth, zero_query=run.zero_query, zero_output=run.zero_output,
                call=run.call, watch=watch, draws=dict(run.draws) if isinstance(run.draws, tuple) else run.draws,
            )  # fmt: skip
            lowered = program_of(t, layout, run.loss_fn, run.steps, watch).lower(keys, inputs, targets, lr)
            return t, layout, pool.submit(lowered.compile)

        # a compiled program takes arguments of the types and placements it was compiled for
        signature = ("coordinate check", model, size, run.settings(), watch, jax.typeof(keys), jax.typeof(inputs),
                     jax.typeof(targets), inputs.sharding, targets.sharding, jax.default_backend())  # fmt: skip
        return PROGRAMS.get(signature, build, valid=lambda kept: _compiles(kept[2]))

    started: list[tuple[Trainee, Layout, Future]] = []
    try:
        for i, size in enumerate(todo):
            while len(started) < min(i + 1 + COMPILE_AHEAD, len(todo)):  # traced while earlier sizes compile
                started.append(start(todo[len(started)]))
            t, layout, compiled = started[i]
            stats, losses = compiled.result()(keys, inputs, targets, lr)
            yield SizeRun(size, np.asarray(stats, np.float64), np.asarray(losses, np.float64), t, layout)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _compiles(future: Future) -> bool:
    """Whether a kept compilation gives (or will give) a program: not cancelled (a check
    interrupted before it ran) nor failed."""
    return not future.cancelled() and (not future.done() or future.exception() is None)


def as_mapping(done: Any, name: str = "done") -> Mapping[int, Any]:
    if done is None:
        return {}
    if not isinstance(done, Mapping):
        raise TypeError(f"{name} must map a size to what was measured there, got {type(done).__name__}")
    return done


__all__ = [
    "COMPILE_AHEAD",
    "PROGRAMS",
    "SWEEPS",
    "SWEPT_ARGUMENT",
    "TRANSFER_SWEEPS",
    "UNSET",
    "SizeRun",
    "Sweep",
    "as_mapping",
    "check_model",
    "check_sweep",
    "measure",
    "renamed",
]
