"""The vectorized study trainer against a per-run Python loop of the same model and steps.

For a network, both sides train every (scheme, seed) run for the same epochs on the
same examples with the same optimizer steps:

* **vectorized**: ``experiments.train.train`` — all runs in one jitted program (vmap
  over runs, ``lax.scan`` over steps, one dispatch per epoch);
* **per-run loop**: for each run in turn, a Python loop over steps calling one jitted
  single-step update (the usual hand-written training loop).

Both are compiled before timing (a warm-up epoch each). The ratio loop/vectorized is
the speed-up; the target on a 2-core CPU is >= 3x for binary counting and the dense
network. Wall-clock figures on shared machines are noisy: read the ratio, and rerun.

Run: ``python benchmarks/bench_study.py [--quick] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import demos
from experiments.data import load_mnist_sample
from experiments.networks import arms_for, setup_for
from experiments.train import Dataset, Trainer, init_runs


def per_run_loop(setup, arms, seeds, data: Dataset, epochs: int) -> float:
    """Trains every run separately with a Python loop over jitted steps; returns seconds."""
    runs, params = init_runs(setup, arms, seeds, data.train_x[0])
    module = setup.build(next(iter(arms.values())))

    def loss(p, x, y):
        return jnp.mean(jax.vmap(lambda xi, yi: setup.loss(module.apply({"params": p}, xi), yi))(x, y))

    @jax.jit
    def step(p, o, x, y):
        grads = jax.grad(loss)(p, x, y)
        updates, o = setup.optimizer.update(grads, o, p)
        return optax.apply_updates(p, updates), o

    bs = setup.batch_size
    steps = len(data.train_x) // bs
    x_all, y_all = jnp.asarray(data.train_x), jnp.asarray(data.train_y)
    # warm-up compile
    p0 = jax.tree.map(lambda a: a[0], params)
    jax.block_until_ready(step(p0, setup.optimizer.init(p0), x_all[:bs], y_all[:bs]))
    start = time.perf_counter()
    for r, (_, seed) in enumerate(runs):
        p = jax.tree.map(lambda a, r=r: a[r], params)
        o = setup.optimizer.init(p)
        for epoch in range(epochs):
            order = np.asarray(jax.random.permutation(jax.random.fold_in(jax.random.key(seed), epoch), len(x_all)))
            for s in range(steps):
                idx = order[s * bs : (s + 1) * bs]
                p, o = step(p, o, x_all[idx], y_all[idx])
        jax.block_until_ready(p)
    return time.perf_counter() - start


def vectorized(setup, arms, seeds, data: Dataset, epochs: int) -> float:
    trainer = Trainer(setup, arms, seeds, data)
    trainer.run(1)  # warm-up compile
    start = time.perf_counter()
    history = trainer.run(epochs)
    jax.block_until_ready(history.loss[-1])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    seeds = [1, 2, 3, 4, 5]
    mnist = load_mnist_sample()
    n = 128 if args.quick else 512
    eye = np.eye(10, dtype=np.float32)
    cases = {
        "counting": (demos.counting_data(), 10 if args.quick else 40),
        "mnist-dense": (
            Dataset(
                mnist.train_images[:n], eye[mnist.train_labels[:n]], mnist.test_images[:64], eye[mnist.test_labels[:64]]
            ),
            1,
        ),
    }
    print(f"{'network':<12} {'runs':>5} {'steps/run':>10} {'per-run loop':>13} {'vectorized':>11} {'speed-up':>9}")
    results = []
    for network, (data, epochs) in cases.items():
        setup, arms = setup_for(network), arms_for(network)
        loop_s = per_run_loop(setup, arms, seeds, data, epochs)
        vec_s = vectorized(setup, arms, seeds, data, epochs)
        steps = epochs * (len(data.train_x) // setup.batch_size)
        runs = len(arms) * len(seeds)
        print(f"{network:<12} {runs:>5} {steps:>10} {loop_s:>12.2f}s {vec_s:>10.2f}s {loop_s / vec_s:>8.1f}x")
        results.append({"network": network, "runs": runs, "steps_per_run": steps, "loop_s": loop_s,
                        "vectorized_s": vec_s, "speedup": loop_s / vec_s})  # fmt: skip
    met = all(r["speedup"] >= 3 for r in results)
    print(f"target >= 3x for counting and mnist-dense: {'MET' if met else 'NOT MET'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "machine": platform.platform(), "jax": jax.__version__}, f, indent=2)


if __name__ == "__main__":
    main()
