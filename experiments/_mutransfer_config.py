"""What ``python -m experiments mutransfer`` runs: its sweeps and their arms, each sweep's sizes,
learning-rate grid and training budget (:data:`DEFAULT`, :data:`QUICK`), and which arms take
other settings than their sweep's (the Muon arms, :data:`MUON_ARMS`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from flaxinit import tooling

SWEEPS = ("mlp", "transformer", "depth", "batch", "steps")
ARMS = {"mlp": ("sp", "mup", "muon_sp", "muon_mup"), "transformer": ("sp", "mup", "muon_sp", "muon_mup"),
        "depth": ("none", "completep"), "batch": ("mup", "mup_rule"), "steps": ("mup", "mup_rule")}  # fmt: skip
ARM_TITLES = {"sp": "SP", "mup": "μP", "none": "no depth scaling", "completep": "CompleteP (α = 1)",
              "mup_rule": "μP with the rule", "muon_sp": "optax's Muon (SP)", "muon_mup": "mup.muon (μP)"}  # fmt: skip
#: The arms trained with Muon (their sweep's model, their own sizes, grid and budget: ``Config.muon``).
MUON_ARMS = ("muon_sp", "muon_mup")
#: The sweeps at a fixed width, and the mc.lr_transfer argument their sizes replace.
SWEPT = {"batch": "batch_size", "steps": "steps"}
#: The AdamW weight decay of the batch and steps sweeps (independent of the LR multipliers).
WEIGHT_DECAY = 0.1
BLOCKS = "block_*"  # the Transformer's residual blocks (the depth rules' parameters)
#: How summary.json names each sweep's sizes.
UNITS = {"mlp": "widths", "transformer": "widths", "depth": "depths", "batch": "batch_sizes", "steps": "steps"}


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
    muon: dict[str, SweepConfig]  # the Muon arms' of "mlp" and "transformer"
    length: int  # characters the Transformer reads
    seeds: int
    key: int


def _grid(low: int, high: int) -> tuple[float, ...]:
    return tuple(float(v) for v in range(low, high + 1))


#: The measured run. Adam's width and depth sweeps are sized for an accelerator (those stored ran
#: on one GPU): MLP widths over 16x, Transformer widths over 8x. The batch and steps sweeps run on
#: a CPU in minutes, over 8x. The Muon arms keep the width ratios (16x, 8x) from a base of 16 and
#: train shorter, so that they run on a CPU in about half an hour: Newton–Schulz takes about fifteen
#: products of a matrix's smaller side cubed per step, which at the Adam arms' largest widths makes
#: a Muon step many times an Adam step on a CPU. Ten log2 learning rates each (wide enough that
#: every optimum, SP's drifting ones included, is inside), three seeds.
DEFAULT = Config(
    mlp=SweepConfig((64, 128, 256, 512, 1024), 64, _grid(-13, -4), steps=400, batch_size=128),
    transformer=SweepConfig((64, 128, 256, 512), 64, _grid(-13, -4), steps=300, batch_size=32),
    depth=SweepConfig((2, 4, 8, 16), 2, _grid(-12, -3), steps=300, batch_size=32, width=128),
    batch=SweepConfig((32, 64, 128, 256), 32, _grid(-12, -3), steps=400, batch_size=32, width=256, base_width=64),
    steps=SweepConfig((100, 200, 400, 800), 100, _grid(-12, -3), steps=100, batch_size=64, width=256, base_width=64),
    muon={
        "mlp": SweepConfig((16, 32, 64, 128, 256), 16, _grid(-10, -1), steps=200, batch_size=128),
        "transformer": SweepConfig((16, 32, 64, 128), 16, _grid(-10, -1), steps=100, batch_size=32),
    },
    length=32,
    seeds=3,
    key=0,
)
#: A check of the machinery: tiny models (one block), three learning rates, a few steps; its time
#: is the compilation of its programs.
QUICK = Config(
    mlp=SweepConfig((16, 32), 16, (-8.0, -6.0, -4.0), steps=6, batch_size=16),
    transformer=SweepConfig((8, 16), 8, (-8.0, -6.0, -4.0), steps=3, batch_size=4, layers=1),
    depth=SweepConfig((1, 2), 1, (-8.0, -6.0, -4.0), steps=3, batch_size=4, width=8),
    batch=SweepConfig((8, 16), 8, (-8.0, -6.0, -4.0), steps=4, batch_size=8, width=32, base_width=16),
    steps=SweepConfig((3, 6), 3, (-8.0, -6.0, -4.0), steps=3, batch_size=8, width=32, base_width=16),
    muon={
        "mlp": SweepConfig((16, 32), 16, (-6.0, -4.0, -2.0), steps=6, batch_size=16),
        "transformer": SweepConfig((8, 16), 8, (-6.0, -4.0, -2.0), steps=3, batch_size=4, layers=1),
    },
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


def arm_groups(sweep: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """A sweep's arms by optimizer, each group one figure and one table, with the figure's name:
    ``(sweep, Adam's arms)``, then ``(sweep + "_muon", the Muon arms)`` where it has them."""
    adam = tuple(arm for arm in ARMS[sweep] if arm not in MUON_ARMS)
    muon = tuple(arm for arm in ARMS[sweep] if arm in MUON_ARMS)
    return tuple((name, group) for name, group in ((sweep, adam), (f"{sweep}_muon", muon)) if group)


def sweep_config(cfg: Config, sweep: str, arm: str) -> SweepConfig:
    """The sizes, grid and budget of one arm: its sweep's, or a Muon arm's own."""
    return cfg.muon[sweep] if arm in MUON_ARMS else getattr(cfg, sweep)


def chosen_arms(sweeps: Sequence[str] | None, arms: Sequence[str] | None) -> tuple[tuple[str, str], ...]:
    """The ``(sweep, arm)`` pairs to run, in :data:`SWEEPS`' and :data:`ARMS`' order: every arm of
    ``sweeps`` (default: every sweep), or those named in ``arms``; an unknown name, or an arm that
    none of the sweeps has, is a usage error."""
    if sweeps is not None:
        unknown = [s for s in sweeps if s not in SWEEPS]
        if unknown or not sweeps:
            raise tooling.UsageError(f"--sweeps must be comma-separated names of {', '.join(SWEEPS)}, got "
                                     f"{','.join(sweeps)!r}")  # fmt: skip
    in_sweeps = [s for s in SWEEPS if sweeps is None or s in sweeps]
    if arms is not None:
        known = {a for s in in_sweeps for a in ARMS[s]}
        unknown = [a for a in arms if a not in known]
        if unknown or not arms:
            raise tooling.UsageError(f"--arms must be comma-separated arms of the sweeps run "
                                     f"({', '.join(sorted(known))}), got {','.join(arms)!r}")  # fmt: skip
    return tuple((s, a) for s in in_sweeps for a in ARMS[s] if arms is None or a in arms)
