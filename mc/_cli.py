"""``python -m mc``: the Monte Carlo tests from the command line (the parsing and the commands).

Subcommands ``standard``, ``normalized``, ``depth``, ``audit``, ``fit``, ``reproduce`` (the
article's two tables and the refit) and ``coord-check`` (μP's coordinate check, SPEC §10).
A Monte Carlo command turns its arguments into tables of engine tasks (:func:`_tables`),
runs them (:mod:`mc._runner`: progress, Ctrl-C, ``--resume``, several processes) and
reports them (:mod:`mc._report`: printed tables, refits, JSON, CSV, PNG).

``coord-check`` (:func:`run_coord_check`) runs :func:`mc.coord_check` once per ``--param``
on one fixed batch drawn from ``--key`` (:func:`coord_batch`): for ``mlp`` and
``transformer`` the models of :func:`mc.width_model`, or a user's ``package.module:factory``
(``factory(width)``), through :class:`mc._runner.CoordRunner` (progress over the widths;
Ctrl-C stops after the current width; ``--resume`` does not run the widths already
measured) and reports the slopes per layer and step (:func:`mc._report.report_coord`).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax

import flaxinit
from flaxinit import tooling
from mc import _fit, _models, _protocols, _report, _runner, _width_models

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
#: Where compiled kernels are kept between runs (``--compilation-cache``).
DEFAULT_COMPILATION_CACHE = Path.home() / ".cache" / "flaxinit" / "xla"
#: coord-check's one fixed batch per model, drawn from ``--key`` (SPEC §10): the MLP's
#: standard-normal inputs (examples, features) and integer labels in ``[0, COORD_CLASSES)``
#: (its readout's ``out_features``), the Transformer's (sequences, tokens) with the next
#: token as target, from a vocabulary of ``COORD_VOCAB``. Small enough that every width of
#: the default list runs in seconds on a CPU, large enough that a layer's mean |a| is an
#: average over thousands of coordinates.
COORD_MLP_BATCH = (64, 32)
COORD_CLASSES = 10
COORD_TRANSFORMER_BATCH = (8, 32)
COORD_VOCAB = 64
COORD_MODELS = ("mlp", "transformer")
COORD_PARAMETRIZATIONS = ("sp", "mup")
_TRANSFORMER = _width_models.Transformer  # its defaults: depth, heads
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


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise tooling.UsageError(f"{what} must be a comma-separated list of positive integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise tooling.UsageError(f"{what} must be a comma-separated list of positive integers, got {text!r}")
    return values


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


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _at_least_two(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be an integer of at least 2 (a standard error needs two), got {text!r}")
    return value


def _compilation_cache_argument(p: argparse.ArgumentParser) -> None:
    """``--compilation-cache DIR``: JAX's persistent cache (every command that compiles takes it)."""
    p.add_argument(
        "--compilation-cache",
        metavar="DIR",
        default=os.environ.get("FLAXINIT_COMPILATION_CACHE", str(DEFAULT_COMPILATION_CACHE)),
        help="JAX's persistent compilation cache, so reruns start fast ('none': off; default "
        "$FLAXINIT_COMPILATION_CACHE or ~/.cache/flaxinit/xla)",
    )


