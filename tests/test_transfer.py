"""mc.lr_transfer (SPEC §10's LR transfer): the optimum's parabola, the runs' pairing and bits, a
case whose losses are known in closed form, the depth rules' plumbing, the errors.

Every value checked here is exact: the parabola is sampled at dyadic points, the closed-form
case trains on numbers whose float32 arithmetic is exact, and the bits of a (size, learning
rate, seed) run are compared with ``==``. No statistical tolerance is needed (the LR optimum
of real training is the demo's, ``python -m experiments mutransfer``, not a test's).
"""

import dataclasses
import json
import math
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mc
from flaxinit import mup
from flaxinit.tooling import to_json

# --- the optimum of a grid ---------------------------------------------------------------------


def test_a_parabola_sampled_exactly_gives_its_vertex():
    x = np.arange(-3.0, 4.0)
    assert mc.optimal_log2_lr(x, (x - 0.25) ** 2 + 1) == (0.25, False)
    assert mc.optimal_log2_lr(x, 3 * (x + 0.75) ** 2) == (-0.75, False)  # best at -1, vertex left of it
    # an uneven grid: the parabola through the best point and its neighbours, wherever they are
    uneven = np.array([-4.0, -1.0, 0.0, 2.0])
    assert mc.optimal_log2_lr(uneven, (uneven + 0.75) ** 2) == (-0.75, False)
    # only the three points count: far points do not move the vertex
    y = (x - 0.5) ** 2
    y[0], y[-1] = 100.0, 7.0
    assert mc.optimal_log2_lr(x, y) == (0.5, False)


def test_flat_neighbourhood_and_ties():
    # ties go to the smaller LR: the parabola through (0, 2), (1, 1), (2, 1)
    assert mc.optimal_log2_lr([0, 1, 2, 3, 4], [2.0, 1.0, 1.0, 1.0, 2.0]) == (1.5, False)
    assert mc.optimal_log2_lr([0, 1, 2], [2.0, 1.0, 2.0]) == (1.0, False)


def test_best_point_at_the_edge_is_flagged():
    assert mc.optimal_log2_lr([-3, -2, -1], [3.0, 2.0, 1.0]) == (-1.0, True)
    assert mc.optimal_log2_lr([-3, -2, -1], [1.0, 2.0, 3.0]) == (-3.0, True)


def test_diverged_points_count_as_plus_infinity():
    inf, nan = math.inf, math.nan
    # NaN and inf are never the best; a diverged neighbour leaves the best grid point (inside the grid)
    assert mc.optimal_log2_lr([0, 1, 2, 3], [2.0, 1.0, nan, inf]) == (1.0, False)
    assert mc.optimal_log2_lr([0, 1, 2, 3], [-inf, 1.0, 0.5, 2.0]) == (1.75, False)
    # the finite part at the grid's edge: flagged
    assert mc.optimal_log2_lr([0, 1, 2], [1.0, inf, inf]) == (0.0, True)
    value, at_edge = mc.optimal_log2_lr([0, 1, 2], [nan, inf, nan])
    assert math.isnan(value) and at_edge


@pytest.mark.parametrize(
    "log2_lrs,losses,error,match",
    [
        ([0, 1], [1.0, 2.0], ValueError, "at least three distinct"),
        ([0, 1, 1], [1.0, 2.0, 3.0], ValueError, "at least three distinct"),
        ([0, 2, 1], [1.0, 2.0, 3.0], ValueError, "must be increasing"),
        ([0, 1, 2], [1.0, 2.0], ValueError, "one value per learning rate"),
        ([0, 1, math.inf], [1.0, 2.0, 3.0], TypeError, "each of log2_lrs must be a finite real"),
        ("abc", [1.0, 2.0, 3.0], TypeError, "log2_lrs must be a sequence"),
        ([0, 1, 2], ["a", "b", "c"], TypeError, "losses must be a sequence of numbers"),
    ],
)
def test_optimum_bad_arguments(log2_lrs, losses, error, match):
    with pytest.raises(error, match=match):
        mc.optimal_log2_lr(log2_lrs, losses)


