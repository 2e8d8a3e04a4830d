"""What :func:`mc.lr_transfer` measures and how it is read: the optimum of a size
(:func:`optimal_log2_lr`), the result (:class:`TransferResult`) and its figure
(:func:`plot_transfer`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from flaxinit.tooling import AsDict, check_real

# --- the optimum of a size -------------------------------------------------------------------


def check_grid(log2_lrs: Any, name: str = "log2_lrs") -> np.ndarray:
    """``log2_lrs`` as a float64 array, checked: at least three distinct finite numbers."""
    if isinstance(log2_lrs, str) or not isinstance(log2_lrs, Iterable):
        raise TypeError(f"{name} must be a sequence of finite numbers, got {log2_lrs!r}")
    if hasattr(log2_lrs, "tolist"):  # NumPy or jax arrays: their elements as Python numbers
        log2_lrs = np.asarray(log2_lrs).tolist()
    values = [check_real(v, f"each of {name}") for v in log2_lrs]
    if len(values) < 3 or len(set(values)) != len(values):
        raise ValueError(f"{name} must hold at least three distinct values (a parabola needs three), got {values}")
    return np.asarray(values, np.float64)


def _vertex(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The vertex ``(x, y)`` of the parabola through three points whose middle one is lowest
    (the middle point itself when the three lie on a line)."""
    (x0, x1, x2), (y0, y1, y2) = x, y
    a, b = (x1 - x0) * (y1 - y2), (x1 - x2) * (y1 - y0)
    denominator = a - b
    if denominator == 0:
        return float(x1), float(y1)
    xv = x1 - 0.5 * ((x1 - x0) * a - (x1 - x2) * b) / denominator
    # the parabola's value at its vertex, from Lagrange's form
    yv = (
        y0 * (xv - x1) * (xv - x2) / ((x0 - x1) * (x0 - x2))
        + y1 * (xv - x0) * (xv - x2) / ((x1 - x0) * (x1 - x2))
        + y2 * (xv - x0) * (xv - x1) / ((x2 - x0) * (x2 - x1))
    )
    return float(xv), float(yv)


def _optimum(log2_lrs: np.ndarray, losses: np.ndarray) -> tuple[float, float, bool]:
    y = np.where(np.isfinite(losses), losses, np.inf)
    if not np.isfinite(y).any():
        return math.nan, math.nan, True
    i = int(np.argmin(y))
    if i == 0 or i == len(y) - 1:
        return float(log2_lrs[i]), float(y[i]), True
    if not np.isfinite(y[i - 1 : i + 2]).all():
        return float(log2_lrs[i]), float(y[i]), False
    xv, yv = _vertex(log2_lrs[i - 1 : i + 2], y[i - 1 : i + 2])
    return xv, yv, False


def optimal_log2_lr(log2_lrs: Sequence[float], losses: Sequence[float]) -> tuple[float, bool]:
    """The optimal log2 learning rate of a grid (SPEC §10) and whether it lies at the grid's edge.

    The vertex of the parabola through the grid's best point and its two neighbours (in
    log2 LR; the grid need not be evenly spaced). A loss that is not finite (NaN, ±inf: a
    diverged run) counts as +inf. When the best point is the grid's first or last, the
    optimum may lie outside the grid: that point is returned with ``at_edge=True``. When a
    neighbour of the best point diverged the parabola is not defined and the best point is
    returned (``at_edge=False``: the optimum is inside the grid, between its neighbours).
    When every loss diverged: ``(nan, True)``. Ties go to the smaller learning rate.

    Args:
      log2_lrs: the grid, at least three distinct finite values, increasing.
      losses: the figure of merit at each point of the grid.

    Returns:
      ``(optimal log2 LR, at_edge)``.

    Examples:
      >>> from mc import optimal_log2_lr
      >>> optimal_log2_lr([-3, -2, -1, 0], [4.0, 1.0, 2.0, 9.0])  # through (-3, 4), (-2, 1), (-1, 2)
      (-1.75, False)
      >>> optimal_log2_lr([-3, -2, -1], [3.0, 2.0, 1.0])
      (-1.0, True)
    """
    x = check_grid(log2_lrs)
    if not np.all(np.diff(x) > 0):
        raise ValueError(f"log2_lrs must be increasing, got {x.tolist()}")
    try:
        y = np.asarray(losses, np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"losses must be a sequence of numbers, got {losses!r}") from None
    if y.shape != x.shape:
        raise ValueError(f"losses must hold one value per learning rate ({len(x)}), got shape {y.shape}")
    value, _, at_edge = _optimum(x, y)
    return value, at_edge


