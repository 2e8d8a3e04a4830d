"""LSUV (Mishkin & Matas, arXiv:1511.06422) on flax.linen and flax.nnx models.

What is asserted, and with which tolerance:

* For an MLP and a CNN, in linen and in nnx: after ``lsuv``, every layer's output
  variance on the batch, measured independently of the implementation (linen's
  ``capture_intermediates=True``; an explicit layer-by-layer loop over the nnx
  ``Sequential``), is within ``tol`` of the target. It is also the report's
  ``variance_after`` to 1e-5 relative (the same float32 computation up to XLA's
  reassociation). Exact math: a zero-bias layer's output is linear in its kernel, so one
  rescaling lands on the target; every layer therefore used 0 iterations (first
  measurement already within ``tol``) or 1 with ``variance_after = target`` to 1e-5
  relative, and ``forward_passes = 1 + sum(iterations)``.
* linen and nnx give the same numbers: the same pre-init keys and the same forward
  order give the same kernels and variances. They are different programs, so the
  tolerance is a float32 error bound (``CROSS_PROGRAM_REL``), not equality.
* A 30-layer MLP whose activations vanish (tanh, weights ``N(0, 0.25/n)``) or explode
  (ReLU, ``N(0, 8/n)``): the poor init's last-layer variance is below 1e-12 or above
  1e12 (the exact per-layer factors are about 1/4 and 4), and after LSUV, with and
  without the orthonormal pre-init, all 30 layers are within 0.1 of variance 1.
* Forward order is the call order, not the name order; normalization layers are never
  selected and keep their parameters; ``layers=`` selects by path list or predicate and
  leaves the other layers untouched; ``mode="std"``; a shared layer; the linen call is
  pure; non-convergence warns.
* Every bad input raises a clear error (table-driven, linen and nnx alike).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from flax.core import frozen_dict
from float_bounds import gamma

from flaxinit._lsuv import LSUVReport, lsuv

# linen vs nnx: each layer's output is a float32 dot of K <= 36 products (a 3x3x4 conv),
# within gamma(K) * sum|terms| of exact; its variance a pairwise sum of N <= 4096 squares,
# within gamma(log2 N + 2). A variance aggregates thousands of outputs, so what matters is
# rms(sum|terms|) / rms(result), about (2/pi) sqrt(K) <= 4 for these zero-mean inputs and
# weights; LSUV's rescalings pass the relative error on through <= 3 layers, so
# 3 * 6 * gamma(36) + gamma(14) ~ 4e-5 bounds the difference of the two programs' values.
CROSS_PROGRAM_REL = 3 * 6 * gamma(36) + gamma(14)
W = 16  # every dense layer is W -> W and every conv 4 -> 4 channels: few distinct shapes, few compilations
X_MLP = 3.0 * jax.random.normal(jax.random.key(1), (128, W))  # variance 9: the first layer needs a rescale
X_CNN = jax.random.normal(jax.random.key(2), (16, 8, 8, 4))


def flatten(x: jax.Array) -> jax.Array:
    return x.reshape(x.shape[0], -1)


# Layer lists: (kind, in, out[, strides]); the same architecture built in linen and in nnx.
ARCHS = {
    "mlp": ([("dense", W, W), ("act",), ("dense", W, W), ("act",), ("dense", W, W)], X_MLP),
    "cnn": ([("conv", 4, 4, 1), ("act",), ("conv", 4, 4, 2), ("act",), ("flatten",), ("dense", 64, W)], X_CNN),
}
PATHS = {"mlp": ["layers_0", "layers_2", "layers_4"], "cnn": ["layers_0", "layers_2", "layers_5"]}

# LSUV's pre-init overwrites every kernel and bias, so the test models start from zeros
# (no random init to compile); the 30-layer test draws its own poor init on the host.
ZEROS = jax.nn.initializers.zeros


def build_linen(spec) -> nn.Sequential:
    table = {
        "dense": lambda s: nn.Dense(s[2], kernel_init=ZEROS),
        "conv": lambda s: nn.Conv(s[2], (3, 3), strides=s[3], kernel_init=ZEROS),
        "act": lambda s: nn.relu,
        "flatten": lambda s: flatten,
    }
    return nn.Sequential([table[s[0]](s) for s in spec])


def build_nnx(spec) -> nnx.Sequential:
    rngs = nnx.Rngs(0)
    table = {
        "dense": lambda s: nnx.Linear(s[1], s[2], kernel_init=ZEROS, rngs=rngs),
        "conv": lambda s: nnx.Conv(s[1], s[2], (3, 3), strides=s[3], kernel_init=ZEROS, rngs=rngs),
        "act": lambda s: nnx.relu,
        "flatten": lambda s: flatten,
    }
    return nnx.Sequential(*[table[s[0]](s) for s in spec])


def host_init(model: nn.Module, x: jax.Array, draw=None):
    """The model's variables, built on the host from their abstract shapes: norm scales and running
    variances 1, kernels ``draw(shape)`` (default 0), everything else 0."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)

    def make(path, s):
        name = str(getattr(path[-1], "key", path[-1]))
        if name == "kernel" and draw is not None:
            return jnp.asarray(draw(s.shape).astype(s.dtype))
        return jnp.asarray(np.full(s.shape, 1.0 if name in ("scale", "var") else 0.0, s.dtype))

    return jax.tree_util.tree_map_with_path(make, shapes)


