"""Benchmark: the Monte Carlo engine on the article's standard test, against pure Python, NumPy and a bare-JAX limit.

Run it as ``python benchmarks/bench_mc.py`` (``--quick`` for a short run, ``--help`` for the
rest). The run is written to ``benchmarks/results/bench_mc.json`` (``--quick``:
``bench_mc.quick.json``; ``--json PATH`` elsewhere), with the machine it ran on;
``benchmarks/render.py`` renders README's table from that file.

What it measures
----------------
The article's standard test with the standard Xavier bound ``b = 1/sqrt(n)``: all-ones
input, so each iteration draws ``n`` weights ``U(-b, b)`` and the statistic is
``|sum of the n weights|``; the estimate is its mean over the iterations. A *sample* is one
``U(-b, b)`` draw (a rescaled ``U(-1, 1)`` draw), so an iteration is ``n`` samples and every
rate below is in samples per second. For each ``n`` in the article's sizes
(1, 5, 25, 100, 300, 1000), in one process, on JAX's default device:

* ``engine``: the package under test. ``[task] = mc.standard_tasks(key, [n],
  iterations, flaxinit.xavier_standard())`` (the Task behind ``mc.standard_test``); one
  ``task.run()`` compiles it, then each timed ``task.run()`` is a complete Monte Carlo run
  of ``iterations`` iterations: per-iteration ``fold_in`` keys, the initializer called once
  per iteration, ``tree_sum`` block sums, exact host-side accumulation, the final moments.
* ``limit``: what the same backend needs just to produce the numbers. One ``jax.jit`` of a
  ``lax.fori_loop`` over chunks of about ``2**16`` samples (whole iterations): per chunk one
  ``jax.random.uniform(fold_in(key, chunk), (rows * n,), float32, -b, b)``, reshaped to
  ``(rows, n)``, and ``sum(|row sums|)`` added to a float32 total. No per-iteration keys, no
  exact accumulation. (Drawing the flat vector and reshaping is the faster of the two layouts
  on CPU, up to 2x at n = 1 against drawing ``(rows, n)`` directly.) Compiled before timing.
* ``limit (A/A)``: a second, separately compiled copy of the limit. Its ratio to the limit
  should be 1.00; its distance from 1.00 is the noise floor of the run.
* ``numpy64``: the vectorized baseline, ``rng.uniform(-b, b, size=(rows, n)).sum(1)``, abs,
  summed chunk by chunk (chunks of about ``2**17`` samples) over the same iterations;
  ``numpy.random.default_rng`` (PCG64), **float64**.
* ``numpy32``: the same in float32 (``rng.random(size, dtype=float32) * 2b - b``). Reference.
* ``python``: the article-style loop, ``random.uniform(-b, b)`` summed ``n`` times per
  iteration, ``abs``, mean (``random.Random`` seeded, ``uniform`` bound to a local name). It
  runs far fewer iterations (about ``--python-samples`` samples per ``n``): samples/s is a
  rate, so its count need not match; every other method gets exactly the same number of
  samples for a given ``n`` (``iterations`` is a multiple of ``mc.BLOCK``, no partial block).

Each repeat times every (n, method) once, in a fresh seeded random order per ``n``, so a burst
of load from other processes hits the baseline and the candidates alike. ``all sizes`` is
total samples over total time (per method, summed over the sizes of one repeat).

How to read it
--------------
The rate columns are millions of samples per second from each method's median time. The
ratio columns are the median, over repeats, of ``engine rate / other rate`` within one repeat:
``eng/limit`` 0.80 means the engine runs at 80 % of the bare generator's speed. ``A/A`` is
``limit (A/A) / limit`` (ideal 1.00). The line ``eng/limit by CPU time`` repeats that ratio from
the CPU time of this process instead of wall time (all methods here run on one core): load
from other processes inflates wall time but hardly CPU time. ``sanity`` checks every method's mean
against the exact ``E|sum| = b g(n)`` (the standard error uses the exact variance
``n b**2 / 3 - mean**2``): |z| above ~4 means a method computed something else.

Targets (per size and for ``all sizes``): engine >= 0.8x the limit, >= 3x NumPy (float64),
>= 25x pure Python. The ``check`` column names the targets a row misses.

Peak memory: ``mc.standard_test(0, [100], iterations)`` in a fresh ``python -c`` subprocess
for ``10**5`` and ``10**7`` iterations (and, for reference, one that only imports and starts
the backend); each reads its ``VmHWM`` (the kernel's high-water mark of its resident memory)
from ``/proc/self/status`` at the end. ``ru_maxrss`` is recorded in the JSON but not used: on
Linux a child started by fork + exec inherits its parent's high-water mark, so in a subprocess
of this (large) process it reports this process's size. Target: the 10**7 run's peak within
10 % of the 10**5 run's: the engine streams, so memory must not grow with the iteration count.
The ``10**7`` run also gives one more engine rate, in a fresh process (compilation included).

Sizes: ``iterations`` is the power-of-two number of whole blocks closest to ``--samples / n``
(so 2**25 samples gives 26M-42M per n). The ``10**7``-iteration memory run alone is 1e9
samples. The stored run records its own wall time (``meta.elapsed_s``).

Caveats: read the ratios with the machine in mind. On a CPU backend JAX's threefry generator
can be slower per number than NumPy's PCG64 (the stored run's ``limit / numpy64`` line says
by how much), so the NumPy and Python targets are bounded
by the limit column, not by the engine: compare ``limit / numpy64`` (printed) before blaming
the engine; JAX's ``rbg`` / ``unsafe_rbg`` key implementations are slower still on CPU. The
engine derives one key per iteration (``fold_in``: one threefry hash, about the cost of one
sample), so its ceiling is about ``n / (n + 1)`` of the limit: 0.5x at n = 1. Timings are
wall-clock on whatever machine runs this; a shared machine makes them noisy, which is what the
interleaving, the medians, the A/A row and the CPU-time line are for. On an accelerator the
balance between the columns is different (NumPy and Python stay on the host); the numbers
quoted here are from CPU runs only.
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
METHODS = ("engine", "limit", "limit (A/A)", "numpy64", "numpy32", "python")
#: engine rate / method rate must be at least this.
TARGETS = {"limit": 0.8, "numpy64": 3.0, "python": 25.0}
SHORT = {"limit": "limit", "numpy64": "np64", "python": "python"}
LIMIT_CHUNK_SAMPLES = 2**16
NUMPY_CHUNK_SAMPLES = 2**17
MEMORY_N = 100
MEMORY_ITERATIONS = (10**5, 10**7)
MEMORY_TARGET = 1.10
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

NAME = "bench_mc"


def iterations_for(n: int, samples: int) -> int:
    """A power-of-two number of whole blocks, about ``samples / n`` iterations."""
    blocks = max(1, samples / (n * mc.BLOCK))
    return mc.BLOCK * 2 ** max(0, round(math.log2(blocks)))


def pow2_rows(n: int, chunk_samples: int, iterations: int) -> int:
    """Iterations per chunk: a power of two (so it divides ``iterations``), about ``chunk_samples / n``."""
    rows = 2 ** int(math.log2(max(1, chunk_samples // n)))
    return min(rows, iterations)


# --- the methods: each a function of no arguments returning the estimated mean -------------


def make_engine(n: int, iterations: int, seed: int) -> Callable[[], float]:
    [task] = mc.standard_tasks(jax.random.key(seed), [n], iterations, INIT)

    def engine() -> float:
        return task.run().mean

    return engine


def make_limit(n: int, iterations: int, seed: int) -> Callable[[], float]:
    bound = INIT.bound((n, 1))
    rows = pow2_rows(n, LIMIT_CHUNK_SAMPLES, iterations)
    chunks = iterations // rows
    key = jax.random.key(seed)

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


def timed(fn: Callable[[], float]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of this process, mean) of one call, with the garbage collector off."""
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        start, cpu_start = time.perf_counter(), time.process_time()
        mean = fn()
        return time.perf_counter() - start, time.process_time() - cpu_start, mean
    finally:
        if gc_enabled:
            gc.enable()


