"""``python -m mc``: the Monte Carlo tests from the command line.

Subcommands ``standard``, ``normalized``, ``depth``, ``fit`` and ``reproduce`` (the
article's two tables and the refit). Every run is a list of tables, each a list of
rows; a row is one engine task. Ctrl-C stops after the current chunk and writes what
was computed, marked partial, including the exact accumulators of the row in progress;
``--resume`` continues from that file and gives the same bits as an uninterrupted run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

import flaxinit
from flaxinit import tooling
from mc import _fit, _protocols
from mc._engine import Accumulator
from mc._protocols import Task

ARTICLE_SIZES = (1, 5, 25, 100, 300, 1000)
ARTICLE_SHAPES = (
    (1, 1),
    (5, 5),
    (100, 1),
    (15, 25),
    (10, 100),
    (100, 50),
    (100, 300),
    (1000, 10),
    (1, 10000),
    (3, 10000),
)
REPRODUCE_STANDARD = ("xavier_standard", "letkeman_standard", "letkeman_standard:method=article")
REPRODUCE_NORMALIZED = ("xavier_normalized", "letkeman_normalized", "letkeman_normalized:method=article")
#: Defaults: the article's own counts; ``reproduce`` takes about 80 s on a 2-core CPU.
DEFAULT_STANDARD_ITERATIONS = 1_000_000
DEFAULT_NORMALIZED_ITERATIONS = 5_000


class UsageError(Exception):
    """A bad argument: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one clear line, exit 2
        raise UsageError(message)


# --- argument parsing ---------------------------------------------------------------------


def _parse_value(text: str) -> Any:
    if text.lower() == "none":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_scheme(spec: str) -> flaxinit.Initializer:
    """``NAME`` or ``NAME:key=value,key=value`` -> an initializer (``flaxinit.get``)."""
    name, _, args = spec.partition(":")
    kwargs = {}
    for item in filter(None, args.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f"scheme argument {item!r} in {spec!r} is not key=value")
        kwargs[key.strip()] = _parse_value(value.strip())
    try:
        return flaxinit.get(name.strip(), **kwargs)
    except (ValueError, TypeError) as err:
        raise UsageError(f"bad --scheme {spec!r}: {err}") from None


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{what} must be a comma-separated list of positive integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise UsageError(f"{what} must be a comma-separated list of positive integers, got {text!r}")
    return values


def _shape_list(text: str) -> list[tuple[int, int]]:
    shapes = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        parts = item.lower().split("x")
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise UsageError(f"--shapes must look like 1x1,15x25 (positive n_in x n_out), got {item!r}")
        shapes.append((int(parts[0]), int(parts[1])))
    if not shapes:
        raise UsageError("--shapes must name at least one shape, like 15x25")
    return shapes


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m mc", description="Monte Carlo magnitude tests of flaxinit's schemes.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p: argparse.ArgumentParser, iterations: int | None) -> None:
        p.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
        if iterations is not None:
            p.add_argument("--iterations", type=_positive, default=iterations, help=f"default {iterations}")
        p.add_argument(
            "--chunk-size",
            type=_positive,
            default=None,
            help="iterations evaluated at once over all devices: memory only, never the results",
        )
        p.add_argument("--json", type=Path, help="write results (atomically) to this JSON file")
        p.add_argument("--csv", type=Path, help="write result rows (atomically) to this CSV file")
        p.add_argument("--resume", action="store_true", help="continue the partial run in --json")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        group = p.add_argument_group(
            "several processes or hosts (JAX's multi-controller runtime: run the same command once per process)"
        )
        group.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0, reachable from all")
        group.add_argument("--num-processes", type=_positive, help="total number of processes")
        group.add_argument("--process-id", type=int, help="this process's index, 0 .. num_processes - 1")

    p = sub.add_parser("standard", help="the standard test for one scheme")
    common(p, DEFAULT_STANDARD_ITERATIONS)
    p.add_argument("--sizes", default=",".join(map(str, ARTICLE_SIZES)))
    p.add_argument("--scheme", default="xavier_standard", help="NAME or NAME:key=value,...")
    p.add_argument("--inputs", default="ones", choices=_protocols.INPUTS)
    p.add_argument("--plot", type=Path, help="write a PNG of magnitude against size")

    p = sub.add_parser("normalized", help="the normalized test for one scheme")
    common(p, DEFAULT_NORMALIZED_ITERATIONS)
    p.add_argument("--shapes", default=",".join(f"{a}x{b}" for a, b in ARTICLE_SHAPES))
    p.add_argument("--scheme", default="xavier_normalized")
    p.add_argument("--convention", default="article", choices=_protocols.CONVENTIONS)
    p.add_argument("--plot", type=Path)

    p = sub.add_parser("depth", help="magnitudes through a stack of layers")
    common(p, 2_000)
    p.add_argument("--widths", default="32,32,32,32,32,32,32,32,32")
    p.add_argument("--activation", default="sigmoid", choices=tuple(_protocols.ACTIVATIONS))
    p.add_argument("--scheme", default="xavier_standard")
    p.add_argument("--inputs", default="ones", choices=("ones", "gaussian"))

    p = sub.add_parser("fit", help="refit the article's constants from exact g or from a results file")
    p.add_argument("--from", dest="source", type=Path, help="a --json file of reproduce/standard/normalized")
    p.add_argument("--objective", default="minimax", choices=_fit.OBJECTIVES, help="default: minimax")
    p.add_argument("--json", type=Path)

    p = sub.add_parser("reproduce", help="the article's two tables, Xavier vs Letkeman exact and approximated")
    common(p, DEFAULT_STANDARD_ITERATIONS)
    p.add_argument("--normalized-iterations", type=_positive, default=DEFAULT_NORMALIZED_ITERATIONS)
    p.add_argument("--plot", type=Path, help="write a PNG of magnitude against size per scheme")
    return parser


