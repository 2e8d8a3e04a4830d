"""A verdict on μP (SPEC §11): :func:`verify` runs the coordinate check with every quantity μP
predicts a width exponent for, compares each measured exponent with the prediction within
the seeds' standard error and a finite-width allowance, and names the likely cause of what
fails.

The quantities (rows of the check, per step ``t``, ``t = 1`` at init):

* ``activation``: every layer's output (inputs, hidden layers, norms, the residual stream);
* ``update``: each layer's own update effect ``ΔW·x`` (its output minus its output, on the
  same input, with its parameters before the last update), ``t >= 2``;
* ``logits``: every attention's ``q·k`` times its scale (intercepted in flax's attention);
* ``output``: the model's output and the readout's.

μP predicts (width sweeps; :data:`EXPECTED`): 0 everywhere except ``output`` at ``t = 1``
(−1/2: Table 3's readout init) and ``logits`` (−1/2 at ``t = 1``, at most 0 after). A depth
sweep (sizes are numbers of blocks, ``alpha`` the depth exponent) predicts 0 everywhere but
the update effects of layers inside blocks, ``alpha − 1`` (the branch multiplier
``L^-alpha`` times ``L`` blocks of them add up to Θ(1)), with the activations (the residual
stream among them) bounded above only: at small depths the stream reaches its limit from
above, as each branch's share shrinks. A check passes when
``|s − e| <= z·se + a`` (``s − e <= z·se + a`` for the one-sided logits row), ``z`` and the
allowance ``a`` per quantity in :data:`TOLERANCE`, fixed once from the reference models
(``docs/verify.md``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from flaxinit import mup
from flaxinit.tooling import AsDict
from mc._capture import LOGITS, OUTPUT, UPDATE
from mc._coord import least_squares_slope, size_program
from mc._keys import as_key, prng_name
from mc._sweep import SizeRun, check_sweep, measure
from mc._training import optimizer_name

QUANTITIES = ("activation", "update", "logits", "output")
#: ``(z, allowance)`` per quantity: a check passes when ``|slope - expected| <= z * se + allowance``.
#: The allowance is what the reference models need (``python -m experiments verify-tolerance``,
#: stored in ``experiments/results/verify/results.json``: per quantity the larger of the largest
#: excess ``|slope - expected| - z * se`` over 40 keys of every reference model and ``mean + 4 sd``
#: of its per-run largest excess) times 1.25, rounded up to a multiple of 0.05.
TOLERANCE: dict[str, tuple[float, float]] = {
    "activation": (4.0, 0.15),
    "update": (4.0, 0.25),
    "logits": (4.0, 0.15),
    "output": (4.0, 0.20),
}
#: The last block of a depth sweep, whose output is the residual stream at every depth.
LAST_BLOCK = "(last block)"


# --- results ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Check(AsDict):
    """One comparison of a measured exponent with μP's.

    Attributes:
      path: the layer (or ``"(output)"``), as the coordinate check names it.
      quantity: ``"activation"``, ``"update"``, ``"logits"`` or ``"output"``.
      step: ``t`` (1 at init).
      slope: the measured exponent: the least-squares slope of ``log2 mean|q|`` over ``log2 size``.
      se: its standard error, from the seeds.
      expected: μP's exponent.
      one_sided: only ``slope - expected`` is bounded (above).
      tolerance: ``z * se + allowance``.
      passed: whether the slope is within the tolerance.
    """

    path: str
    quantity: str
    step: int
    slope: float
    se: float
    expected: float
    one_sided: bool
    tolerance: float
    passed: bool


@dataclasses.dataclass(frozen=True)
class Failure(AsDict):
    """A check that failed, and the likely mistake.

    Attributes:
      path: the check's path.
      quantity: the check's quantity.
      step: the check's step.
      slope: the measured exponent.
      se: its standard error.
      expected: μP's exponent.
      cause: one sentence naming the likely mistake and the fix.
    """

    path: str
    quantity: str
    step: int
    slope: float
    se: float
    expected: float
    cause: str


@dataclasses.dataclass(frozen=True)
class Verdict(AsDict):
    """What :func:`verify` found.

    Attributes:
      ok: every check passed.
      failures: the checks that failed, each with its likely cause.
      checks: every check made, passed or not.
      model: the model's class name.
      sweep: ``"width"`` or ``"depth"``.
      sizes: the sizes, increasing.
      base: the base size.
      alpha: the depth exponent (depth sweeps).
      lr: the learning rate.
      optimizer: ``"adam"``, ``"sgd"`` or the name of the caller's optimizer function.
      steps: steps recorded.
      seeds: models per size.
      prng: the generator of the keys.
    """

    #: The quantities, their tolerances and the causes a verdict names (:data:`QUANTITIES`,
    #: :data:`TOLERANCE`, :data:`CAUSES`), public for those who read or calibrate it.
    QUANTITIES: ClassVar[tuple[str, ...]] = QUANTITIES
    TOLERANCE: ClassVar[Mapping[str, tuple[float, float]]] = TOLERANCE
    CAUSES: ClassVar[Mapping[str, str]] = {}  # set below, once CAUSES is defined

    ok: bool
    failures: tuple[Failure, ...]
    checks: tuple[Check, ...]
    model: str
    sweep: str
    sizes: tuple[int, ...]
    base: int
    alpha: float | None
    lr: float
    optimizer: str
    steps: int
    seeds: int
    prng: str

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        head = (f"μP verdict for {self.model} ({self.sweep} sweep, sizes {', '.join(map(str, self.sizes))}, base "
                f"{self.base}, {self.optimizer} lr {self.lr:g}, {self.seeds} seeds, {self.steps} steps): "
                f"{'PASS' if self.ok else 'FAIL'}, {len(self.checks) - len(self.failures)} of {len(self.checks)} "
                "checks within tolerance")  # fmt: skip
        lines = [head]
        if self.failures:
            width = max(len(f.path) for f in self.failures)
            lines.append(f"{'path':<{width}}  {'quantity':<10}  t  {'slope':>7}  {'± se':>6}  {'expected':>8}  cause")
            for f in self.failures:
                lines.append(f"{f.path:<{width}}  {f.quantity:<10}  {f.step}  {f.slope:7.3f}  {f.se:6.3f}  "
                             f"{f.expected:8.2f}  {f.cause}")  # fmt: skip
        return "\n".join(lines)


# --- what μP predicts --------------------------------------------------------------------------------


def _layer_roles(shapes: Any) -> dict[str, set[str]]:
    """``{module path: roles of its own parameters}`` (a Table 8 readout kernel: ``"output"``)."""
    roles: dict[str, set[str]] = {}
    for s in jax.tree_util.tree_leaves(shapes, is_leaf=lambda x: isinstance(x, mup.InfShape)):
        roles.setdefault(s.path.rpartition("/")[0], set()).add("output" if s.readout else s.role)
    return roles


def _quantity(path: str, output_layers: set[str]) -> tuple[str, str]:
    """``(quantity, layer path)`` of a row."""
    if path.endswith(UPDATE):
        return "update", path[: -len(UPDATE)]
    if path.endswith(LOGITS):
        return "logits", path[: -len(LOGITS)]
    if path == OUTPUT or path in output_layers:
        return "output", path
    return "activation", path


@dataclasses.dataclass(frozen=True)
class _Rules:
    """What the verdict knows of the model: which rows are the output, which layers are inside
    residual blocks (depth sweeps), the layers' roles."""

    sweep: str
    alpha: float | None
    output_layers: frozenset[str]
    roles: Mapping[str, frozenset[str]]
    block_roots: tuple[str, ...]

    def in_block(self, layer: str) -> bool:
        return any(layer == root or layer.startswith(root + "/") for root in self.block_roots) or layer.startswith(
            LAST_BLOCK
        )

    def expected(self, quantity: str, layer: str, step: int) -> tuple[float, bool] | None:
        """``(μP's exponent, one-sided)`` of a row at a step, or None where it predicts none."""
        if quantity == "update" and step == 1:
            return None  # nothing has been updated yet
        if self.sweep == "depth":
            if quantity == "update" and self.in_block(layer):
                return self.alpha - 1.0, False
            # the residual stream reaches its limit from above at small depths (each branch's
            # share shrinks as L^-alpha): what μP forbids is its growth
            return 0.0, quantity == "activation"
        if quantity == "output" and step == 1:
            return -0.5, False
        if quantity == "logits":
            return (-0.5, False) if step == 1 else (0.0, True)
        return 0.0, False


