"""Benchmark: the vectorized study trainer against the per-run loops a user would write.

For a network, every side trains every (scheme, seed) run for the same epochs on the same
examples with the same optimizer steps:

* **vectorized**: ``experiments.train.Trainer`` — all runs in one jitted program (vmap
  over runs, ``lax.scan`` over steps, one dispatch per epoch);
* **per-run epochs** (the fair baseline: the best non-vectorized program): for each run
  in turn, each epoch jitted whole (``lax.scan`` over its steps, the same epoch function
  as the trainer's without the vmap), one Python loop over runs and epochs;
* **per-run steps**: for each run in turn, a Python loop over steps calling one jitted
  single-step update (the usual hand-written training loop). Its ratio mostly measures
  Python dispatch per step, not what vectorizing buys; it is reported, labelled, beside
  the fair one.

Everything is compiled before timing (a warm-up epoch or step each); each time is the median
of ``--repeats`` timed runs. ``vs epochs`` is
``per-run epochs / vectorized`` (the gain from vectorizing seeds and schemes);
``vs steps`` is ``per-run steps / vectorized``. Wall-clock figures on shared machines are
noisy: read the ratios, and rerun.

Run: ``python benchmarks/bench_study.py [--quick] [--json PATH]``; the run is written to
``benchmarks/results/bench_study.json`` (``--quick``: ``bench_study.quick.json``), which
``benchmarks/render.py`` turns into README's table.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence

import _common
import jax
import jax.numpy as jnp
import numpy as np

from experiments import demos
from experiments.data import load_mnist_sample
from experiments.networks import arms_for, setup_for
from experiments.train import Dataset, Trainer, init_runs, make_epoch
from flaxinit import tooling

SEEDS = (1, 2, 3, 4, 5)


def _module_apply(setup, arms):
    module = setup.build(next(iter(arms.values())))  # same structure for every arm
    return lambda p, x: module.apply({"params": p}, x)


def per_run_steps(setup, arms, data: Dataset, epochs: int) -> float:
    """Every run separately, a Python loop over jitted single steps; returns seconds."""
    runs, params = init_runs(setup, arms, SEEDS, data.train_x[0])
    apply = _module_apply(setup, arms)

    def loss(p, x, y):
        return jnp.mean(jax.vmap(lambda xi, yi: setup.loss(apply(p, xi), yi))(x, y))

    step = jax.jit(tooling.train_step(loss, setup.optimizer))

    bs = setup.batch_size
    steps = len(data.train_x) // bs
    x_all, y_all = jnp.asarray(data.train_x), jnp.asarray(data.train_y)
    p0 = jax.tree.map(lambda a: a[0], params)
    jax.block_until_ready(step(p0, setup.optimizer.init(p0), x_all[:bs], y_all[:bs]))  # compile
    start = time.perf_counter()
    for r, (_, seed) in enumerate(runs):
        p = jax.tree.map(lambda a, r=r: a[r], params)
        o = setup.optimizer.init(p)
        for epoch in range(epochs):
            order = np.asarray(jax.random.permutation(jax.random.fold_in(jax.random.key(seed), epoch), len(x_all)))
            for s in range(steps):
                idx = order[s * bs : (s + 1) * bs]
                p, o, _ = step(p, o, x_all[idx], y_all[idx])
        jax.block_until_ready(p)
    return time.perf_counter() - start


def per_run_epochs(setup, arms, data: Dataset, epochs: int) -> float:
    """Every run separately, each epoch one jitted ``lax.scan`` over its steps; returns seconds."""
    runs, params = init_runs(setup, arms, SEEDS, data.train_x[0])
    epoch_fn = make_epoch(setup, _module_apply(setup, arms), len(data.train_x), vectorized=False)
    arrays = [jnp.asarray(a) for a in (data.train_x, data.train_y, data.eval_x, data.eval_y)]

    def run_one(r: int, seed: int, epochs: int):
        p = jax.tree.map(lambda a: jnp.copy(a[r]), params)  # the epoch donates its inputs
        o = setup.optimizer.init(p)
        for epoch in range(epochs):
            p, o, loss, _ = epoch_fn(p, o, jax.random.fold_in(jax.random.key(seed), epoch), *arrays)
        return jax.block_until_ready(loss)

    run_one(0, runs[0][1], 1)  # compile
    start = time.perf_counter()
    for r, (_, seed) in enumerate(runs):
        run_one(r, seed, epochs)
    return time.perf_counter() - start


def vectorized(setup, arms, data: Dataset, epochs: int) -> float:
    trainer = Trainer(setup, arms, SEEDS, data)
    trainer.run(1)  # compile
    start = time.perf_counter()
    history = trainer.run(epochs)
    jax.block_until_ready(history.loss[-1])
    return time.perf_counter() - start


METHODS = (vectorized, per_run_epochs, per_run_steps)


def cases(quick: bool) -> dict[str, tuple[Dataset, int]]:
    mnist = load_mnist_sample()
    n = 128 if quick else 512
    eye = np.eye(10, dtype=np.float32)
    dense = Dataset(
        mnist.train_images[:n], eye[mnist.train_labels[:n]], mnist.test_images[:64], eye[mnist.test_labels[:64]]
    )
    return {"counting": (demos.counting_data(), 10 if quick else 40), "mnist-dense": (dense, 1)}


def main(argv: Sequence[str] | None = None) -> int:
    args = _common.parse(_common.parser("bench_study", __doc__, default_repeats=3, quick_repeats=1), argv)
    repeats = args.repeats
    header = ("network", "runs", "steps/run", "vectorized", "per-run epochs", "per-run steps", "vs epochs", "vs steps")
    print("{:<12} {:>5} {:>10} {:>11} {:>15} {:>14} {:>10} {:>9}".format(*header))
    results = []
    for network, (data, epochs) in cases(args.quick).items():
        setup, arms = setup_for(network), arms_for(network)
        samples = {fn.__name__: [fn(setup, arms, data, epochs) for _ in range(repeats)] for fn in METHODS}
        vec_s, epochs_s, steps_s = (statistics.median(samples[fn.__name__]) for fn in METHODS)
        row = {
            "network": network,
            "runs": len(arms) * len(SEEDS),
            "epochs": epochs,
            "steps_per_run": epochs * (len(data.train_x) // setup.batch_size),
            "vectorized_s": vec_s,
            "per_run_epochs_s": epochs_s,
            "per_run_steps_s": steps_s,
            "samples_s": samples,
            "speedup_vs_per_run_epochs": epochs_s / vec_s,
            "speedup_vs_per_run_steps": steps_s / vec_s,
        }
        results.append(row)
        print(
            f"{network:<12} {row['runs']:>5} {row['steps_per_run']:>10} {vec_s:>10.2f}s {epochs_s:>14.2f}s "
            f"{steps_s:>13.2f}s {row['speedup_vs_per_run_epochs']:>9.2f}x {row['speedup_vs_per_run_steps']:>8.1f}x"
        )
    doc = {
        "quick": args.quick,
        "repeats": repeats,
        "seeds": list(SEEDS),
        "machine": tooling.machine(),
        "results": results,
    }
    _common.store(args, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