_CAPTURE: dict[int, tuple[nn.Module, object]] = {}  # id(model) -> (model, jitted capture)


def linen_variances(model: nn.Module, variables, x, paths) -> list[float]:
    """Output variance of the modules at ``paths``, from linen's own ``capture_intermediates=True``."""
    if id(model) not in _CAPTURE:
        _CAPTURE[id(model)] = (
            model,
            jax.jit(lambda v, x: model.apply(v, x, capture_intermediates=True, mutable=True)[1]),
        )
    inter = _CAPTURE[id(model)][1](variables, x)["intermediates"]
    out = []
    for name in paths:
        node = inter
        for part in name.split("/"):
            node = node[part]
        out.append(float(np.var(np.concatenate([np.ravel(o) for o in node["__call__"]]).astype(np.float64))))
    return out


@nnx.jit
def _nnx_outputs(model: nnx.Sequential, x: jax.Array) -> list[jax.Array]:
    outs = []
    for layer in model.layers:
        x = layer(x)
        if isinstance(layer, nnx.Linear | nnx.Conv):
            outs.append(x)
    return outs


def nnx_variances(model: nnx.Sequential, x) -> list[float]:
    """Output variance of every Linear/Conv of a Sequential, by an explicit layer-by-layer loop."""
    return [float(np.var(np.asarray(o, np.float64))) for o in _nnx_outputs(model, x)]


def assert_lsuv_result(report: LSUVReport, measured: list[float], target: float = 1.0, tol: float = 0.1) -> None:
    assert len(report.layers) == len(measured)
    for layer, v in zip(report.layers, measured, strict=True):
        assert abs(v - target) < tol, (layer.path, v)
        assert layer.variance_after == pytest.approx(v, rel=1e-5)
        assert layer.converged
        assert layer.iterations in (0, 1)
        if layer.iterations == 0:
            assert abs(layer.variance_before - target) < tol
        else:
            assert layer.variance_after == pytest.approx(target, rel=1e-5)
    assert report.forward_passes == 1 + sum(layer.iterations for layer in report.layers)
    assert report.converged


@pytest.fixture(scope="module")
def linen_runs():
    """arch -> (model, original variables, new variables, report); shared by the tests below."""
    runs = {}
    for arch, (spec, x) in ARCHS.items():
        model = build_linen(spec)
        variables = host_init(model, x)
        new, report = lsuv(model, x, params=variables)
        runs[arch] = (model, variables, new, report)
    return runs


@pytest.fixture(scope="module")
def nnx_runs():
    runs = {}
    for arch, (spec, x) in ARCHS.items():
        model = build_nnx(spec)
        params, report = lsuv(model, x)
        assert isinstance(params, nnx.State) and params["layers"][0]["kernel"] is not None  # the new state
        runs[arch] = (model, report)
    return runs


@pytest.mark.parametrize("arch", list(ARCHS))
def test_linen_layers_reach_unit_variance(arch, linen_runs):
    model, _, new, report = linen_runs[arch]
    assert [layer.path for layer in report.layers] == PATHS[arch]
    assert_lsuv_result(report, linen_variances(model, new, ARCHS[arch][1], PATHS[arch]))
    assert any(layer.iterations == 1 for layer in report.layers)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_nnx_layers_reach_unit_variance(arch, nnx_runs):
    model, report = nnx_runs[arch]
    assert_lsuv_result(report, nnx_variances(model, ARCHS[arch][1]))


