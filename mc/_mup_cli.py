"""``python -m mc``'s μP commands: ``coord-check``, ``verify`` and ``lr-transfer``.

They share one vocabulary (``--sizes``, ``--base``, ``--sweep``, ``--alpha``, ``--key``; the
earlier ``--widths`` and ``--base-width`` still work) and one way to name a model: ``mlp`` or
``transformer`` (:func:`mc.width_model`), or a user's ``package.module:factory``
(``factory(size)`` returns a linen Module or an nnx factory). A check runs on one fixed batch:
the reference models' own (:func:`coord_batch`, drawn from ``--key``), ``--input-shape``
standard-normal inputs with random labels for a user's model, or a user's data (``--data
file.npz`` with arrays ``inputs`` and ``targets``; the LR sweep needs real data).

* ``coord-check`` (:func:`run_coord_check`): :func:`mc.coord_check` per ``--param``, through
  :class:`mc._runner.CoordRunner` (progress, Ctrl-C after a size, ``--resume``), the slopes
  printed (:func:`mc._report.report_coord`).
* ``verify`` (:func:`run_verify`): :func:`mc.verify`; prints the verdict's table and exits 0
  when μP holds, 1 when it does not, 2 on bad input: a step for a user's CI.
* ``lr-transfer`` (:func:`run_lr_transfer`): :func:`mc.lr_transfer` on ``--data``; prints
  each size's optimum and the spread.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from flaxinit import tooling
from mc import _keys, _models, _report, _runner, _width_models
from mc._cli_common import at_least_two, compilation_cache_argument, int_list, positive_float, use_compilation_cache

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
#: The fixed width of a reference Transformer's depth sweep (``--sweep depth``).
DEPTH_WIDTH = 64
#: lr-transfer's training steps and batch size where they are not the swept sizes.
TRANSFER_STEPS, TRANSFER_BATCH = 200, 32


def _model_help(command: str) -> str:
    return (
        f"mlp ({_width_models.MLP.hidden_layers} hidden layers; {COORD_MLP_BATCH[0]} standard-normal inputs of "
        f"{COORD_MLP_BATCH[1]} features, labels in [0, {COORD_CLASSES})), transformer (pre-LN, {_TRANSFORMER.depth} "
        f"blocks, {_TRANSFORMER.heads} heads: widths must be multiples of {_TRANSFORMER.heads}; "
        f"{COORD_TRANSFORMER_BATCH[0]} sequences of {COORD_TRANSFORMER_BATCH[1]} tokens of a vocabulary of "
        f"{COORD_VOCAB}, next-token targets), or package.module:factory: factory(size) returns a flax.linen Module "
        "or a flax.nnx factory (rngs -> Module), fed --data or --input-shape standard-normal inputs with integer "
        "labels of the shape of its output without the last axis. The model must itself be μP where μP asks the "
        "model to change (flaxinit.mup.dot_product_attention, flaxinit.mup.Readout for a tied readout)"
        + (" (default mlp)" if command != "lr-transfer" else "")
    )


def _shared_arguments(p: argparse.ArgumentParser, command: str, steps: int) -> None:
    """The arguments every μP command takes, with the same names and meaning."""
    p.add_argument("--model", default=None if command == "lr-transfer" else "mlp", required=command == "lr-transfer",
                   help=_model_help(command))  # fmt: skip
    transfer = command == "lr-transfer"
    p.add_argument("--sizes", "--widths", dest="sizes", metavar="S,S,...", default="64,128,256,512,1024",
                   help="widths, or numbers of blocks with --sweep depth"
                   + (", batch sizes with --sweep batch, numbers of steps with --sweep steps" if transfer else "")
                   + " (--widths: its earlier name; default 64,128,256,512,1024)")  # fmt: skip
    p.add_argument("--base", "--base-width", dest="base", metavar="S", type=tooling.positive_int,
                   help="the size where μP is the identity (--base-width: its earlier name; default: the smallest "
                   "size)")  # fmt: skip
    sweeps = ("width", "depth", "batch", "steps") if transfer else ("width", "depth")
    p.add_argument("--sweep", default="width", choices=sweeps, help=f"{', '.join(sweeps[:-1])} or {sweeps[-1]} "
                   "(default width)")  # fmt: skip
    p.add_argument("--alpha", type=float, help="depth sweeps: the depth exponent (1/2: depth-μP, 1: CompleteP)")
    p.add_argument("--blocks", help="depth sweeps of a user's model: path globs of the residual blocks' parameters")
    p.add_argument("--optimizer", default="adam", choices=("adam", "sgd"),
                   help="adam (no weight decay) or sgd (no momentum)")  # fmt: skip
    p.add_argument("--steps", type=tooling.positive_int, default=None if transfer else steps,
                   help=f"training steps (default {steps})")  # fmt: skip
    p.add_argument("--seeds", type=at_least_two, default=8 if command != "lr-transfer" else 3,
                   help="models per size and learning rate, at least 2")  # fmt: skip
    p.add_argument("--key", metavar="K", type=int, default=0, help="PRNG seed of the models and the batch (Philox; "
                   "default 0)")  # fmt: skip
    p.add_argument("--data", type=Path, help="an .npz file with arrays 'inputs' and 'targets' (integer labels)")
    p.add_argument("--input-shape", metavar="B,...,F", help="package.module:factory models without --data: the "
                   "input batch's shape")  # fmt: skip
    p.add_argument("--classes", metavar="C", type=tooling.positive_int, help="package.module:factory models "
                   "without --data: labels in [0, C) (default: the size of the output's last axis)")  # fmt: skip
    p.add_argument("--tied", action="store_true", help="transformer: tied input and output embeddings")
    p.add_argument("--json", type=Path, help="write settings and results (atomically) to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    compilation_cache_argument(p)


def add_commands(sub: Any) -> None:
    """The μP commands' parsers, on ``python -m mc``'s subparsers."""
    p = sub.add_parser(
        "coord-check",
        help="μP's coordinate check: every layer's scale against width over the first training steps",
        description="The coordinate check (SPEC §10, microsoft/mup's get_coord_data): for each size, --seeds "
        "models are trained --steps steps on one fixed batch drawn from --key; at each step (t = 1 at init) every "
        "layer output's mean |a| is recorded, and the slope of log2 mean|a| against log2 size is printed with its "
        "standard error. Under correct μP every slope is about 0; in SP with Adam the output's grows from t = 2. "
        "Ctrl-C stops after the current size and writes what was computed; --resume continues.",
    )
    _shared_arguments(p, "coord-check", steps=3)
    p.add_argument("--param", action="append", choices=COORD_PARAMETRIZATIONS,
                   help="parametrization, sp or mup; repeat for both, run in the order given (default: sp, then "
                   "mup)")  # fmt: skip
    p.add_argument("--lr", type=positive_float, default=0.01, help="learning rate (the base model's; default 0.01)")
    p.add_argument("--zero-query", action="store_true", help="under μP, attention query kernels start at zero")
    p.add_argument("--csv", type=Path, help="write the rows (atomically) to this CSV file")
    p.add_argument("--plot", type=Path, help="write mean |a| against size: a row of panels (one per step) per --param")
    p.add_argument("--resume", action="store_true", help="continue the partial run in --json")

    p = sub.add_parser(
        "verify",
        help="a pass/fail verdict on μP that names the cause (exit 0: μP holds, 1: it does not, 2: bad input)",
        description="mc.verify (SPEC §11): the coordinate check with every quantity μP predicts an exponent for "
        "(activations, each layer's update effect, attention logits, the output), each compared with μP's "
        "prediction within the seeds' standard error and a stated allowance; prints a table of what failed and "
        "the likely cause. Exit status 0 when μP holds, 1 when it does not, 2 on bad input.",
    )
    _shared_arguments(p, "verify", steps=4)
    p.add_argument("--lr", type=positive_float, default=0.01, help="learning rate (the base model's; default 0.01)")

    p = sub.add_parser(
        "lr-transfer",
        help="learning-rate transfer: the optimal LR of each size over a log2 grid, and its spread",
        description="mc.lr_transfer (SPEC §10, Tensor Programs V's Figure 1) on --data: every learning rate of "
        "--log2-lrs trained --steps steps from --seeds seeds at every size; prints each size's optimal log2 "
        "learning rate and the spread across sizes (small when the learning rate transfers).",
    )
    _shared_arguments(p, "lr-transfer", steps=TRANSFER_STEPS)
    p.add_argument("--log2-lrs", default="-12,-11,-10,-9,-8,-7,-6,-5,-4,-3",
                   help="the grid of log2 learning rates, written --log2-lrs=-10,-9,-8 (a value that starts with "
                   "'-' needs the '='; default -12 to -3)")  # fmt: skip
    p.add_argument("--batch-size", type=tooling.positive_int, help=f"rows per step (default {TRANSFER_BATCH})")
    p.add_argument("--width", metavar="W[,BASE]", help="--sweep batch or steps: the model's width, and the base width "
                   "μP scales it against (default: the width itself)")  # fmt: skip
    p.add_argument("--param", default="mup", choices=COORD_PARAMETRIZATIONS, help="mup (default) or sp")
    p.add_argument("--plot", type=Path, help="write the loss against log2 LR per size (Figure 1's layout)")


# --- models and data ------------------------------------------------------------------------------


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


def _load_data(path: Path) -> tuple[jax.Array, jax.Array]:
    try:
        with np.load(path) as data:
            return jax.numpy.asarray(data["inputs"]), jax.numpy.asarray(data["targets"])
    except (OSError, ValueError, KeyError) as err:
        raise tooling.UsageError(
            f"--data {path}: not an .npz file with arrays 'inputs' and 'targets' ({err})"
        ) from None


def _sizes(args) -> tuple[list[int], int]:
    sizes = int_list(args.sizes, "--sizes")
    if len(sizes) < 2 or len(set(sizes)) != len(sizes):
        raise tooling.UsageError(
            f"--sizes must list at least two distinct sizes (a slope needs two), got {args.sizes!r}"
        )
    sizes = sorted(sizes)
    return sizes, args.base or sizes[0]


def _check_flags(args, builtin: bool, sizes: Sequence[int], base: int) -> None:
    for flag, value in (("--input-shape", args.input_shape), ("--classes", args.classes)):
        if builtin and value is not None:
            raise tooling.UsageError(f"{flag} is for package.module:factory models; --model {args.model} has its "
                                     "own batch")  # fmt: skip
    if args.tied and args.model != "transformer":
        raise tooling.UsageError("--tied is for --model transformer (tied input and output embeddings)")
    if args.sweep == "depth" and args.alpha is None:
        raise tooling.UsageError("--sweep depth needs --alpha (1/2: depth-μP, 1: CompleteP)")
    if args.alpha is not None and args.sweep != "depth":
        raise tooling.UsageError("--alpha is for --sweep depth")
    if args.sweep == "depth" and args.model == "mlp":
        raise tooling.UsageError("--sweep depth needs residual blocks: --model transformer or a factory")
    if args.model == "transformer" and args.sweep in ("width", "batch", "steps"):
        heads = _TRANSFORMER.heads
        if bad := [w for w in dict.fromkeys([*sizes, base]) if w % heads]:
            names = "--sizes and --base" if args.sweep == "width" else "--width"
            raise tooling.UsageError(f"{names} must be multiples of {heads} for --model transformer "
                                     f"({heads} attention heads), got {bad}")  # fmt: skip


def models_and_batch(args, parametrizations: Sequence[str], sizes: Sequence[int], base: int, key) -> tuple[
    dict[str, Callable[[int], Any]], jax.Array, jax.Array, int, str | None
]:  # fmt: skip
    """``(model per parametrization, inputs, targets, classes, blocks)`` of a μP command."""
    builtin = args.model in COORD_MODELS
    _check_flags(args, builtin, sizes, base)
    if builtin:
        options: dict[str, Any] = {}
        if args.model == "transformer":
            options = {"vocab": COORD_VOCAB, "base_width": base, "tied": args.tied}
            if args.sweep == "depth":
                options = {"vocab": COORD_VOCAB, "base_width": DEPTH_WIDTH, "width": DEPTH_WIDTH, "tied": args.tied,
                           "sweep": "depth", "alpha": args.alpha, "base_depth": base}  # fmt: skip
        models = {p: _width_models.width_model(args.model, p, **options) for p in parametrizations}
        inputs, targets = _load_data(args.data) if args.data else coord_batch(args.model, key)
        classes = COORD_VOCAB if args.model == "transformer" else COORD_CLASSES
        return models, inputs, targets, classes, "block_*" if args.sweep == "depth" else args.blocks
    try:
        factory = _models.import_factory(args.model, COORD_MODELS)
    except ValueError as err:
        raise tooling.UsageError(str(err)) from None
    models = dict.fromkeys(parametrizations, factory)  # μP or SP: the same model; only the init and the LRs differ
    if args.data:
        inputs, targets = _load_data(args.data)
        return models, inputs, targets, int(np.max(np.asarray(targets))) + 1, args.blocks
    if args.input_shape is None:
        raise tooling.UsageError(f"--model {args.model} needs --data, or --input-shape, the shape of its input batch, "
                                 "like 64,12")  # fmt: skip
    shape = tuple(int_list(args.input_shape, "--input-shape"))
    output = _output_shape(args.model, factory, base, shape, key)
    if not output:
        raise tooling.UsageError(f"--model {args.model}: the output is a scalar; the checks need logits [..., classes]")
    classes = args.classes or output[-1]
    if classes > output[-1]:
        raise tooling.UsageError(f"--classes {classes}: the model's output has only {output[-1]} logits (shape "
                                 f"{output})")  # fmt: skip
    inputs, targets = coord_batch(args.model, key, shape, output[:-1], classes)
    return models, inputs, targets, classes, args.blocks


# --- the commands ---------------------------------------------------------------------------------


def run_coord_check(args) -> int:
    """``python -m mc coord-check``: one :func:`mc.coord_check` per ``--param``, through
    :class:`mc._runner.CoordRunner` (progress, Ctrl-C, ``--resume``)."""
    from mc import _coord

    if args.resume and args.json is None:
        raise tooling.UsageError("--resume needs --json PATH: the partial run to continue")
    sizes, base = _sizes(args)
    params = args.param or list(COORD_PARAMETRIZATIONS)
    for p in params:
        if params.count(p) > 1:
            raise tooling.UsageError(f"--param {p} is given twice")
    use_compilation_cache(args.compilation_cache)
    key = _keys.as_key(args.key, "philox")
    models, inputs, targets, classes, blocks = models_and_batch(args, params, sizes, base, key)
    settings: dict[str, Any] = {
        "command": args.command, "model": args.model, "parametrizations": params, "widths": sizes,
        "base_width": base, "optimizer": args.optimizer, "lr": args.lr, "steps": args.steps, "seeds": args.seeds,
        "key": args.key, "prng": _keys.prng_name(key), "zero_query": args.zero_query, "tied": args.tied,
        "input_shape": list(inputs.shape), "classes": classes, "loss": "xent",
    }  # fmt: skip
    if args.sweep == "depth":
        settings.update(sweep="depth", alpha=args.alpha)
    options = {"base": base, "sweep": args.sweep, "alpha": args.alpha, "blocks": blocks, "lr": args.lr,
               "optimizer": args.optimizer, "steps": args.steps, "seeds": args.seeds, "key": key,
               "zero_query": args.zero_query}  # fmt: skip
    checks = {
        p: functools.partial(_coord.coord_check, models[p], sizes, inputs, targets, parametrization=p, **options)
        for p in params
    }
    runner = _runner.CoordRunner(settings, params, sizes, progress=not args.quiet)
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


def _settings(args, sizes: Sequence[int], base: int, key: jax.Array, inputs: jax.Array) -> dict[str, Any]:
    return {
        "command": args.command, "model": args.model, "sizes": list(sizes), "base": base, "sweep": args.sweep,
        "alpha": args.alpha, "optimizer": args.optimizer, "steps": args.steps, "seeds": args.seeds, "key": args.key,
        "prng": _keys.prng_name(key), "input_shape": list(inputs.shape),
    }  # fmt: skip


def run_verify(args) -> int:
    """``python -m mc verify``: :func:`mc.verify`; exit 0 when μP holds, 1 when it does not."""
    from mc import _verify

    sizes, base = _sizes(args)
    if len(sizes) < 3:
        raise tooling.UsageError(f"--sizes must list at least three sizes (an exponent and its error), got {sizes}")
    if args.steps < 2:
        raise tooling.UsageError("--steps must be at least 2 (update effects start at t = 2)")
    use_compilation_cache(args.compilation_cache)
    key = _keys.as_key(args.key, "philox")
    models, inputs, targets, _, blocks = models_and_batch(args, ["mup"], sizes, base, key)
    if args.sweep == "depth" and blocks is None:
        raise tooling.UsageError("--sweep depth of a factory model needs --blocks (its residual blocks' parameters)")
    start = time.perf_counter()
    try:
        verdict = _verify.verify(
            models["mup"], sizes, inputs, targets, base=base, lr=args.lr, sweep=args.sweep, alpha=args.alpha,
            blocks=blocks, optimizer=args.optimizer, steps=args.steps, seeds=args.seeds, key=key,
        )  # fmt: skip
    except (ValueError, TypeError) as err:  # the model's stated bases, a layout infshapes cannot tell
        raise tooling.UsageError(str(err)) from None
    elapsed = time.perf_counter() - start
    print(verdict)
    if not args.quiet:
        print(f"\n{elapsed:.1f} s on {jax.default_backend()} ({len(jax.devices())} device(s))")
    if args.json:
        settings = {**_settings(args, sizes, base, key, inputs), "lr": args.lr}
        tooling.write_json(args.json, {"settings": settings, "verdict": verdict.to_dict(), "seconds": elapsed,
                                       "machine": tooling.machine()})  # fmt: skip
    return 0 if verdict.ok else 1


def _transfer_budget(args) -> tuple[int | None, int | None, tuple[int, int] | None]:
    """lr-transfer's ``(steps, batch_size, width)``: the swept one ``None``, the others given or
    their defaults; ``width`` ``(W, base W)`` for batch and steps sweeps."""
    from mc._sweep import SWEPT_ARGUMENT  # here, not at import: the parser is built for every command

    swept = SWEPT_ARGUMENT.get(args.sweep)
    if swept is not None and getattr(args, swept) is not None:
        raise tooling.UsageError(f"--{swept.replace('_', '-')} is what --sweep {args.sweep} sweeps: give its values "
                                 "as --sizes")  # fmt: skip
    steps = None if swept == "steps" else args.steps or TRANSFER_STEPS
    batch_size = None if swept == "batch_size" else args.batch_size or TRANSFER_BATCH
    if swept is None:
        if args.width is not None:
            raise tooling.UsageError(f"--width is for --sweep batch or steps (with --sweep {args.sweep} the sizes "
                                     "are the model's)")  # fmt: skip
        return steps, batch_size, None
    if args.width is None:
        raise tooling.UsageError(f"--sweep {args.sweep} needs --width W (or W,BASE): the model's width")
    width = int_list(args.width, "--width")
    if len(width) not in (1, 2):
        raise tooling.UsageError(f"--width must be W or W,BASE, got {args.width!r}")
    return steps, batch_size, (width[0], width[-1])


def run_lr_transfer(args) -> int:
    """``python -m mc lr-transfer``: :func:`mc.lr_transfer` on ``--data``."""
    from mc import _transfer

    if args.data is None:
        raise tooling.UsageError("lr-transfer needs --data file.npz (arrays 'inputs' and 'targets'): an LR sweep on "
                                 "random labels says nothing")  # fmt: skip
    sizes, base = _sizes(args)
    try:
        log2_lrs = [float(v) for v in args.log2_lrs.split(",") if v.strip()]
    except ValueError:
        raise tooling.UsageError(f"--log2-lrs must be comma-separated numbers, got {args.log2_lrs!r}") from None
    args.steps, args.batch_size, width = _transfer_budget(args)
    use_compilation_cache(args.compilation_cache)
    key = _keys.as_key(args.key, "philox")
    # a batch or steps sweep's model is the one at --width, μP against the base width
    model_sizes, model_base = ([width[0]], width[1]) if width else (sizes, base)
    models, inputs, targets, _, blocks = models_and_batch(args, [args.param], model_sizes, model_base, key)

    def progress(size: int, merit: list[list[float]]) -> None:
        if not args.quiet:
            print(f"size {size}: done", flush=True)

    start = time.perf_counter()
    try:
        result = _transfer.lr_transfer(
            models[args.param], sizes, log2_lrs, inputs, targets, base=base, parametrization=args.param,
            optimizer=args.optimizer, steps=args.steps, batch_size=args.batch_size, seeds=args.seeds, key=key,
            sweep=args.sweep, alpha=args.alpha, blocks=blocks if args.alpha is not None else None, on_size=progress,
            width=width,
        )  # fmt: skip
    except (ValueError, TypeError) as err:
        raise tooling.UsageError(str(err)) from None
    elapsed = time.perf_counter() - start
    print(f"\n{args.sweep:>6}  optimal log2 LR")
    for size, optimum, edge in zip(result.sizes, result.optimal_log2_lr, result.at_edge, strict=True):
        print(f"{size:>6}  {optimum:7.2f}{'  (at the grid edge)' if edge else ''}")
    print(f"spread: {result.spread:.2f} (log2)  [{elapsed:.1f} s]")
    if args.json:
        settings = {**_settings(args, sizes, base, key, inputs), "log2_lrs": log2_lrs, "param": args.param,
                    "batch_size": args.batch_size, "width": list(width) if width else None}  # fmt: skip
        tooling.write_json(args.json, {"settings": settings, "result": result.to_dict(), "seconds": elapsed,
                                       "machine": tooling.machine()})  # fmt: skip
    if args.plot:
        _report.require_matplotlib()
        result.plot(args.plot)
    return 0


#: The μP commands: name -> function of the parsed arguments returning the exit status.
COMMANDS = {"coord-check": run_coord_check, "verify": run_verify, "lr-transfer": run_lr_transfer}

__all__ = ["COMMANDS", "COORD_CLASSES", "COORD_MLP_BATCH", "COORD_MODELS", "COORD_VOCAB", "add_commands", "coord_batch"]
