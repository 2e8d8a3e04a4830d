"""mc.audit and mc.correlation_map against closed forms; linen against nnx; the CLI.

Every Monte Carlo assertion compares with an exact value within a multiple of the run's own
standard error (4.5 SE: a fixed-key test that a correct implementation fails with
probability below 1e-5), plus, where the estimator itself is biased at finite size, a bound
on that bias derived in the test.
"""

import json
import math
import os
import subprocess
import sys

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from float_bounds import gamma

import flaxinit
import mc
from mc import _cli

Z = 4.5


def mean_square(layer):
    """``rms**2`` and its SE (the audit reports rms with a delta-method SE: se_ms = 2 rms se_rms)."""
    return layer.rms**2, 2 * layer.rms * layer.rms_se


class Linear(nn.Module):
    depth: int
    width: int
    kernel_init: flaxinit.Initializer

    @nn.compact
    def __call__(self, x):
        for _ in range(self.depth):
            x = nn.Dense(self.width, use_bias=False, kernel_init=self.kernel_init)(x)
        return x


def test_a_linear_xavier_stack_fed_ones_has_mean_square_three_to_the_minus_l():
    # xavier_standard: w ~ U(-1/sqrt(n), 1/sqrt(n)), E w^2 = 1/(3n); with inputs of ones,
    # E z_l^2 = n E w^2 E z_{l-1}^2 = 3^-l exactly
    r = mc.audit(Linear(4, 32, flaxinit.xavier_standard()), jnp.ones((2, 32)), 4096, key=0)
    assert [layer.path for layer in r.layers] == ["Dense_0", "Dense_1", "Dense_2", "Dense_3", "(output)"]
    for depth, layer in enumerate(r.layers[:4], start=1):
        ms, se = mean_square(layer)
        assert abs(ms - 3.0**-depth) < Z * se, (depth, ms, se)
    # the backward pass from a cotangent of ones: the last layer's output gradient is exactly 1
    assert r.layers[-1].grad_rms == 1.0 and r.layers[-1].grad_rms_se == 0.0


def test_relu_with_he_keeps_the_second_moment():
    # He normal (s^2 = 2/n), standard-normal inputs: every pre-activation has E z^2 = 2 and,
    # z being symmetric, every ReLU output E a^2 = E z^2 / 2 = 1
    model, inputs, fresh = mc.reference_model("mlp", flaxinit.he_normal(), depth=5, width=64, batch=4)
    r = mc.audit(model, inputs, 1024, key=1, fresh_inputs=fresh, init=flaxinit.he_normal())
    for i in range(5):
        pre, post = r.layer(f"layer_{i}/Dense_0"), r.layer(f"layer_{i}")
        for layer, exact in ((pre, 2.0), (post, 1.0)):
            ms, se = mean_square(layer)
            assert abs(ms - exact) < Z * se, (layer.path, ms, se)
        assert abs(post.zero_fraction - 0.5) < Z * post.zero_fraction_se + 1e-9
    kernel = next(p for p in r.params if p.path == "layer_2/Dense_0/kernel")
    assert kernel.expected_std == pytest.approx(math.sqrt(2 / 64), rel=1e-12)
    assert abs(kernel.rms - kernel.expected_std) < Z * kernel.rms_se


def test_an_orthogonal_linear_map_keeps_the_correlation():
    # ||Qx|| = ||x|| and <Qx, Qy> = <x, y> for an orthogonal Q: each iteration's output cosine
    # equals its input cosine up to float32 rounding of three 64-term sums (gamma(6) each,
    # relative, amplified by 1/c in the dot product's cancellation, and the square root)
    model = nn.Dense(64, use_bias=False, kernel_init=flaxinit.orthogonal())
    for c in (0.0, 0.5, 0.9):
        r = mc.correlation_map(model, (1, 64), c, 256, key=2)
        tol = 4 * (gamma(6) + gamma(64)) * (1 + 1 / max(abs(r.input_correlation), 0.1))
        assert abs(r.correlation[0] - r.input_correlation) < tol, (c, r)
        assert abs(r.input_correlation - c) < Z * r.input_correlation_se


