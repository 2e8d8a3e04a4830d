"""mc.coord_check against SPEC §10: the recorded scales, their seeds' statistics, the slope, the bits.

The reference computation here is written independently of mc's capture: linen's own
``capture_intermediates`` for the layer outputs, one seed at a time, with the public
``flaxinit.mup`` API for the init and the optimizer. At step 1 (init) the two must agree to
float32 rounding of a mean over a layer's elements (``8 eps`` relative is far above it);
later steps go through three Adam updates computed by differently batched programs, whose
gradients differ by float32 rounding, and Adam's ``g / sqrt(v)`` passes a relative rounding
of the gradient straight into the update: ``1e-4`` relative bounds that at these sizes.
"""

import concurrent.futures
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from mup_models import NnxMLP

import mc
from flaxinit import mup
from mc._coord import least_squares_slope

X = jax.random.normal(jax.random.key(0), (16, 8))
Y = jax.random.randint(jax.random.key(1), (16,), 0, 10)
EPS32 = float(jnp.finfo(jnp.float32).eps)


@pytest.fixture(scope="module")
def mlp_check():
    return mc.coord_check(mc.width_model("mlp"), [16, 32], X, Y, base=16, lr=0.01, steps=3, seeds=3, key=5)


def _reference(width, seed, key, base_width=16, steps=3, lr=0.01):
    """Per step, per layer, the mean |a| of one seed's model, without mc's capture."""
    model, base = mc.width_model("mlp")(width), mc.width_model("mlp")(base_width)
    k = jax.random.fold_in(mc.philox_key(key), seed)
    params = model.init({"params": k}, X)["params"]
    shapes = mup.infshapes(jax.eval_shape(base.init, k, X), {"params": params})
    params = mup.rescale(params, shapes)
    tx = mup.adamw(lr, shapes=shapes)
    state = tx.init(params)
    out = []
    for _ in range(steps):

        def loss(p):
            y, inter = model.apply({"params": p}, X, capture_intermediates=True, mutable=["intermediates"])
            return optax.softmax_cross_entropy_with_integer_labels(y, Y).mean(), inter["intermediates"]

        (_, inter), grads = jax.value_and_grad(loss, has_aux=True)(params)
        means = {name: float(jnp.mean(jnp.abs(v["__call__"][0]))) for name, v in inter.items() if name != "__call__"}
        means["(output)"] = float(jnp.mean(jnp.abs(inter["__call__"][0])))
        out.append(means)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return out


def test_rows_are_each_seeds_mean_abs_averaged_with_its_standard_error(mlp_check):
    r = mlp_check
    assert r.paths == ("dense_0", "dense_1", "readout", "(output)")
    assert len(r.rows) == 2 * 3 * 4 and r.widths == (16, 32) and r.seeds == 3
    for width in r.widths:
        per_seed = [_reference(width, s, 5) for s in range(3)]
        for row in (x for x in r.rows if x.width == width):
            values = np.array([seed[row.step - 1][row.path] for seed in per_seed])
            rtol = 8 * EPS32 if row.step == 1 else 1e-4
            assert row.mean_abs == pytest.approx(values.mean(), rel=rtol)
            assert row.mean_abs_se == pytest.approx(values.std(ddof=1) / math.sqrt(3), rel=rtol * 100, abs=1e-7)


def test_one_step_is_the_forward_pass_at_init():
    """``steps=1``: the program's scan runs no update; the one step recorded is the init's forward pass."""
    r = mc.coord_check(mc.width_model("mlp"), [16, 32], X, Y, base=16, lr=0.01, steps=1, seeds=3, key=5)
    assert r.steps == 1 and {row.step for row in r.rows} == {1} and len(r.losses[0]) == 1
    for width in r.widths:
        per_seed = [_reference(width, s, 5, steps=1) for s in range(3)]
        for row in (x for x in r.rows if x.width == width):
            assert row.mean_abs == pytest.approx(np.mean([seed[0][row.path] for seed in per_seed]), rel=8 * EPS32)


def test_a_widths_rows_depend_only_on_the_key_and_seeds_not_on_the_other_widths(mlp_check):
    other = mc.coord_check(mc.width_model("mlp"), [32, 48], X, Y, base=16, lr=0.01, steps=3, seeds=3, key=5)
    assert [x for x in mlp_check.rows if x.width == 32] == [x for x in other.rows if x.width == 32]


class _CompilesTheFirstOnly:
    """A stand-in for the compile workers that compiles the first program it is given at once
    and leaves the others waiting, as a busy pool would when a check is stopped."""

    def __init__(self, max_workers, thread_name_prefix):
        self.compiled_one, self.waiting = False, []

    def submit(self, compile_program):
        future = concurrent.futures.Future()
        if self.compiled_one:
            self.waiting.append(future)
        else:
            self.compiled_one = True
            future.set_result(compile_program())
        return future

    def shutdown(self, wait, cancel_futures):
        assert cancel_futures
        for future in self.waiting:
            future.cancel()