# --- results ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TransferResult(AsDict):
    """What :func:`lr_transfer` measured.

    Attributes:
      model: the model's class name.
      parametrization: ``"mup"`` or ``"sp"``.
      optimizer: ``"adam"`` or ``"sgd"``.
      sweep: ``"width"``, ``"depth"``, ``"batch"`` or ``"steps"``.
      sizes: the widths (depths, batch sizes, numbers of steps), increasing.
      base: the base width (depth, batch size, number of steps).
      alpha: the depth exponent of the optimizer's depth rules (``None``: none).
      log2_lrs: the grid of log2 learning rates, increasing.
      steps: training steps per run (``None`` in a steps sweep: the sizes).
      batch_size: rows per step (``None`` in a batch sweep: the sizes).
      seeds: runs per (size, learning rate).
      last: the figure of merit averages the loss over the last ``last`` steps (``None`` in a
        steps sweep: each run's own last 10%).
      loss: ``"xent"``, ``"mse"`` or ``"custom"``.
      loss_seeds: per size, per learning rate, per seed: the run's training loss averaged
        over its last ``last`` steps; ``inf`` for a run whose loss was not finite at some
        step (diverged).
      loss_mean: per size, per learning rate: the mean over seeds (``inf`` if a seed diverged).
      loss_se: its standard error (the seeds' std / sqrt(seeds); ``nan`` where a seed diverged).
      optimal_log2_lr: per size, :func:`optimal_log2_lr` of ``loss_mean``.
      at_edge: per size, whether that optimum is at the grid's edge (it may lie outside).
      prng: the generator of the keys.
      width: in a batch or steps sweep, the fixed width (``None`` otherwise).
      base_width: in a batch or steps sweep, the base width of μP's width rules (``None``: the
        model is its own base).

    ``to_dict()`` adds ``spread`` (infinities and NaN stay floats: ``write_json`` writes them as
    null); ``from_dict`` reads a ``null`` loss as a diverged run's (``inf``), a ``null``
    standard error or optimum as ``nan``, and recomputes ``spread``.
    ``experiments/results/mutransfer/<arm>.json`` holds one under ``"result"``.

    Examples:
      >>> import json, pathlib, mc
      >>> stored = pathlib.Path(mc.__file__).parents[1] / "experiments/results/mutransfer/mlp_mup.json"
      >>> arm = json.loads(stored.read_text())
      >>> r = mc.TransferResult.from_dict(arm["result"])
      >>> r.parametrization, r.sizes, round(r.spread, 2) == round(arm["result"]["spread"], 2)
      ('mup', (64, 128, 256, 512, 1024), True)
    """

    DERIVED: ClassVar[tuple[str, ...]] = ("spread",)
    NULLS: ClassVar[Mapping[str, float]] = {"loss_seeds": math.inf, "loss_mean": math.inf}

    model: str
    parametrization: str
    optimizer: str
    sweep: str
    sizes: tuple[int, ...]
    base: int
    alpha: float | None
    log2_lrs: tuple[float, ...]
    steps: int | None
    batch_size: int | None
    seeds: int
    last: int | None
    loss: str
    loss_seeds: tuple[tuple[tuple[float, ...], ...], ...]
    loss_mean: tuple[tuple[float, ...], ...]
    loss_se: tuple[tuple[float, ...], ...]
    optimal_log2_lr: tuple[float, ...]
    at_edge: tuple[bool, ...]
    prng: str
    width: int | None = None
    base_width: int | None = None

    @property
    def spread(self) -> float:
        """max − min of the optimal log2 learning rate across sizes (``nan`` if a size has none):
        small when the learning rate transfers."""
        values = np.asarray(self.optimal_log2_lr, np.float64)
        return float(values.max() - values.min()) if np.isfinite(values).all() else math.nan

    def plot(self, path: str | Path, *, title: str | None = None) -> None:
        """Tensor Programs V's Figure 1: training loss against log2 learning rate, one line per
        size (coloured by size), the optimum marked; written atomically (format from the suffix)."""
        plot_transfer([self], path, titles=[title] if title else None)