def _arccos_kernel(c):
    return (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / math.pi


class ReluLayer(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.relu(nn.Dense(1024, use_bias=False, kernel_init=flaxinit.normal(1.0))(x))


@pytest.mark.parametrize("c", [0.0, 0.5])
def test_one_wide_relu_layer_maps_correlation_to_the_arccosine_kernel(c):
    # For Gaussian weights, u = w.x1 and v = w.x2 are jointly normal with the inputs' cosine
    # rho, and E relu(u) relu(v) / E relu(u)^2 = k(rho), the arc-cosine kernel. The estimate is
    # biased twice at finite size: the inputs' cosine rho scatters around c with variance
    # (1 - c^2)^2 / D (D = 512), which shifts E k(rho) by at most max|k''| var / 2, with
    # k''(r) = 1 / (pi sqrt(1 - r^2)) taken at c + 0.15 (rho stays within 0.15 of c: 3 sd);
    # and a cosine of N = 1024 units is a ratio of means, biased by O(1/N): we allow 3/N. The
    # linear map's value (c itself) is more than 0.1 away, far outside the tolerance.
    r = mc.correlation_map(ReluLayer(), (1, 512), c, 128, key=3)
    (dense, pre, pre_se), (output, post, post_se) = r.layers
    assert (dense, output) == ("Dense_0", "(output)")
    k_second = 1 / (math.pi * math.sqrt(1 - (c + 0.15) ** 2))
    bias = k_second * (1 - c * c) ** 2 / 512 / 2 + 3 / 1024
    assert abs(post - _arccos_kernel(c)) < Z * post_se + bias, (post, _arccos_kernel(c), post_se)
    # the pre-activations, a linear map of the inputs, keep the inputs' correlation
    assert abs(pre - r.input_correlation) < Z * pre_se + 3 / 1024


def test_linen_and_nnx_give_the_same_statistics_for_the_same_draws():
    # deterministic kernels and biases, fresh inputs drawn from each iteration's key: both APIs
    # see the same inputs and compute the same layers, so every statistic agrees
    init = flaxinit.constant(0.05)

    class LinenNet(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.relu(nn.Dense(16, kernel_init=init, bias_init=flaxinit.constant(0.1))(x))
            return nn.Dense(4, kernel_init=init, bias_init=flaxinit.constant(0.1))(h)

    class NnxNet(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(8, 16, kernel_init=init, bias_init=flaxinit.constant(0.1), rngs=rngs)
            self.l2 = nnx.Linear(16, 4, kernel_init=init, bias_init=flaxinit.constant(0.1), rngs=rngs)

        def __call__(self, x):
            return self.l2(nnx.relu(self.l1(x)))

    x = jnp.zeros((3, 8))
    a = mc.audit(LinenNet(), x, 300, key=4, fresh_inputs=True)
    b = mc.audit(NnxNet, x, 300, key=4, fresh_inputs=True)
    assert (a.api, b.api) == ("linen", "nnx")
    assert [layer.shape for layer in a.layers] == [layer.shape for layer in b.layers]
    fields = ("mean_abs", "rms", "zero_fraction", "grad_rms", "mean_abs_se", "rms_se", "grad_rms_se")
    for la, lb in zip(a.layers, b.layers, strict=True):
        for f in fields:
            assert getattr(la, f) == pytest.approx(getattr(lb, f), rel=1e-6, abs=1e-12), (la.path, f)
    assert sorted(p.path for p in a.params) == sorted(p.path.replace("l1", "Dense_0").replace("l2", "Dense_1")
                                                      for p in b.params)  # fmt: skip


_DEVICE_SCRIPT = """
import json, jax, flaxinit, mc
he = flaxinit.kaiming_normal()
model, inputs, fresh = mc.reference_model("mlp", he, depth=3, width=16, activation="gelu", batch=4)
r = mc.audit(model, inputs, 1024 + 5, key=5, fresh_inputs=fresh)
c = mc.correlation_map(model, (4, 16), 0.3, 1024 + 3, key=5)
print(json.dumps({"devices": jax.device_count(), "audit": r.to_dict(), "cmap": c.to_dict()}))
"""


@pytest.mark.slow  # two fresh processes compiling the audit: CI's second tier
def test_audits_are_bit_identical_for_any_device_count_and_chunk_size():
    def start(devices):  # side by side: mostly compiling
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
        cmd = [sys.executable, "-c", _DEVICE_SCRIPT]
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(proc):
        out, err = proc.communicate()
        assert proc.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])

    one, four = map(result, [start(1), start(4)])
    assert (one["devices"], four["devices"]) == (1, 4)
    assert one["audit"] == four["audit"] and one["cmap"] == four["cmap"]
    # chunk_size sets the initializations per device call, never what is evaluated at once
    model = Linear(2, 8, flaxinit.xavier_standard())
    ref = mc.audit(model, jnp.ones((2, 8)), 1500, key=6)
    assert mc.audit(model, jnp.ones((2, 8)), 1500, key=6, chunk_size=7) == ref


def test_cli_audits_reference_models_and_writes_files(tmp_path, capsys):
    out = tmp_path / "audit.json"
    argv = ["audit", "--model", "resnet-fixup", "--depth", "3", "--width", "16", "--batch", "2", "--iterations", "64"]
    argv += ["--scheme", "kaiming_normal", "--json", str(out), "--csv", str(tmp_path / "a.csv")]
    argv += ["--plot", str(tmp_path / "a.png"), "--quiet"]
    assert _cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "block_2" in printed and "grad RMS" in printed
    doc = json.loads(out.read_text())
    [row] = doc["rows"]
    assert row["table"] == "audit" and row["spec"] == "kaiming_normal" and row["iterations"] == 64
    # Fixup blocks are the identity at init: every block outputs exactly the stem's values.
    # Each output's sum of squares is its own float32 reduction (the order, and whether a
    # square is fused into the addition, is XLA's), so two of them differ by at most
    # 2 gamma(count + 1) relative; the exact sums over iterations keep that, the square root shrinks it.
    stream = [x["rms"] for x in row["layers"] if x["path"].startswith("block_") and "/" not in x["path"]]
    stem = next(x for x in row["layers"] if x["path"] == "stem")["rms"]
    assert len(stream) == 3
    assert all(abs(rms - stem) <= 2 * gamma(2 * 16 + 1) * stem for rms in stream), (stream, stem)
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "nope"], "model must be one of mlp"),
        (["--model", "no_such_module_xyz:factory"], "cannot load it"),
        (["--model", "audit_models:bare_model"], "give input_shape (--input-shape)"),
        (["--activation", "nope"], "activation must be"),
    ],
)
def test_cli_bad_models_exit_2_with_one_line(argv, message, capsys):
    assert _cli.main(["audit", "--iterations", "4", "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_audit_interrupted_then_resumed_gives_the_uninterrupted_result(tmp_path, ctrl_c_at):
    # a small model evaluates at most one block at once; --chunk-size 1024: one block per call
    argv = ["audit", "--model", "mlp", "--depth", "2", "--width", "8", "--batch", "2", "--quiet"]
    argv += ["--iterations", str(3 * mc.BLOCK + 5), "--chunk-size", "1024", "--scheme", "he_normal"]
    argv += ["--scheme", "xavier_standard"]
    full, part = tmp_path / "full.json", tmp_path / "part.json"
    assert _cli.main([*argv, "--json", str(full)]) == 0
    with ctrl_c_at(6):  # the 2nd block of the 2nd scheme (the 1st has 4 blocks)
        assert _cli.main([*argv, "--json", str(part)]) == 130
    partial = json.loads(part.read_text())
    assert partial["partial"] is True and [r["spec"] for r in partial["rows"]] == ["he_normal"]
    [(row_id, state)] = partial["pending"].items()
    assert "xavier_standard" in row_id and state["blocks_done"] == 2
    assert _cli.main([*argv, "--json", str(part), "--resume"]) == 0
    strip = lambda doc: {k: v for k, v in doc.items() if k not in ("seconds", "machine")}  # noqa: E731
    assert strip(json.loads(part.read_text())) == strip(json.loads(full.read_text()))


def test_cli_audits_a_users_factory_with_an_input_shape(capsys):
    argv = ["audit", "--model", "audit_models:bare_model", "--input-shape", "2,8", "--iterations", "32", "--quiet"]
    assert _cli.main(argv) == 0
    assert "(output)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: mc.audit("model", jnp.ones(3), 4, key=0), TypeError, "model must be a flax.linen Module"),
        (lambda: mc.audit(nn.Dense(2), [1.0, 2.0], 4, key=0), TypeError, "inputs must be an array"),
        (
            lambda: mc.audit(nn.Dense(2), jnp.ones((1, 2), jnp.int32), 4, key=0, fresh_inputs=True),
            TypeError,
            "floating",
        ),
        (lambda: mc.audit(nn.Dense(2), jnp.ones((1, 2)), 0, key=0), ValueError, "iterations"),
        (lambda: mc.correlation_map(nn.Dense(2), (1, 2), 1.5, 4, key=0), ValueError, r"c must be a correlation"),
        (lambda: mc.audit(nn.Dense(2), jnp.ones((1, 2)), 4, key="k"), TypeError, "key must be"),
    ],
)
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_results_convert_to_plain_dicts():
    r = mc.audit(nn.Dense(3), jnp.ones((1, 2)), 8, key=0)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["layers"][0]["path"] == "(output)" and {p["path"] for p in d["params"]} == {"bias", "kernel"}
    assert d["prng"] == "philox4x32_10" and np.isfinite(d["layers"][0]["rms"])
