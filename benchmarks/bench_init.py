"""Benchmark: the cost of drawing weights with each flaxinit scheme, against jax's ``glorot_uniform``.

Run it as ``python benchmarks/bench_init.py`` (``--quick`` for a short run, ``--help`` for
the rest). The run is written to ``benchmarks/results/bench_init.json`` (``--quick``:
``bench_init.quick.json``; ``--json PATH`` elsewhere), with the machine it ran on;
``benchmarks/render.py`` renders README's figures from that file.

What it measures
----------------
The time to initialize two cases with every scheme:

* the article's uniform schemes (``xavier_standard``, ``xavier_normalized``,
  ``kaiming_uniform``, both Letkeman schemes exact and ``method="article"``), against
  ``jax.nn.initializers.glorot_uniform`` (the ``uniform`` rows);
* every scheme with a ``jax.nn.initializers`` name (``glorot_*``, ``he_*``, ``lecun_*``,
  ``normal``, ``uniform``, ``truncated_normal``, ``orthogonal``, ``delta_orthogonal``),
  against jax's function of that name (the ``jax-pair`` rows; the orthogonal ones on the conv
  stack only: a QR of a 4096x4096 matrix is seconds of work for both sides);
* the rest (``kaiming_normal``, ``constant``, ``identity``, ``sparse``, ``dirac``) against
  ``glorot_uniform``, for scale only (``reference``);

on two cases:

* ``dense``: one 4096x4096 float32 kernel;
* ``conv``: a small float32 conv stack, kernels (3,3,3,32), (3,3,32,64), (3,3,64,64), (3,3,64,128);

in two modes:

* ``jit``: one ``jax.jit`` function per initializer builds every kernel of the case from one
  key (``jax.random.split`` into one key per kernel). It is compiled and warmed up before
  timing, so the time is the compiled work: random bits, the scaling, writing the output.
* ``eager``: plain Python calls ``init(key, shape, jnp.float32)``, one per kernel (keys split
  beforehand). Each call includes the Python-side work: argument checks, the fan computation
  and, for exact Letkeman, the g(n) evaluation (cached after its first call, which the warm-up
  absorbs), plus jax's op-by-op dispatch. For the dense kernel that work is negligible next to
  drawing 16.8M numbers; for the conv stack it is most of the time.

Each baseline runs on the same shapes in the same run, interleaved with the candidates: each
repeat times every initializer once, in a fresh
(seeded) random order, so drifts in machine load hit the baseline and the candidates alike.
A timed block calls one initializer enough times to last about ``--block`` seconds (the count
is set once per case and mode from the baseline, and is the same for every initializer), and
waits on every call with ``jax.block_until_ready``; its per-call time is one sample. The
reported time is the median over ``--repeats`` samples.

How to read it
--------------
``median`` is the scheme's median time per call (per case: all its kernels). ``ratio`` is its
cost relative to its baseline (``glorot_uniform``, or jax's function of the same name) in the
same case and mode: the median, over repeats, of the scheme's sample divided by the
baseline's sample from the same repeat (taken seconds apart, so
a burst of load from other processes mostly hits both or neither). 1.00 means the same cost,
1.25 means 25% slower. ``med/med`` is the plain ratio of the two medians; on a quiet machine it
agrees with ``ratio``, and where they differ a lot the run was noisy. ``spread`` is
(max - min) / median of the scheme's samples, a rough measure of the noise in its row.

Target: ratio <= 1.1x for every uniform scheme (``xavier_standard``, ``xavier_normalized``,
``kaiming_uniform``, ``letkeman_standard`` and ``letkeman_normalized``, exact (the default) and
article alike), in every case and mode, and for every jax-named scheme against jax's, jitted.
Each does the same work as its baseline (one draw times a scale), so a ratio above 1.1 that
repeats across runs points at overhead in flaxinit; the ``check`` column marks those rows
``SLOW`` (``SLOW?`` when the miss is no larger than the A/A control's distance from 1.00).
The ``reference`` rows have no target. The ``glorot_uniform (A/A)``
row is a second, separately built copy of the baseline: its distance from 1.00 is the noise
floor of the run, and a ratio within that distance of 1.1 is not conclusive; rerun, or raise
``--repeats`` / ``--block``.

Expect ratios near 1.00 in ``jit`` mode (XLA sees the same program: the bound is a constant
either way). In ``eager`` mode on the conv stack the flaxinit schemes may come out *below*
1.00: ``glorot_uniform`` computes its scale with three extra eager jax ops per kernel
(``jnp.array(variance)``, ``3 * variance``, ``jnp.sqrt``), while flaxinit computes the bound as a
Python float. A dense sample is a single call of a fraction of a second; on a machine shared with
other processes the dense rows are the noisiest.
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import _common
import jax
import jax.numpy as jnp
import numpy as np

import flaxinit
from flaxinit import tooling

CASES: dict[str, tuple[tuple[int, ...], ...]] = {
    "dense": ((4096, 4096),),
    "conv": ((3, 3, 3, 32), (3, 3, 32, 64), (3, 3, 64, 64), (3, 3, 64, 128)),
}
MODES = ("jit", "eager")
TARGET = 1.1
BASELINE = "glorot_uniform"
CONTROL = "glorot_uniform (A/A)"
#: Schemes named as in jax.nn.initializers: each is timed against jax's function of that name.
JAX_PAIRS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal",
             "normal", "uniform", "truncated_normal", "orthogonal", "delta_orthogonal")  # fmt: skip
DTYPE = jnp.float32

NAME = "bench_init"


class Entry(NamedTuple):
    """One timed initializer: its label, the init, its kind, the label of the baseline its ratio is to."""

    label: str
    init: Callable[..., jax.Array]
    kind: str  # "baseline", "control", "uniform", "jax-pair" or "reference"
    baseline: str
    cases: tuple[str, ...] = tuple(CASES)


def initializers() -> list[Entry]:
    """Every timed initializer.

    ``uniform``: the article's uniform schemes, against ``glorot_uniform`` (held to the target in
    every case and mode). ``jax-pair``: each scheme with a ``jax.nn.initializers`` name, against
    jax's function of that name on the same shapes (held to the target jitted). ``reference``: the
    rest, against ``glorot_uniform``, for scale. ``control``: a second copy of the baseline.
    """
    out = [
        Entry(BASELINE, jax.nn.initializers.glorot_uniform(), "baseline", BASELINE),
        Entry(CONTROL, jax.nn.initializers.glorot_uniform(), "control", BASELINE),
    ]
    for name in ("xavier_standard", "xavier_normalized", "kaiming_uniform", "letkeman_standard", "letkeman_normalized"):
        init = flaxinit.get(name)
        if name.startswith("letkeman"):
            out.append(Entry(f"{name}[exact]", init, "uniform", BASELINE))
            out.append(Entry(f"{name}[article]", flaxinit.get(name, method="article"), "uniform", BASELINE))
        else:
            out.append(Entry(name, init, "uniform", BASELINE))
    for name in JAX_PAIRS:
        cases = ("conv",) if name in ("orthogonal", "delta_orthogonal") else tuple(CASES)  # QR of 4096^2: too slow
        out.append(Entry(f"jax.{name}", getattr(jax.nn.initializers, name)(), "baseline", f"jax.{name}", cases))
        out.append(Entry(f"flaxinit.{name}", getattr(flaxinit, name)(), "jax-pair", f"jax.{name}", cases))
    references = {"kaiming_normal": None, "constant": ("value", 0.5), "identity": None, "sparse": None, "dirac": None}
    for name, argument in references.items():
        init = flaxinit.get(name, **dict([argument] if argument else []))
        cases = {"identity": ("dense",), "sparse": ("dense",), "dirac": ("conv",)}.get(name, tuple(CASES))
        out.append(Entry(name, init, "reference", BASELINE, cases))
    return out


def make_runner(init: Callable[..., jax.Array], shapes: Sequence[tuple[int, ...]], mode: str) -> Callable[[Any], Any]:
    """A function of one argument that builds every kernel of ``shapes`` with ``init``.

    ``jit``: the argument is one key, split inside the compiled function.
    ``eager``: the argument is a list of keys, one per kernel, split beforehand.
    """
    n = len(shapes)
    if mode == "jit":

        def build_jit(key):
            keys = jax.random.split(key, n)
            return tuple(init(keys[i], shape, DTYPE) for i, shape in enumerate(shapes))

        return jax.jit(build_jit)

    def build_eager(keys):
        return tuple(init(k, shape, DTYPE) for k, shape in zip(keys, shapes, strict=True))

    return build_eager


def make_args(mode: str, n_kernels: int, count: int = 8) -> list[Any]:
    """A few deterministic arguments for the runners (cycled through, made outside timing)."""
    root = jax.random.key(0)
    keys = [jax.random.fold_in(root, i) for i in range(count)]
    if mode == "jit":
        return keys
    return [list(jax.random.split(k, n_kernels)) for k in keys]


def time_block(fn: Callable[[Any], Any], args: Sequence[Any], reps: int) -> float:
    """Seconds per call of ``fn``, over ``reps`` calls each waited on."""
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for i in range(reps):
            jax.block_until_ready(fn(args[i % len(args)]))
        return (time.perf_counter() - start) / reps
    finally:
        if gc_enabled:
            gc.enable()


def warm_up(fn: Callable[[Any], Any], args: Sequence[Any], mode: str) -> float:
    """Compiles (jit) or fills the caches (eager), then makes one timed warm call; returns its seconds."""
    if mode == "jit":
        fn.lower(args[0]).compile()  # the same cache entry the calls below hit
    else:
        jax.block_until_ready(fn(args[0]))  # first eager call: jax compiles its ops, flaxinit caches g(n)
    return time_block(fn, args, 1)


def calibrate(fn: Callable[[Any], Any], args: Sequence[Any], per_call: float, block: float) -> int:
    """Calls per timed block so that a block of ``fn`` lasts about ``block`` seconds.

    ``per_call`` is one warm call's time; for cheap calls it is re-measured over longer runs
    (best of three, so one slow moment does not shrink every block).
    """
    if per_call >= block:
        return 1
    reps = 1
    while True:
        best = min(time_block(fn, args, reps) for _ in range(3))
        if reps * best >= block / 8:
            break
        reps *= 4
    return max(1, math.ceil(block / max(best, 1e-9)))


def run_case_mode(case: str, mode: str, entries: list[Entry], repeats: int, block: float, seed: int) -> list[dict]:
    shapes = CASES[case]
    args = make_args(mode, len(shapes))
    entries = [e for e in entries if case in e.cases]
    runners = {e.label: make_runner(e.init, shapes, mode) for e in entries}
    warm = {label: warm_up(fn, args, mode) for label, fn in runners.items()}
    reps = calibrate(runners[BASELINE], args, warm[BASELINE], block)
    samples: dict[str, list[float]] = {label: [] for label in runners}
    rng = np.random.default_rng(seed)
    for _ in range(repeats):
        for i in rng.permutation(len(entries)):
            label = entries[i].label
            samples[label].append(time_block(runners[label], args, reps))
    noise = abs(statistics.median(c / b for c, b in zip(samples[CONTROL], samples[BASELINE], strict=True)) - 1.0)
    return [_row(e, samples, case, mode, shapes, reps, noise) for e in entries]


def _row(e: Entry, samples, case, mode, shapes, reps, noise) -> dict[str, Any]:
    """One initializer's summary: its median time and its ratio to its own baseline, repeat by repeat."""
    times, base = samples[e.label], samples[e.baseline]
    median = statistics.median(times)
    ratio = statistics.median(t / b for t, b in zip(times, base, strict=True))
    held = e.kind == "uniform" or (e.kind == "jax-pair" and mode == "jit")
    return {
        "scheme": e.label,
        "kind": e.kind,
        "baseline": e.baseline,
        "case": case,
        "mode": mode,
        "shapes": [list(s) for s in shapes],
        "reps_per_sample": reps,
        "samples_s": times,
        "median_s": median,
        "spread": (max(times) - min(times)) / median,
        "ratio": ratio,
        "ratio_of_medians": median / statistics.median(base),
        "noise": noise,
        "meets_target": (ratio <= TARGET) if held else None,
    }