# --- lr_transfer: fields, bits, pairing ---------------------------------------------------------

X = jax.random.normal(jax.random.key(0), (48, 6))
Y = jax.random.randint(jax.random.key(1), (48,), 0, 4)
MLP = mc.width_model("mlp", out_features=4, hidden_layers=1)
GRID = (-7.0, -5.0, -3.0)


def _transfer(sizes, **kwargs):
    options = {"base": 8, "steps": 5, "batch_size": 8, "seeds": 2, "key": 3} | kwargs
    return mc.lr_transfer(MLP, sizes, GRID, X, Y, **options)


@pytest.fixture(scope="module")
def result():
    return _transfer([8, 16])


def test_a_second_sweep_of_the_same_model_compiles_nothing(result):
    # counted by jax's compilation events, not timed: another key, the same program
    events = []

    def listen(event, duration, **kwargs):
        if event in ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/backend_compile_duration"):
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        again = _transfer([8, 16], key=4)
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert events == []
    assert again.loss_seeds != result.loss_seeds  # another key: other runs


def test_result_fields_and_summary(result):
    assert (result.model, result.parametrization, result.optimizer, result.sweep) == ("MLP", "mup", "adam", "width")
    assert (result.sizes, result.base, result.log2_lrs, result.steps, result.batch_size) == ((8, 16), 8, GRID, 5, 8)
    assert (result.seeds, result.last, result.loss, result.alpha, result.prng) == (2, 1, "xent", None, "philox4x32_10")
    merits = np.asarray(result.loss_seeds)
    assert merits.shape == (2, 3, 2) and np.isfinite(merits).all()
    np.testing.assert_array_equal(result.loss_mean, merits.mean(axis=-1))
    np.testing.assert_array_equal(result.loss_se, merits.std(axis=-1, ddof=1) / math.sqrt(2))
    for i in range(2):
        assert (result.optimal_log2_lr[i], result.at_edge[i]) == mc.optimal_log2_lr(GRID, result.loss_mean[i])
    assert result.spread == max(result.optimal_log2_lr) - min(result.optimal_log2_lr)
    d = result.to_dict()
    assert d["spread"] == result.spread and d["loss_seeds"] == result.loss_seeds and d["sizes"] == (8, 16)


@pytest.mark.slow
def test_a_size_does_not_depend_on_the_other_sizes(result):
    """A size's bits depend only on the key, the seeds and the grid: run again beside another size."""
    other = _transfer([16, 24])
    assert other.loss_seeds[0] == result.loss_seeds[1]
    assert _transfer([8, 16], key=4).loss_seeds[0] != result.loss_seeds[0]  # and they do depend on the key


def test_every_learning_rate_of_a_seed_starts_from_the_same_model_and_batch():
    """With one step the figure of merit is the loss before any update: the init and the first
    batch's alone. It is the same at every learning rate of a seed, and differs between seeds."""
    r = _transfer([8, 16], steps=1, parametrization="sp", seeds=3)
    for per_lr in r.loss_seeds:
        assert per_lr[0] == per_lr[1] == per_lr[2]
        assert len(set(per_lr[0])) == 3
    assert r.loss_seeds[0] != r.loss_seeds[1]


def test_sp_and_mup_are_the_same_runs_at_the_base_width(result):
    sp = _transfer([8, 16], parametrization="sp")
    assert sp.loss_seeds[0] == result.loss_seeds[0]  # base width: every μP rule is the identity
    assert sp.loss_seeds[1] != result.loss_seeds[1]


def test_done_sizes_are_not_run_again(result):
    saved = {}
    calls = []

    def model(width):
        calls.append(width)
        return MLP(width)

    r = _transfer([8, 16], on_size=lambda size, merits: saved.update({size: merits}))
    assert r == result and sorted(saved) == [8, 16]
    again = mc.lr_transfer(model, [8, 16], GRID, X, Y, base=8, steps=5, batch_size=8, seeds=2, key=3, done=saved)
    assert calls == [8]  # once, for the model's name: no size was trained
    assert again.loss_seeds == result.loss_seeds and again.optimal_log2_lr == result.optimal_log2_lr


