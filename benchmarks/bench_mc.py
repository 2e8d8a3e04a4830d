"""Benchmark: the Monte Carlo engine on the standard test against its generator's limit, threefry, NumPy, Python.

Run it as ``python benchmarks/bench_mc.py`` (``--quick`` for a short run, ``--help`` for the
rest). The run is written to ``benchmarks/results/bench_mc.json`` (``--quick``:
``bench_mc.quick.json``; ``--device gpu``: ``bench_mc.gpu.json``; ``--json PATH``
elsewhere), with the machine and device it ran on; ``benchmarks/render.py`` renders README's
table from that file.

What it measures
----------------
The article's standard test with the standard Xavier bound ``b = 1/sqrt(n)``: all-ones
input, so each iteration draws ``n`` weights ``U(-b, b)`` and the statistic is
``|sum of the n weights|``; the estimate is its mean over the iterations. A *sample* is one
``U(-b, b)`` draw, so an iteration is ``n`` samples and every rate below is in samples per
second. For each ``n`` in the article's sizes (1, 5, 25, 100, 300, 1000), with the same
number of iterations for every size (as ``python -m mc reproduce`` runs them), in one
process, on JAX's default device:

* ``engine``: the package under test with its default generator. ``[task] =
  mc.standard_tasks(mc.philox_key(seed), [n], iterations, flaxinit.xavier_standard())``
  (the Task behind ``mc.standard_test(seed, ...)``); one ``task.run()`` compiles it, then
  each timed ``task.run()`` is a complete Monte Carlo run: Philox keys by substream (no
  hash), the initializer drawing a group of iterations' kernels at once, ``tree_sum``
  block sums, exact host-side accumulation, the final moments.
* ``limit``: what the same generator needs just to produce the numbers. One ``jax.jit`` of a
  ``lax.fori_loop`` over chunks of about ``2**16`` samples (whole iterations): per chunk one
  ``jax.random.uniform(fold_in(key, chunk), (rows * n,), float32, -b, b)`` from the same
  Philox key, reshaped to ``(rows, n)``, and ``sum(|row sums|)`` added to a float32 total. No
  per-iteration keys, no exact accumulation, no block statistics. Compiled before timing.
* ``limit (A/A)``: a second, separately compiled copy of the limit. Its ratio to the limit
  should be 1.00; its distance from 1.00 is the noise floor of the run.
* ``threefry``: the engine with ``jax.random.key(seed)``: JAX's default generator (and the
  engine's bits before Philox), one ``fold_in`` key per iteration.
* ``floor``: the engine with ``flaxinit.ones()``: the same run with no random numbers at
  all, so the engine's own cost per iteration (block sums, exact accumulation, calls). At
  small ``n`` it bounds ``engine / limit``: ``1 / (1 / limit + 1 / floor)`` is what the
  engine could reach if drawing cost what the limit pays.
* ``numpy64``: the vectorized baseline, ``rng.uniform(-b, b, size=(rows, n)).sum(1)``, abs,
  summed chunk by chunk (chunks of about ``2**17`` samples) over the same iterations;
  ``numpy.random.default_rng`` (PCG64), **float64**.
* ``numpy32``: the same in float32 (``rng.random(size, dtype=float32) * 2b - b``).
* ``python``: the article-style loop, ``random.uniform(-b, b)`` summed ``n`` times per
  iteration, ``abs``, mean (``random.Random`` seeded, ``uniform`` bound to a local name). It
  runs far fewer iterations (about ``--python-samples`` samples per ``n``): samples/s is a
  rate, so its count need not match; every other method runs exactly ``iterations``.

Each repeat times every (n, method) once, in a fresh seeded random order per ``n``, so a burst
of load from other processes hits the baseline and the candidates alike. ``all sizes`` is
total samples over total time (per method, summed over the sizes of one repeat): with equal
iterations per size it is dominated by the large sizes, as a ``reproduce`` run is.

How to read it
--------------
The rate columns are millions of samples per second from each method's median time. The
ratio columns are the median, over repeats, of ``engine rate / other rate`` within one repeat:
``eng/limit`` 0.80 means the engine runs at 80 % of the bare generator's speed. ``A/A`` is
``limit (A/A) / limit`` (ideal 1.00). ``sanity`` checks every method's mean against the exact
``E|sum| = b g(n)`` (the standard error uses the exact variance ``n b**2 / 3 - mean**2``):
|z| above ~4 means a method computed something else (``floor`` is exempt: its weights are ones).

Targets (this 2-core CPU): engine >= 0.8x the limit and >= 25x pure Python at every ``n``;
over all sizes engine >= 1.6x NumPy float64 and >= 1x NumPy float32. The ``check`` column
names the targets a row misses.

Compile once: in a fresh ``python -c``, the wall time of a first and a second
``mc.standard_test(0, [1, 5, 25, 100, 300, 1000], 4096)``: the second reuses the compiled
kernels (target: under 0.5 s).

Peak memory: ``mc.standard_test(0, [100], iterations)`` in a fresh ``python -c`` subprocess
for ``10**5`` and ``10**7`` iterations (and, for reference, one that only imports and starts
the backend); each reads its ``VmHWM`` (the kernel's high-water mark of its resident memory)
from ``/proc/self/status`` at the end (``ru_maxrss`` is recorded but not used: a child of
fork + exec inherits its parent's). Target: the 10**7 run's peak within 10 % of the 10**5
run's: the engine streams, so memory must not grow with the iteration count.

Devices: ``--device cpu|gpu|tpu`` picks JAX's platform (``jax_platforms``); the JSON's
``meta`` records the backend, device kind and count. NumPy and Python stay on the host, so
their columns only compare hosts; README quotes the CPU run.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import _common
import jax
import jax.numpy as jnp
import numpy as np

import flaxinit
import mc
from flaxinit import tooling
from flaxinit.magnitude import expected_abs_sum

SIZES = (1, 5, 25, 100, 300, 1000)
METHODS = ("engine", "limit", "limit (A/A)", "threefry", "floor", "numpy64", "numpy32", "python")
#: engine rate / method rate must be at least this: at every n, and over all sizes.
TARGETS_PER_N = {"limit": 0.8, "python": 25.0}
TARGETS_ALL = {"numpy64": 1.6, "numpy32": 1.0}
SHORT = {"limit": "limit", "python": "python", "numpy64": "np64", "numpy32": "np32"}
LIMIT_CHUNK_SAMPLES = 2**16
NUMPY_CHUNK_SAMPLES = 2**17
MEMORY_N = 100
MEMORY_ITERATIONS = (10**5, 10**7)
MEMORY_TARGET = 1.10
COMPILE_ONCE_TARGET_S = 0.5
INIT = flaxinit.xavier_standard()

# Runs in a fresh interpreter: argv[1] iterations (0: import and start the backend only).
MEMORY_CODE = """
import json, resource, sys, time
t0 = time.perf_counter()
import jax, flaxinit, mc
jax.devices()
iterations, n = int(sys.argv[1]), int(sys.argv[2])
t1 = time.perf_counter()
mean = None
if iterations:
    [r] = mc.standard_test(0, [n], iterations, flaxinit.xavier_standard())
    mean = r.mean