def test_a_check_stopped_after_its_first_width_leaves_the_next_check_whole(mlp_check, monkeypatch):
    """Programs compile ahead of the width running; a check stopped early (an interrupt, an
    exception in ``on_size``) cancels the compilations not yet started, and the next check
    rebuilds those programs instead of finding a cancelled compilation in the cache."""
    from mc import _sweep
    from mc._cache import ProgramCache

    cache = ProgramCache(32)
    monkeypatch.setattr(_sweep, "PROGRAMS", cache)
    monkeypatch.setattr(_sweep, "ThreadPoolExecutor", _CompilesTheFirstOnly)

    def stop(size, rows, losses):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mc.coord_check(mc.width_model("mlp"), [16, 32], X, Y, base=16, lr=0.01, steps=3, seeds=3, key=5,
                       on_size=stop)  # fmt: skip
    assert [future.cancelled() for _, _, future in cache._programs.values()] == [False, True]  # 16 ran, 32 not
    monkeypatch.setattr(_sweep, "ThreadPoolExecutor", concurrent.futures.ThreadPoolExecutor)  # the same cache
    again = mc.coord_check(mc.width_model("mlp"), [16, 32], X, Y, base=16, lr=0.01, steps=3, seeds=3, key=5)
    assert again.rows == mlp_check.rows


def test_the_base_model_is_checked_and_traced_once_per_model(monkeypatch):
    """Every size compares with the same base model: its bases check and shapes are taken once,
    for this check and the next one of the same model (mc._training.BASES)."""
    from mc import _training
    from mc._cache import ProgramCache

    monkeypatch.setattr(_training, "BASES", ProgramCache(16))
    checked = []
    real = _training._check_bases
    monkeypatch.setattr(_training, "_check_bases", lambda *args: checked.append(args[1]) or real(*args))
    model = mc.width_model("mlp")
    for key in (5, 6):
        mc.coord_check(model, [16, 32, 48], X, Y, base=16, lr=0.01, steps=1, seeds=2, key=key)
    assert checked == [16]


def test_mup_is_the_identity_at_the_base_width(mlp_check):
    sp = mc.coord_check(mc.width_model("mlp", "sp"), [16, 32], X, Y, base=16, parametrization="sp", lr=0.01,
                        steps=3, seeds=3, key=5)  # fmt: skip
    assert [x for x in mlp_check.rows if x.width == 16] == [x for x in sp.rows if x.width == 16]
    assert [x for x in mlp_check.rows if x.width == 32] != [x for x in sp.rows if x.width == 32]


@pytest.mark.parametrize(
    ("x", "y", "se", "slope", "slope_se"),
    [
        ([0, 1, 2], [1.0, 3.0, 5.0], [0.0, 0.0, 0.0], 2.0, 0.0),
        ([0, 1, 2, 3], [2.0, 2.0, 2.0, 2.0], [0.5, 0.5, 0.5, 0.5], 0.0, 0.5 / math.sqrt(5.0)),  # s / sqrt(Sxx)
        ([0, 2], [0.0, 1.0], [0.3, 0.4], 0.5, math.sqrt(0.3**2 + 0.4**2) / 2),  # (y1 - y0) / 2
    ],
)
def test_least_squares_slope_and_its_standard_error(x, y, se, slope, slope_se):
    got, got_se = least_squares_slope(x, y, se)
    assert got == pytest.approx(slope, abs=1e-15) and got_se == pytest.approx(slope_se, rel=1e-14, abs=1e-15)


def test_slope_is_that_of_log2_mean_abs_against_log2_width(mlp_check):
    widths, m, se = mlp_check.series("readout", 2)
    slope, slope_se = mlp_check.slope("readout", 2)
    assert slope == pytest.approx((math.log2(m[1]) - math.log2(m[0])) / (math.log2(widths[1]) - math.log2(widths[0])))
    expected_se = math.hypot(se[0] / m[0], se[1] / m[1]) / math.log(2)  # two points: the difference's SE
    assert slope_se == pytest.approx(expected_se, rel=1e-12)
    assert {(d["path"], d["step"]) for d in mlp_check.slopes()} == {(p, t) for p in mlp_check.paths for t in (1, 2, 3)}
    assert mlp_check.to_dict()["rows"][0] == mlp_check.rows[0].to_dict()


@pytest.mark.slow
def test_an_nnx_factory_is_checked_like_a_linen_module():
    r = mc.coord_check(lambda w: lambda rngs: NnxMLP(w, rngs), [16, 32], jnp.ones((4, 12)), jnp.zeros(4, jnp.int32),
                       base=16, lr=0.01, steps=2, seeds=2)  # fmt: skip
    assert r.paths == ("l1", "l2", "out", "(output)")
    assert all(math.isfinite(x.mean_abs) and x.mean_abs > 0 for x in r.rows)