def z_score(n: int, mean: float, iterations: int) -> float:
    bound = INIT.bound((n, 1))
    expected = bound * expected_abs_sum(n)
    var = n * bound**2 / 3 - expected**2  # E z^2 = n b^2 / 3 exactly
    return (mean - expected) / math.sqrt(var / iterations)


def run_size(n: int, samples: int, py_samples: int, repeats: int, seed: int) -> dict[str, Any]:
    iterations = iterations_for(n, samples)
    py_iterations = max(1, round(py_samples / n))
    counts = {m: iterations for m in METHODS}
    counts["python"] = py_iterations
    makers = {
        "engine": lambda: make_engine(n, iterations, seed),
        "limit": lambda: make_limit(n, iterations, seed),
        "limit (A/A)": lambda: make_limit(n, iterations, seed),
        "numpy64": lambda: make_numpy(n, iterations, seed, np.float64),
        "numpy32": lambda: make_numpy(n, iterations, seed, np.float32),
        "python": lambda: make_python(n, py_iterations, seed),
    }
    fns = {m: make() for m, make in makers.items()}
    first = {}
    for m in ("engine", "limit", "limit (A/A)"):  # compile (the engine's first run is a full run too)
        first[m], _, _ = timed(fns[m])
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    cpu_times: dict[str, list[float]] = {m: [] for m in METHODS}
    means: dict[str, list[float]] = {m: [] for m in METHODS}
    order = np.random.default_rng([seed, n])
    for _ in range(repeats):
        for i in order.permutation(len(METHODS)):
            m = METHODS[i]
            t, cpu, mean = timed(fns[m])
            times[m].append(t)
            cpu_times[m].append(cpu)
            means[m].append(mean)
    return {
        "n": n,
        "bound": INIT.bound((n, 1)),
        "expected": INIT.bound((n, 1)) * expected_abs_sum(n),
        "iterations": counts,
        "samples": {m: counts[m] * n for m in METHODS},
        "first_call_s": first,
        "times_s": times,
        "cpu_times_s": cpu_times,
        "means": means,
        "z": {m: z_score(n, means[m][-1], counts[m]) for m in METHODS},
    }