# --- batch size and training length (SPEC §11's other axes) ------------------------------------


def test_a_batch_sweep_runs_the_width_sweeps_runs_at_that_batch_size(result):
    """At width 16 against base width 8, batch size 8: the width sweep's run, bit for bit (the
    same program); a batch size that does not grow the model is the only other change."""
    r = _transfer([8, 12], sweep="batch", width=(16, 8), batch_size=None)
    assert r.loss_seeds[0] == result.loss_seeds[1]
    assert (r.sweep, r.sizes, r.batch_size, r.steps, r.last, r.width, r.base_width) == ("batch", (8, 12), None, 5, 1,
                                                                                         16, 8)  # fmt: skip
    assert mc.TransferResult.from_dict(json.loads(json.dumps(to_json(r.to_dict())))) == r


def test_a_steps_sweep_averages_each_runs_own_last_tenth(result):
    """5 steps: the width sweep's run (its last 10%, one step, is the figure); 20 steps: two."""
    r = _transfer([5, 20], sweep="steps", width=(16, 8), steps=None)
    assert r.loss_seeds[0] == result.loss_seeds[1]
    assert (r.steps, r.batch_size, r.last) == (None, 8, None)
    assert r.loss_seeds[1] != r.loss_seeds[0]


def test_an_optimizer_with_a_size_keyword_gets_the_sweeps_size_and_base(result):
    """``mup.adamw(..., batch=size)``: the identity at the base batch size; at twice it the
    learning rate times sqrt(2), which is the plain sweep's grid shifted by 1/2 (exact: a power
    of two times float32's sqrt(2) is float32's 2^(g + 1/2))."""
    seen = []

    def rule(lr, shapes, size):
        seen.append(size)
        return mup.adamw(lr, shapes=shapes, batch=size)

    r = _transfer([8, 16], sweep="batch", width=(16, 8), batch_size=None, optimizer=rule)
    assert sorted(set(seen)) == [(8, 8), (16, 8)]
    assert r.loss_seeds[0] == result.loss_seeds[1]
    shifted = mc.lr_transfer(MLP, [8, 16], tuple(g + 0.5 for g in GRID), X, Y, base=8, steps=5, seeds=2, key=3,
                             sweep="batch", width=(16, 8))  # fmt: skip
    assert r.loss_seeds[1] == shifted.loss_seeds[1]


# --- a closed-form case: SGD on one example -----------------------------------------------------


def _linear(size):
    return nn.Dense(1, use_bias=False, kernel_init=nn.initializers.zeros)


def test_sgd_losses_and_optimum_are_the_closed_form():
    """One example x = (1, 1, 1, 1), target 1, a zero-initialized linear model, MSE and SGD:
    the residual after k steps is ``-(1 - 8 lr)^k``, so the loss before step k + 1 is
    ``(1 - 8 lr)^(2k)``, exactly (every number is a power of two or a small dyadic fraction),
    zero at lr = 1/8 (log2 -3). At log2 lr = 40 the loss overflows float32: a diverged run."""
    x, y = jnp.ones((1, 4)), jnp.ones((1, 1))
    grid = (-6.0, -5.0, -4.0, -3.0, -2.0, 40.0)
    r = mc.lr_transfer(_linear, [1, 2], grid, x, y, base=1, parametrization="sp", optimizer="sgd", steps=3,
                       batch_size=1, seeds=2, loss="mse", last=2)  # fmt: skip
    for u, merit in zip(grid[:-1], r.loss_seeds[0][:-1], strict=True):
        c = 1 - 8 * 2.0**u
        assert merit == ((c**2 + c**4) / 2,) * 2
    assert r.loss_seeds[0][-1] == (math.inf, math.inf)
    assert r.loss_mean[0][-1] == math.inf and math.isnan(r.loss_se[0][-1])
    assert r.loss_seeds[0] == r.loss_seeds[1]  # the model does not depend on the size
    assert int(np.argmin(r.loss_mean[0])) == 3 and r.loss_mean[0][3] == 0.0
    # the parabola through (-4, 5/32), (-3, 0), (-2, 1): vertex -3 - (27/32) / (2 * 37/32)
    assert r.optimal_log2_lr == (-3 - 27 / 74, -3 - 27 / 74) and r.at_edge == (False, False)
    assert r.spread == 0.0 and r.loss == "mse"


