"""Benchmark: ``mc.audit`` on a deep MLP against the loop a user would write.

Run it as ``python benchmarks/bench_audit.py`` (``--quick`` for a short run). The run is
stored as ``benchmarks/results/bench_audit.json`` (``--quick``: ``bench_audit.quick.json``).

What it measures
----------------
The models: ``mc``'s reference MLP, ``--depth`` layers (default 20) of
``relu(Dense(width))`` for each of ``--widths`` (default 32 and 128), He normal kernels, a
batch of 16 standard-normal inputs per initialization. Both methods compute, for every
initialization, every layer's mean |activation|, mean square and fraction of zeros, and
every parameter's mean square and mean square gradient of the summed output; both
accumulate means and standard errors.

* ``audit``: ``mc.audit_task(model, inputs, iterations, key=seed, fresh_inputs=True)``,
  compiled by one run, then timed: a complete audit (it also measures each layer's output
  gradient, which the loop below skips).
* ``loop``: a Python loop over seeds, as a user would write it with the tools at hand:
  ``jax.jit`` of ``model.init``, ``jax.jit`` of a function returning the
  ``capture_intermediates`` activations and the parameter gradients, then NumPy statistics
  of the arrays brought to the host, accumulated in float64 (``--loop-iterations`` of them:
  a rate needs no more). Compiled by one iteration before timing.

* ``init only``: what drawing the weights alone costs: ``jax.jit(jax.vmap(model.init))`` of
  256 Philox keys. Where it is close to the audit's rate (wide layers: hundreds of
  thousands of normal draws per initialization), the draws bound both methods and no
  per-iteration overhead is left to save.

Each repeat times the three once, in a seeded random order; the ratio is the median over
repeats of the audit's rate (initializations per second) over the loop's. Target: at least
10x on the 2-core CPU the stored run comes from.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import _common
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import flaxinit
import mc
from flaxinit import tooling

NAME = "bench_audit"
TARGET = 10.0


def make_audit(model, inputs, iterations: int, seed: int) -> Callable[[], Any]:
    task = mc.audit_task(model, inputs, iterations, key=seed, fresh_inputs=True)
    return task.run


def make_loop(model, inputs, iterations: int, seed: int) -> Callable[[], Any]:
    shape = inputs.shape
    init = jax.jit(model.init)

    @jax.jit
    def forward_backward(variables, x):
        def loss(params):
            y, state = model.apply({**variables, "params": params}, x, capture_intermediates=True, mutable=True)
            return jnp.sum(y), state["intermediates"]

        grads, acts = jax.grad(loss, has_aux=True)(variables["params"])
        return acts, grads

    def loop() -> dict[str, tuple[float, float]]:
        totals: dict[str, list[float]] = {}

        def add(name: str, value: float) -> None:
            entry = totals.setdefault(name, [0.0, 0.0])
            entry[0] += value
            entry[1] += value * value

        for i in range(iterations):
            key_init, key_x = jax.random.split(jax.random.key(seed + i))
            x = jax.random.normal(key_x, shape)
            variables = init(key_init, x)
            acts, grads = forward_backward(variables, x)
            for path, value in jax.tree_util.tree_flatten_with_path(acts)[0]:
                a = np.asarray(value)
                name = jax.tree_util.keystr(path)
                add(f"{name} abs", float(np.abs(a).mean()))
                add(f"{name} ms", float((a * a).mean()))
                add(f"{name} zeros", float((a == 0).mean()))
            for (path, w), g in zip(
                jax.tree_util.tree_flatten_with_path(variables["params"])[0],
                jax.tree_util.tree_leaves(grads),
                strict=True,
            ):
                w, g = np.asarray(w), np.asarray(g)
                name = jax.tree_util.keystr(path)
                add(f"{name} w", float((w * w).mean()))
                add(f"{name} g", float((g * g).mean()))
        n = iterations
        return {k: (s / n, np.sqrt(max(q / n - (s / n) ** 2, 0.0) / max(n - 1, 1))) for k, (s, q) in totals.items()}

    return loop


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def make_init_only(model, inputs, count: int, seed: int) -> Callable[[], Any]:
    """Only the draws: ``count`` initializations at once (vmapped ``model.init``), no forward pass."""
    keys = jax.random.split(mc.philox_key(seed), count)
    init = jax.jit(jax.vmap(lambda k: model.init(k, inputs)))
    return lambda: init(keys)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = _common.parser(NAME, __doc__, default_repeats=5, quick_repeats=2)
    p.add_argument("--depth", type=tooling.positive_int, default=20)
    p.add_argument("--widths", default="32,128", help="MLP widths, comma-separated (default 32,128)")
    p.add_argument("--iterations", type=tooling.positive_int, help="audit iterations (default 4096, --quick 1024)")
    p.add_argument("--loop-iterations", type=tooling.positive_int, help="loop iterations (default 128, --quick 32)")
    opts = _common.parse(p, argv)
    opts.iterations = opts.iterations or (1024 if opts.quick else 4096)
    opts.loop_iterations = opts.loop_iterations or (32 if opts.quick else 128)
    opts.widths = [int(w) for w in opts.widths.split(",")]
    return opts


def measure(width: int, opts: argparse.Namespace) -> dict[str, Any]:
    model, inputs, _ = mc.reference_model("mlp", flaxinit.he_normal(), depth=opts.depth, width=width, batch=16)
    assert isinstance(model, nn.Module)
    fns = {
        "audit": make_audit(model, inputs, opts.iterations, opts.seed),
        "loop": make_loop(model, inputs, opts.loop_iterations, opts.seed),
        "init only": make_init_only(model, inputs, 256, opts.seed),
    }
    counts = {"audit": opts.iterations, "loop": opts.loop_iterations, "init only": 256}
    first = {m: timed(fn) for m, fn in fns.items()}  # compiles
    times: dict[str, list[float]] = {m: [] for m in fns}
    order = random.Random(opts.seed)
    for _ in range(opts.repeats):
        for m in order.sample(list(fns), len(fns)):
            times[m].append(timed(fns[m]))
    rates = {m: [counts[m] / t for t in times[m]] for m in fns}
    ratio = statistics.median(a / b for a, b in zip(rates["audit"], rates["loop"], strict=True))
    rate = {m: counts[m] / statistics.median(times[m]) for m in fns}
    params = sum(x.size for x in jax.tree_util.tree_leaves(jax.eval_shape(model.init, jax.random.key(0), inputs)))
    print(
        f"width {width} ({params} parameters): audit {rate['audit']:.0f}/s, loop {rate['loop']:.0f}/s, drawing "
        f"the weights alone {rate['init only']:.0f}/s; audit / loop {ratio:.1f}x"
    )
    return {"width": width, "parameters": params, "rate": rate, "first_call_s": first, "times_s": times, "ratio": ratio}


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    meta = {**tooling.machine(), "flaxinit": flaxinit.__version__, "depth": opts.depth, "widths": opts.widths}
    meta.update(repeats=opts.repeats, iterations=opts.iterations, loop_iterations=opts.loop_iterations)
    meta["quick"] = opts.quick
    print(f"{opts.depth}-layer ReLU MLPs, batch 16, He normal; {meta['backend']}, {meta['cpu_count']} CPUs")
    rows = [measure(width, opts) for width in opts.widths]
    verdicts = {str(r["width"]): r["ratio"] >= TARGET for r in rows}
    for r in rows:
        met = verdicts[str(r["width"])]
        verdict = "MET" if met else "MISSED"
        print(f"TARGET {verdict} at width {r['width']}: audit / loop {r['ratio']:.1f}x (>= {TARGET:g}x)")
    _common.store(opts, {"meta": meta, "widths": rows, "verdict": {"target": TARGET, "met": verdicts}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