def summarize(
    samples: dict[str, int], times: dict[str, list[float]], cpu_times: dict[str, list[float]], repeats: int
) -> dict[str, Any]:
    """Rates from median times, and per-repeat engine/other rate ratios (median over repeats)."""

    def ratios(t: dict[str, list[float]]) -> dict[str, float]:
        rates = {m: [samples[m] / x for x in t[m]] for m in METHODS}
        return {
            m: statistics.median(rates["engine"][r] / rates[m][r] for r in range(repeats))
            for m in METHODS
            if m != "engine"
        }

    ratio, cpu_ratio = ratios(times), ratios(cpu_times)
    return {
        "rate": {m: samples[m] / statistics.median(times[m]) for m in METHODS},
        "cpu_rate": {m: samples[m] / statistics.median(cpu_times[m]) for m in METHODS},
        "ratio": ratio,
        "cpu_ratio": cpu_ratio,
        "spread": {m: (max(times[m]) - min(times[m])) / statistics.median(times[m]) for m in METHODS},
        "aa": statistics.median(a / b for a, b in zip(times["limit"], times["limit (A/A)"], strict=True)),
        "misses": [SHORT[m] for m, target in TARGETS.items() if ratio[m] < target],
    }


# --- peak memory ------------------------------------------------------------------------------------


def measure_memory(iterations: int) -> dict[str, Any]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_CODE, str(iterations), str(MEMORY_N)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory subprocess ({iterations} iterations) failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["iterations"] = iterations
    return out


# --- output -------------------------------------------------------------------------------------------


def fmt_rate(rate: float) -> str:
    return f"{rate / 1e6:.1f}"


def print_table(rows: list[dict[str, Any]]) -> None:
    headers = (
        "n",
        "iterations",
        "samples",
        "engine",
        "limit",
        "numpy64",
        "numpy32",
        "python",
        "eng/limit",
        "eng/np64",
        "eng/np32",
        "eng/python",
        "A/A",
        "check",
    )
    table = []
    for r in rows:
        s = r["summary"]
        table.append(
            (
                str(r["n"]),
                str(r["iterations"]["engine"]) if r["n"] != "all sizes" else "-",
                f"{r['samples']['engine'] / 1e6:.1f}M",
                *(fmt_rate(s["rate"][m]) for m in ("engine", "limit", "numpy64", "numpy32", "python")),
                *(f"{s['ratio'][m]:.2f}x" for m in ("limit", "numpy64", "numpy32", "python")),
                f"{s['aa']:.2f}",
                "ok" if not s["misses"] else "MISS " + ",".join(s["misses"]),
            )
        )
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]

    def line(cells):
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if i < len(headers) - 1 else c.ljust(w) for i, (c, w) in pairs)

    print("rates in millions of samples/s (median time); ratios: median over repeats of engine rate / method rate")
    print(line(headers).rstrip())
    print("  ".join("-" * w for w in widths))
    for i, cells in enumerate(table):
        if i == len(table) - 1:
            print()
        print(line(cells).rstrip())