def fmt_time(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.1f} us"


def check_mark(row: dict[str, Any]) -> str:
    """ok / SLOW for uniform schemes; SLOW? where the miss is within the A/A noise floor."""
    if row["meets_target"] is not None:
        if row["meets_target"]:
            return "ok"
        return "SLOW?" if row["ratio"] - TARGET <= row["noise"] else "SLOW"
    return {"baseline": "baseline", "control": "A/A"}.get(row["kind"], "-")


def print_table(rows: list[dict[str, Any]]) -> None:
    headers = ("scheme", "case", "mode", "median", "ratio", "med/med", "spread", "check")
    table = [
        (
            r["scheme"],
            r["case"],
            r["mode"],
            fmt_time(r["median_s"]),
            f"{r['ratio']:.3f}x",
            f"{r['ratio_of_medians']:.3f}x",
            f"{100 * r['spread']:.0f}%",
            check_mark(r),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]
    right = {3, 4, 5, 6}

    def line(cells):
        padded = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        return "  ".join(padded).rstrip()

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    previous = None
    for cells in table:
        if previous is not None and cells[1:3] != previous:
            print()
        previous = cells[1:3]
        print(line(cells))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = _common.parser(NAME, __doc__, default_repeats=7, quick_repeats=3)
    p.add_argument("--block", type=float, default=None, help="seconds per timed block (default 0.15, --quick 0.05)")
    opts = _common.parse(p, argv)
    opts.block = opts.block if opts.block is not None else (0.05 if opts.quick else 0.15)
    if opts.block <= 0:
        p.error("--block must be > 0")
    return opts


def describe(opts: argparse.Namespace) -> dict[str, Any]:
    """The run's metadata (machine included), printed as a header."""
    meta = {
        **tooling.machine(),
        "flaxinit": flaxinit.__version__,
        "repeats": opts.repeats,
        "block_s": opts.block,
        "quick": opts.quick,
        "seed": opts.seed,
        "dtype": "float32",
        "baseline": "jax.nn.initializers.glorot_uniform()",
        "target_ratio": TARGET,
        "target": f"ratio <= {TARGET}x for every uniform scheme (exact Letkeman included) against glorot_uniform, "
        f"every case and mode; for every jax-named scheme against jax's function of that name, jitted",
    }
    print(
        f"flaxinit {meta['flaxinit']} | jax {meta['jax']} | backend {meta['backend']} ({meta['device_kind']}) | "
        f"{meta['cpu_count']} CPUs | python {meta['python']}"
    )
    print(f"repeats {opts.repeats}, ~{opts.block:g} s per timed block, samples interleaved in a seeded random order")
    print(f"baseline: {meta['baseline']} on the same shapes, same run")
    print(f"TARGET: {meta['target']}\n")
    return meta


def judge(rows: list[dict[str, Any]]) -> None:
    """The noise floor, then every row that misses the target (and whether the miss is beyond the noise)."""
    control = ", ".join(f"{r['case']}/{r['mode']} {r['ratio']:.3f}x" for r in rows if r["kind"] == "control")
    print(f"noise floor, A/A control ratios (ideal 1.000x): {control}")
    slow = [r for r in rows if r["meets_target"] is False]
    if not slow:
        print(f"TARGET MET: every uniform scheme within {TARGET}x of glorot_uniform in every case and mode, "
              f"every jax-named scheme within {TARGET}x of jax's, jitted")  # fmt: skip
        return
    print(f"TARGET MISSED by {len(slow)} row(s):")
    for r in slow:
        verdict = "within the A/A noise floor: rerun" if check_mark(r) == "SLOW?" else "beyond the noise floor"
        ratios = f"{r['ratio']:.3f}x (med/med {r['ratio_of_medians']:.3f}x; {verdict})"
        print(f"  {r['scheme']} {r['case']}/{r['mode']}: {ratios}")


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    meta = describe(opts)
    entries = initializers()
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for i, (case, mode) in enumerate((c, m) for c in CASES for m in MODES):
        rows += run_case_mode(case, mode, entries, opts.repeats, opts.block, opts.seed + i)
    meta["elapsed_s"] = time.perf_counter() - start
    print_table(rows)
    print()
    judge(rows)
    print(f"benchmark time: {meta['elapsed_s']:.1f} s")
    _common.store(opts, {"meta": meta, "results": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
