"""§10's rules: per parameter (its :class:`InfShape`), the multipliers of its init, learning
rate, Adam ε and weight decay; and the depth multiplier of a residual branch.

Table 3 (the form that needs no change to the model; relative to the base, so every rule
is 1 at the base shapes):

======== ===================== ============ =============== =========
role     init (fan-in draws)   Adam LR      SGD LR          Adam ε
======== ===================== ============ =============== =========
input    1 (embedding: √m_out) 1            m_out           1
hidden   1                     1 / m_in     m_out / m_in    1 / m_in
output   1 / sqrt(m_in)        1 / m_in     1 / m_in        1
finite   1                     1            1               1
======== ===================== ============ =============== =========

A :class:`~flaxinit.mup.Readout` kernel is Table 8's form instead: init 1, Adam LR 1, SGD
LR ``m_in`` (its forward pass multiplies by ``1 / m_in``). Depth ``(L, base_L, alpha)``,
``m_L = L / base_L``: inside residual blocks the Adam LR is multiplied by
``m_L^(alpha - 1)`` and ε by ``m_L^-alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from flaxinit.mup._shapes import InfShape

#: The optimizers the per-parameter rules are written for, by name.
OPTIMIZERS = ("adam", "sgd")


def depth_multiplier(layers: int, base_layers: int, alpha: float) -> float:
    """``(layers / base_layers) ** -alpha``: the multiplier of every residual branch,
    ``x + depth_multiplier(...) * f(x)`` (depth-μP: ``alpha = 1/2``; CompleteP: ``alpha = 1``).

    Examples:
      >>> from flaxinit import mup
      >>> mup.depth_multiplier(16, 4, 1.0), mup.depth_multiplier(16, 4, 0.5)
      (0.25, 0.5)
    """
    layers, base_layers, alpha = check_depth((layers, base_layers, alpha))
    return (layers / base_layers) ** -alpha


def check_depth(depth: Sequence[float] | None) -> tuple[int, int, float] | None:
    if depth is None:
        return None
    try:
        layers, base_layers, alpha = depth
    except (TypeError, ValueError):
        raise TypeError(f"depth must be (layers, base_layers, alpha), got {depth!r}") from None
    for name, value in (("layers", layers), ("base_layers", base_layers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"depth's {name} must be a positive int, got {value!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not math.isfinite(alpha):
        raise TypeError(f"depth's alpha must be a real number (1/2: depth-muP, 1: CompleteP), got {alpha!r}")
    return layers, base_layers, float(alpha)


def batch_length_rule(*, batch: Sequence[int] | None = None, steps: Sequence[int] | None = None) -> tuple[float, float]:
    """The multipliers ``(learning rate, weight decay)`` of Adam(W) moved from a base batch size
    and training length to others (SPEC §11, "Other axes"): relative to the base, so both are 1
    there.

    * ``batch=(B, base_B)``: Adam's square-root rule, ``lr × sqrt(B / base_B)`` (Malladi et al.
      2022's SDE scaling), and the weight decay that keeps AdamW's timescale fixed in epochs of a
      fixed dataset of N examples, ``τ_epochs = B / (N · lr · λ)`` (Wang & Aitchison 2024, arXiv
      2405.13698): ``lr · λ ∝ B``, so ``λ × sqrt(B / base_B)``.
    * ``steps=(T, base_T)``: the learning rate is kept, and the weight decay keeps the timescale
      a fixed fraction of the run, ``τ_iter / T = 1 / (lr · λ · T)`` fixed: ``λ × base_T / T``
      (the same rule read for a run whose length is its data, one pass over T·B examples).

    Both given multiply. The measured optimum over batch size and steps with and without these
    rules is in ``experiments/results/mutransfer/summary.json`` (docs/mup.md, "Batch size and
    training length"), which says where the data do not support them.

    Examples:
      >>> from flaxinit import mup
      >>> mup.batch_length_rule(batch=(256, 64))
      (2.0, 2.0)
      >>> mup.batch_length_rule(steps=(800, 200))
      (1.0, 0.25)
    """
    lr_factor, decay_factor = 1.0, 1.0
    for name, value in (("batch", batch), ("steps", steps)):
        if value is None:
            continue
        try:
            size, base = value
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be ({name}, base_{name}), got {value!r}") from None
        for what, v in ((name, size), (f"base_{name}", base)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}'s {what} must be a positive int, got {v!r}")
        if name == "batch":
            lr_factor *= math.sqrt(size / base)
            decay_factor *= math.sqrt(size / base)
        else:
            decay_factor *= base / size
    return lr_factor, decay_factor


def check_optimizer(optimizer: str) -> str:
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    return optimizer


def init_multiplier(s: InfShape, draws: str, zero_output: bool) -> float:
    """What a draw of the target model is multiplied by (``draws="fan_in"``: drawn by its
    layer's Flax default, a std of ``1/sqrt(fan_in)``; ``"fixed"``: a std that does not depend
    on the fans).

    Flax's default ``Embed`` draws ``variance_scaling(1, "fan_in", "normal", out_axis=0)``, a
    std of ``1/sqrt(features)``: an embedding table (an input weight) that shrinks with the
    width, which μP forbids (SPEC §11); a ``fan_in`` draw of one is brought back to the base's
    std, ``* sqrt(m_out)``."""
    if s.role == "output" and zero_output:
        return 0.0
    if s.readout:
        return 1.0
    if draws == "fan_in":
        if s.role == "input" and s.path.rsplit("/", 1)[-1] == "embedding":
            return math.sqrt(s.fan_out_mult)
        return 1 / math.sqrt(s.fan_in_mult) if s.role == "output" else 1.0
    return {"hidden": 1 / math.sqrt(s.fan_in_mult), "output": 1 / s.fan_in_mult}.get(s.role, 1.0)


def lr_multiplier(s: InfShape, optimizer: str, depth: tuple[int, int, float] | None = None) -> float:
    if optimizer == "adam":
        m = 1.0 if s.readout else {"hidden": 1 / s.fan_in_mult, "output": 1 / s.fan_in_mult}.get(s.role, 1.0)
    elif s.readout:
        m = s.fan_in_mult
    else:
        m = {
            "input": s.fan_out_mult,
            "hidden": s.fan_out_mult / s.fan_in_mult,
            "output": 1 / s.fan_in_mult,
            "finite": 1.0,
        }[s.role]
    if depth is not None and s.block:
        if optimizer != "adam":
            raise ValueError("the depth rules are stated for Adam (SPEC §10); use optimizer='adam' with depth=")
        layers, base_layers, alpha = depth
        m *= (layers / base_layers) ** (alpha - 1)
    return m


def eps_multiplier(s: InfShape, depth: tuple[int, int, float] | None = None) -> float:
    m = 1 / s.fan_in_mult if s.role == "hidden" and not s.readout else 1.0
    if depth is not None and s.block:
        layers, base_layers, alpha = depth
        m *= (layers / base_layers) ** -alpha
    return m