def _common_arguments(p: argparse.ArgumentParser, iterations: int | None) -> None:
    """The arguments every Monte Carlo command takes: seed, generator, caches, files, processes."""
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    p.add_argument(
        "--prng",
        default="philox",
        choices=_protocols.PRNGS,
        help="generator: philox (Philox4x32-10, the fast default) or threefry (jax.random.key's bits)",
    )
    _compilation_cache_argument(p)
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

    p = sub.add_parser(
        "coord-check",
        help="μP's coordinate check: every layer's scale against width over the first training steps",
        description="The coordinate check (SPEC §10, microsoft/mup's get_coord_data): for each width, --seeds "
        "models are trained --steps steps on one fixed batch drawn from --key; at each step (t = 1 at init) every "
        "layer output's mean |a| is recorded, and the slope of log2 mean|a| against log2 width is printed with its "
        "standard error. Under correct μP every slope is about 0; in SP with Adam the output's grows from t = 2. "
        "Ctrl-C stops after the current width and writes what was computed; --resume continues.",
    )
    p.add_argument(
        "--model",
        default="mlp",
        help=f"mlp ({_width_models.MLP.hidden_layers} hidden layers; {COORD_MLP_BATCH[0]} standard-normal "
        f"inputs of {COORD_MLP_BATCH[1]} features, labels in [0, {COORD_CLASSES})), "
        f"transformer (pre-LN, {_TRANSFORMER.depth} blocks, "
        f"{_TRANSFORMER.heads} heads: widths must be multiples of {_TRANSFORMER.heads}; "
        f"{COORD_TRANSFORMER_BATCH[0]} sequences of {COORD_TRANSFORMER_BATCH[1]} tokens of a vocabulary of "
        f"{COORD_VOCAB}, next-token targets), or package.module:factory: factory(width) returns a "
        "flax.linen Module or a flax.nnx factory (rngs -> Module), fed --input-shape standard-normal inputs, with "
        "integer labels of the shape of its output without the last axis. --param mup and sp call the same "
        "factory (only the init and the learning rates differ), so a model with attention must itself scale its "
        "logits as μP does (flaxinit.mup.dot_product_attention), and a tied readout must be flaxinit.mup.Readout "
        "(default mlp)",
    )
    p.add_argument(
        "--widths", metavar="W,W,...", default="64,128,256,512,1024", help="at least two (default 64,128,256,512,1024)"
    )
    p.add_argument(
        "--param",
        action="append",
        choices=COORD_PARAMETRIZATIONS,
        help="parametrization, sp or mup; repeat for both, run in the order given (default: sp, then mup)",
    )
    p.add_argument(
        "--optimizer", default="adam", choices=("adam", "sgd"), help="adam (no weight decay) or sgd (no momentum)"
    )
    p.add_argument("--lr", type=_positive_float, default=0.01, help="learning rate (the base model's; default 0.01)")
    p.add_argument("--steps", type=tooling.positive_int, default=3, help="steps recorded, t = 1 at init (default 3)")
    p.add_argument("--seeds", type=_at_least_two, default=8, help="models per width, at least 2 (default 8)")
    p.add_argument("--base-width", metavar="W", type=tooling.positive_int, help="the width where μP is the identity "
                   "(default: the smallest width)")  # fmt: skip
    p.add_argument("--key", metavar="K", type=int, default=0, help="PRNG seed of the models and the batch (Philox; "
                   "default 0)")  # fmt: skip
    p.add_argument("--zero-query", action="store_true", help="under μP, attention query kernels start at zero")
    p.add_argument("--tied", action="store_true", help="transformer: tied input and output embeddings")
    p.add_argument("--input-shape", metavar="B,...,F", help="package.module:factory models: the input batch's shape")
    p.add_argument(
        "--classes",
        metavar="C",
        type=tooling.positive_int,
        help="package.module:factory models: labels in [0, C) (default: the size of the output's last axis)",
    )
    p.add_argument("--json", type=Path, help="write settings and results (atomically) to this JSON file")
    p.add_argument("--csv", type=Path, help="write the rows (atomically) to this CSV file")
    p.add_argument("--plot", type=Path, help="write mean |a| against width: a row of panels (one per step) per --param")
    p.add_argument("--resume", action="store_true", help="continue the partial run in --json")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _compilation_cache_argument(p)

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
    key = _protocols.as_key(args.seed, args.prng)
    schemes: dict[str, flaxinit.Initializer] = {}
    tables: list[_runner.Table] = []

    def scheme(spec: str) -> flaxinit.Initializer:
        schemes[spec] = parse_scheme(spec)
        return schemes[spec]

    settings: dict[str, Any] = {
        "command": args.command,
        "seed": args.seed,
        "prng": _protocols.prng_name(key),
        "iterations": args.iterations,
    }
    if args.command in ("standard", "reproduce"):
        specs = REPRODUCE_STANDARD if args.command == "reproduce" else (args.scheme,)
        sizes = ARTICLE_SIZES if args.command == "reproduce" else _int_list(args.sizes, "--sizes")
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
        widths = _int_list(args.widths, "--widths")
        task = _protocols.depth_task(key, widths, args.activation, scheme(args.scheme), args.iterations, args.inputs)
        tables.append(_runner.Table("depth", [(args.scheme, task)]))
        settings.update(scheme=args.scheme, widths=widths, activation=args.activation, inputs=args.inputs)
    return tables, schemes, settings


