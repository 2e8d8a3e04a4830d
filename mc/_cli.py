"""``python -m mc``: the Monte Carlo tests from the command line (the parsing and the commands).

Subcommands ``standard``, ``normalized``, ``depth``, ``audit``, ``fit``, ``reproduce`` (the
article's two tables and the refit), and the μP checks ``coord-check``, ``verify`` and
``lr-transfer`` (:mod:`mc._mup_cli`). A Monte Carlo command turns its arguments into tables
of engine tasks (:func:`_tables`), runs them (:mod:`mc._runner`: progress, Ctrl-C,
``--resume``, several processes) and reports them (:mod:`mc._report`: printed tables,
refits, JSON, CSV, PNG).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax

import flaxinit
from flaxinit import tooling
from mc import _fit, _keys, _models, _mup_cli, _protocols, _report, _runner
from mc._cli_common import compilation_cache_argument, int_list, use_compilation_cache
from mc._mup_cli import COORD_CLASSES, COORD_MLP_BATCH, COORD_VOCAB, coord_batch  # re-exported: python -m mc's names

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
#: Defaults: the article's own counts (``reproduce``'s wall time is in its JSON's ``elapsed_s``).
DEFAULT_STANDARD_ITERATIONS = 1_000_000
DEFAULT_NORMALIZED_ITERATIONS = 5_000


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
            raise tooling.UsageError(f"scheme argument {item!r} in {spec!r} is not key=value")
        kwargs[key.strip()] = _parse_value(value.strip())
    try:
        return flaxinit.get(name.strip(), **kwargs)
    except (ValueError, TypeError) as err:
        raise tooling.UsageError(f"bad --scheme {spec!r}: {err}") from None


def _shape_list(text: str) -> list[tuple[int, int]]:
    shapes = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        parts = item.lower().split("x")
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise tooling.UsageError(f"--shapes must look like 1x1,15x25 (positive n_in x n_out), got {item!r}")
        shapes.append((int(parts[0]), int(parts[1])))
    if not shapes:
        raise tooling.UsageError("--shapes must name at least one shape, like 15x25")
    return shapes


def _common_arguments(p: argparse.ArgumentParser, iterations: int | None) -> None:
    """The arguments every Monte Carlo command takes: seed, generator, caches, files, processes."""
    p.add_argument("--key", "--seed", dest="seed", metavar="K", type=int, default=0,
                   help="PRNG seed (Philox; default 0; --seed: its earlier name)")  # fmt: skip
    p.add_argument(
        "--prng",
        default="philox",
        choices=_keys.PRNGS,
        help="generator: philox (Philox4x32-10, the fast default) or threefry (jax.random.key's bits)",
    )
    compilation_cache_argument(p)
    if iterations is not None:
        p.add_argument("--iterations", type=tooling.positive_int, default=iterations, help=f"default {iterations}")
    p.add_argument(
        "--chunk-size",
        type=tooling.positive_int,
        default=None,
        help="iterations each device runs per call: how often progress is shown and Ctrl-C is honoured "
        "(never changes the results)",
    )
    p.add_argument("--json", type=Path, help="write results (atomically) to this JSON file")
    p.add_argument("--csv", type=Path, help="write result rows (atomically) to this CSV file")
    p.add_argument("--resume", action="store_true", help="continue the partial run in --json")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    group = p.add_argument_group(
        "several processes or hosts (JAX's multi-controller runtime: run the same command once per process)"
    )
    group.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0, reachable from all")
    group.add_argument("--num-processes", type=tooling.positive_int, help="total number of processes")
    group.add_argument("--process-id", type=int, help="this process's index, 0 .. num_processes - 1")


def build_parser() -> argparse.ArgumentParser:
    parser = tooling.ArgumentParser(
        prog="python -m mc", description="Monte Carlo magnitude tests of flaxinit's schemes."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=tooling.ArgumentParser)

    p = sub.add_parser("standard", help="the standard test for one scheme")
    _common_arguments(p, DEFAULT_STANDARD_ITERATIONS)
    p.add_argument("--sizes", default=",".join(map(str, ARTICLE_SIZES)))
    p.add_argument("--scheme", default="xavier_standard", help="NAME or NAME:key=value,...")
    p.add_argument("--inputs", default="ones", choices=_protocols.INPUTS)
    p.add_argument("--plot", type=Path, help="write a PNG of magnitude against size")

    p = sub.add_parser("normalized", help="the normalized test for one scheme")
    _common_arguments(p, DEFAULT_NORMALIZED_ITERATIONS)
    p.add_argument("--shapes", default=",".join(f"{a}x{b}" for a, b in ARTICLE_SHAPES))
    p.add_argument("--scheme", default="xavier_normalized")
    p.add_argument("--convention", default="article", choices=_protocols.CONVENTIONS)
    p.add_argument("--plot", type=Path)

    p = sub.add_parser("depth", help="magnitudes through a stack of layers")
    _common_arguments(p, 2_000)
    p.add_argument("--widths", default="32,32,32,32,32,32,32,32,32")
    p.add_argument("--activation", default="sigmoid", help="linear or any elementwise jax.nn activation (gelu, ...)")
    p.add_argument("--scheme", default="xavier_standard")
    p.add_argument("--inputs", default="ones", choices=("ones", "gaussian"))

    p = sub.add_parser("audit", help="per-layer magnitudes of a model at init, over many initializations")
    _common_arguments(p, 256)
    p.add_argument("--model", default="mlp", help=f"a reference model ({', '.join(_models.MODELS)}) or "
                   "package.module:factory (from a clone: experiments.networks:audit_cnn, :audit_rnn)")  # fmt: skip
    p.add_argument(
        "--scheme", action="append", help="initializer of the kernels, NAME or NAME:key=value,...; repeat to compare"
    )
    p.add_argument("--depth", type=tooling.positive_int, default=20, help="layers or blocks (default 20)")
    p.add_argument("--width", type=tooling.positive_int, default=128, help="features (default 128)")
    p.add_argument("--activation", default="relu", help="linear or any elementwise jax.nn activation")
    p.add_argument("--batch", type=tooling.positive_int, default=16, help="inputs per initialization (default 16)")
    p.add_argument("--input-shape", help="for package.module:factory models: the input batch's shape, like 16,128")
    p.add_argument("--plot", type=Path, help="write a PNG of forward and backward RMS per layer")

    _mup_cli.add_commands(sub)

    p = sub.add_parser("fit", help="refit the article's constants from exact g or from a results file")
    p.add_argument("--from", dest="source", type=Path, help="a --json file of reproduce/standard/normalized")
    p.add_argument("--objective", default="minimax", choices=_fit.OBJECTIVES, help="default: minimax")
    p.add_argument("--json", type=Path)

    p = sub.add_parser("reproduce", help="the article's two tables, Xavier vs Letkeman exact and approximated")
    _common_arguments(p, DEFAULT_STANDARD_ITERATIONS)
    p.add_argument("--normalized-iterations", type=tooling.positive_int, default=DEFAULT_NORMALIZED_ITERATIONS)
    p.add_argument("--plot", type=Path, help="write a PNG of magnitude against size per scheme")
    return parser


# --- commands -----------------------------------------------------------------------------------


def _tables(args) -> tuple[list[_runner.Table], dict[str, flaxinit.Initializer], dict[str, Any]]:
    """Builds the tables of a command and the settings that identify the run."""
    key = _keys.as_key(args.seed, args.prng)
    schemes: dict[str, flaxinit.Initializer] = {}
    tables: list[_runner.Table] = []

    def scheme(spec: str) -> flaxinit.Initializer:
        schemes[spec] = parse_scheme(spec)
        return schemes[spec]

    settings: dict[str, Any] = {
        "command": args.command,
        "seed": args.seed,
        "prng": _keys.prng_name(key),
        "iterations": args.iterations,
    }
    if args.command in ("standard", "reproduce"):
        specs = REPRODUCE_STANDARD if args.command == "reproduce" else (args.scheme,)
        sizes = ARTICLE_SIZES if args.command == "reproduce" else int_list(args.sizes, "--sizes")
        inputs = getattr(args, "inputs", "ones")
        rows = [
            (spec, task)
            for spec in specs
            for task in _protocols.standard_tasks(key, sizes, args.iterations, scheme(spec), inputs)
        ]
        tables.append(_runner.Table("standard", rows))
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
        tables.append(_runner.Table("normalized", rows))
        settings.update(
            normalized_schemes=list(specs),
            shapes=[list(s) for s in shapes],
            normalized_iterations=iterations,
            convention=convention,
        )
    if args.command == "audit":
        tables.append(_audit_table(args, key, scheme, settings))
    if args.command == "depth":
        widths = int_list(args.widths, "--widths")
        task = _protocols.depth_task(key, widths, args.activation, scheme(args.scheme), args.iterations, args.inputs)
        tables.append(_runner.Table("depth", [(args.scheme, task)]))
        settings.update(scheme=args.scheme, widths=widths, activation=args.activation, inputs=args.inputs)
    return tables, schemes, settings


def _audit_table(args, key, scheme: Callable[[str], Any], settings: dict[str, Any]) -> _runner.Table:
    from mc import _audit

    specs = args.scheme or ["xavier_standard"]
    shape = tuple(int_list(args.input_shape, "--input-shape")) if args.input_shape else None
    rows = []
    for spec in specs:
        init = scheme(spec)
        model, inputs, fresh = _models.reference_model(
            args.model, init, depth=args.depth, width=args.width, activation=args.activation, batch=args.batch,
            input_shape=shape,
        )  # fmt: skip
        task = _audit.audit_task(model, inputs, args.iterations, key=key, fresh_inputs=fresh, init=init)
        rows.append((spec, task))
    settings.update(
        model=args.model, schemes=specs, depth=args.depth, width=args.width, activation=args.activation,
        batch=args.batch, input_shape=list(shape) if shape else None,
    )  # fmt: skip
    return _runner.Table("audit", rows)


def start_distributed(args) -> None:
    """``jax.distributed.initialize`` from ``--coordinator/--num-processes/--process-id``.

    Must run before anything touches a JAX backend. On CPUs, collectives go through gloo.
    """
    flags = (args.coordinator, args.num_processes, args.process_id)
    if all(f is None for f in flags):
        return
    if any(f is None for f in flags):
        raise tooling.UsageError("--coordinator, --num-processes and --process-id go together: give all three")
    if not 0 <= args.process_id < args.num_processes:
        raise tooling.UsageError(f"--process-id must be in 0..{args.num_processes - 1}, got {args.process_id}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=args.coordinator, num_processes=args.num_processes, process_id=args.process_id
    )


def run_tables(args) -> int:
    if args.resume and args.json is None:
        raise tooling.UsageError("--resume needs --json PATH: the partial run to continue")
    use_compilation_cache(args.compilation_cache)
    start_distributed(args)
    lead = jax.process_index() == 0  # the one process that prints and writes files
    try:
        tables, schemes, settings = _tables(args)
    except (ValueError, TypeError) as err:
        raise tooling.UsageError(str(err)) from None
    runner = _runner.Runner(settings, progress=lead and not args.quiet, chunk_size=args.chunk_size)
    if args.resume:
        if not args.json.exists():
            raise tooling.UsageError(f"--resume: {args.json} does not exist")
        runner.load(json.loads(args.json.read_text()))
    start = time.perf_counter()
    complete = runner.run(tables)
    elapsed = time.perf_counter() - start
    if not lead:  # every process holds the same results; process 0 reports them
        return 0 if complete else 130
    return _report.report_tables(args, runner, schemes, complete, elapsed)


def run_fit(args) -> int:
    if args.source is None:
        fits = [_fit.fit_standard(objective=args.objective), _fit.fit_normalized(objective=args.objective)]
    else:
        try:
            rows = json.loads(Path(args.source).read_text())["rows"]
            standard = [r for r in rows if r["table"] == "standard"]
            normalized = [r for r in rows if r["table"] == "normalized"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise tooling.UsageError(f"--from {args.source}: not a results file of python -m mc ({err!r})") from None
        fits = _report.fits_from_rows(standard, normalized, args.objective)
    for fit in fits:
        _report.print_fit(fit)
    if args.json:
        tooling.write_json(args.json, {"fits": [f.to_dict() for f in fits], "machine": tooling.machine()})
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    commands: dict[str, Callable[[argparse.Namespace], int]] = {"fit": run_fit, **_mup_cli.COMMANDS}

    def run() -> int:
        args = build_parser().parse_args(argv)
        return commands.get(args.command, run_tables)(args)

    return tooling.run_command("python -m mc", run)


__all__ = ["COORD_CLASSES", "COORD_MLP_BATCH", "COORD_VOCAB", "build_parser", "coord_batch", "main"]
