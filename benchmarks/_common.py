"""What every benchmark shares: its command line's common flags, and where its run is stored.

A benchmark stores each run as ``benchmarks/results/<name>.json`` (``--quick`` runs as
``<name>.quick.json``, which git ignores), written atomically as strict JSON with the
machine it ran on; ``benchmarks/render.py`` renders README's figures from those files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from flaxinit import tooling

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# ``experiments`` is not installed (it runs from the clone): the benchmarks that time the
# study's trainer import it from the repository root
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))


def parser(name: str, doc: str, default_repeats: int, quick_repeats: int) -> argparse.ArgumentParser:
    """An argument parser with ``--quick``, ``--repeats``, ``--json`` and ``--seed``; the benchmark adds its own."""
    p = argparse.ArgumentParser(prog=f"{name}.py", description=doc.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a short smoke run")
    p.add_argument(
        "--repeats",
        type=tooling.positive_int,
        help=f"timed samples (default {default_repeats}, --quick {quick_repeats})",
    )
    p.add_argument("--json", type=Path, help=f"write the run here (default benchmarks/results/{name}.json)")
    p.add_argument("--seed", type=int, default=0, help="seed of the keys, generators and interleaving order")
    p.set_defaults(name=name, default_repeats=(default_repeats, quick_repeats))
    return p


def parse(p: argparse.ArgumentParser, argv: Any) -> argparse.Namespace:
    """The parsed flags, ``--repeats`` resolved from ``--quick``."""
    opts = p.parse_args(argv)
    if opts.repeats is None:
        opts.repeats = opts.default_repeats[1] if opts.quick else opts.default_repeats[0]
    return opts


def store(opts: argparse.Namespace, doc: dict[str, Any]) -> Path:
    """Writes the run where ``--json`` says, else to ``benchmarks/results/``; returns the path."""
    out = opts.json or RESULTS / f"{opts.name}{'.quick' if opts.quick else ''}.json"
    tooling.write_json(out, {"benchmark": opts.name, **doc})
    print(f"results written to {out}")
    return out