@pytest.mark.parametrize("arch", list(ARCHS))
def test_linen_and_nnx_give_the_same_numbers(arch, linen_runs, nnx_runs):
    _, _, new, linen_report = linen_runs[arch]
    model, nnx_report = nnx_runs[arch]
    for a, b in zip(linen_report.layers, nnx_report.layers, strict=True):
        assert a.path.replace("layers_", "layers/") == b.path
        assert (a.iterations, a.converged) == (b.iterations, b.converged)
        assert a.variance_before == pytest.approx(b.variance_before, rel=CROSS_PROGRAM_REL)
        assert a.variance_after == pytest.approx(b.variance_after, rel=CROSS_PROGRAM_REL)
    for i, layer in enumerate(model.layers):
        if isinstance(layer, nnx.Linear | nnx.Conv):
            params = new["params"][f"layers_{i}"]
            kernel = np.asarray(params["kernel"])
            atol = CROSS_PROGRAM_REL * np.abs(kernel).max()  # a kernel is one orthonormal draw times a scale
            np.testing.assert_allclose(kernel, layer.kernel[...], rtol=CROSS_PROGRAM_REL, atol=atol)
            np.testing.assert_array_equal(params["bias"], layer.bias[...])


def test_pre_init_is_orthonormal_with_zero_bias(linen_runs):
    """Before rescaling, each kernel (as a fan_in x fan_out matrix) has orthonormal columns; after, scaled ones."""
    _, _, new, report = linen_runs["cnn"]
    for layer in report.layers:
        params = new["params"][layer.path]
        w = np.asarray(params["kernel"], np.float64)
        m = w.reshape(-1, w.shape[-1])
        gram = m.T @ m
        np.testing.assert_allclose(gram, gram[0, 0] * np.eye(m.shape[1]), atol=1e-5 * gram[0, 0])
        np.testing.assert_array_equal(params["bias"], 0.0)


DEEP = 30


class DeepMLP(nn.Module):
    """30 Dense(W) layers, with ``act`` between them."""

    act: str

    @nn.compact
    def __call__(self, x):
        for i in range(DEEP):
            x = nn.Dense(W)(x)
            x = (jnp.tanh(x) if self.act == "tanh" else nn.relu(x)) if i < DEEP - 1 else x
        return x


DEEP_MODELS = {"tanh": DeepMLP("tanh"), "relu": DeepMLP("relu")}


@pytest.mark.parametrize(
    "act,gain2,pre_init",
    [("tanh", 0.25, True), ("relu", 8.0, True), ("tanh", 0.25, False)],
    ids=["tanh-vanishing", "relu-exploding", "tanh-vanishing-no-preinit"],
)
def test_deep_mlp_vanishing_or_exploding_is_fixed(act, gain2, pre_init):
    """Poor init: kernels N(0, gain2 / W). Per layer the variance scales by about gain2 (tanh, small
    inputs) or gain2 / 2 (ReLU): 1/4 or 4, so over 29 layers it vanishes or explodes."""
    x = jax.random.normal(jax.random.key(3), (256, W))
    model = DEEP_MODELS[act]
    rng = np.random.default_rng(4)
    variables = host_init(model, x, lambda shape: math.sqrt(gain2 / W) * rng.standard_normal(shape))
    paths = [f"Dense_{i}" for i in range(DEEP)]
    before = linen_variances(model, variables, x, paths)
    if act == "tanh":
        assert before[-1] < 1e-12
    else:
        assert before[-1] > 1e12
    new, report = lsuv(model, x, params=variables, pre_init=pre_init)
    after = linen_variances(model, new, x, paths)
    assert max(abs(v - 1.0) for v in after) < 0.1
    assert_lsuv_result(report, after)


class Reordered(nn.Module):
    """Names and calls disagree: the outer Dense is built (named Dense_0) before the inner one is called."""

    @nn.compact
    def __call__(self, x, train: bool = True):
        x = nn.Dense(W, kernel_init=ZEROS)(jnp.tanh(nn.Dense(W, kernel_init=ZEROS)(x)))  # Dense_1 runs first
        x = nn.BatchNorm(use_running_average=not train)(nn.relu(x))
        x = nn.LayerNorm()(x)
        return nn.Dense(W, use_bias=False, kernel_init=ZEROS)(x)


def test_forward_order_norm_layers_and_variables_round_trip():
    x = jax.random.normal(jax.random.key(5), (64, W))
    model = Reordered()
    variables = host_init(model, x)
    new, report = lsuv(model, x, params=variables)
    paths = ["Dense_1", "Dense_0", "Dense_2"]
    assert [layer.path for layer in report.layers] == paths
    assert_lsuv_result(report, linen_variances(model, new, x, paths))
    assert set(new) == {"params", "batch_stats"}
    for collection, name in [("params", "LayerNorm_0"), ("params", "BatchNorm_0"), ("batch_stats", "BatchNorm_0")]:
        jax.tree_util.tree_map(np.testing.assert_array_equal, new[collection][name], variables[collection][name])
    assert "bias" not in new["params"]["Dense_2"]
    # the params collection alone gives the params collection back (BatchNorm's stats are made and dropped)
    only, _ = lsuv(model, x, params=variables["params"], layers=["Dense_1"])
    assert set(only) == set(variables["params"])
    np.testing.assert_array_equal(only["Dense_1"]["kernel"], new["params"]["Dense_1"]["kernel"])


