"""The verdict's tolerances, measured (SPEC §11): how far the reference μP models' exponents fall
from μP's predictions, over many keys, and how far μP's known mistakes fall.

:func:`mc.verify` passes a check when ``|slope - expected| <= z * se + a`` (one-sided for the
logits after init and a depth sweep's activations). ``z`` is fixed (4: the seeds' sampling
error); the allowance ``a`` per quantity covers what the standard error does not: the
finite-width (finite-depth) corrections of μP's exponents at the sizes a verdict runs at, and
the few degrees of freedom of a standard error from 8 seeds. It is read off the reference
models here: for every check of every run, the *excess* ``|slope - expected| - z * se`` (or
``slope - expected - z * se``); the allowance a quantity needs is its largest excess, which
``mc.Verdict.TOLERANCE`` must cover (``tests/test_verify.py`` checks that it does, from the
stored run). Its largest excess over the keys run here is not enough: a verdict is one draw of
its run's largest excess, and a key not among these can draw beyond the largest seen (20 keys'
largest update excess, 0.159 times 1.25, let a test key through at 0.201). So the allowance needed
is the larger of the largest excess seen and ``mean + 4 sd`` of the per-run largest excess
(:data:`TAIL_SD`), per reference model, over 40 keys; ``mc.Verdict.TOLERANCE`` holds it times
1.25, rounded up to a multiple of 0.05.

The reference models (:data:`REFERENCES`, the ones ``tests/test_verify.py`` passes under ten
other keys): the MLP over widths 64 to 512; the pre-LN Transformer, linen and nnx, over widths
64 to 256; the same Transformer with CompleteP (``alpha = 1``) over depths 2 to 8. The keys
here are 100 and up, so the tests' keys (0 to 9) are not the ones the allowances were read
from. Each of μP's known mistakes (:data:`MISTAKES`) is run once with the chosen tolerances:
its verdict must fail, naming its cause, by a margin (the largest ``|slope - expected| -
tolerance`` among the failing checks of that cause) reported here.

``python -m experiments verify-tolerance`` writes ``experiments/results/verify/results.json``
and ``summary.md`` (``--quick``: 2 keys, ``experiments/results/quick/verify``); ``--seeds``:
its number is the keys per reference model, the first is the first key.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
import optax

import mc
from flaxinit.tooling import machine

Z = mc.Verdict.TOLERANCE["activation"][0]
DEFAULT_KEYS, QUICK_KEYS, FIRST_KEY = 40, 2, 100
#: How many standard deviations above the mean of a quantity's per-run largest excess the allowance reaches.
TAIL_SD = 4.0
VOCAB, LENGTH, CLASSES = 32, 8, 10


@dataclasses.dataclass(frozen=True)
class Reference:
    """A μP model, its sweep and the verdict's settings."""

    model: Callable[[int], Any]
    sizes: tuple[int, ...]
    base: int
    lr: float
    data: str  # "vectors" or "tokens"
    sweep: str = "width"
    alpha: float | None = None
    blocks: str | None = None

    def batch(self) -> tuple[jax.Array, jax.Array]:
        k_x, k_y = jax.random.split(jax.random.key(2026))
        if self.data == "vectors":
            return jax.random.normal(k_x, (32, 16)), jax.random.randint(k_y, (32,), 0, CLASSES)
        tokens = jax.random.randint(k_x, (8, LENGTH + 1), 0, VOCAB)
        return tokens[:, :-1], tokens[:, 1:]

    def verify(self, key: int, **overrides: Any) -> mc.Verdict:
        x, y = self.batch()
        settings = {"base": self.base, "lr": self.lr, "sweep": self.sweep, "alpha": self.alpha, "blocks": self.blocks,
                    "key": key, **overrides}  # fmt: skip
        model = settings.pop("model", self.model)
        return mc.verify(model, self.sizes, x, y, **settings)


def _transformer(api: str, **options: Any) -> mc.WidthModel:
    return mc.width_model("transformer", vocab=VOCAB, base_width=64, max_length=LENGTH, api=api, **options)


REFERENCES = {
    "mlp": Reference(mc.width_model("mlp"), (64, 128, 256, 512), 64, 0.03, "vectors"),
    "transformer": Reference(_transformer("linen"), (64, 128, 256), 64, 0.01, "tokens"),
    "transformer-nnx": Reference(_transformer("nnx"), (64, 128, 256), 64, 0.01, "tokens"),
    "completep": Reference(
        _transformer("linen", sweep="depth", alpha=1.0, base_depth=2, width=64),
        (2, 4, 8),
        2,
        0.01,
        "tokens",
        sweep="depth",
        alpha=1.0,
        blocks="block_*",
    ),
}


def plain_adam(lr: Any, shapes: Any) -> optax.GradientTransformation:
    """optax's Adam: no μP learning-rate multipliers."""
    return optax.adam(lr)


def no_rescale(params: Any, shapes: Any) -> Any:
    """The draw itself: the readout's init not rescaled (Table 3 wants it 1/sqrt(m_in) smaller)."""
    return params


_no_multiplier = _transformer("linen", sweep="depth", base_depth=2, width=64)  # alpha None: branch multiplier 1


def no_branch_multiplier(depth: int) -> Any:
    """The CompleteP reference with its residual branches not multiplied by ``L^-alpha``."""
    return _no_multiplier(depth)


#: μP's known mistakes, injected into a reference model: ``(reference, overrides, the cause's key)``.
MISTAKES = {
    "hidden learning rates not scaled (optax.adam)": ("mlp", {"optimizer": plain_adam}, "hidden_lr"),
    "readout init not rescaled": ("mlp", {"init": no_rescale}, "readout_init"),
    "standard parametrization": ("mlp", {"optimizer": plain_adam, "init": no_rescale}, "sp"),
    "attention scaled by 1/sqrt(d_head)": (
        "transformer",
        {"model": _transformer("linen", parametrization="sp")},
        "attention",
    ),
    "residual branches not multiplied": ("completep", {"model": no_branch_multiplier}, "branch"),
}