# --- runs: tables of rows, interruptible and resumable ------------------------------------------


@dataclasses.dataclass
class Table:
    name: str  # "standard", "normalized" or "depth"
    rows: list[tuple[str, Task]]  # (scheme spec, task)


class _Stop(Exception):
    """Raised between chunks after Ctrl-C."""


class Runner:
    """Runs tables row by row; keeps finished rows and the row in progress."""

    def __init__(self, settings: dict[str, Any], progress: bool, chunk_size: int | None):
        self.settings = settings
        self.progress = progress
        self.chunk_size = chunk_size
        self.results: dict[str, dict[str, Any]] = {}  # row id -> result dict
        self.pending: dict[str, dict[str, Any]] = {}  # row id -> accumulator state
        self.stop_requested = False

    @staticmethod
    def row_id(table: str, spec: str, task: Task) -> str:
        return f"{table} | {spec} | {task.label}"

    def load(self, data: dict[str, Any]) -> None:
        if data.get("settings") != self.settings:
            raise UsageError(
                "--resume: the settings in the JSON file differ from this command's "
                f"({data.get('settings')} vs {self.settings})"
            )
        self.results = {r["id"]: r for r in data.get("rows", [])}
        self.pending = dict(data.get("pending", {}))

    def run(self, tables: Sequence[Table]) -> bool:
        """Runs every unfinished row; returns False if interrupted."""
        from tqdm.auto import tqdm

        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            for table in tables:
                todo = [(s, t) for s, t in table.rows if self.row_id(table.name, s, t) not in self.results]
                total = sum(t.iterations for _, t in table.rows)
                done = total - sum(t.iterations for _, t in todo)
                bar = tqdm(total=total, initial=done, desc=table.name, unit="it", disable=not self.progress)
                try:
                    for spec, task in todo:
                        self._run_row(table.name, spec, task, bar)
                finally:
                    bar.close()
        except _Stop:
            return False
        finally:
            signal.signal(signal.SIGINT, previous)
        return True

    def _run_row(self, table: str, spec: str, task: Task, bar) -> None:
        rid = self.row_id(table, spec, task)
        state = self.pending.get(rid)
        acc = Accumulator.from_dict(state) if state else task.new_accumulator()
        bar.update(acc.iterations_done)
        bar.set_postfix_str(f"{spec} {task.label}")

        def on_chunk(a: Accumulator) -> None:
            bar.update(a.iterations_done - on_chunk.seen)
            on_chunk.seen = a.iterations_done
            self.pending[rid] = a.to_dict()
            if self.should_stop():
                raise _Stop

        on_chunk.seen = acc.iterations_done
        if self.should_stop():
            raise _Stop
        result = task.run(acc, self.chunk_size, on_chunk)
        self.pending.pop(rid, None)
        self.results[rid] = {"id": rid, "table": table, "spec": spec, **result.to_dict()}

    def should_stop(self) -> bool:
        """Whether to stop now. With several processes, all of them stop at the same device call
        (one tiny all-gather of the flag), so none is left waiting in a collective."""
        if jax.process_count() == 1:
            return self.stop_requested
        from jax.experimental import multihost_utils

        return bool(np.any(multihost_utils.process_allgather(np.int32(self.stop_requested))))

    def _on_sigint(self, signum, frame) -> None:
        if self.stop_requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.stop_requested = True
        print("\ninterrupted: finishing the current chunk, then writing what was computed", file=sys.stderr)

    def rows(self, table: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.results.values() if table is None or r["table"] == table]

    def document(self, partial: bool, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "partial": partial,
            "machine": tooling.machine(),
            "rows": list(self.results.values()),
            "pending": self.pending if partial else {},
            **(extra or {}),
        }


