"""Benchmark: ``mc.coord_check`` against microsoft/mup's ``get_coord_data`` loop, written in JAX.

Run it as ``python benchmarks/bench_coord.py`` (``--quick`` for a short smoke run). The run is
stored as ``benchmarks/results/bench_coord.json`` (``--quick``: ``bench_coord.quick.json``; on
another backend than the CPU, ``bench_coord.<backend>.json``, e.g. ``bench_coord.gpu.json``;
``--out PATH`` (or ``--json PATH``) anywhere), with the machine and JAX backend it ran on.

What it measures
----------------
One coordinate check (SPEC §10) of the reference MLP under μP, ``mc.width_model("mlp",
"mup")`` (two ``relu(Dense(width))`` layers and a 10-way ``readout``), at widths 64, 128,
256, 512 and 1024 (base width 64), 8 seeds, 3 Adam steps at learning rate 0.01 on one fixed
batch of 64 standard-normal rows of 3072 features (a CIFAR-10 batch's shape, as in
microsoft/mup's MLP example) with random labels. Both methods record, before each update,
every layer output's mean |a| and the loss, and reduce them to the mean over seeds and its
standard error per (width, step, layer):

* ``coord_check``: ``mc.coord_check(model, widths, x, y, base_width=64, lr=0.01, steps=3,
  seeds=8, key=seed)``: per width one jitted program over the seeds (``vmap`` on
  accelerators, ``lax.map`` inside the program on CPUs) of a ``lax.scan`` over the steps
  that update, then the last step's forward pass alone (its gradient and update, which the
  loop computes, are never read), the layers read by mc's capture.
* ``loop``: microsoft/mup's ``get_coord_data`` as a JAX user writes it with the public
  ``flaxinit.mup`` API: for each seed, for each width (its order), a jitted init (the Flax
  draw rescaled by ``mup.rescale`` against ``mup.infshapes`` of the base model, and
  ``mup.adamw``'s state), then per step a jitted step (loss, gradient, Adam update) that
  returns the loss and each layer's mean |a| read with linen's ``capture_intermediates``;
  after each step every layer's mean and the loss are brought to the host as Python floats
  (``get_coord_data``'s forward hooks call ``.item()`` per module per step). The init and
  the step are jitted once per width and reused across seeds.

Before any timing, the first call of each is checked to compute the same thing: the same
seeds' keys (``fold_in(philox_key(seed), s)``, as ``coord_check`` draws them), so every
(width, step, layer) mean |a| and every loss must agree to ``TOLERANCE`` (relative): float32
rounding of differently batched programs, passed through Adam's ``g / sqrt(v)`` (the bound
tests/test_coord.py uses). A disagreement stops the benchmark before it stores anything.
Matrix products run at float32's full precision (``jax_default_matmul_precision="highest"``):
on GPUs the default rounds their inputs to TF32 (about 1e-3 relative), which differently
batched programs then do differently, beyond float32's bound (a GPU run found 9e-4 on the
loss); on CPUs this changes nothing.

Cold and warm
-------------
* **cold**: every program compiled inside the timed call: ``coord_check`` of a model factory
  it has not seen (a new ``lambda``), and the loop building its jitted functions in the call
  (each width's init and step compiled on first use, then reused across seeds). This is what
  running one coordinate check costs in a fresh process.
* **warm**: both with compiled programs at hand: ``coord_check`` of the same factory again
  (it keeps the programs of recent widths, keyed by everything but the learning rate, the
  batch's values and the keys), and the loop reusing an earlier call's programs: what a
  session that reruns the check (another learning rate, another batch) pays.
* ``excluding compilation``: the wall time during which each cold call had an XLA compilation
  running (``/jax/core/compile/backend_compile_duration``, from ``jax.monitoring``; the
  union of the compilations' intervals, since ``coord_check`` compiles the next widths on
  worker threads while one runs) subtracted from its time, for both. Tracing and lowering stay
  in (stored as ``trace_and_lower_s``).

The first call of each method also pays JAX's and Flax's one-time costs (small programs of
the first eager operations, caches): it is stored as ``first_call_s`` and not in the medians.
Each repeat then times the four once, in a seeded random order; ratios are the median over
repeats of ``loop time / coord_check time`` within one repeat. Target (issue 21):
``coord_check`` at least 5x faster than the loop; both the cold and the warm verdict are stored.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _common
import jax
import jax.numpy as jnp
import numpy as np
import optax

import flaxinit
import mc
from flaxinit import mup, tooling

NAME = "bench_coord"
TARGET = 5.0
TOLERANCE = 1e-4
WIDTHS = (64, 128, 256, 512, 1024)
QUICK = {"widths": (32, 64), "seeds": 2, "steps": 2, "batch": 16, "features": 64}
FULL = {"widths": WIDTHS, "seeds": 8, "steps": 3, "batch": 64, "features": 3072}
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
TRACE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration")
METHODS = ("coord_check cold", "coord_check warm", "loop cold", "loop warm")

_events: dict[str, float] = {}
_compiling: list[tuple[float, float]] = []  # (start, end) of each XLA compilation


def _listen(event: str, duration: float, **_: Any) -> None:
    _events[event] = _events.get(event, 0.0) + duration
    if event == COMPILE_EVENT:  # reported as it ends, from whichever thread compiled
        end = time.perf_counter()
        _compiling.append((end - duration, end))


jax.monitoring.register_event_duration_secs_listener(_listen)


def covered(intervals: list[tuple[float, float]]) -> float:
    """The length of the union of ``(start, end)`` intervals: compilations running on several
    threads at once count once."""
    total, reach = 0.0, -math.inf
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def timed(fn: Callable[[], Any]) -> tuple[float, float, float, Any]:
    """``(seconds, seconds while XLA compiled, tracing and lowering seconds, result)`` of one call."""
    _events.clear()
    _compiling.clear()
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    elapsed = time.perf_counter() - start
    return elapsed, covered(_compiling), sum(_events.get(e, 0.0) for e in TRACE_EVENTS), out


def xent(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels))


def width_programs(model_at, width: int, base_width: int, x, y, lr: float) -> tuple[Callable, Callable]:
    """A width's jitted ``init(key) -> (params, opt_state)`` and ``step(params, opt_state) ->
    (params, opt_state, loss, {layer: mean |a|})``, from the public μP API."""
    model = model_at(width)
    base = jax.eval_shape(model_at(base_width).init, jax.random.key(0), x)
    shapes = mup.infshapes(base, jax.eval_shape(model.init, jax.random.key(0), x))
    tx = mup.adamw(lr, shapes=shapes)

    @jax.jit
    def init(key):
        params = mup.rescale(model.init(key, x)["params"], shapes)
        return params, tx.init(params)

    @jax.jit
    def step(params, opt_state):
        def objective(p):
            out, state = model.apply({"params": p}, x, capture_intermediates=True, mutable=["intermediates"])
            return xent(out, y), state["intermediates"]

        (loss, inter), grads = jax.value_and_grad(objective, has_aux=True)(params)
        # each submodule's __call__ output; the model's own is the output
        means = {name: jnp.mean(jnp.abs(v["__call__"][0])) for name, v in inter.items() if name != "__call__"}
        means["(output)"] = jnp.mean(jnp.abs(inter["__call__"][0]))
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, means

    return init, step


def make_loop(model_at, opts: argparse.Namespace, x, y) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """``(cold, warm)``: the loop building its programs in the call, and the loop reusing a cold call's."""
    kept: dict[int, tuple[Callable, Callable]] = {}

    def run(programs: dict[int, tuple[Callable, Callable]]) -> dict[str, Any]:
        key = mc.philox_key(opts.seed)
        records: list[tuple[int, int, str, float]] = []  # get_coord_data's rows: width, t, module, l1
        losses: dict[tuple[int, int], list[float]] = {}
        for s in range(opts.seeds):
            seed_key = jax.random.fold_in(key, s)
            for width in opts.widths:
                if width not in programs:  # built on first use (cold), then reused across seeds
                    programs[width] = width_programs(model_at, width, opts.base_width, x, y, opts.lr)
                init, step = programs[width]
                params, opt_state = init(seed_key)
                for t in range(1, opts.steps + 1):
                    params, opt_state, loss, means = step(params, opt_state)
                    records.extend((width, t, name, float(m)) for name, m in means.items())  # .item() per module
                    losses.setdefault((width, t), []).append(float(loss))
        return summarize(records, losses)

    def cold() -> dict[str, Any]:
        programs: dict[int, tuple[Callable, Callable]] = {}
        out = run(programs)
        kept.clear()
        kept.update(programs)
        return out

    def warm() -> dict[str, Any]:
        if not kept:
            raise RuntimeError("the warm loop reuses a cold call's programs: run the cold loop first")
        return run(kept)

    return cold, warm