# --- depth: the rules' plumbing -----------------------------------------------------------------


class ResMLP(nn.Module):
    depth: int

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(8, name="embed")(x)
        for i in range(self.depth):
            x = x + nn.Dense(8, name=f"block_{i}")(nn.relu(x))
        return nn.Dense(4, name="readout")(x)


@pytest.mark.slow  # four more compiled programs (seconds each on a CPU): CI's second tier
def test_depth_rules_are_the_identity_at_the_base_depth():
    """CompleteP's optimizer (alpha = 1: block ε times (L / base)^-1) against none: the same
    runs at the base depth, different ones at twice the base depth."""
    kwargs = {"base": 2, "steps": 4, "batch_size": 8, "seeds": 2, "sweep": "depth"}
    none = mc.lr_transfer(ResMLP, [2, 4], GRID, X, Y, **kwargs)
    complete = mc.lr_transfer(ResMLP, [2, 4], GRID, X, Y, alpha=1.0, blocks="block_*", **kwargs)
    assert complete.sweep == "depth" and complete.alpha == 1.0 and none.alpha is None
    assert complete.loss_seeds[0] == none.loss_seeds[0]
    assert complete.loss_seeds[1] != none.loss_seeds[1]


def test_the_mup_transformer_is_causal():
    """Linen's attention passes only the keywords its ``attention_fn`` names: μP's attention
    must name the mask, or the next character is visible and LR transfer measures a leak."""
    x = jax.random.randint(jax.random.key(2), (2, 8), 0, 20)
    changed = x.at[:, -1].set((x[:, -1] + 1) % 20)
    model = mc.width_model("transformer", "mup", vocab=20, base_width=16, max_length=8)(32)
    variables = jax.jit(model.init)(jax.random.key(0), x)
    before, after = jax.jit(model.apply)(variables, jnp.stack([x, changed]).reshape(4, 8)).reshape(2, 2, 8, 20)
    assert jnp.array_equal(before[:, :-1], after[:, :-1])
    assert not jnp.array_equal(before[:, -1], after[:, -1])
    layer = nn.MultiHeadDotProductAttention(num_heads=2, attention_fn=mup.dot_product_attention(4))
    h = jax.random.normal(jax.random.key(3), (1, 4, 8))
    mask = jnp.zeros((1, 1, 4, 4), bool).at[..., 0].set(True)  # attend to the first position only
    v = jax.jit(lambda k: layer.init(k, h, h, mask=mask))(jax.random.key(4))
    out = jax.jit(lambda v: layer.apply(v, h, h, mask=mask))(v)
    assert jnp.allclose(out, out[:, :1], atol=1e-6)  # every query sees the same single value


# --- stored results -----------------------------------------------------------------------------


def test_from_dict_inverts_to_dict_through_strict_json(result):
    """Diverged runs (``inf`` losses, ``nan`` SEs and optima) are written as ``null`` and read back."""
    diverged = dataclasses.replace(
        result,
        loss_seeds=(((math.inf, 1.0), *result.loss_seeds[0][1:]), *result.loss_seeds[1:]),
        loss_mean=((math.inf, *result.loss_mean[0][1:]), *result.loss_mean[1:]),
        loss_se=((math.nan, *result.loss_se[0][1:]), *result.loss_se[1:]),
        optimal_log2_lr=(math.nan, *result.optimal_log2_lr[1:]),
    )
    for r in (result, diverged):
        stored = json.loads(json.dumps(to_json(r.to_dict()), allow_nan=False))
        assert to_json(mc.TransferResult.from_dict(stored).to_dict()) == stored
    back = mc.TransferResult.from_dict(json.loads(json.dumps(to_json(diverged.to_dict()))))
    assert back.loss_mean[0][0] == math.inf and math.isnan(back.loss_se[0][0]) and math.isnan(back.spread)