# --- reporting ----------------------------------------------------------------------------------


def _fmt(x: float | None, digits: int = 6) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def print_standard(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'scheme':<34} {'n':>6} {'MC mean ± SE':>24} {'exact':>10} {'z':>6} {'exact - 1':>10}")
    for r in rows:
        z = (r["mean"] - r["expected"]) / r["se"] if r["expected"] is not None and r["se"] > 0 else None
        dev = r["expected"] - 1 if r["expected"] is not None else None
        mc = f"{r['mean']:.6f} ± {r['se']:.6f}"
        print(f"{r['spec']:<34} {r['size']:>6} {mc:>24} {_fmt(r['expected']):>10} {_fmt(z, 2):>6} {_fmt(dev, 6):>10}")


def print_normalized(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n{'scheme':<36} {'shape':>9} {'forward':>11} {'backward':>11} {'avg ± SE':>22} "
        f"{'exact avg':>10} {'z':>6} {'exact - 1':>10}"
    )
    for r in rows:
        e = r["expected_avg"]
        z = (r["avg"] - e) / r["avg_se"] if e is not None and r["avg_se"] > 0 else None
        avg = f"{r['avg']:.6f} ± {r['avg_se']:.6f}"
        shape = f"{r['n_in']}x{r['n_out']}"
        print(
            f"{r['spec']:<36} {shape:>9} {r['forward']:>11.5f} {r['backward']:>11.5f} {avg:>22} "
            f"{_fmt(e):>10} {_fmt(z, 2):>6} {_fmt(e - 1 if e is not None else None):>10}"
        )


def print_depth(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        print(f"\n{r['spec']} {r['activation']} widths {r['widths']} ({r['iterations']} iterations)")
        print(f"{'layer':>6} {'mean |activation|':>20} {'mean |gradient|':>20}")
        for i, (f, b) in enumerate(zip(r["forward"], r["backward"], strict=True), start=1):
            print(f"{i:>6} {f:>20.6g} {b:>20.6g}")


def print_fit(fit: _fit.FitResult) -> None:
    print()
    print(fit.summary())


def _result_objects(rows: list[dict[str, Any]], cls) -> list:
    names = {f.name for f in dataclasses.fields(cls)}
    out = []
    for r in rows:
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in r.items() if k in names}
        out.append(cls(**kwargs))
    return out


def fits_from_rows(standard_rows, normalized_rows, objective: str = "minimax") -> list[_fit.FitResult]:
    """Exact-g fits, plus Monte Carlo fits from the exact-Letkeman rows (one scheme only:
    the schemes share their draws, so their rows are not independent)."""
    fits = [_fit.fit_standard(objective=objective), _fit.fit_normalized(objective=objective)]
    std = [r for r in standard_rows if r["spec"] == "letkeman_standard" and r["size"] >= 4]
    if len(std) >= 2:
        fits.append(_fit.fit_standard(_result_objects(std, _protocols.StandardResult), objective=objective))
    norm = [r for r in normalized_rows if r["spec"] == "letkeman_normalized"]
    if len(norm) >= 3:
        fits.append(_fit.fit_normalized(_result_objects(norm, _protocols.NormalizedResult), objective=objective))
    return fits


