"""mc.verify against SPEC §11: the reference μP models pass, each of μP's known mistakes fails naming
its path and cause, and the allowances are the ones the stored calibration supports.

The reference models and the mistakes are experiments/verify_tolerance.py's (the calibration
that sets ``mc._verify.TOLERANCE`` ran them under keys 100 and up; the tests pass them under keys
0 to 9, which the allowances were not read from). Each model's programs are compiled once and
kept (mc's program cache): the other keys only run them. The default tier runs the MLP, the
slow tier every reference model, both APIs, and every mistake.
"""

import json
import math
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mc
from experiments import verify_tolerance as vt
from flaxinit import mup
from flaxinit.tooling import to_json
from mc import _cli, _verify

ROOT = Path(__file__).resolve().parents[1]
STORED = ROOT / "experiments" / "results" / "verify" / "results.json"
KEYS = range(10)


def _failing(verdict, cause):
    return {(f.path, f.step) for f in verdict.failures if f.cause == _verify.CAUSES[cause]}


# --- the reference models pass ----------------------------------------------------------------------


def test_the_reference_mlp_passes_and_measures_every_quantity():
    verdict = vt.REFERENCES["mlp"].verify(0)
    assert verdict.ok, str(verdict)
    quantities = {(c.quantity, c.path) for c in verdict.checks}
    assert {("activation", "dense_0"), ("update", "dense_1@update"), ("output", "readout"),
            ("output", "(output)")} <= quantities  # fmt: skip
    init = [c for c in verdict.checks if c.path == "(output)" and c.step == 1]
    assert init and init[0].expected == -0.5  # Table 3's readout at init


@pytest.mark.slow  # ten keys of every reference model, linen and nnx, width and depth
@pytest.mark.parametrize("name", list(vt.REFERENCES))
def test_every_reference_model_passes_under_ten_keys(name):
    failed = [(key, str(v)) for key in KEYS if not (v := vt.REFERENCES[name].verify(key)).ok]
    assert not failed, failed[0][1]


# --- each mistake fails, naming its path and cause -----------------------------------------------------


def test_optax_adam_fails_on_the_hidden_layers_learning_rate():
    verdict = vt.REFERENCES["mlp"].verify(0, optimizer=vt.plain_adam)
    assert not verdict.ok
    assert ("dense_1@update", 2) in _failing(verdict, "hidden_lr")
    assert ("readout@update", 2) in _failing(verdict, "output_lr")


def test_an_unrescaled_readout_fails_at_init_on_the_output():
    verdict = vt.REFERENCES["mlp"].verify(0, init=vt.no_rescale)
    assert not verdict.ok
    assert {("(output)", 1), ("readout", 1)} <= _failing(verdict, "readout_init")


@pytest.mark.slow  # another optimizer and init: the MLP's programs compiled again
def test_the_standard_parametrization_is_named_as_a_whole():
    verdict = vt.REFERENCES["mlp"].verify(0, optimizer=vt.plain_adam, init=vt.no_rescale)
    assert not verdict.ok and {f.cause for f in verdict.failures} == {_verify.CAUSES["sp"]}
    assert {("dense_1@update", 2), ("(output)", 1)} <= _failing(verdict, "sp")


@pytest.mark.slow  # a Transformer's programs, each API
@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_sqrt_d_attention_fails_on_the_logits(api):
    model = vt._transformer(api, parametrization="sp")  # SP's model: flax's 1/sqrt(d_head) attention
    verdict = vt.REFERENCES["transformer"].verify(0, model=model)
    assert not verdict.ok
    assert {("block_0/attention@logits", 1), ("block_1/attention@logits", 1)} <= _failing(verdict, "attention")


@pytest.mark.slow
@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_the_learning_rate_and_init_mistakes_are_named_in_both_apis(api):
    ref = vt.REFERENCES["transformer"]
    model = vt._transformer(api)
    adam = ref.verify(0, model=model, optimizer=vt.plain_adam)
    assert ("block_0/mlp_in@update", 2) in _failing(adam, "hidden_lr")
    init = ref.verify(0, model=model, init=vt.no_rescale)
    assert ("(output)", 1) in _failing(init, "readout_init")