# --- plots --------------------------------------------------------------------------------------


def test_plots_are_written(result, tmp_path):
    result.plot(tmp_path / "one.png", title="mlp")
    diverged = _transfer([8, 16], parametrization="sp")
    loss_mean = ((math.inf, 1.0, 2.0), (1.5, math.inf, math.inf))
    edited = dataclasses.replace(result, loss_mean=loss_mean)
    mc.plot_transfer([diverged, edited], tmp_path / "two.png", titles=["SP", "μP"])
    assert (tmp_path / "one.png").stat().st_size > 1000 and (tmp_path / "two.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="one title per result"):
        mc.plot_transfer([result], tmp_path / "x.png", titles=["a", "b"])
    with pytest.raises(TypeError, match="TransferResult"):
        mc.plot_transfer([], tmp_path / "x.png")


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change,error,match",
    [
        ({"model": MLP(8)}, TypeError, "model must be a function size"),
        ({"sizes": [8]}, ValueError, "sizes must hold at least two"),
        ({"log2_lrs": [-3, -2]}, ValueError, "log2_lrs must hold at least three"),
        ({"log2_lrs": [-3, -2, math.nan]}, TypeError, "each of log2_lrs must be a finite real"),
        ({"base": 0}, ValueError, "base must be an integer >= 1"),
        ({"parametrization": "ntk"}, ValueError, "parametrization must be one of"),
        ({"optimizer": "lion"}, ValueError, "optimizer must be one of"),
        ({"sweep": "height"}, ValueError, "sweep must be one of"),
        ({"steps": 0}, ValueError, "steps must be an integer >= 1"),
        ({"batch_size": 2.5}, TypeError, "batch_size must be an integer"),
        ({"batch_size": 49}, ValueError, "batch_size must be at most the number of examples \\(48\\)"),
        ({"seeds": 1}, ValueError, "seeds must be at least 2"),
        ({"last": 6}, ValueError, "last must be at most the fewest steps of a run \\(5\\)"),
        ({"sweep": "batch", "width": 16}, ValueError, "the sizes are the runs' batch sizes; do not give batch_size"),
        ({"sweep": "steps", "width": 16}, ValueError, "the sizes are the runs' numbers of steps; do not give steps"),
        ({"sweep": "batch", "batch_size": None}, TypeError, "sweep='batch' needs width="),
        ({"sweep": "steps", "steps": None, "width": (16,)}, ValueError, "width must be a width or \\(width, base_"),
        ({"sweep": "steps", "steps": None, "width": 16, "last": 9}, ValueError, "fewest steps of a run \\(8\\)"),
        ({"sweep": "batch", "batch_size": None, "width": 16, "sizes": [8, 64]}, ValueError, "the largest batch size"),
        ({"width": 16}, ValueError, "width applies to sweep='batch' and 'steps' only"),
        ({"steps": None}, TypeError, "steps is required"),
        ({"loss": "hinge"}, ValueError, "loss must be one of"),
        ({"loss": 3}, TypeError, "loss must be one of"),
        ({"targets": Y[:40]}, ValueError, "the same number of examples"),
        ({"alpha": 1.0}, ValueError, "alpha applies to sweep='depth' only"),
        ({"alpha": 1.0, "sweep": "depth", "optimizer": "sgd"}, ValueError, "alpha needs optimizer='adam'"),
        ({"alpha": 1.0, "sweep": "depth"}, ValueError, "alpha needs blocks="),
        ({"sweep": "depth"}, ValueError, "the model was built with sweep='width'"),
        ({"done": {8: [[1.0, 2.0]]}}, ValueError, "done\\[8\\] must have shape \\(3, 2\\)"),
        ({"done": [1, 2]}, TypeError, "done must map a size"),
        ({"key": "seven"}, TypeError, "key"),
    ],
)
def test_bad_arguments_fail_early_naming_the_argument(change, error, match):
    args = {"model": MLP, "sizes": [8, 16], "log2_lrs": GRID, "inputs": X, "targets": Y, "base": 8, "steps": 5,
            "batch_size": 8, "seeds": 2} | change  # fmt: skip
    with pytest.raises(error, match=match):
        mc.lr_transfer(args.pop("model"), args.pop("sizes"), args.pop("log2_lrs"), args.pop("inputs"),
                       args.pop("targets"), **args)  # fmt: skip