t2 = time.perf_counter()
hwm = None
with open("/proc/self/status") as fh:
    for line in fh:
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"maxrss_kib": maxrss, "vmhwm_kib": hwm, "startup_s": t1 - t0, "run_s": t2 - t1, "mean": mean}))
"""

# Runs in a fresh interpreter: two identical standard tests, each timed.
COMPILE_ONCE_CODE = """
import json, time
import mc
times = []
for _ in range(2):
    start = time.perf_counter()
    mc.standard_test(0, [1, 5, 25, 100, 300, 1000], 4096)
    times.append(time.perf_counter() - start)
print(json.dumps({"first_s": times[0], "second_s": times[1]}))
"""

NAME = "bench_mc"


def pow2_rows(n: int, chunk_samples: int, iterations: int) -> int:
    """Iterations per chunk: a power of two (so it divides ``iterations``), about ``chunk_samples / n``."""
    rows = 2 ** int(math.log2(max(1, chunk_samples // n)))
    return min(rows, iterations)


# --- the methods: each a function of no arguments returning the estimated mean -------------


def make_engine(n: int, iterations: int, key: jax.Array, init: flaxinit.Initializer = INIT) -> Callable[[], float]:
    [task] = mc.standard_tasks(key, [n], iterations, init)

    def engine() -> float:
        return task.run().mean

    return engine


def make_limit(n: int, iterations: int, key: jax.Array) -> Callable[[], float]:
    bound = INIT.bound((n, 1))
    rows = pow2_rows(n, LIMIT_CHUNK_SAMPLES, iterations)
    chunks = iterations // rows

    @jax.jit
    def total(key):
        def body(i, acc):
            u = jax.random.uniform(jax.random.fold_in(key, i), (rows * n,), jnp.float32, -bound, bound)
            return acc + jnp.abs(u.reshape(rows, n).sum(axis=1)).sum()

        return jax.lax.fori_loop(0, chunks, body, jnp.float32(0))

    def limit() -> float:
        return float(total(key)) / iterations

    return limit


def make_numpy(n: int, iterations: int, seed: int, dtype: type) -> Callable[[], float]:
    bound = INIT.bound((n, 1))
    rows = pow2_rows(n, NUMPY_CHUNK_SAMPLES, iterations)
    rng = np.random.default_rng(seed)
    width, low = np.float32(2 * bound), np.float32(-bound)

    def numpy64() -> float:
        total = 0.0
        for start in range(0, iterations, rows):
            u = rng.uniform(-bound, bound, size=(min(rows, iterations - start), n))
            total += float(np.abs(u.sum(1)).sum())
        return total / iterations

    def numpy32() -> float:
        total = 0.0
        for start in range(0, iterations, rows):
            u = rng.random((min(rows, iterations - start), n), dtype=np.float32) * width + low
            total += float(np.abs(u.sum(1)).sum())
        return total / iterations

    return numpy64 if dtype is np.float64 else numpy32


def make_python(n: int, iterations: int, seed: int) -> Callable[[], float]:
    bound = INIT.bound((n, 1))
    rng = random.Random(seed)

    def python() -> float:
        uniform = rng.uniform
        total = 0.0
        for _ in range(iterations):
            z = 0.0
            for _ in range(n):
                z += uniform(-bound, bound)
            total += abs(z)
        return total / iterations

    return python


# --- timing -----------------------------------------------------------------------------------------


def timed(fn: Callable[[], float]) -> tuple[float, float]:
    """(wall seconds, mean) of one call, with the garbage collector off."""
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        mean = fn()
        return time.perf_counter() - start, mean
    finally:
        if gc_enabled:
            gc.enable()


def z_score(n: int, mean: float, iterations: int) -> float:
    bound = INIT.bound((n, 1))
    expected = bound * expected_abs_sum(n)
    var = n * bound**2 / 3 - expected**2  # E z^2 = n b^2 / 3 exactly
    return (mean - expected) / math.sqrt(var / iterations)


def run_size(n: int, iterations: int, py_samples: int, repeats: int, seed: int) -> dict[str, Any]:
    py_iterations = max(1, round(py_samples / n))
    counts = {m: iterations for m in METHODS}
    counts["python"] = py_iterations
    philox, threefry = mc.philox_key(seed), jax.random.key(seed)
    fns = {
        "engine": make_engine(n, iterations, philox),
        "limit": make_limit(n, iterations, philox),
        "limit (A/A)": make_limit(n, iterations, philox),
        "threefry": make_engine(n, iterations, threefry),
        "floor": make_engine(n, iterations, philox, flaxinit.ones()),
        "numpy64": make_numpy(n, iterations, seed, np.float64),
        "numpy32": make_numpy(n, iterations, seed, np.float32),
        "python": make_python(n, py_iterations, seed),
    }
    first = {m: timed(fns[m])[0] for m in ("engine", "limit", "limit (A/A)", "threefry", "floor")}  # compile
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    means: dict[str, list[float]] = {m: [] for m in METHODS}
    order = np.random.default_rng([seed, n])
    for _ in range(repeats):
        for i in order.permutation(len(METHODS)):
            m = METHODS[i]
            t, mean = timed(fns[m])
            times[m].append(t)
            means[m].append(mean)
    return {
        "n": n,
        "bound": INIT.bound((n, 1)),
        "expected": INIT.bound((n, 1)) * expected_abs_sum(n),
        "iterations": counts,
        "samples": {m: counts[m] * n for m in METHODS},
        "first_call_s": first,
        "times_s": times,
        "means": means,
        "z": {m: z_score(n, means[m][-1], counts[m]) for m in METHODS if m != "floor"},
    }


def summarize(samples: dict[str, int], times: dict[str, list[float]], repeats: int, per_n: bool) -> dict[str, Any]:
    """Rates from median times, and per-repeat engine/other rate ratios (median over repeats)."""
    rates = {m: [samples[m] / x for x in times[m]] for m in METHODS}
    ratio = {
        m: statistics.median(rates["engine"][r] / rates[m][r] for r in range(repeats)) for m in METHODS if m != "engine"
    }
    rate = {m: samples[m] / statistics.median(times[m]) for m in METHODS}
    targets = TARGETS_PER_N if per_n else {**TARGETS_PER_N, **TARGETS_ALL}
    return {
        "rate": rate,
        "ratio": ratio,
        # what the engine could reach if its draws cost what the limit's do, over the limit
        "ceiling": (1 / (1 / rate["limit"] + 1 / rate["floor"])) / rate["limit"],
        "spread": {m: (max(times[m]) - min(times[m])) / statistics.median(times[m]) for m in METHODS},
        "aa": statistics.median(a / b for a, b in zip(times["limit"], times["limit (A/A)"], strict=True)),
        "misses": [SHORT[m] for m, target in targets.items() if ratio[m] < target],
    }


# --- fresh processes: peak memory, compile once ------------------------------------------------------


def run_code(code: str, *args: str) -> dict[str, Any]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=root, capture_output=True, text=True, check=False, timeout=900
    )
    if proc.returncode != 0:
        raise RuntimeError(f"subprocess {args} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_peak_memory() -> tuple[list[dict[str, Any]], float]:
    """Peak memory of fresh processes: import only, then 10**5 and 10**7 iterations; the 10**7 / 10**5 ratio."""
    print(f"\npeak memory of mc.standard_test at n={MEMORY_N}, each in a fresh subprocess (VmHWM, MiB):")
    memory = []
    for iterations in (0, *MEMORY_ITERATIONS):
        mem = {**run_code(MEMORY_CODE, str(iterations), str(MEMORY_N)), "iterations": iterations}
        memory.append(mem)
        label = "import + backend only" if iterations == 0 else f"{iterations:,} iterations"
        rate = f", {iterations * MEMORY_N / mem['run_s'] / 1e6:.1f}M samples/s" if iterations else ""
        print(f"  {label:>22}: {mem['vmhwm_kib'] / 1024:7.1f} MiB  (run {mem['run_s']:.1f} s{rate})")
    small, large = memory[1]["vmhwm_kib"], memory[2]["vmhwm_kib"]
    print(f"  ratio 10**7 / 10**5: {large / small:.3f}")
    return memory, large / small


def measure_compile_once() -> dict[str, Any]:
    out = run_code(COMPILE_ONCE_CODE)
    print(
        f"\ncompile once: mc.standard_test(0, [1, 5, 25, 100, 300, 1000], 4096) in a fresh process: "
        f"first call {out['first_s']:.2f} s, second {out['second_s']:.3f} s"
    )
    return out


# --- output -------------------------------------------------------------------------------------------


def fmt_rate(rate: float) -> str:
    return f"{rate / 1e6:.1f}"


def print_table(rows: list[dict[str, Any]]) -> None:
    rated = ("engine", "limit", "threefry", "floor", "numpy64", "numpy32", "python")
    compared = ("limit", "threefry", "numpy64", "numpy32", "python")
    headers = ("n", "samples", *rated, *(f"eng/{SHORT.get(m, m)}" for m in compared), "ceiling", "A/A", "check")
    table = []
    for r in rows:
        s = r["summary"]
        table.append(
            (
                str(r["n"]),
                f"{r['samples']['engine'] / 1e6:.1f}M",
                *(fmt_rate(s["rate"][m]) for m in rated),
                *(f"{s['ratio'][m]:.2f}x" for m in compared),
                f"{s['ceiling']:.2f}x",
                f"{s['aa']:.2f}",
                "ok" if not s["misses"] else "MISS " + ",".join(s["misses"]),
            )
        )
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]

    def line(cells):
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if i < len(headers) - 1 else c.ljust(w) for i, (c, w) in pairs)

    print("rates in millions of samples/s (median time); ratios: median over repeats of engine rate / method rate")
    print("ceiling: 1/(1/limit + 1/floor) over limit, the engine/limit its own overhead allows")
    print(line(headers).rstrip())
    print("  ".join("-" * w for w in widths))
    for i, cells in enumerate(table):
        if i == len(table) - 1:
            print()
        print(line(cells).rstrip())


# --- the run: parse, measure, report -------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = _common.parser(NAME, __doc__, default_repeats=5, quick_repeats=3)
    p.add_argument("--iterations", type=tooling.positive_int, help="iterations per n (default 2**20, --quick 2**17)")
    p.add_argument("--python-samples", type=tooling.positive_int, help="samples per n, pure Python (default 2**21)")
    p.add_argument("--no-memory", action="store_true", help="skip the fresh-process measurements")
    p.add_argument("--device", choices=("cpu", "gpu", "tpu"), help="JAX platform to run on (default: JAX's default)")
    opts = _common.parse(p, argv)
    if opts.iterations is None:
        opts.iterations = 2**17 if opts.quick else 2**20
    if opts.iterations % mc.BLOCK:
        p.error(f"--iterations must be a multiple of mc.BLOCK ({mc.BLOCK})")
    opts.python_samples = opts.python_samples or (2**19 if opts.quick else 2**21)
    if opts.device not in (None, "cpu"):
        opts.name = f"{NAME}.{opts.device}"
    return opts


def describe(opts: argparse.Namespace) -> dict[str, Any]:
    """The run's metadata (machine and device included), printed as a header."""
    devices = jax.devices()
    meta = {
        **tooling.machine(),
        "flaxinit": flaxinit.__version__,
        "platform": devices[0].platform,
        "device_count": len(devices),
        "devices": sorted({d.device_kind for d in devices}),
        "loadavg_start": os.getloadavg(),
        "repeats": opts.repeats,
        "iterations": opts.iterations,
        "python_samples": opts.python_samples,
        "quick": opts.quick,
        "seed": opts.seed,
        "test": "standard test, all-ones input, mean of |sum of n weights|, xavier_standard b = 1/sqrt(n)",
        "targets": {f"engine/{m} >= {t}x": "every n" for m, t in TARGETS_PER_N.items()}
        | {f"engine/{m} >= {t}x": "all sizes" for m, t in TARGETS_ALL.items()}
        | {"memory": f"peak(10**7 it) / peak(10**5 it) <= {MEMORY_TARGET} at n={MEMORY_N}"}
        | {"compile once": f"second identical mc.standard_test <= {COMPILE_ONCE_TARGET_S} s"},
    }
    print(
        f"flaxinit {meta['flaxinit']} | jax {meta['jax']} | {meta['platform']} x{meta['device_count']} "
        f"({', '.join(meta['devices'])}) | {meta['cpu_count']} CPUs | numpy {meta['numpy']} | "
        f"load average {meta['loadavg_start'][0]:.2f}"
    )
    print(
        f"standard test (all-ones input, mean |sum of n U(-b, b)|, b = 1/sqrt(n)); {opts.iterations} iterations per n, "
        f"~{opts.python_samples / 1e6:.1f}M samples for pure Python; {opts.repeats} repeats, interleaved"
    )
    print(
        "TARGETS: engine >= 0.8x limit and >= 25x python at every n; >= 1.6x numpy64 and >= 1x numpy32 over all "
        f"sizes; memory flat within {round(100 * (MEMORY_TARGET - 1))}%; second call <= {COMPILE_ONCE_TARGET_S} s\n"
    )
    return meta


