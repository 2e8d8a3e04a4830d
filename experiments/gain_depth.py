"""Exact gains in deep MLPs: the pre-activations' second moment, layer by layer, over many networks.

A plain MLP of ``depth`` layers of width ``width`` (zero biases), fed standard-normal
inputs: the first layer has std ``1 / sqrt(fan_in)`` (its inputs are data, unit
variance), every later one std ``gain / sqrt(fan_in)`` for

* ``he``: ``gain = sqrt(2)`` (Kaiming normal: exact for ReLU only), and
* ``exact``: ``gain = flaxinit.gain(activation)`` (``variance_scaling(gain**2, "fan_in", "normal")``).

``mc.depth_test`` reports the mean square of every layer's pre-activations, averaged over
``iterations`` independent networks, with its standard error. With the exact gain the
expected second moment is 1 at the fixed point ``q = 1``; whether the fixed point holds at
finite width depends on its stability ``lambda = d log E[phi(sqrt(q) z)^2] / d log q`` at
``q = 1``, which the results record: below 1 (tanh) deviations shrink, above 1 (GELU,
SiLU) they grow geometrically from the finite-width noise, so the mean drifts after a
number of layers. ``python -m experiments gain-depth`` writes ``results.json`` and
``summary.md``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

import flaxinit
import mc
from flaxinit import tooling

ACTIVATIONS = ("gelu", "silu", "tanh")
DEFAULT = {"width": 256, "depth": 50, "iterations": 1024}
QUICK = {"width": 64, "depth": 10, "iterations": 256}
REPORT_LAYERS = (1, 2, 5, 10, 20, 30, 40, 50)


def stability(activation: str) -> float:
    """``d log E[phi(sqrt(q) z)^2] / d log q`` at ``q = 1``: the q-map's slope at the exact gain's fixed point."""
    phi = getattr(jax.nn, activation)

    def log_moment(q: float) -> float:
        return -2.0 * math.log(flaxinit.gain(lambda x: phi(math.sqrt(q) * x)))

    step = 1e-4
    return (log_moment(1 + step) - log_moment(1 - step)) / (math.log1p(step) - math.log1p(-step))


def schemes(activation: str) -> dict[str, flaxinit.Initializer]:
    g = flaxinit.gain(activation)
    return {"he": flaxinit.kaiming_normal(), "exact": flaxinit.variance_scaling(g * g, "fan_in", "normal")}


def run(quick: bool = False, seeds: Sequence[int] | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every activation x scheme; the results as stored in ``results.json``."""
    config = dict(QUICK if quick else DEFAULT, seed=(seeds or [0])[0])
    first = flaxinit.variance_scaling(1.0, "fan_in", "normal")
    widths = [config["width"]] * (config["depth"] + 1)
    start = time.perf_counter()
    runs: dict[str, Any] = {}
    for activation in ACTIVATIONS:
        runs[activation] = {"gain": flaxinit.gain(activation), "stability": stability(activation)}
        for label, init in schemes(activation).items():
            inits = [first] + [init] * (config["depth"] - 1)
            r = mc.depth_test(config["seed"], widths, activation, inits, config["iterations"], inputs="gaussian")
            runs[activation][label] = {"ms": r.preactivation_ms, "ms_se": r.preactivation_ms_se}
            log(f"  {activation} {label}: mean square at the last layer {r.preactivation_ms[-1]:.4g}")
    results = {"quick": quick, "config": config, "runs": runs, "machine": tooling.machine()}
    return tooling.to_json({**results, "seconds": time.perf_counter() - start})


def markdown(results: dict[str, Any]) -> str:
    """The stored run as a table per activation: mean square ± SE at selected layers."""
    cfg = results["config"]
    layers = [layer for layer in REPORT_LAYERS if layer <= cfg["depth"]]
    lines = [
        "# Exact gains in deep MLPs: the pre-activations' second moment",
        "",
        f"{cfg['depth']} layers of width {cfg['width']}, standard-normal inputs, first layer std 1/sqrt(n), then "
        f"std gain/sqrt(n); mean over {cfg['iterations']} networks (± SE). Run on "
        f"{results['machine']['cpu']}, {results['seconds']:.0f} s.",
        "",
        "| activation | gain | stability of q = 1 | init | " + " | ".join(f"layer {layer}" for layer in layers) + " |",
        "|---" * (4 + len(layers)) + "|",
    ]
    for activation, run in results["runs"].items():
        for label in ("he", "exact"):
            ms, se = np.asarray(run[label]["ms"]), np.asarray(run[label]["ms_se"])
            gain = math.sqrt(2) if label == "he" else run["gain"]
            cells = [f"{ms[layer - 1]:.3g} ± {se[layer - 1]:.2g}" for layer in layers]
            head = f"| {activation} | {gain:.4f} | {run['stability']:.3f} | {label} | "
            lines.append(head + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
