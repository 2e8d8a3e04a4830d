"""Benchmark: the README's test command (the default tier), idle and with another CPU-bound
process on the cores.

``python benchmarks/bench_test_tiers.py`` runs ``python -m pytest -q`` (the README's test
command: the default tier on every core) twice in a fresh process each: once on an idle
machine, once while a *load* runs beside it, a process that keeps every core busy with
float32 matrix products (NumPy's BLAS threads, one per core) until the tests end. It stores
the wall times, the pytest summary lines and the machine as
``benchmarks/results/bench_test_tiers.json``; README quotes it. The target (issue 30): at most
10 minutes both ways on the project's 2-core CPU. ``--only idle`` or ``--only load`` runs one.

The tests that run in the slow tier instead are chosen by measurement
(``tests/slow_tier.txt``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flaxinit.tooling import machine, write_json  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "bench_test_tiers.json"
TARGET_S = 600.0
LOAD = """
import numpy as np
a = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
while True:
    a = np.tanh(a @ a / 32.0)
"""


def run_tier(load: bool) -> dict:
    loader = subprocess.Popen([sys.executable, "-c", LOAD]) if load else None
    try:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q"], cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    finally:
        if loader is not None:
            loader.kill()
            loader.wait()
    lines = done.stdout.strip().splitlines()
    summary = next((line.strip("= ") for line in reversed(lines) if " in " in line and "passed" in line), "")
    return {"seconds": seconds, "returncode": done.returncode, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("idle", "load"))
    args = parser.parse_args()
    runs = {}
    for name in ("idle", "load"):
        if args.only in (None, name):
            runs[name] = run_tier(load=name == "load")
            print(f"{name}: {runs[name]['seconds']:.0f} s, {runs[name]['summary']}", flush=True)
    write_json(OUT, {
        "benchmark": "bench_test_tiers",
        "command": "python -m pytest -q",
        "target_s": TARGET_S,
        "runs": runs,
        "met": {name: r["seconds"] <= TARGET_S and r["returncode"] == 0 for name, r in runs.items()},
        "machine": machine(),
    })  # fmt: skip
    print(f"stored: {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