def _audit_table(args, key, scheme: Callable[[str], Any], settings: dict[str, Any]) -> _runner.Table:
    from mc import _audit

    specs = args.scheme or ["xavier_standard"]
    shape = tuple(_int_list(args.input_shape, "--input-shape")) if args.input_shape else None
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


def use_compilation_cache(directory: str) -> None:
    """Turns on JAX's persistent compilation cache in ``directory`` (``"none"``: leaves it off)."""
    if directory.lower() == "none":
        return
    path = Path(directory).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise tooling.UsageError(f"--compilation-cache: cannot create {path} ({err.strerror})") from None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


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


def coord_batch(
    model: str,
    key: jax.Array,
    input_shape: Sequence[int] | None = None,
    target_shape: Sequence[int] | None = None,
    classes: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """coord-check's one fixed batch ``(inputs, targets)`` for ``--model``, drawn from ``key``.

    ``mlp``: :data:`COORD_MLP_BATCH` standard-normal inputs, integer labels in ``[0,
    COORD_CLASSES)``; ``transformer``: :data:`COORD_TRANSFORMER_BATCH` tokens in ``[0,
    COORD_VOCAB)``, each position's target the next token; a user's model: standard-normal
    inputs of ``input_shape``, labels in ``[0, classes)`` of ``target_shape``. The inputs come
    from ``fold_in(key, crc32(b"coord-check inputs"))``, the labels from ``... targets``:
    streams apart from the models' (``coord_check`` draws seed ``s`` from ``fold_in(key, s)``).
    """
    k_inputs, k_targets = (
        jax.random.fold_in(key, zlib.crc32(f"coord-check {s}".encode())) for s in ("inputs", "targets")
    )
    if model == "transformer":
        batch, length = COORD_TRANSFORMER_BATCH
        tokens = jax.random.randint(k_inputs, (batch, length + 1), 0, COORD_VOCAB)
        return tokens[:, :-1], tokens[:, 1:]
    if model == "mlp":
        input_shape, target_shape, classes = COORD_MLP_BATCH, COORD_MLP_BATCH[:-1], COORD_CLASSES
    inputs = jax.random.normal(k_inputs, tuple(input_shape))
    return inputs, jax.random.randint(k_targets, tuple(target_shape), 0, classes)


def _output_shape(name: str, factory: Callable[[int], Any], width: int, shape: tuple[int, ...], key) -> tuple[int, ...]:
    """The shape of a user's model's output at ``width`` on inputs of ``shape`` (one abstract pass)."""
    from mc._model import as_model

    try:
        m = as_model(factory(width))
        x = jax.ShapeDtypeStruct(shape, jax.numpy.float32)

        def forward(k, x):
            return m.apply(m.init(k, x), x, None, k)[0]

        return tuple(jax.eval_shape(forward, key, x).shape)
    except Exception as err:  # the user's code: one line that says where, not a traceback
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise tooling.UsageError(
            f"--model {name}: factory({width}) does not give a model that runs on --input-shape "
            f"{','.join(map(str, shape))} ({type(err).__name__}: {first})"
        ) from None


def run_coord_check(args) -> int:
    """``python -m mc coord-check``: one :func:`mc.coord_check` per ``--param``, through
    :class:`mc._runner.CoordRunner` (progress, Ctrl-C, ``--resume``)."""
    from mc import _coord

    if args.resume and args.json is None:
        raise tooling.UsageError("--resume needs --json PATH: the partial run to continue")
    widths = _int_list(args.widths, "--widths")
    if len(widths) < 2 or len(set(widths)) != len(widths):
        raise tooling.UsageError(
            f"--widths must list at least two distinct widths (a slope needs two), got {args.widths!r}"
        )
    widths = sorted(widths)
    params = args.param or list(COORD_PARAMETRIZATIONS)
    for p in params:
        if params.count(p) > 1:
            raise tooling.UsageError(f"--param {p} is given twice")
    base = args.base_width or widths[0]
    builtin = args.model in COORD_MODELS
    for flag, value in (("--input-shape", args.input_shape), ("--classes", args.classes)):
        if builtin and value is not None:
            raise tooling.UsageError(
                f"{flag} is for package.module:factory models; --model {args.model} has its own batch"
            )
    if args.tied and args.model != "transformer":
        raise tooling.UsageError("--tied is for --model transformer (tied input and output embeddings)")
    if args.model == "transformer":
        heads = _TRANSFORMER.heads
        if bad := [w for w in dict.fromkeys([*widths, base]) if w % heads]:
            raise tooling.UsageError(
                f"--widths and --base-width must be multiples of {heads} for --model transformer "
                f"({heads} attention heads), got {bad}"
            )
    use_compilation_cache(args.compilation_cache)
    key = _protocols.as_key(args.key, "philox")
    if builtin:
        options: dict[str, Any] = {}
        if args.model == "transformer":
            options = {"vocab": COORD_VOCAB, "base_width": base, "tied": args.tied}
        models = {p: _width_models.width_model(args.model, p, **options) for p in params}
        inputs, targets = coord_batch(args.model, key)
        classes = COORD_VOCAB if args.model == "transformer" else COORD_CLASSES
    else:
        try:
            factory = _models.import_factory(args.model, COORD_MODELS)
        except ValueError as err:
            raise tooling.UsageError(str(err)) from None
        if args.input_shape is None:
            raise tooling.UsageError(
                f"--model {args.model} needs --input-shape, the shape of its input batch, like 64,12"
            )
        shape = tuple(_int_list(args.input_shape, "--input-shape"))
        output = _output_shape(args.model, factory, base, shape, key)
        if not output:
            raise tooling.UsageError(
                f"--model {args.model}: the output is a scalar; coord-check needs logits [..., classes]"
            )
        classes = args.classes or output[-1]
        if classes > output[-1]:
            raise tooling.UsageError(
                f"--classes {classes}: the model's output has only {output[-1]} logits (shape {output})"
            )
        models = dict.fromkeys(params, factory)  # μP or SP: the same model; only the init and the LRs differ
        inputs, targets = coord_batch(args.model, key, shape, output[:-1], classes)
    settings: dict[str, Any] = {
        "command": args.command,
        "model": args.model,
        "parametrizations": params,
        "widths": widths,
        "base_width": base,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "steps": args.steps,
        "seeds": args.seeds,
        "key": args.key,
        "prng": _protocols.prng_name(key),
        "zero_query": args.zero_query,
        "tied": args.tied,
        "input_shape": list(inputs.shape),
        "classes": classes,
        "loss": "xent",
    }
    checks = {
        p: functools.partial(
            _coord.coord_check,
            models[p],
            widths,
            inputs,
            targets,
            base=base,
            parametrization=p,
            optimizer=args.optimizer,
            lr=args.lr,
            steps=args.steps,
            seeds=args.seeds,
            key=key,
            zero_query=args.zero_query,
        )
        for p in params
    }
    runner = _runner.CoordRunner(settings, params, widths, progress=not args.quiet)
    if args.resume:
        if not args.json.exists():
            raise tooling.UsageError(f"--resume: {args.json} does not exist")
        try:
            data = json.loads(args.json.read_text())
        except ValueError as err:
            raise tooling.UsageError(f"--resume: {args.json} is not JSON ({err})") from None
        if not isinstance(data, dict):
            raise tooling.UsageError(f"--resume: {args.json} is not a results file of python -m mc coord-check")
        runner.load(data)
    if args.plot:
        _report.require_matplotlib()  # no matplotlib: say so now, not after the run
    start = time.perf_counter()
    complete = runner.run(checks)
    return _report.report_coord(args, runner, complete, time.perf_counter() - start)


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
    commands: dict[str, Callable[[argparse.Namespace], int]] = {"fit": run_fit, "coord-check": run_coord_check}

    def run() -> int:
        args = build_parser().parse_args(argv)
        return commands.get(args.command, run_tables)(args)

    return tooling.run_command("python -m mc", run)