def summarize(records: list[tuple[int, int, str, float]], losses: dict[tuple[int, int], list[float]]) -> dict:
    """``{"rows": {(width, step, layer): (mean, se)}, "losses": {(width, step): mean}}`` over seeds."""
    groups: dict[tuple[int, int, str], list[float]] = {}
    for width, t, name, value in records:
        groups.setdefault((width, t, name), []).append(value)
    rows = {k: (float(np.mean(v)), float(np.std(v, ddof=1) / math.sqrt(len(v)))) for k, v in groups.items()}
    return {"rows": rows, "losses": {k: float(np.mean(v)) for k, v in losses.items()}}


def make_coord(model_at, opts: argparse.Namespace, x, y) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """``(cold, warm)``: ``coord_check`` of a model factory it has not seen (every program compiled
    in the call), and of the same factory again (its compiled programs reused)."""

    def check(factory):
        return mc.coord_check(
            factory, opts.widths, x, y, base_width=opts.base_width, lr=opts.lr, steps=opts.steps, seeds=opts.seeds,
            key=opts.seed,
        )  # fmt: skip

    def cold():
        return check(lambda width: model_at(width))  # a new factory: nothing compiled for it yet

    return cold, lambda: check(model_at)


def compare(result: mc.CoordCheckResult, loop: dict[str, Any]) -> dict[str, Any]:
    """The largest relative differences between the two, per step; raises if any exceeds ``TOLERANCE``."""
    worst: dict[int, float] = {}
    for r in result.rows:
        mean, _ = loop["rows"][r.width, r.step, r.path]
        worst[r.step] = max(worst.get(r.step, 0.0), abs(r.mean_abs - mean) / abs(mean))
    if len(result.rows) != len(loop["rows"]):
        raise SystemExit(f"{NAME}: coord_check has {len(result.rows)} rows, the loop {len(loop['rows'])}")
    loss_diff = max(
        abs(v - loop["losses"][w, t + 1]) / abs(loop["losses"][w, t + 1])
        for w, per_step in zip(result.widths, result.losses, strict=True)
        for t, v in enumerate(per_step)
    )
    same = {"tolerance": TOLERANCE, "rows": len(result.rows), "layers": list(result.paths)}
    same.update(max_rel_diff_mean_abs={str(t): d for t, d in sorted(worst.items())}, max_rel_diff_loss=loss_diff)
    if max(worst.values()) > TOLERANCE or loss_diff > TOLERANCE:
        raise SystemExit(f"{NAME}: coord_check and the loop disagree beyond {TOLERANCE:g} (relative): {same}")
    return same


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = _common.parser(NAME, __doc__, default_repeats=4, quick_repeats=2)
    p.add_argument("--out", dest="json", type=Path, help="as --json: write the run here")
    p.add_argument("--widths", help=f"comma-separated (default {','.join(map(str, WIDTHS))}, --quick 32,64)")
    p.add_argument("--base-width", type=tooling.positive_int, help="the base model's width (default: the smallest)")
    p.add_argument("--seeds", type=tooling.positive_int, help="models per width (default 8, --quick 2)")
    p.add_argument("--steps", type=tooling.positive_int, help="steps recorded (default 3, --quick 2)")
    p.add_argument("--batch", type=tooling.positive_int, help="rows of the batch (default 64, --quick 16)")
    p.add_argument("--features", type=tooling.positive_int, help="input features (default 3072, --quick 64)")
    p.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate (default 0.01)")
    opts = _common.parse(p, argv)
    sizes = QUICK if opts.quick else FULL
    for name, default in sizes.items():
        if getattr(opts, name) is None:
            setattr(opts, name, default)
    if isinstance(opts.widths, str):
        opts.widths = tuple(tooling.positive_int(w) for w in opts.widths.split(","))
    opts.widths = tuple(sorted(set(opts.widths)))
    if len(opts.widths) < 2 or opts.seeds < 2:
        p.error("a coordinate check needs at least two widths and two seeds")
    opts.base_width = opts.base_width or opts.widths[0]
    if jax.default_backend() != "cpu":
        opts.name = f"{NAME}.{jax.default_backend()}"
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    jax.config.update("jax_default_matmul_precision", "highest")  # float32 products on every backend
    started = time.perf_counter()
    meta = {**tooling.machine(), "flaxinit": flaxinit.__version__, "loadavg_start": os.getloadavg()}
    meta.update(
        model='mc.width_model("mlp", "mup")', widths=list(opts.widths), base_width=opts.base_width,
        seeds=opts.seeds, steps=opts.steps, optimizer="adam", lr=opts.lr, batch=opts.batch, features=opts.features,
        classes=10, matmul_precision="highest", repeats=opts.repeats, quick=opts.quick, seed=opts.seed,
        timing="cold: every program compiled inside the timed call (coord_check of a factory it has not seen; the "
        "loop building its jitted functions in the call); warm: both reusing an earlier call's compiled programs; "
        "excluding compilation: each cold call minus the wall time while an XLA compilation ran (the union of "
        "jax.monitoring backend_compile_duration intervals); first calls not in the medians",
    )  # fmt: skip
    print(
        f"coordinate check of mc.width_model('mlp', 'mup'): widths {list(opts.widths)}, {opts.seeds} seeds, "
        f"{opts.steps} Adam steps (lr {opts.lr:g}), batch {opts.batch}x{opts.features}; {meta['backend']} "
        f"({meta['device_kind']}), {meta['cpu_count']} CPUs, load average {meta['loadavg_start'][0]:.2f}"
    )
    kx, ky = jax.random.split(jax.random.key(opts.seed))
    x = jax.random.normal(kx, (opts.batch, opts.features), jnp.float32)
    y = jax.random.randint(ky, (opts.batch,), 0, 10)
    model_at = mc.width_model("mlp", "mup")
    loop_cold, loop_warm = make_loop(model_at, opts, x, y)
    coord_cold, coord_warm = make_coord(model_at, opts, x, y)
    fns = {"coord_check cold": coord_cold, "coord_check warm": coord_warm, "loop cold": loop_cold,
           "loop warm": loop_warm}  # fmt: skip

    first: dict[str, float] = {}
    first["coord_check"], _, _, result = timed(coord_warm)  # compiles the programs the warm calls reuse
    first["loop"], _, _, loop = timed(loop_cold)
    same = compare(result, loop)
    print(
        f"same numbers: {same['rows']} (width, step, layer) rows; largest relative difference of mean |a| per step "
        + ", ".join(f"t={t} {d:.1e}" for t, d in same["max_rel_diff_mean_abs"].items())
        + f"; of the loss {same['max_rel_diff_loss']:.1e} (tolerance {TOLERANCE:g})"
    )
    print(f"first calls (JAX's one-time costs included): coord_check {first['coord_check']:.2f} s, loop "
          f"{first['loop']:.2f} s")  # fmt: skip

    times: dict[str, list[float]] = {m: [] for m in METHODS}
    compile_s: dict[str, list[float]] = {m: [] for m in METHODS}
    trace_s: dict[str, list[float]] = {m: [] for m in METHODS}
    order = random.Random(opts.seed)
    for i in range(opts.repeats):
        for m in order.sample(list(fns), len(fns)):
            elapsed, compiling, tracing, _ = timed(fns[m])
            times[m].append(elapsed)
            compile_s[m].append(compiling)
            trace_s[m].append(tracing)
        print(f"  repeat {i + 1}: " + ", ".join(f"{m} {times[m][-1]:.2f} s ({compile_s[m][-1]:.2f} s compiling)"
                                                for m in METHODS))  # fmt: skip

    def ratio(num: Callable[[int], float], den: Callable[[int], float]) -> float:
        return statistics.median(num(i) / den(i) for i in range(opts.repeats))

    ratios = {
        "cold": ratio(lambda i: times["loop cold"][i], lambda i: times["coord_check cold"][i]),
        "warm": ratio(lambda i: times["loop warm"][i], lambda i: times["coord_check warm"][i]),
        "excluding compilation": ratio(
            lambda i: times["loop cold"][i] - compile_s["loop cold"][i],
            lambda i: times["coord_check cold"][i] - compile_s["coord_check cold"][i],
        ),
    }
    median = {m: statistics.median(times[m]) for m in METHODS}
    median_compile = {m: statistics.median(compile_s[m]) for m in METHODS}
    median_run = {m: statistics.median(t - c for t, c in zip(times[m], compile_s[m], strict=True)) for m in METHODS}
    print(f"median of {opts.repeats}: " + ", ".join(f"{m} {median[m]:.2f} s ({median_compile[m]:.2f} s compiling)"
                                                    for m in METHODS))  # fmt: skip
    print(
        f"loop / coord_check: cold {ratios['cold']:.2f}x; warm {ratios['warm']:.2f}x; cold excluding XLA "
        f"compilation {ratios['excluding compilation']:.2f}x"
    )
    met = {kind: ratios[kind] >= TARGET for kind in ("cold", "warm")}
    for kind in ("cold", "warm"):
        print(f"TARGET {'MET' if met[kind] else 'MISSED'} ({kind}): loop / coord_check {ratios[kind]:.2f}x "
              f"(>= {TARGET:g}x)")  # fmt: skip
    meta.update(loadavg_end=os.getloadavg(), elapsed_s=time.perf_counter() - started)
    print(f"benchmark time: {meta['elapsed_s']:.0f} s")
    doc = {
        "meta": meta,
        "same_work": same,
        "first_call_s": first,
        "times_s": times,
        "compile_s": compile_s,
        "trace_and_lower_s": trace_s,
        "median_s": median,
        "median_compile_s": median_compile,
        "median_excluding_compile_s": median_run,
        "ratio": ratios,
        "verdict": {"target": TARGET, "met": met},
    }
    _common.store(opts, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