def _y_limits(result: TransferResult) -> tuple[float, float] | None:
    """From a little below the best loss (or a parabola's vertex) to the highest loss at or left
    of each size's best learning rate (the slow side, bounded by the loss at init): the
    diverging side, whose losses can be orders of magnitude larger, is clipped instead of
    squashing the minima."""
    means = np.asarray(result.loss_mean, np.float64)
    finite = means[np.isfinite(means)]
    if finite.size == 0:
        return None
    vertices = [_optimum(np.asarray(result.log2_lrs), row)[1] for row in means]
    low = min(float(finite.min()), *(v for v in vertices if math.isfinite(v)))
    high = low
    for row in means:
        if np.isfinite(row).any():
            left = row[: int(np.argmin(np.where(np.isfinite(row), row, np.inf))) + 1]
            high = max(high, float(left[np.isfinite(left)].max()))
    if high - low < 1e-6 * max(1.0, abs(low)):
        high = float(finite.max())
    if high - low < 1e-6 * max(1.0, abs(low)):
        high = low + max(1.0, abs(low)) * 0.1
    pad = 0.05 * (high - low)
    return low - pad, high + pad


#: What the sizes of a sweep are, for legends and messages.
SIZE_NAMES = {"width": "width", "depth": "depth", "batch": "batch size", "steps": "steps"}


def plot_transfer(results: Sequence[TransferResult], path: str | Path, *, titles: Sequence[str] | None = None) -> None:
    """Several :class:`TransferResult` side by side (SP | μP), each in Figure 1's layout.

    Diverged points (an infinite mean) are drawn as crosses at the top of the panel; the
    optimum of each size as a star at the parabola's vertex."""
    from flaxinit.tooling import colormap, new_figure, save_figure

    results = list(results)
    if not results or not all(isinstance(r, TransferResult) for r in results):
        raise TypeError("results must be a non-empty sequence of TransferResult")
    if titles is not None and len(titles) != len(results):
        raise ValueError(f"titles must hold one title per result ({len(results)}), got {len(titles)}")
    sizes = sorted({s for r in results for s in r.sizes})
    logs = np.log2(sizes)
    span = max(float(logs.max() - logs.min()), 1.0)
    cmap = colormap()
    fig, axes = new_figure(1, len(results), figsize=(4.6 * len(results), 3.8), squeeze=False)
    for k, result in enumerate(results):
        ax = axes[0, k]
        x = np.asarray(result.log2_lrs)
        limits = _y_limits(result)
        for i, size in enumerate(result.sizes):
            color = cmap(0.9 * (math.log2(size) - logs.min()) / span)
            mean = np.asarray(result.loss_mean[i], np.float64)
            se = np.asarray(result.loss_se[i], np.float64)
            shown = np.where(np.isfinite(mean), mean, np.nan)
            ax.errorbar(x, shown, yerr=np.where(np.isfinite(se), se, np.nan), color=color, lw=1.2, marker=".",
                        ms=4, capsize=0, label=str(size))  # fmt: skip
            if limits is not None and not np.isfinite(mean).all():
                top = limits[1]
                ax.plot(x[~np.isfinite(mean)], np.full((~np.isfinite(mean)).sum(), top), "x", color=color, ms=5,
                        clip_on=False)  # fmt: skip
            xv, yv, at_edge = _optimum(x, mean)
            if math.isfinite(xv):
                ax.plot([xv], [yv], "*", color=color, ms=11, mec="black", mew=0.6, alpha=0.5 if at_edge else 1.0)
        if limits is not None:
            ax.set_ylim(*limits)
        unit = SIZE_NAMES[result.sweep]
        title = titles[k] if titles else f"{result.model} {result.parametrization} {result.optimizer}"
        ax.set(xlabel="log2 learning rate", title=f"{title}\nspread {result.spread:.2f} (log2)")
        if k == 0:
            window = "last 10% of the steps" if result.last is None else f"last {result.last} steps"
            ax.set_ylabel(f"training loss ({window})" if result.steps is None
                          else f"training loss (last {result.last} of {result.steps} steps)")  # fmt: skip
        ax.legend(title=unit, fontsize=7, title_fontsize=7)
        ax.grid(alpha=0.3)
    save_figure(fig, path, dpi=110)


__all__ = ["SIZE_NAMES", "TransferResult", "check_grid", "optimal_log2_lr", "plot_transfer"]