def _rules(run: SizeRun, sweep: str, alpha: float | None, blocks: Any) -> _Rules:
    layout, shapes = run.layout, run.trainee.shapes
    roles = {k: frozenset(v) for k, v in _layer_roles(shapes).items()}
    output_layers = {layer for layer, r in roles.items() if "output" in r} | set(layout.facts("readout"))
    block_roots: tuple[str, ...] = ()
    if sweep == "depth":
        flat = [s for s in jax.tree_util.tree_leaves(shapes, is_leaf=lambda x: isinstance(x, mup.InfShape)) if s.block]
        block_roots = tuple(dict.fromkeys(s.path.split("/")[0] for s in flat))
    return _Rules(sweep, alpha, frozenset(output_layers), roles, block_roots)


def _alias_last_block(path: str, roots: Sequence[str]) -> str:
    """A depth sweep's rows of its last block, renamed :data:`LAST_BLOCK` (the same name at every depth)."""
    if not roots:
        return path
    last = roots[-1]
    if path == last or path.startswith((last + "/", last + "@")):
        return LAST_BLOCK + path[len(last) :]
    return path


# --- the verdict ------------------------------------------------------------------------------------


def _slopes(runs: Sequence[SizeRun], rules: Sequence[_Rules]) -> dict[tuple[str, int], tuple[float, float]]:
    """Per (row, step) present at every size: the slope of ``log2 mean|q|`` over ``log2 size`` and
    its SE; NaN where some size's mean is 0 (a zero-initialized layer), ``(nan, inf)`` where one
    is not finite (a run that diverged)."""
    table: dict[tuple[str, int], list[tuple[int, float, float]]] = {}
    for run, r in zip(runs, rules, strict=True):
        rows, _ = run.summary()
        for step, path, mean, se in rows:
            table.setdefault((_alias_last_block(path, r.block_roots), step), []).append((run.size, mean, se))
    out = {}
    for row, values in table.items():
        if len(values) != len(runs):
            continue  # a layer only some sizes have (a depth sweep's deeper blocks)
        sizes, m, se = (np.asarray(v, np.float64) for v in zip(*values, strict=True))
        if not np.all(np.isfinite(m)):
            out[row] = (math.nan, math.inf)
            continue
        if not np.all(m > 0):
            out[row] = (math.nan, math.nan)
            continue
        out[row] = least_squares_slope(np.log2(sizes), np.log2(m), se / (m * math.log(2)))
    return out