def measure_sizes(opts: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every size's timings and summary, and their aggregate over all sizes."""
    rows = []
    for n in SIZES:
        row = run_size(n, opts.iterations, opts.python_samples, opts.repeats, opts.seed)
        row["summary"] = summarize(row["samples"], row["times_s"], opts.repeats, per_n=True)
        rows.append(row)
        rate = row["summary"]["rate"]
        shown = ("engine", "limit", "threefry", "numpy64")
        print(f"  n={n}: " + ", ".join(f"{m} {fmt_rate(rate[m])}M/s" for m in shown))
    total_samples = {m: sum(r["samples"][m] for r in rows) for m in METHODS}
    total_times = {m: [sum(r["times_s"][m][i] for r in rows) for i in range(opts.repeats)] for m in METHODS}
    aggregate = {"n": "all sizes", "samples": total_samples, "times_s": total_times}
    aggregate["summary"] = summarize(total_samples, total_times, opts.repeats, per_n=False)
    return rows, aggregate


def print_diagnostics(rows: list[dict[str, Any]], aggregate: dict[str, Any]) -> None:
    """The table, then the checks that say how far to trust it."""
    print()
    print_table([*rows, aggregate])
    print()
    zs = ", ".join(f"{m} {max(abs(r['z'][m]) for r in rows):.1f}" for m in METHODS if m != "floor")
    print(f"sanity, max |z| over n of each method's mean vs the exact b g(n): {zs}")
    print("A/A (limit vs its copy, ideal 1.00): " + ", ".join(f"n={r['n']} {r['summary']['aa']:.2f}" for r in rows))
    spreads = max(max(r["summary"]["spread"].values()) for r in rows)
    print(f"largest spread (max - min) / median of a row's times: {100 * spreads:.0f}%")


def judge(
    rows: list[dict[str, Any]], aggregate: dict[str, Any], mem_ratio: float | None, compile_once: dict | None
) -> dict[str, Any]:
    """Each target's verdict (met, and where it was missed), printed and returned for the JSON."""
    verdicts: dict[str, Any] = {}
    for m, target in {**TARGETS_PER_N, **TARGETS_ALL}.items():
        scope = [*rows, aggregate] if m in TARGETS_PER_N else [aggregate]
        missed = [str(r["n"]) for r in scope if r["summary"]["ratio"][m] < target]
        agg = aggregate["summary"]["ratio"][m]
        verdicts[f"engine/{m} >= {target}x"] = {"met": not missed, "missed_at": missed, "all_sizes": agg}
        where = f"; missed at n = {', '.join(missed)}" if missed else (" at every n" if m in TARGETS_PER_N else "")
        print(f"TARGET {'MISSED' if missed else 'MET'}: engine >= {target}x {m} (all sizes {agg:.2f}x){where}")
    if mem_ratio is not None:
        met = mem_ratio <= MEMORY_TARGET
        verdicts[f"peak memory ratio <= {MEMORY_TARGET}"] = {"met": met, "ratio": mem_ratio}
        print(f"TARGET {'MET' if met else 'MISSED'}: peak memory 10**7 vs 10**5 iterations {mem_ratio:.3f}x")
    if compile_once is not None:
        met = compile_once["second_s"] <= COMPILE_ONCE_TARGET_S
        verdicts[f"second call <= {COMPILE_ONCE_TARGET_S} s"] = {"met": met, **compile_once}
        print(f"TARGET {'MET' if met else 'MISSED'}: second identical standard_test {compile_once['second_s']:.3f} s")
    return verdicts


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.device:
        jax.config.update("jax_platforms", opts.device)
    meta = describe(opts)
    start = time.perf_counter()
    rows, aggregate = measure_sizes(opts)
    meta["timing_s"] = time.perf_counter() - start
    print_diagnostics(rows, aggregate)
    memory, mem_ratio = ([], None) if opts.no_memory else measure_peak_memory()
    compile_once = None if opts.no_memory else measure_compile_once()
    print()
    verdicts = judge(rows, aggregate, mem_ratio, compile_once)
    meta.update(loadavg_end=os.getloadavg(), elapsed_s=time.perf_counter() - start)
    print(f"benchmark time: {meta['elapsed_s']:.1f} s; load average now {meta['loadavg_end'][0]:.2f}")
    doc = {"meta": meta, "verdicts": verdicts, "sizes": rows, "all_sizes": aggregate, "memory": memory}
    _common.store(opts, {**doc, "compile_once": compile_once})
    return 0


if __name__ == "__main__":
    sys.exit(main())