def test_linen_is_pure_and_keeps_frozen_dicts(linen_runs):
    model, variables, _, _ = linen_runs["mlp"]
    copy = jax.tree_util.tree_map(np.array, variables)
    frozen = frozen_dict.freeze(variables["params"])
    out, _ = lsuv(model, X_MLP, params=frozen)
    assert isinstance(out, frozen_dict.FrozenDict)
    jax.tree_util.tree_map(np.testing.assert_array_equal, variables, copy)


@pytest.mark.parametrize("how", ["list", "predicate"])
def test_layer_selection(how, linen_runs):
    """Start from the LSUV'd MLP with its middle kernel doubled: only the selected layers are redone."""
    model, _, variables, _ = linen_runs["mlp"]
    params = {**variables["params"], "layers_2": {**variables["params"]["layers_2"]}}
    params["layers_2"]["kernel"] = 2.0 * params["layers_2"]["kernel"]
    layers = ["layers_4", "layers_0"] if how == "list" else (lambda path: path != "layers_2")
    new, report = lsuv(model, X_MLP, params=params, layers=layers)
    assert [layer.path for layer in report.layers] == ["layers_0", "layers_4"]  # forward order
    jax.tree_util.tree_map(np.testing.assert_array_equal, new["layers_2"], params["layers_2"])
    v0, v2, v4 = linen_variances(model, {"params": new}, X_MLP, PATHS["mlp"])
    assert abs(v0 - 1) < 0.1 and abs(v4 - 1) < 0.1
    assert v2 > 2.0  # the doubled, unselected layer was left alone (about 4x its unit variance)


def test_std_mode_and_target():
    spec, x = ARCHS["mlp"]
    model = build_nnx(spec)
    _, report = lsuv(model, x, mode="std", target=0.5, tol=0.01)
    assert report.mode == "std"
    for v in nnx_variances(model, x):
        assert abs(math.sqrt(v) - 0.5) < 0.01
    assert "std target 0.5" in str(report)


class Shared(nnx.Module):
    def __init__(self, rngs):
        self.inp = nnx.Linear(W, W, kernel_init=ZEROS, rngs=rngs)
        self.shared = nnx.Linear(W, W, kernel_init=ZEROS, rngs=rngs)

    def __call__(self, x):
        return self.shared(jnp.tanh(self.shared(jnp.tanh(self.inp(x)))))


def test_shared_layer_is_measured_over_all_calls_and_can_fail_to_converge():
    x = jax.random.normal(jax.random.key(7), (128, W))
    model = Shared(nnx.Rngs(0))
    _, report = lsuv(model, x, tol=0.01)
    assert [layer.path for layer in report.layers] == ["inp", "shared"]
    h1 = model.shared(jnp.tanh(model.inp(x)))
    h2 = model.shared(jnp.tanh(h1))
    combined = float(np.var(np.concatenate([np.ravel(h1), np.ravel(h2)]).astype(np.float64)))
    assert abs(combined - 1) < 0.01
    assert report.layers[1].variance_after == pytest.approx(combined, rel=1e-5)
    # One rescaling lands a zero-bias layer called once on its target (to float32 rounding,
    # far inside tol = 0.01), but not a layer called twice with a tanh between its calls:
    # measured |v - 1| is about 0.05 for `inp` before, and 0.3 for `shared` after, its one try.
    with pytest.warns(RuntimeWarning, match=r"1 layer\(s\) did not reach .* max_iter=1 rescalings: shared$"):
        _, stuck = lsuv(model, x, tol=0.01, max_iter=1)
    assert stuck.layers[0].converged and stuck.layers[0].iterations == 1
    assert not stuck.layers[1].converged and stuck.layers[1].iterations == 1
    assert stuck.to_dict()["layers"][1]["path"] == "shared"


# --- bad input ----------------------------------------------------------------------------------

MLP_SPEC = ARCHS["mlp"][0]
LINEN_MLP = build_linen(MLP_SPEC)
LINEN_PARAMS = host_init(LINEN_MLP, X_MLP)
NNX_MLP = build_nnx(MLP_SPEC)


def run_linen(batch, **kwargs):
    return lsuv(LINEN_MLP, batch, params=LINEN_PARAMS, **kwargs)