def _judge(slopes: Mapping[tuple[str, int], tuple[float, float]], rules: _Rules) -> list[Check]:
    checks = []
    for (path, step), (slope, se) in slopes.items():
        quantity, layer = _quantity(path, set(rules.output_layers))
        expected = rules.expected(quantity, layer, step)
        if expected is None or (not math.isfinite(slope) and se != math.inf):
            continue  # nothing predicted, or a layer exactly zero at some size
        value, one_sided = expected
        if se == math.inf:  # diverged: no exponent, and not μP's
            checks.append(Check(path, quantity, step, slope, se, value, one_sided, math.nan, False))
            continue
        z, allowance = TOLERANCE[quantity]
        tolerance = z * se + allowance
        deviation = slope - value
        passed = deviation <= tolerance if one_sided else abs(deviation) <= tolerance
        checks.append(Check(path, quantity, step, slope, se, value, one_sided, tolerance, passed))
    return checks


#: The causes :func:`verify` names (SPEC §11), by the pattern of the failures.
CAUSES = {
    "sp": "the standard parametrization: neither μP's init nor its learning rates are applied "
    "(use mup.rescale and mup.adamw/mup.sgd, or mc.verify's defaults)",
    "hidden_lr": "the hidden layers' learning rate is not scaled by 1/m_in (Adam; m_out/m_in for SGD): use "
    "mup.adamw/mup.sgd, or put mup.scale_by_mup(shapes) last in your optax chain",
    "output_lr": "the readout's learning rate is not scaled by 1/m_in (Table 3; a mup.Readout in Table 8's form "
    "keeps LR 1): use mup.adamw/mup.sgd",
    "input_lr": "the input weights' learning rate is scaled with the width (their Adam LR multiplier is 1; "
    "m_out for SGD): use mup.adamw/mup.sgd",
    "readout_init": "the readout's init is not rescaled by 1/sqrt(m_in) (mup.rescale), nor its output multiplied "
    "by 1/m_in (mup.Readout): the output does not shrink at init as Table 3's does",
    "attention": "the attention logits are scaled by 1/sqrt(d_head): pass "
    "attention_fn=mup.dot_product_attention(base_head_dim) (q·k·sqrt(base_d_head)/d_head)",
    "input_init": "an input layer's output moves with the width at init: its weights are drawn with a "
    "width-dependent std (Flax's default Embed draws 1/sqrt(features)): draw them N(0, 1), or let "
    "mup.rescale(draws='fan_in') bring them back to the base's std",
    "branch": "the residual stream grows with depth: the residual branches are not multiplied by "
    "mup.depth_multiplier(L, base_L, alpha) (x + L^-alpha f(x))",
    "depth_lr": "the blocks' update effects do not scale as L^(alpha-1): the optimizer lacks the depth rules "
    "(mup.adamw(..., depth=(L, base_L, alpha)))",
    "diverged": "the run diverged (values that are not finite) at some size: lower the learning rate, or look "
    "for a layer whose scale explodes with the width",
    "small_steps": "the output still shrinks with the width after training, as at init, though every layer's update "
    "effect is width-independent: at this learning rate the steps are too small for the output's learned part "
    "(Θ(1) under μP) to outgrow its init part (1/sqrt(m_in)) at these sizes: verify at a larger lr (Muon's "
    "orthogonalized n×n update has entries of RMS 1/sqrt(n): about sqrt(n) times Adam's lr), or at wider sizes",
    "downstream": "follows from a failing layer before it (see the other failures)",
    "unknown": "no pattern of μP's known mistakes fits: this layer's scale moves with the size",
}