@pytest.mark.slow  # a depth sweep's programs
@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_unmultiplied_residual_branches_fail_on_the_residual_stream(api):
    no_multiplier = vt._transformer(api, sweep="depth", base_depth=2, width=64)  # branches x + f(x)
    verdict = vt.REFERENCES["completep"].verify(0, model=lambda depth: no_multiplier(depth))
    assert not verdict.ok
    assert ("(last block)", 2) in _failing(verdict, "branch")


# --- the tolerances ---------------------------------------------------------------------------------


def test_the_allowances_are_what_the_stored_calibration_needs():
    # TOLERANCE's allowances are read off experiments/results/verify/results.json: what a
    # quantity needs there (the larger of the largest excess over z * se and mean + 4 sd of the
    # per-run largest excess) times 1.25, rounded up to a multiple of 0.05
    stored = json.loads(STORED.read_text())
    for quantity, (z, allowance) in _verify.TOLERANCE.items():
        assert z == stored["z"]
        needed = stored["needed"][quantity]
        assert needed is not None and allowance >= needed, (quantity, allowance, needed)
        assert allowance == pytest.approx(math.ceil(round(1.25 * needed / 0.05, 9)) * 0.05), (quantity, needed)
    assert all(r["verdicts_failed"] == 0 for r in stored["references"].values())
    assert all(not m["ok"] and m["named"] > 0 for m in stored["mistakes"].values())


# --- the verdict ------------------------------------------------------------------------------------


def test_a_verdict_prints_a_table_and_reads_back_from_strict_json():
    verdict = vt.REFERENCES["mlp"].verify(0, init=vt.no_rescale)
    text = str(verdict)
    assert text.startswith("μP verdict for MLP") and "FAIL" in text and _verify.CAUSES["readout_init"] in text
    assert mc.Verdict.from_dict(to_json(verdict.to_dict())) == verdict
    assert not verdict and bool(vt.REFERENCES["mlp"].verify(1))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sizes": [64, 128]}, ValueError, "at least three sizes"),
        ({"steps": 1}, ValueError, "steps must be at least 2"),
        ({"sweep": "depth"}, ValueError, "sweep='depth' needs alpha="),
        ({"optimizer": "lion"}, ValueError, "optimizer must be one of"),
        ({"init": 3}, TypeError, "init must be a function"),
        ({"base": None}, TypeError, "base is required"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    x, y = vt.REFERENCES["mlp"].batch()
    args = {"sizes": [64, 128, 256], "base": 64, "lr": 0.01, **kwargs}
    with pytest.raises(error, match=match):
        mc.verify(mc.width_model("mlp"), args.pop("sizes"), x, y, **args)


# --- one base -----------------------------------------------------------------------------------------


class ReadoutMLP(nn.Module):
    width: int
    stated_base: int

    @nn.compact
    def __call__(self, x):
        return mup.Readout(10, base_width=self.stated_base)(nn.relu(nn.Dense(self.width)(x)))


class AttentionModel(nn.Module):
    width: int
    stated_base_head_dim: int

    @nn.compact
    def __call__(self, x):
        attention = nn.MultiHeadDotProductAttention(
            num_heads=2, qkv_features=self.width, attention_fn=mup.dot_product_attention(self.stated_base_head_dim)
        )
        return nn.Dense(10)(attention(x, x).mean(axis=1))


@pytest.mark.parametrize(
    ("model_at", "match"),
    [
        (lambda w: ReadoutMLP(w, 32), r"mup.Readout 'Readout_0' has base_width=32, but the base model \(size 16\) "
                                      r"feeds it 16 features"),
        (lambda w: AttentionModel(w, 16), r"attention 'MultiHeadDotProductAttention_0' has "
                                          r"mup.dot_product_attention\(base_head_dim=16\), but the base model "
                                          r"\(size 16\) has head_dim 8"),
    ],
)  # fmt: skip
def test_a_base_stated_twice_differently_is_an_error_naming_the_module_and_both_values(model_at, match):
    x = jnp.ones((4, 3, 8)) if "Attention" in match else jnp.ones((4, 8))
    y = jnp.zeros(4, jnp.int32)
    with pytest.raises(ValueError, match=match):
        mc.coord_check(model_at, [16, 32], x, y, base=16, lr=0.01, steps=1, seeds=2)


# --- the command line -----------------------------------------------------------------------------------


class GrowingMLP(nn.Module):
    """Not μP: a hidden layer's output times sqrt(width), so its scale grows with the width."""

    width: int

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(self.width)(x)) * jnp.sqrt(self.width)
        return nn.Dense(10)(nn.relu(nn.Dense(self.width)(h)))