# --- the run: parse, measure, report -------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = _common.parser(NAME, __doc__, default_repeats=5, quick_repeats=3)
    p.add_argument("--samples", type=int, help="samples per n, JAX and NumPy methods (default 2**25, --quick 2**24)")
    p.add_argument("--python-samples", type=int, help="samples per n, pure Python (default 2**21, --quick 2**19)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    opts = _common.parse(p, argv)
    opts.samples = opts.samples if opts.samples is not None else (2**24 if opts.quick else 2**25)
    opts.python_samples = opts.python_samples if opts.python_samples is not None else (2**19 if opts.quick else 2**21)
    if opts.samples < 1 or opts.python_samples < 1:
        p.error("--samples and --python-samples must be >= 1")
    return opts


def describe(opts: argparse.Namespace) -> dict[str, Any]:
    """The run's metadata (machine included), printed as a header."""
    meta = {
        **tooling.machine(),
        "flaxinit": flaxinit.__version__,
        "prng_impl": str(jax.config.jax_default_prng_impl),
        "loadavg_start": os.getloadavg(),
        "repeats": opts.repeats,
        "samples": opts.samples,
        "python_samples": opts.python_samples,
        "quick": opts.quick,
        "seed": opts.seed,
        "test": "standard test, all-ones input, mean of |sum of n weights|, xavier_standard b = 1/sqrt(n)",
        "targets": {f"engine/{m}": f">= {t}x" for m, t in TARGETS.items()}
        | {"memory": f"peak(10**7 it) / peak(10**5 it) <= {MEMORY_TARGET} at n={MEMORY_N}"},
    }
    print(
        f"flaxinit {meta['flaxinit']} | jax {meta['jax']} | backend {meta['backend']} ({meta['device_kind']}) | "
        f"{meta['cpu_count']} CPUs | numpy {meta['numpy']} | python {meta['python']} | "
        f"load average {meta['loadavg_start'][0]:.2f}"
    )
    print(f"standard test (all-ones input, mean |sum of n U(-b, b)|, b = 1/sqrt(n)); PRNG {meta['prng_impl']}")
    print(
        f"~{opts.samples / 1e6:.0f}M samples per n for engine/limit/numpy, ~{opts.python_samples / 1e6:.1f}M for "
        f"pure Python; {opts.repeats} repeats, interleaved in a seeded random order"
    )
    print(
        "TARGETS: engine >= 0.8x limit, >= 3x numpy64, >= 25x python (per n and all sizes); "
        f"peak memory 10**7 vs 10**5 iterations within {round(100 * (MEMORY_TARGET - 1))}%\n"
    )
    return meta


def measure_sizes(opts: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every size's timings and summary, and their aggregate over all sizes."""
    rows = []
    for n in SIZES:
        row = run_size(n, opts.samples, opts.python_samples, opts.repeats, opts.seed)
        row["summary"] = summarize(row["samples"], row["times_s"], row["cpu_times_s"], opts.repeats)
        rows.append(row)
        rate = row["summary"]["rate"]
        print("  " + ", ".join(f"{m} {fmt_rate(rate[m])}M/s" for m in ("engine", "limit", "numpy64", "python")))
    total_samples = {m: sum(r["samples"][m] for r in rows) for m in METHODS}
    total_times, total_cpu = (
        {m: [sum(r[key][m][i] for r in rows) for i in range(opts.repeats)] for m in METHODS}
        for key in ("times_s", "cpu_times_s")
    )
    aggregate = {"n": "all sizes", "samples": total_samples, "times_s": total_times, "cpu_times_s": total_cpu}
    aggregate["summary"] = summarize(total_samples, total_times, total_cpu, opts.repeats)
    return rows, aggregate


def print_diagnostics(rows: list[dict[str, Any]], aggregate: dict[str, Any]) -> None:
    """The table, then the checks that say how far to trust it."""
    print()
    print_table([*rows, aggregate])
    print()
    zs = ", ".join(f"{m} {max(abs(r['z'][m]) for r in rows):.1f}" for m in METHODS)
    print(f"sanity, max |z| over n of each method's mean vs the exact b g(n): {zs}")
    print("A/A (limit vs its copy, ideal 1.00): " + ", ".join(f"n={r['n']} {r['summary']['aa']:.2f}" for r in rows))
    cpu_text = ", ".join(f"n={r['n']} {r['summary']['cpu_ratio']['limit']:.2f}x" for r in rows)
    print(f"eng/limit by CPU time: {cpu_text}, all sizes {aggregate['summary']['cpu_ratio']['limit']:.2f}x")
    limit_np = ", ".join(f"n={r['n']} {s['limit'] / s['numpy64']:.2f}x" for r in rows if (s := r["summary"]["rate"]))
    print(f"for scale, limit / numpy64 rate (the engine/numpy64 ceiling): {limit_np}")
    spreads = max(max(r["summary"]["spread"].values()) for r in rows)
    print(f"largest spread (max - min) / median of a row's times: {100 * spreads:.0f}%")


def measure_peak_memory() -> tuple[list[dict[str, Any]], float]:
    """Peak memory of fresh processes: import only, then 10**5 and 10**7 iterations; the 10**7 / 10**5 ratio."""
    print(f"\npeak memory of mc.standard_test at n={MEMORY_N}, each in a fresh subprocess (VmHWM, MiB):")
    memory = []
    for iterations in (0, *MEMORY_ITERATIONS):
        mem = measure_memory(iterations)
        memory.append(mem)
        label = "import + backend only" if iterations == 0 else f"{iterations:,} iterations"
        rate = f", {iterations * MEMORY_N / mem['run_s'] / 1e6:.1f}M samples/s" if iterations else ""
        print(f"  {label:>22}: {mem['vmhwm_kib'] / 1024:7.1f} MiB  (run {mem['run_s']:.1f} s{rate})")
    small, large = memory[1]["vmhwm_kib"], memory[2]["vmhwm_kib"]
    print(f"  ratio 10**7 / 10**5: {large / small:.3f} (ru_maxrss is stored but not used: forks inherit it)")
    return memory, large / small


def judge(rows: list[dict[str, Any]], aggregate: dict[str, Any], mem_ratio: float | None) -> dict[str, Any]:
    """Each target's verdict (met, and where it was missed), printed and returned for the JSON."""
    verdicts: dict[str, Any] = {}
    for m, target in TARGETS.items():
        missed = [str(r["n"]) for r in [*rows, aggregate] if r["summary"]["ratio"][m] < target]
        agg = aggregate["summary"]["ratio"][m]
        verdicts[f"engine/{m} >= {target}x"] = {"met": not missed, "missed_at": missed, "all_sizes": agg}
        where = f"; missed at n = {', '.join(missed)}" if missed else " at every n"
        print(f"TARGET {'MISSED' if missed else 'MET'}: engine >= {target}x {m} (all sizes {agg:.2f}x){where}")
    if mem_ratio is not None:
        met = mem_ratio <= MEMORY_TARGET
        verdicts[f"peak memory ratio <= {MEMORY_TARGET}"] = {"met": met, "ratio": mem_ratio}
        print(f"TARGET {'MET' if met else 'MISSED'}: peak memory 10**7 vs 10**5 iterations {mem_ratio:.3f}x")
    return verdicts


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    meta = describe(opts)
    start = time.perf_counter()
    rows, aggregate = measure_sizes(opts)
    meta["timing_s"] = time.perf_counter() - start
    print_diagnostics(rows, aggregate)
    memory, mem_ratio = ([], None) if opts.no_memory else measure_peak_memory()
    print()
    verdicts = judge(rows, aggregate, mem_ratio)
    meta.update(loadavg_end=os.getloadavg(), elapsed_s=time.perf_counter() - start)
    print(f"benchmark time: {meta['elapsed_s']:.1f} s; load average now {meta['loadavg_end'][0]:.2f}")
    _common.store(opts, {"meta": meta, "verdicts": verdicts, "sizes": rows, "all_sizes": aggregate, "memory": memory})
    return 0


if __name__ == "__main__":
    sys.exit(main())