def _excess(check: mc.Check) -> float:
    deviation = check.slope - check.expected
    return (deviation if check.one_sided else abs(deviation)) - Z * check.se


def _tail(run_max: Sequence[float]) -> float | None:
    """``mean + TAIL_SD * sd`` of one quantity's largest excess per run: where the largest excess
    of a verdict run under a key not among these falls, but rarely beyond."""
    if len(run_max) < 2:
        return max(run_max, default=None)
    return float(np.mean(run_max) + TAIL_SD * np.std(run_max, ddof=1))


def run(quick: bool, seeds: Sequence[int] | None, log: Callable[[str], None]) -> dict[str, Any]:
    """Every reference model under its keys, then every mistake once; a JSON-friendly dict."""
    count = len(seeds) if seeds else (QUICK_KEYS if quick else DEFAULT_KEYS)
    first = seeds[0] if seeds else FIRST_KEY
    keys = list(range(first, first + count))
    start = time.perf_counter()
    references: dict[str, Any] = {}
    for name, ref in REFERENCES.items():
        run_max: dict[str, list[float]] = {q: [] for q in mc.Verdict.QUANTITIES}
        checks = dict.fromkeys(mc.Verdict.QUANTITIES, 0)
        failed = 0
        for key in keys:
            verdict = ref.verify(key)
            failed += not verdict.ok
            for q in mc.Verdict.QUANTITIES:
                excess = [_excess(c) for c in verdict.checks if c.quantity == q]
                checks[q] += len(excess)
                if excess:
                    run_max[q].append(max(excess))
        references[name] = {
            "sizes": list(ref.sizes), "sweep": ref.sweep, "lr": ref.lr, "verdicts_failed": failed,
            "checks": checks, "run_max_excess": run_max,
            "max_excess": {q: max(v) if v else None for q, v in run_max.items()},
            "tail_excess": {q: _tail(v) for q, v in run_max.items()},
        }  # fmt: skip
        largest = {q: None if v is None else round(v, 3) for q, v in references[name]["max_excess"].items()}
        log(f"{name}: {failed} of {len(keys)} verdicts failed; largest excess per quantity {largest}")
    needed = {q: max((max(r["max_excess"][q], r["tail_excess"][q]) for r in references.values()
                      if r["max_excess"][q] is not None), default=None) for q in mc.Verdict.QUANTITIES}  # fmt: skip
    mistakes = {}
    for name, (reference, overrides, cause) in MISTAKES.items():
        verdict = REFERENCES[reference].verify(keys[0], **overrides)
        named = [f for f in verdict.failures if f.cause == mc.Verdict.CAUSES[cause]]
        margins = [abs(f.slope - f.expected) - c.tolerance for f in named for c in verdict.checks
                   if (c.path, c.step) == (f.path, f.step)]  # fmt: skip
        mistakes[name] = {"reference": reference, "ok": verdict.ok, "cause": cause, "failures": len(verdict.failures),
                          "named": len(named), "max_margin": max(margins) if margins else None}  # fmt: skip
        log(f"{name}: verdict {'PASS' if verdict.ok else 'FAIL'}, {len(named)} failures name '{cause}', "
            f"largest margin {max(margins) if margins else float('nan'):.2f}")  # fmt: skip
    return {
        "z": Z,
        "tail_sd": TAIL_SD,
        "keys": keys,
        "tolerance": {q: {"z": z, "allowance": a} for q, (z, a) in mc.Verdict.TOLERANCE.items()},
        "references": references,
        "needed": needed,
        "mistakes": mistakes,
        "seconds": time.perf_counter() - start,
        "machine": machine(),
    }


def markdown(results: dict[str, Any]) -> str:
    """The summary: per quantity the allowance needed and the one used; the mistakes' margins."""
    z = results["z"]
    lines = [
        "# mc.verify's tolerances, measured",
        "",
        f"A check passes when |slope - expected| <= {z:g} * se + a. Keys {results['keys'][0]} to "
        f"{results['keys'][-1]} per reference model; the excess of a check is |slope - expected| - {z:g} * se, and the "
        f"allowance a quantity needs is, over the reference models, the larger of its largest excess and mean + "
        f"{results.get('tail_sd', TAIL_SD):g} sd of its per-run largest excess.",
        "",
        "| quantity | allowance needed | allowance used |",
        "|---|---|---|",
    ]
    for q, need in results["needed"].items():
        used = results["tolerance"][q]["allowance"]
        lines.append(f"| {q} | {'—' if need is None else f'{need:.3f}'} | {used:.2f} |")
    lines += ["", "| reference | sizes | verdicts failed |", "|---|---|---|"]
    for name, r in results["references"].items():
        lines.append(f"| {name} | {', '.join(map(str, r['sizes']))} ({r['sweep']}) | {r['verdicts_failed']} of "
                     f"{len(results['keys'])} |")  # fmt: skip
    lines += ["", "| mistake | verdict | failures naming its cause | largest margin |", "|---|---|---|---|"]
    for name, m in results["mistakes"].items():
        margin = "—" if m["max_margin"] is None else f"{m['max_margin']:.2f}"
        lines.append(f"| {name} | {'PASS' if m['ok'] else 'FAIL'} | {m['named']} of {m['failures']} | {margin} |")
    lines += ["", f"{results['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


__all__ = ["MISTAKES", "REFERENCES", "Reference", "markdown", "run"]