def test_the_command_exits_0_when_mup_holds_1_when_not_2_on_bad_input(tmp_path, capsys):
    common = ["verify", "--sizes", "64,128,256", "--lr", "0.03", "--steps", "3", "--seeds", "4", "--quiet",
              "--compilation-cache", "none"]  # fmt: skip
    out = tmp_path / "v.json"
    assert _cli.main([*common, "--model", "mlp", "--json", str(out)]) == 0
    assert "PASS" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["verdict"]["ok"] is True and doc["settings"]["sizes"] == [64, 128, 256]
    assert _cli.main([*common, "--model", "test_verify:GrowingMLP", "--input-shape", "32,16"]) == 1
    printed = capsys.readouterr().out
    assert "FAIL" in printed and "Dense_1" in printed  # the layer fed the grown activations
    assert _cli.main([*common[:1], "--sizes", "64,128", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at least three sizes" in err


@pytest.mark.slow  # SGD: the MLP's programs compiled again
def test_a_diverged_run_fails_and_says_so():
    verdict = vt.REFERENCES["mlp"].verify(0, optimizer="sgd", lr=1e4)
    assert not verdict.ok and _failing(verdict, "diverged")


@pytest.mark.slow  # the MLP's programs (kept from above: the learning rate is an argument)
def test_steps_too_small_to_move_the_output_are_named():
    # at lr 1e-4 (the reference's is 0.03) μP holds, but four steps barely move the output: its init
    # part, which shrinks as 1/sqrt(m_in), still dominates at t >= 2 (slope about -0.5 at every t)
    verdict = vt.REFERENCES["mlp"].verify(0, lr=1e-4)
    assert not verdict.ok
    assert {(f.quantity, f.step > 1) for f in verdict.failures} == {("output", True)}
    assert _failing(verdict, "small_steps") == {(f.path, f.step) for f in verdict.failures}


def test_lr_transfer_runs_on_a_users_data(tmp_path, capsys):
    x, y = vt.REFERENCES["mlp"].batch()
    data = tmp_path / "d.npz"
    np.savez(data, inputs=np.asarray(x), targets=np.asarray(y))
    out = tmp_path / "t.json"
    argv = ["lr-transfer", "--model", "mlp", "--sizes", "32,64", "--data", str(data), "--log2-lrs=-8,-6,-4",
            "--steps", "4", "--batch-size", "8", "--seeds", "2", "--quiet", "--compilation-cache", "none",
            "--json", str(out)]  # fmt: skip
    assert _cli.main(argv) == 0
    result = mc.TransferResult.from_dict(json.loads(out.read_text())["result"])
    assert result.sizes == (32, 64) and all(math.isfinite(v) for v in result.optimal_log2_lr)
    assert "spread" in capsys.readouterr().out
    assert _cli.main(["lr-transfer", "--model", "mlp", "--quiet"]) == 2
    assert "needs --data" in capsys.readouterr().err


def test_the_verdict_of_a_checks_run_reuses_its_programs():
    # a second verdict of the same model (another key) compiles nothing: counted by jax's events
    events = []

    def listen(event, duration, **kwargs):
        if event in ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/backend_compile_duration"):
            events.append(event)

    vt.REFERENCES["mlp"].verify(0)
    key = mc.philox_key(5)
    x, y = vt.REFERENCES["mlp"].batch()
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        ref = vt.REFERENCES["mlp"]
        mc.verify(ref.model, ref.sizes, x, y, base=ref.base, lr=ref.lr, key=key)
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert events == []
