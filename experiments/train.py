"""The vectorized trainer: every (scheme, seed) run of a network in one jitted program.

Runs are stacked along a leading axis and trained with ``jax.vmap``; inside, one epoch
is a ``lax.scan`` over optimizer steps (one example per step where the setup says so).
The Python loop is over epochs only, for progress and for interrupting between epochs.

Common random numbers: run ``(arm, seed)`` initializes with ``jax.random.key(seed)``, so
for a seed every uniform scheme scales the same ``U(-1, 1)`` draws by its own bound
(flaxinit's single sampling path), and every arm of a seed sees the same example order
(``fold_in(key(seed), epoch)``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from experiments.networks import Roles, Setup
from flaxinit.tooling import train_step


@dataclasses.dataclass(frozen=True)
class Dataset:
    train_x: np.ndarray
    train_y: np.ndarray
    eval_x: np.ndarray
    eval_y: np.ndarray


@dataclasses.dataclass
class History:
    """Per-epoch metrics of every run: ``loss[e, r]`` is run ``r``'s mean training loss in
    epoch ``e``; ``accuracy[e, r]`` its accuracy on the evaluation set after epoch ``e``."""

    runs: list[tuple[str, int]]  # (arm, seed) per run
    loss: list[np.ndarray] = dataclasses.field(default_factory=list)
    accuracy: list[np.ndarray] = dataclasses.field(default_factory=list)
    complete: bool = False

    def rows(self, network: str) -> list[dict]:
        return [
            {
                "network": network,
                "scheme": arm,
                "seed": seed,
                "epoch": e + 1,
                "loss": float(loss[r]),
                "accuracy": float(acc[r]),
            }
            for e, (loss, acc) in enumerate(zip(self.loss, self.accuracy, strict=True))
            for r, (arm, seed) in enumerate(self.runs)
        ]


def init_runs(setup: Setup, arms: Mapping[str, Roles], seeds: Sequence[int], sample_x) -> tuple[list, object]:
    """Initial params of every (arm, seed), stacked along a leading run axis."""
    runs, params = [], []
    for arm, roles in arms.items():
        module = setup.build(roles)
        init = jax.jit(lambda key, module=module: module.init(key, sample_x)["params"])
        for seed in seeds:
            runs.append((arm, seed))
            params.append(init(jax.random.key(seed)))
    return runs, jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)


def make_epoch(setup: Setup, apply: Callable, n_train: int, vectorized: bool = True):
    """Returns ``epoch(params, opt_state, order_keys, data...) -> (params, opt_state, loss, acc)``
    vmapped over runs (``vectorized=False``: for one run) and jitted, with the params and
    optimizer state donated."""
    bs = setup.batch_size
    steps = n_train // bs

    def batch_loss(p, x, y):
        return jnp.mean(jax.vmap(lambda xi, yi: setup.loss(apply(p, xi), yi))(x, y))

    step = train_step(batch_loss, setup.optimizer)

    def one_run(params, opt_state, order_key, train_x, train_y, eval_x, eval_y):
        batches = jax.random.permutation(order_key, n_train)[: steps * bs].reshape(steps, bs)

        def scan_step(carry, idx):
            p, o, loss = step(*carry, train_x[idx], train_y[idx])
            return (p, o), loss

        (params, opt_state), losses = jax.lax.scan(scan_step, (params, opt_state), batches)
        correct = jax.vmap(lambda xi, yi: setup.correct(apply(params, xi), yi))(eval_x, eval_y)
        return params, opt_state, jnp.mean(losses), jnp.mean(correct.astype(jnp.float32))

    if not vectorized:
        return jax.jit(one_run, donate_argnums=(0, 1))
    vmapped = jax.vmap(one_run, in_axes=(0, 0, 0, None, None, None, None))
    return jax.jit(vmapped, donate_argnums=(0, 1))


class Trainer:
    """All runs of one network, compiled once: ``run(epochs)`` trains from the initial
    params (so repeated runs reuse the compiled epoch and give the same history)."""

    def __init__(self, setup: Setup, arms: Mapping[str, Roles], seeds: Sequence[int], data: Dataset):
        self.setup = setup
        self.runs, self.initial_params = init_runs(setup, arms, seeds, data.train_x[0])
        module = setup.build(next(iter(arms.values())))  # same structure for every arm

        def apply(p, x):
            return module.apply({"params": p}, x)

        self.epoch_fn = make_epoch(setup, apply, len(data.train_x))
        self.seed_keys = jax.vmap(jax.random.key)(jnp.asarray([seed for _, seed in self.runs]))
        self.arrays = [jnp.asarray(a) for a in (data.train_x, data.train_y, data.eval_x, data.eval_y)]

    def run(self, epochs: int, progress: Callable[[int], None] | None = None) -> History:
        """Trains for ``epochs``; Ctrl-C returns the epochs completed so far."""
        params = jax.tree.map(jnp.copy, self.initial_params)  # the epoch donates its inputs
        opt_state = jax.vmap(self.setup.optimizer.init)(params)
        history = History(self.runs)
        try:
            for epoch in range(epochs):
                order_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(self.seed_keys, epoch)
                params, opt_state, loss, acc = self.epoch_fn(params, opt_state, order_keys, *self.arrays)
                epoch_loss, epoch_acc = np.asarray(loss), np.asarray(acc)
                history.loss.append(epoch_loss)
                history.accuracy.append(epoch_acc)
                if progress is not None:
                    progress(epoch + 1)
        except KeyboardInterrupt:
            return history
        history.complete = True
        return history


def train(
    setup: Setup,
    arms: Mapping[str, Roles],
    seeds: Sequence[int],
    data: Dataset,
    epochs: int,
    progress: Callable[[int], None] | None = None,
) -> History:
    """Trains every arm x seed for ``epochs``; Ctrl-C returns the epochs completed so far."""
    return Trainer(setup, arms, seeds, data).run(epochs, progress)