Verdict.CAUSES = CAUSES


def _causes(checks: Sequence[Check], rules: _Rules) -> list[Failure]:
    """A :class:`Failure` per failed check, its cause from the pattern of all failures."""
    failed = [c for c in checks if not c.passed]

    def roles_of(c: Check) -> frozenset[str]:
        return rules.roles.get(_quantity(c.path, set(rules.output_layers))[1], frozenset())

    hidden_lr = any(c.quantity == "update" and "hidden" in roles_of(c) and c.slope > c.expected for c in failed)
    readout_init = any(c.quantity == "output" and c.step == 1 and c.slope > c.expected for c in failed)
    sp = rules.sweep == "width" and hidden_lr and readout_init

    def cause(c: Check) -> str:
        roles = roles_of(c)
        if c.se == math.inf:
            return CAUSES["diverged"]
        if sp:
            return CAUSES["sp"]
        if rules.sweep == "depth":
            if c.quantity == "update":
                return CAUSES["depth_lr"]
            if c.slope > c.expected and c.path.startswith(LAST_BLOCK):
                return CAUSES["branch"]
            return CAUSES["downstream"] if any(f.path.startswith(LAST_BLOCK) for f in failed) else CAUSES["unknown"]
        if c.quantity == "logits":
            return CAUSES["attention"]
        if c.quantity == "update":
            if "hidden" in roles:
                return CAUSES["hidden_lr"]
            if "output" in roles:
                return CAUSES["output_lr"]
            if "input" in roles:
                return CAUSES["input_lr"]
        if c.quantity == "output" and (c.step == 1 or (readout_init and not hidden_lr)):
            return CAUSES["readout_init"]  # after init too: a readout drawn too large stays so for a while
        if c.quantity == "activation" and c.step == 1 and "input" in roles and "hidden" not in roles:
            return CAUSES["input_init"]
        others = [f for f in failed if f is not c and f.quantity in ("update", "logits")]
        if c.quantity == "output" and c.step > 1 and c.slope < c.expected and not others:
            return CAUSES["small_steps"]
        return CAUSES["downstream"] if others or hidden_lr else CAUSES["unknown"]

    return [Failure(c.path, c.quantity, c.step, c.slope, c.se, c.expected, cause(c)) for c in failed]