def run_nnx(batch, **kwargs):
    return lsuv(NNX_MLP, batch, **kwargs)  # every case fails before the model is written


BAD_INPUTS = [
    ("empty batch", jnp.zeros((0, W)), {}, ValueError, r"batch is empty: it has an array of shape \(0, 16\)"),
    ("empty pytree", {}, {}, ValueError, "batch is empty: it contains no arrays"),
    ("nan", X_MLP.at[3, 4].set(jnp.nan), {}, ValueError, r"batch contains NaN or inf \(1 of 2048 values"),
    ("inf", X_MLP.at[0, 0].set(-jnp.inf), {}, ValueError, "batch contains NaN or inf"),
    ("wrong features", jnp.ones((8, 17)), {}, ValueError, r"the model rejected the batch \(array shapes \(8, 17\)\)"),
    ("zero variance", jnp.zeros((8, W)), {}, ValueError, r"output of layer 'layers.0' has variance 0 on the batch"),
    (
        "unknown layer",
        X_MLP,
        {"layers": ["nope"]},
        ValueError,
        r"no dense/conv layer called 'nope'.*layers.0, layers.2",
    ),
    ("predicate none", X_MLP, {"layers": lambda p: False}, ValueError, "matched none of the model's dense/conv"),
    ("layers str", X_MLP, {"layers": "layers_0"}, TypeError, "not a str"),
    ("tol", X_MLP, {"tol": 0.0}, ValueError, "tol must be > 0.0"),
    ("target", X_MLP, {"target": -1.0}, ValueError, "target must be > 0.0"),
    ("max_iter", X_MLP, {"max_iter": 0}, ValueError, "max_iter must be an integer >= 1"),
    ("mode", X_MLP, {"mode": "var"}, ValueError, "mode must be one of 'variance', 'std'"),
    ("key", X_MLP, {"key": "k"}, TypeError, "key must be a PRNG key from jax.random.key"),
]


@pytest.mark.parametrize("api", ["linen", "nnx"])
@pytest.mark.parametrize("label,batch,kwargs,exc,match", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_inputs(api, label, batch, kwargs, exc, match):
    originals = (nnx.Linear.__dict__["__call__"], nnx.Conv.__dict__["__call__"])
    with pytest.raises(exc, match=match):
        (run_linen if api == "linen" else run_nnx)(batch, **kwargs)
    assert (nnx.Linear.__dict__["__call__"], nnx.Conv.__dict__["__call__"]) == originals  # patch undone


def test_no_dense_or_conv_layer():
    model = nn.Sequential([nn.LayerNorm(), nn.relu])
    with pytest.raises(ValueError, match=r"calls no dense/conv layer \(flax.linen"):
        lsuv(model, X_MLP, params=host_init(model, X_MLP))
    with pytest.raises(ValueError, match=r"calls no dense/conv layer \(flax.nnx"):
        lsuv(nnx.Sequential(nnx.LayerNorm(W, rngs=nnx.Rngs(0))), X_MLP)


def test_wrong_call_forms():
    with pytest.raises(TypeError, match=r"needs its parameters: lsuv\(module, batch, params=variables\)"):
        lsuv(LINEN_MLP, X_MLP)
    with pytest.raises(TypeError, match=r"an nnx model carries its own parameters"):
        lsuv(NNX_MLP, X_MLP, params={})
    with pytest.raises(TypeError, match=r"must be a flax\.linen\.Module or a flax\.nnx\.Module"):
        lsuv(lambda x: x, X_MLP)
    with pytest.raises(TypeError, match=r"params must be a flax\.linen params"):
        lsuv(LINEN_MLP, X_MLP, params=[1.0])


def test_scanned_layers_linen_excluded_by_layers_nnx_warned():
    """Lifted transforms: linen selects around them with ``layers=``; nnx names them in a warning."""
    from flax import nnx as _nnx

    from flaxinit.blocks import linen as linen_blocks
    from flaxinit.blocks import nnx as nnx_blocks

    x = jax.random.normal(jax.random.key(0), (64, 5))
    net = linen_blocks.SkipInitResNet(8, 3, 2)
    params = net.init(jax.random.key(1), x)
    _, report = lsuv(net, x, params=params, layers=["stem", "head"])
    assert [layer.path for layer in report.layers] == ["stem", "head"]
    model = nnx_blocks.SkipInitResNet(5, 8, 3, 2, rngs=_nnx.Rngs(0))
    with pytest.warns(UserWarning, match=r"leaves \['blocks/dense_0', 'blocks/dense_1'\] unchanged"):
        _, report = lsuv(model, x)
    assert [layer.path for layer in report.layers] == ["stem", "head"]