def test_a_tied_readout_is_read_as_one():
    # the trace tells infshapes that mup.Readout(tied=True) reads the embedding table
    model = mc.width_model("transformer", vocab=11, tied=True, base_width=16)
    r = mc.coord_check(model, [16, 32], jnp.zeros((2, 4), jnp.int32), jnp.zeros((2, 4), jnp.int32),
                       base=16, lr=0.01, steps=1, seeds=2)  # fmt: skip
    assert "readout" in r.paths


class _Stack(nn.Module):
    width: int

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(self.width)(x)
        layer = nn.scan(_Residual, variable_axes={"params": 0}, split_rngs={"params": True}, length=3)
        x, _ = layer(self.width)(x, None)
        return nn.Dense(10)(x)


class _Residual(nn.Module):
    width: int

    @nn.compact
    def __call__(self, x, _):
        return x + nn.relu(nn.Dense(self.width)(x)) / 3, None


@pytest.mark.slow
def test_scanned_stacks_get_a_row_per_layer():
    r = mc.coord_check(_Stack, [16, 32], X, Y, base=16, lr=0.01, steps=2, seeds=2)
    assert r.paths == tuple(["Dense_0"] + [f"Scan_Residual_0[{i}]/Dense_0" for i in range(3)] + ["Dense_1", "(output)"])


def test_the_plot_is_written(tmp_path, mlp_check):
    mlp_check.plot(tmp_path / "coord.png")
    mc.plot_coord_data([mlp_check, mlp_check], tmp_path / "two.svg", titles=["a", "b"])
    assert (tmp_path / "coord.png").stat().st_size > 1000 and (tmp_path / "two.svg").stat().st_size > 1000


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sizes": [16]}, ValueError, "sizes must hold at least two"),
        ({"sizes": [16, 16]}, ValueError, "sizes must hold at least two"),
        ({"sizes": [16, 0]}, ValueError, "each of sizes"),
        ({"seeds": 1}, ValueError, "seeds must be at least 2"),
        ({"lr": 0.0}, ValueError, "lr must be positive"),
        ({"parametrization": "ntk"}, ValueError, "parametrization must be one of"),
        ({"optimizer": "rmsprop"}, ValueError, "optimizer must be one of"),
        ({"loss": "hinge"}, ValueError, "loss must be one of"),
        ({"model": nn.Dense(4)}, TypeError, "model must be a function size"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    args = {"model": mc.width_model("mlp"), "sizes": [16, 32], "lr": 0.01}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        mc.coord_check(args.pop("model"), args.pop("sizes"), X, Y, base=16, **args)


def test_the_earlier_argument_names_still_work_with_a_deprecation_warning():
    model, seen = mc.width_model("mlp"), []
    with pytest.warns(DeprecationWarning, match="base_width= is deprecated: call it base="):
        old = mc.coord_check(model, inputs=X, targets=Y, widths=[16, 32], base_width=16, lr=0.01, steps=1, seeds=2,
                             on_width=lambda *a: seen.append(a[0]))  # fmt: skip
    new = mc.coord_check(model, [16, 32], X, Y, base=16, lr=0.01, steps=1, seeds=2)
    assert old == new and seen == [16, 32]
    with pytest.raises(TypeError, match="base and base_width are the same argument"):
        mc.coord_check(model, [16, 32], X, Y, base=16, base_width=16, lr=0.01)


_PLOT_STORED = """
import json, pathlib, sys
import matplotlib
import mc
root, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
check = json.loads((root / "experiments/results/coord_check/mlp.json").read_text())["results"]
mc.plot_coord_data([mc.CoordCheckResult.from_dict(r) for r in check.values()], out / "coord.png")
arm = json.loads((root / "experiments/results/mutransfer/mlp_mup.json").read_text())["result"]
mc.TransferResult.from_dict(arm).plot(out / "transfer.svg")
print(json.dumps({"backend": matplotlib.get_backend(), "pyplot": "matplotlib.pyplot" in sys.modules}))
"""


def test_stored_results_replot_without_touching_the_callers_backend(tmp_path):
    """The stored runs load with ``from_dict`` and plot; a session's matplotlib backend (a
    Jupyter kernel's inline one) is not switched, and pyplot is never imported."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, MPLBACKEND="svg")
    done = subprocess.run([sys.executable, "-c", _PLOT_STORED, str(root), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"backend": "svg", "pyplot": False}
    assert (tmp_path / "coord.png").stat().st_size > 1000 and (tmp_path / "transfer.svg").stat().st_size > 1000