def verify(
    model: Callable[[int], Any],
    sizes: Sequence[int],
    inputs: jax.Array,
    targets: jax.Array,
    *,
    base: int,
    lr: float,
    sweep: str = "width",
    optimizer: str | Callable[[Any, Any], Any] | None = None,
    init: Callable[[Any, Any], Any] | None = None,
    steps: int = 4,
    seeds: int = 8,
    key: jax.Array | int = 0,
    loss: str | Callable[[jax.Array, jax.Array], jax.Array] = "xent",
    call_kwargs: Mapping[str, Any] | None = None,
    method: str | None = None,
    output: int | str | Callable[[Any], jax.Array] | None = None,
    fans: Any = None,
    blocks: Any = None,
    alpha: float | None = None,
) -> Verdict:
    """A pass/fail verdict on μP, naming the likely cause of each failure (SPEC §11).

    Runs the coordinate check (:func:`mc.coord_check`: ``seeds`` models per size trained
    ``steps`` steps on one batch) recording every layer's output, each layer's own update
    effect ``ΔW·x``, every attention's logits and the output, and compares each quantity's
    exponent (the slope of ``log2 mean|q|`` over ``log2 size``) with μP's prediction (the
    module's docstring; ``docs/verify.md``). What is checked is what you train with: your
    optimizer and your init.

    Args:
      model: ``size -> flax.linen Module`` or ``size -> flax.nnx factory``.
      sizes: at least three widths (numbers of blocks with ``sweep="depth"``).
      inputs: the batch.
      targets: its targets.
      base: the size where μP is the identity (the base model's width, or depth).
      lr: the learning rate (the base model's).
      sweep: ``"width"`` or ``"depth"``.
      optimizer: ``None``: ``mup.adamw(lr, shapes=shapes)`` (with the depth rules of
        ``alpha`` in a depth sweep); ``"adam"``/``"sgd"``; or a function ``(lr, shapes) ->
        optax.GradientTransformation``: yours.
      init: ``None``: ``mup.rescale(params, shapes)``; or a function ``(params, shapes) ->
        params``: yours.
      steps: steps recorded (at least 2: the update effects start at ``t = 2``).
      seeds: models per size (at least 2).
      key: a PRNG key or an int seed.
      loss: ``"xent"``, ``"mse"`` or ``(outputs, targets) -> scalar``.
      call_kwargs: keyword arguments of every call of the model, as for :func:`mc.audit`.
      method: the name of the model's method to call, as for :func:`mc.audit`.
      output: what the model returns, when not one array, as for :func:`mc.audit`.
      fans: as for :func:`flaxinit.mup.infshapes`.
      blocks: the parameters inside residual blocks (path globs), as for
        :func:`flaxinit.mup.infshapes`; a depth sweep needs them.
      alpha: a depth sweep's exponent (1/2: depth-μP, 1: CompleteP).

    Returns:
      A :class:`Verdict`: ``ok``, ``failures`` (each with a ``cause``), every ``check``;
      ``str(verdict)`` is a table.

    Examples:
      >>> import jax, mc
      >>> x = jax.random.normal(jax.random.key(0), (32, 16))
      >>> y = jax.random.randint(jax.random.key(1), (32,), 0, 10)
      >>> v = mc.verify(mc.width_model("mlp"), [64, 128, 256], x, y, base=64, lr=0.03, steps=3, seeds=4)
      >>> v.ok, {c.quantity for c in v.checks} == {"activation", "update", "output"}
      (True, True)
    """
    if sweep == "depth" and alpha is None:
        raise ValueError("sweep='depth' needs alpha= (1/2: depth-μP, 1: CompleteP): the exponent μP predicts with")
    run = check_sweep(
        model, sizes, base, sweep=sweep, alpha=alpha, parametrization="mup", optimizer=optimizer or "adam",
        init=init, lr=lr, steps=steps, seeds=seeds, loss=loss, fans=fans, blocks=blocks, zero_query=False,
        zero_output=False, call_kwargs=call_kwargs, method=method, output=output,
    )  # fmt: skip
    if len(run.sizes) < 3:
        raise ValueError(f"sizes must hold at least three sizes (an exponent and its error), got {list(run.sizes)}")
    if run.steps < 2:
        raise ValueError(f"steps must be at least 2 (update effects start at t = 2), got {steps}")
    key = as_key(key, "philox")
    inputs, targets = jnp.asarray(inputs), jnp.asarray(targets)
    runs = list(measure(model, run, inputs, targets, key, watch=True, program_of=size_program))
    rules = [_rules(r, run.sweep, run.alpha, run.blocks) for r in runs]
    checks = _judge(_slopes(runs, rules), rules[-1])
    failures = _causes(checks, rules[-1])
    return Verdict(not failures, tuple(failures), tuple(checks), runs[0].trainee.model.name, run.sweep, run.sizes,
                   run.base, run.alpha, run.lr, optimizer_name(run.optimizer), run.steps, run.seeds,
                   prng_name(key))  # fmt: skip


__all__ = ["CAUSES", "QUANTITIES", "TOLERANCE", "Check", "Failure", "Verdict", "verify"]