def plot(path: Path, standard_rows, normalized_rows, schemes: dict[str, flaxinit.Initializer]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install -e '.[plots]'") from None
    panels = [p for p in (standard_rows, normalized_rows) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    ax_iter = iter(axes[0])
    if standard_rows:
        ax = next(ax_iter)
        sizes = np.unique(np.round(np.geomspace(1, max(r["size"] for r in standard_rows), 200)).astype(int))
        for spec in dict.fromkeys(r["spec"] for r in standard_rows):
            rows = [r for r in standard_rows if r["spec"] == spec]
            init = schemes[spec]
            exact = [init.expected_abs_sum((n, 1), n) for n in sizes]
            (line,) = ax.plot(sizes, exact, lw=1, label=f"{spec} (exact)")
            ax.errorbar(
                [r["size"] for r in rows], [r["mean"] for r in rows], yerr=[1.96 * r["se"] for r in rows],
                fmt="o", ms=4, color=line.get_color(), label=f"{spec} (MC, 95 %)",
            )  # fmt: skip
        ax.set(xscale="log", xlabel="fan-in n", ylabel="mean |pre-activation|, all-ones input", title="standard test")
        ax.axhline(1, color="grey", lw=0.5)
        ax.legend(fontsize=7)
    if normalized_rows:
        ax = next(ax_iter)
        specs = list(dict.fromkeys(r["spec"] for r in normalized_rows))
        shapes = list(dict.fromkeys((r["n_in"], r["n_out"]) for r in normalized_rows))
        for i, spec in enumerate(specs):
            rows = {(r["n_in"], r["n_out"]): r for r in normalized_rows if r["spec"] == spec}
            x = [j + (i - (len(specs) - 1) / 2) * 0.2 for j, s in enumerate(shapes) if s in rows]
            ys = [rows[s] for s in shapes if s in rows]
            err = ax.errorbar(
                x, [r["avg"] for r in ys], yerr=[1.96 * r["avg_se"] for r in ys], fmt="o", ms=4,
                label=f"{spec} (MC, 95 %)",
            )  # fmt: skip
            color = err[0].get_color()
            exact = [r["expected_avg"] for r in ys]
            ax.scatter(x, exact, marker="_", s=120, color=color, label="exact" if i == 0 else None)
        ax.set_xticks(range(len(shapes)), [f"{a}x{b}" for a, b in shapes], rotation=45, fontsize=7)
        ax.axhline(1, color="grey", lw=0.5)
        ax.set(ylabel="avg magnitude over both passes", title="normalized test")
        ax.legend(fontsize=7)
    fig.tight_layout()
    with tooling.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


# --- commands -----------------------------------------------------------------------------------


def _tables(args) -> tuple[list[Table], dict[str, flaxinit.Initializer], dict[str, Any]]:
    """Builds the tables of a command and the settings that identify the run."""
    key = jax.random.key(args.seed)
    schemes: dict[str, flaxinit.Initializer] = {}
    tables: list[Table] = []

    def scheme(spec: str) -> flaxinit.Initializer:
        schemes[spec] = parse_scheme(spec)
        return schemes[spec]

    settings: dict[str, Any] = {"command": args.command, "seed": args.seed, "iterations": args.iterations}
    if args.command in ("standard", "reproduce"):
        specs = REPRODUCE_STANDARD if args.command == "reproduce" else (args.scheme,)
        sizes = ARTICLE_SIZES if args.command == "reproduce" else _int_list(args.sizes, "--sizes")
        inputs = getattr(args, "inputs", "ones")
        rows = [
            (spec, task)
            for spec in specs
            for task in _protocols.standard_tasks(key, sizes, args.iterations, scheme(spec), inputs)
        ]
        tables.append(Table("standard", rows))
        settings.update(standard_schemes=list(specs), sizes=list(sizes), inputs=inputs)
    if args.command in ("normalized", "reproduce"):
        specs = REPRODUCE_NORMALIZED if args.command == "reproduce" else (args.scheme,)
        shapes = ARTICLE_SHAPES if args.command == "reproduce" else _shape_list(args.shapes)
        iterations = args.normalized_iterations if args.command == "reproduce" else args.iterations
        convention = getattr(args, "convention", "article")
        rows = [
            (spec, task)
            for spec in specs
            for task in _protocols.normalized_tasks(key, shapes, iterations, scheme(spec), convention)
        ]
        tables.append(Table("normalized", rows))
        settings.update(
            normalized_schemes=list(specs),
            shapes=[list(s) for s in shapes],
            normalized_iterations=iterations,
            convention=convention,
        )
    if args.command == "depth":
        widths = _int_list(args.widths, "--widths")
        task = _protocols.depth_task(key, widths, args.activation, scheme(args.scheme), args.iterations, args.inputs)
        tables.append(Table("depth", [(args.scheme, task)]))
        settings.update(scheme=args.scheme, widths=widths, activation=args.activation, inputs=args.inputs)
    return tables, schemes, settings


def start_distributed(args) -> None:
    """``jax.distributed.initialize`` from ``--coordinator/--num-processes/--process-id``.

    Must run before anything touches a JAX backend. On CPUs, collectives go through gloo.
    """
    flags = (args.coordinator, args.num_processes, args.process_id)
    if all(f is None for f in flags):
        return
    if any(f is None for f in flags):
        raise UsageError("--coordinator, --num-processes and --process-id go together: give all three")
    if not 0 <= args.process_id < args.num_processes:
        raise UsageError(f"--process-id must be in 0..{args.num_processes - 1}, got {args.process_id}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=args.coordinator, num_processes=args.num_processes, process_id=args.process_id
    )


def run_tables(args) -> int:
    if args.resume and args.json is None:
        raise UsageError("--resume needs --json PATH: the partial run to continue")
    start_distributed(args)
    lead = jax.process_index() == 0  # the one process that prints and writes files
    try:
        tables, schemes, settings = _tables(args)
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from None
    runner = Runner(settings, progress=lead and not args.quiet, chunk_size=args.chunk_size)
    if args.resume:
        if not args.json.exists():
            raise UsageError(f"--resume: {args.json} does not exist")
        runner.load(json.loads(args.json.read_text()))
    start = time.perf_counter()
    complete = runner.run(tables)
    elapsed = time.perf_counter() - start
    if not lead:  # every process holds the same results; process 0 reports them
        return 0 if complete else 130
    return report_tables(args, runner, schemes, complete, elapsed)


def report_tables(args, runner: Runner, schemes: dict[str, Any], complete: bool, elapsed: float) -> int:
    """Prints the tables (and fits), writes the requested files; returns the exit status."""
    standard_rows, normalized_rows = runner.rows("standard"), runner.rows("normalized")
    if standard_rows:
        print_standard(standard_rows)
    if normalized_rows:
        print_normalized(normalized_rows)
    if runner.rows("depth"):
        print_depth(runner.rows("depth"))
    extra: dict[str, Any] = {"seconds": elapsed}
    if complete and args.command == "reproduce":
        fits = fits_from_rows(standard_rows, normalized_rows)
        for fit in fits:
            print_fit(fit)
        extra["fits"] = [f.to_dict() for f in fits]
    if args.json:
        tooling.write_json(args.json, runner.document(not complete, extra))
    if args.csv:
        tooling.write_csv(args.csv, [_flat(r) for r in runner.results.values()])
    if getattr(args, "plot", None) and (standard_rows or normalized_rows):
        plot(args.plot, standard_rows, normalized_rows, schemes)
    if not complete:
        where = f" in {args.json}; continue with --resume" if args.json else " (pass --json PATH to keep partial runs)"
        print(f"\npartial: {len(runner.results)} rows finished{where}", file=sys.stderr)
        return 130
    print(f"\n{elapsed:.1f} s on {jax.default_backend()} ({len(jax.devices())} device(s))")
    return 0


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in row.items()}


def run_fit(args) -> int:
    if args.source is None:
        fits = [_fit.fit_standard(objective=args.objective), _fit.fit_normalized(objective=args.objective)]
    else:
        try:
            rows = json.loads(Path(args.source).read_text())["rows"]
            standard = [r for r in rows if r["table"] == "standard"]
            normalized = [r for r in rows if r["table"] == "normalized"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UsageError(f"--from {args.source}: not a results file of python -m mc ({err!r})") from None
        fits = fits_from_rows(standard, normalized, args.objective)
    for fit in fits:
        print_fit(fit)
    if args.json:
        tooling.write_json(args.json, {"fits": [f.to_dict() for f in fits], "machine": tooling.machine()})
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    commands: dict[str, Callable[[argparse.Namespace], int]] = {"fit": run_fit}
    try:
        args = parser.parse_args(argv)
        return commands.get(args.command, run_tables)(args)
    except UsageError as err:
        print(f"python -m mc: error: {err}", file=sys.stderr)
        return 2