def test_a_depth_width_model_must_agree_with_the_sweep():
    model = mc.width_model("transformer", sweep="depth", alpha=1.0, base_depth=2, vocab=8, width=8)
    tokens = jnp.zeros((4, 3), jnp.int32)
    with pytest.raises(ValueError, match=re.escape("alpha=None but the model's branch multiplier has alpha=1.0")):
        mc.lr_transfer(model, [2, 4], GRID, tokens, tokens, base=2, steps=1, batch_size=2, sweep="depth")
    with pytest.raises(ValueError, match="base=4 but the model's branch multiplier has base_depth=2"):
        mc.lr_transfer(model, [2, 4], GRID, tokens, tokens, base=4, steps=1, batch_size=2, sweep="depth", alpha=1.0,
                       blocks="block_*")  # fmt: skip


# --- python -m mc lr-transfer --sweep batch|steps --------------------------------------------------


def _data_file(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, inputs=np.asarray(X), targets=np.asarray(Y))
    return path


@pytest.mark.slow  # two sweeps' programs (10-20 s on a CPU)
@pytest.mark.parametrize("sweep,sizes,fixed", [("batch", (4, 8), {"steps": 5}), ("steps", (5, 10), {"batch_size": 8})])
def test_the_command_sweeps_batch_sizes_and_steps_as_lr_transfer_does(sweep, sizes, fixed, tmp_path, capsys):
    from mc import _cli, _keys
    from mc._sweep import SWEPT_ARGUMENT

    out = tmp_path / "t.json"
    flags = [f"--{name.replace('_', '-')}" for name in fixed] + [str(v) for v in fixed.values()]
    argv = ["lr-transfer", "--model", "mlp", "--sweep", sweep, "--width", "16,8", "--sizes", ",".join(map(str, sizes)),
            "--data", str(_data_file(tmp_path)), "--log2-lrs=-7,-5,-3", "--seeds", "2", "--key", "3", "--quiet",
            "--compilation-cache", "none", "--json", str(out), flags[0], flags[1]]  # fmt: skip
    assert _cli.main(argv) == 0
    doc = json.loads(out.read_text())
    # the command's model is mc.width_model("mlp") at width 16, μP against width 8, its key Philox's
    budget = {"steps": None, "batch_size": None, **fixed}
    want = mc.lr_transfer(mc.width_model("mlp"), sizes, GRID, X, Y, base=sizes[0], sweep=sweep, width=(16, 8),
                          seeds=2, key=_keys.as_key(3, "philox"), **budget)  # fmt: skip
    assert doc["result"] == json.loads(json.dumps(to_json(want.to_dict())))
    assert doc["settings"]["width"] == [16, 8] and doc["settings"][SWEPT_ARGUMENT[sweep]] is None
    assert f"{sweep:>6}  optimal log2 LR" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags,match",
    [
        (["--sweep", "batch", "--width", "16", "--batch-size", "8"], "--batch-size is what --sweep batch sweeps"),
        (["--sweep", "steps", "--width", "16", "--steps", "8"], "--steps is what --sweep steps sweeps"),
        (["--sweep", "batch"], "--sweep batch needs --width W"),
        (["--width", "16"], "--width is for --sweep batch or steps"),
        (["--sweep", "steps", "--width", "16,8,4"], "--width must be W or W,BASE"),
        (["--sweep", "steps", "--width", "18,8", "--model", "transformer"], "--width must be multiples of 4"),
    ],
)
def test_the_commands_batch_and_steps_sweeps_refuse_what_does_not_fit(flags, match, tmp_path, capsys):
    from mc import _cli

    argv = ["lr-transfer", "--model", "mlp", "--sizes", "4,8", "--data", str(_data_file(tmp_path)), "--quiet", *flags]
    assert _cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err
