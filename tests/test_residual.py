"""Residual schemes (Fixup, T-Fixup, SkipInit, ReZero): scales, initializers and reference blocks.

* Scale helpers equal the papers' closed forms for a table of depths (exactly where the
  value is a power of two or a ratio of small integers, else to 1e-15 relative), and the
  T-Fixup constants satisfy the paper's depth conditions.
* The initializer factories are ordinary flaxinit initializers that round-trip via
  ``get_config()`` / ``flaxinit.get``.
* At init, Fixup/SkipInit/ReZero blocks and networks are the identity through their
  residual branches: block outputs equal their inputs bitwise, Fixup logits are exactly 0.
* 1,000-block residual MLPs: at init the stream leaves the stack bitwise unchanged; with
  non-zero branches at the methods' scales (SkipInit ``alpha = 1/sqrt(L)``, Fixup with its
  zero layers redrawn at He) it stays finite and within the stated band around the
  exact expectation ``(1 + 2/L)^L ~ e^2``; the same networks without the scale overflow.
* linen and nnx versions have identical parameter trees and, given the same parameters,
  the same outputs.
* Bad arguments and mismatched widths raise errors naming the argument.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from float_bounds import gamma

import flaxinit
from flaxinit._residual import TFIXUP_ENCODER_CONSTANT
from flaxinit.blocks import linen as L
from flaxinit.blocks import nnx as N

KEY = jax.random.key(0)

# --- closed forms -------------------------------------------------------------------------

# (L, m, exact value or None): L^(-1/(2m-2))
FIXUP_TABLE = [
    (1, 2, 1.0),
    (4, 2, 0.5),
    (16, 2, 0.25),
    (16, 3, 0.5),
    (256, 5, 0.5),
    (1_000_000, 4, None),  # 0.1 up to pow's rounding
    (9, 2, None),
    (3, 2, None),
    (54, 2, None),  # ResNet-110: 54 basic blocks
    (1000, 2, None),
    (50, 3, None),
    (100, 10, None),
]


@pytest.mark.parametrize("num_branches,branch_depth,exact", FIXUP_TABLE)
def test_fixup_scale_closed_form(num_branches, branch_depth, exact):
    got = flaxinit.fixup_scale(num_branches, branch_depth)
    assert type(got) is float
    assert got == pytest.approx(math.exp(-math.log(num_branches) / (2 * branch_depth - 2)), rel=1e-15, abs=0)
    if exact is not None:
        assert got == exact


# (N, encoder 0.67 N^(-1/4), decoder (9N)^(-1/4)); exact where the fourth root is rational
TFIXUP_TABLE = [
    (1, 0.67, None),
    (16, 0.335, None),
    (81, 0.67 / 3, None),
    (9, None, 1 / 3),
    (36, None, None),
    (6, None, None),
    (12, None, None),
    (1000, None, None),
]


@pytest.mark.parametrize("num_layers,encoder_exact,decoder_exact", TFIXUP_TABLE)
def test_tfixup_scales_closed_form(num_layers, encoder_exact, decoder_exact):
    enc, dec = flaxinit.tfixup_encoder_scale(num_layers), flaxinit.tfixup_decoder_scale(num_layers)
    assert enc == pytest.approx(0.67 * num_layers**-0.25, rel=1e-15, abs=0)
    assert dec == pytest.approx(1 / math.sqrt(math.sqrt(9 * num_layers)), rel=1e-15, abs=0)
    if encoder_exact is not None:
        assert enc == pytest.approx(encoder_exact, rel=2e-16, abs=0)
    if decoder_exact is not None:
        assert dec == pytest.approx(decoder_exact, rel=2e-16, abs=0)


@pytest.mark.parametrize("d_model,exact", [(1, 1.0), (4, 0.5), (64, 0.125), (256, 0.0625), (512, None), (768, None)])
def test_tfixup_embedding_std_closed_form(d_model, exact):
    std = flaxinit.tfixup_embedding_std(d_model)
    assert std == pytest.approx(1 / math.sqrt(d_model), rel=1e-15, abs=0)
    if exact is not None:
        assert std == exact


@pytest.mark.parametrize("num_layers", [1, 6, 12, 100])
def test_tfixup_constants_meet_the_depth_conditions(num_layers):
    """Our reading of the derivation: with ``N`` layers and embeddings at ``x = (9N)^(-1/4)``,

    decoder (3 sub-blocks per layer): ``3N * 3 x^4 = 1`` exactly with ``v = w = x``;
    encoder (2 sub-blocks): ``2N (a^4 + 2 a^2 x^2) = 1`` has root ``a = 0.6696 N^(-1/4)``,
    which the paper rounds to 0.67 (so the product is 1.0016, not 1).
    """
    n = num_layers
    x = flaxinit.tfixup_decoder_scale(n)
    assert 9 * n * x**4 == pytest.approx(1.0, rel=1e-14)
    a = flaxinit.tfixup_encoder_scale(n)
    assert 2 * n * (a**4 + 2 * a**2 * x**2) == pytest.approx(1.0, abs=2e-3)
    root = math.sqrt((-2 / 3 + math.sqrt(4 / 9 + 2)) / 2)  # u^2 + 2u/3 - 1/2 = 0, a = sqrt(u) N^(-1/4)
    assert round(root, 2) == TFIXUP_ENCODER_CONSTANT


# --- initializer factories ----------------------------------------------------------------


@pytest.mark.parametrize(
    "init,expected",
    [
        (flaxinit.fixup_branch_init(16, 2), flaxinit.kaiming_normal(gain=0.25)),
        (flaxinit.fixup_branch_init(16, 3, "fan_out", 0.1), flaxinit.kaiming_normal("fan_out", 0.1, gain=0.5)),
        (flaxinit.tfixup_encoder_init(16), flaxinit.xavier_normalized(gain=0.335)),
        (flaxinit.tfixup_decoder_init(9), flaxinit.xavier_normalized(gain=flaxinit.tfixup_decoder_scale(9))),
        (flaxinit.tfixup_embedding_init(64, None), flaxinit.kaiming_normal(fan_in=128)),
        (
            flaxinit.tfixup_embedding_init(64, 9),
            flaxinit.kaiming_normal(fan_in=128, gain=flaxinit.tfixup_decoder_scale(9)),
        ),
    ],
    ids=["fixup", "fixup_fan_out_leaky", "tfixup_encoder", "tfixup_decoder", "embedding_unscaled", "embedding"],
)
def test_factories_are_flaxinit_initializers_that_round_trip(init, expected):
    assert init == expected
    assert flaxinit.get(init.get_config()) == init


@pytest.mark.parametrize("d_model,num_layers", [(64, None), (64, 6), (100, 1), (512, 12)])
@pytest.mark.parametrize("shape", [(1000, 64), (7, 3), (50,)])
def test_embedding_std_ignores_the_table_shape(d_model, num_layers, shape):
    init = flaxinit.tfixup_embedding_init(d_model, num_layers)
    depth = 1.0 if num_layers is None else flaxinit.tfixup_decoder_scale(num_layers)
    assert init.stddev(shape) == pytest.approx(depth * flaxinit.tfixup_embedding_std(d_model), rel=1e-15)


def test_fixup_branch_init_draws_he_times_the_scale():
    """Exact: the same key gives He normal's draw times ``L^(-1/2)`` (up to float32 rounding of the std)."""
    shape = (64, 32)
    scaled, he = flaxinit.fixup_branch_init(16, 2)(KEY, shape), flaxinit.kaiming_normal()(KEY, shape)
    np.testing.assert_allclose(scaled, 0.25 * he, 1e-6)


# --- identity at init ---------------------------------------------------------------------

WIDTH = 8
X = jax.random.normal(jax.random.key(1), (5, WIDTH))

LINEN_BLOCKS = {
    "fixup": L.FixupBlock(WIDTH, num_branches=10),
    "fixup_m3": L.FixupBlock(WIDTH, num_branches=10, branch_depth=3, hidden_features=12),
    "skipinit": L.SkipInitBlock(WIDTH),
    "rezero": L.ReZeroBlock(WIDTH),
}
NNX_BLOCKS = {
    "fixup": lambda: N.FixupBlock(WIDTH, num_branches=10, rngs=nnx.Rngs(0)),
    "fixup_m3": lambda: N.FixupBlock(WIDTH, 10, 3, 12, rngs=nnx.Rngs(0)),
    "skipinit": lambda: N.SkipInitBlock(WIDTH, rngs=nnx.Rngs(0)),
    "rezero": lambda: N.ReZeroBlock(WIDTH, rngs=nnx.Rngs(0)),
}


def assert_bitwise_equal(actual, desired):
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.shape == desired.shape and actual.dtype == desired.dtype
    np.testing.assert_array_equal(actual.view(np.uint32), desired.view(np.uint32))


@pytest.mark.parametrize("name", list(LINEN_BLOCKS))
def test_blocks_are_the_identity_at_init(name):
    block = LINEN_BLOCKS[name]
    assert_bitwise_equal(block.apply(block.init(KEY, X), X), X)
    assert_bitwise_equal(NNX_BLOCKS[name]()(X), X)


# Small networks in both frameworks, built once (building compiles): (linen module, nnx
# factory, input). Shared by the init, identity and agreement tests below.
TOKENS = jnp.arange(14).reshape(2, 7) % 11
FIXUP_BLOCKS, FIXUP_WIDTH, FIXUP_M = 16, 32, 3
TFIXUP_ARGS = (11, 32, 4, 64, 2, 12)  # vocab, d_model, heads, d_ff, N, max_len
PAIRS = {
    "fixup": (
        L.FixupResNet(FIXUP_WIDTH, FIXUP_BLOCKS, 3, branch_depth=FIXUP_M),
        lambda: N.FixupResNet(WIDTH, FIXUP_WIDTH, FIXUP_BLOCKS, 3, branch_depth=FIXUP_M, rngs=nnx.Rngs(0)),
        X,
    ),
    "skipinit": (
        L.SkipInitResNet(FIXUP_WIDTH, FIXUP_BLOCKS, 3, hidden_features=48),
        lambda: N.SkipInitResNet(WIDTH, FIXUP_WIDTH, FIXUP_BLOCKS, 3, hidden_features=48, rngs=nnx.Rngs(0)),
        X,
    ),
    "rezero": (
        L.ReZeroResNet(FIXUP_WIDTH, FIXUP_BLOCKS, 3),
        lambda: N.ReZeroResNet(WIDTH, FIXUP_WIDTH, FIXUP_BLOCKS, 3, rngs=nnx.Rngs(0)),
        X,
    ),
    "tfixup": (L.TFixupEncoder(*TFIXUP_ARGS), lambda: N.TFixupEncoder(*TFIXUP_ARGS, rngs=nnx.Rngs(0)), TOKENS),
    "tfixup_off": (
        L.TFixupEncoder(*TFIXUP_ARGS, tfixup=False),
        lambda: N.TFixupEncoder(*TFIXUP_ARGS, tfixup=False, rngs=nnx.Rngs(0)),
        TOKENS,
    ),
}


@pytest.fixture(scope="module")
def built():
    """name -> (linen module, linen params, nnx model, nnx params as a pure dict, input), built lazily."""
    cache = {}

    def get(name):
        if name not in cache:
            linen_net, make_nnx, inputs = PAIRS[name]
            model = make_nnx()
            params = linen_net.init(KEY, inputs)["params"]  # eager: cheaper than compiling small inits
            cache[name] = (linen_net, params, model, nnx.to_pure_dict(nnx.state(model, nnx.Param)), inputs)
        return cache[name]

    return get


@pytest.mark.parametrize("framework", ["linen", "nnx"])
def test_fixup_network_init_follows_the_paper(framework, built):
    """Zero last layers and classifier, unit multipliers, zero scalar biases, He * L^(-1/(2m-2)) elsewhere."""
    linen_net, linen_params, model, nnx_params, _ = built("fixup")
    if framework == "linen":
        params, logits = linen_params, linen_net.apply({"params": linen_params}, X)
    else:
        params, logits = nnx_params, model(X)
    assert_bitwise_equal(logits, np.zeros((5, 3), np.float32))
    blocks = params["blocks"]
    for leaf in (blocks[f"dense_{FIXUP_M - 1}"]["kernel"], params["head"]["kernel"], params["head"]["bias"]):
        assert not np.any(np.asarray(leaf))
    for name in ("bias_in", "bias_act", "bias_out", "stem_bias", "head_bias"):
        assert not np.any(np.asarray(blocks.get(name, params.get(name))))
    assert np.all(np.asarray(blocks["scale"]) == 1.0) and blocks["scale"].shape == (FIXUP_BLOCKS,)
    # n = 16 * 32 * 32 iid normal draws per layer: the sample std has relative standard
    # error 1/sqrt(2n) = 0.0055; allow 5 of them
    expected_std = math.sqrt(2 / FIXUP_WIDTH) * FIXUP_BLOCKS ** (-1 / (2 * FIXUP_M - 2))
    for i in range(FIXUP_M - 1):
        kernel = np.asarray(blocks[f"dense_{i}"]["kernel"], np.float64)
        assert kernel.shape == (FIXUP_BLOCKS, FIXUP_WIDTH, FIXUP_WIDTH)
        assert abs(kernel.std() / expected_std - 1) < 5 / math.sqrt(2 * kernel.size)
        assert abs(kernel.mean()) < 5 * expected_std / math.sqrt(kernel.size)
        assert not np.array_equal(kernel[0], kernel[1])  # each block draws its own weights


@pytest.mark.parametrize("name", ["skipinit", "rezero"])
@pytest.mark.parametrize("framework", ["linen", "nnx"])
def test_skipinit_and_rezero_networks_are_stem_then_head_at_init(name, framework, built):
    """alpha = 0 in every block: the output is ``head(activation(stem(x)))``."""
    linen_net, linen_params, model, nnx_params, _ = built(name)
    if framework == "linen":
        params, out = linen_params, linen_net.apply({"params": linen_params}, X)
    else:
        params, out = nnx_params, model(X)
    assert not np.any(np.asarray(params["blocks"]["alpha"]))
    h = jax.nn.relu(X @ params["stem"]["kernel"] + params["stem"]["bias"])
    np.testing.assert_allclose(out, h @ params["head"]["kernel"] + params["head"]["bias"], rtol=1e-6, atol=1e-6)


# --- 1,000-block residual MLPs ------------------------------------------------------------

DEPTH, DEEP_WIDTH, IN_WIDTH, BATCH = 1000, 128, 16, 32
X_DEEP = jax.random.normal(jax.random.key(2), (BATCH, IN_WIDTH))
DEEP_NETS = {
    "fixup": L.FixupResNet(DEEP_WIDTH, DEPTH, DEEP_WIDTH),
    "skipinit": L.SkipInitResNet(DEEP_WIDTH, DEPTH, DEEP_WIDTH),
    "rezero": L.ReZeroResNet(DEEP_WIDTH, DEPTH, DEEP_WIDTH),
}


@pytest.fixture(scope="module")
def deep():
    """name -> (jitted apply, init params with the classifier replaced by the identity).

    With ``head`` = identity (kernel I, bias 0; Fixup's head bias is 0) the output is the
    residual stream after the last block, exactly (x @ I adds only zeros).
    """
    out = {}
    for name, net in DEEP_NETS.items():
        params = jax.jit(net.init)(KEY, X_DEEP)["params"]
        params["head"] = {"kernel": jnp.eye(DEEP_WIDTH), "bias": jnp.zeros(DEEP_WIDTH)}
        apply = jax.jit(net.apply)
        out[name] = (lambda p, apply=apply: np.asarray(apply({"params": p}, X_DEEP), np.float64), params)
    return out


def stream_in(params):
    """The residual stream entering the first block, ``relu(stem(x) + stem_bias)``, and a bound on
    its float32 rounding: the stem is a sum of K products and up to two biases, within
    ``gamma(K + 2)`` times the same sum of absolute values (relu is 1-Lipschitz)."""
    kernel = np.asarray(params["stem"]["kernel"], np.float64)
    biases = [np.asarray(b, np.float64) for b in (params["stem"].get("bias", 0.0), params.get("stem_bias", 0.0))]
    x = np.asarray(X_DEEP, np.float64)
    h = X_DEEP @ params["stem"]["kernel"] + params["stem"].get("bias", 0.0)
    stream = np.asarray(jax.nn.relu(h + params.get("stem_bias", 0.0)), np.float64)
    abs_sum = np.abs(x) @ np.abs(kernel) + sum(np.abs(b) for b in biases)
    return stream, gamma(kernel.shape[0] + 2) * abs_sum


@pytest.mark.parametrize("name", list(DEEP_NETS))
def test_deep_networks_pass_the_stream_unchanged_at_init(name, deep):
    apply, params = deep[name]
    (h0, rounding), h_out = stream_in(params), apply(params)
    assert np.all(np.isfinite(h_out))
    # x + 0, a thousand times, is exact; the two programs' stems differ by at most two roundings
    assert np.all(np.abs(h_out - h0) <= 2 * rounding)
    assert 0.3 < np.sqrt(np.mean(h_out**2)) < 3  # order 1: the He stem's rms is sqrt(2 * 1/2) = 1


def with_live_branches(name, params, scaled):
    """Each method after its zero-initialized parts have moved.

    SkipInit: ``alpha`` = ``L^(-1/2)`` (the paper's largest recommended start), or 1 when
    not ``scaled`` (a plain residual network). Fixup: the zero last layer redrawn at He
    normal; when not ``scaled`` the first layer too, without Fixup's ``L^(-1/2)``.
    """
    blocks = dict(params["blocks"])
    if name == "skipinit":
        blocks["alpha"] = jnp.full((DEPTH,), DEPTH**-0.5 if scaled else 1.0)
    else:
        he = math.sqrt(2 / DEEP_WIDTH)
        k0, k1 = jax.random.split(jax.random.key(3))
        blocks["dense_1"] = {"kernel": he * jax.random.normal(k1, blocks["dense_1"]["kernel"].shape)}
        if not scaled:
            blocks["dense_0"] = {"kernel": he * jax.random.normal(k0, blocks["dense_0"]["kernel"].shape)}
    return {**params, "blocks": blocks}


# Growth of the mean square of the stream over L blocks whose branch, given its input x,
# adds alpha^2 * 2 q (He ReLU layers: second moment 2q for input second moment q): the
# exact expectation is (1 + 2 alpha^2)^L. SkipInit with alpha = L^(-1/2) and Fixup
# (first layer He * L^(-1/2), second He) both have 2 alpha^2 = 2/L: log E ratio = 1.998.
# One network's log-ratio fluctuates through the cross terms 2 alpha <x, f>/|x|^2, each
# with std alpha sqrt(8/d): over L blocks, std sqrt(8/d) = 0.25 at d = 128 (averaging the
# batch only lowers it; 8 keys gave a std of 0.16). The band is 4 of those, 1.0.
LOG_GROWTH = DEPTH * math.log1p(2 / DEPTH)
LOG_GROWTH_TOL = 4 * math.sqrt(8 / DEEP_WIDTH)


@pytest.mark.parametrize("name", ["skipinit", "fixup"])
def test_deep_networks_with_live_branches_stay_order_one(name, deep):
    apply, params = deep[name]
    params = with_live_branches(name, params, scaled=True)
    (h0, _), h_out = stream_in(params), apply(params)
    assert np.all(np.isfinite(h_out))
    log_ratio = math.log(np.mean(h_out**2) / np.mean(h0**2))
    assert abs(log_ratio - LOG_GROWTH) < LOG_GROWTH_TOL, log_ratio


@pytest.mark.parametrize("name", ["skipinit", "fixup"])
def test_without_the_scale_the_deep_signal_overflows(name, deep):
    """The control: unit branches grow the mean square by 3 per block; 3^1000 overflows float32."""
    apply, params = deep[name]
    h_out = apply(with_live_branches(name, params, scaled=False))
    assert not np.all(np.isfinite(h_out)) or np.sqrt(np.mean(h_out**2)) > 1e30


# --- linen and nnx agree ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fixup", "skipinit", "rezero", "tfixup"])
def test_linen_and_nnx_agree_given_the_same_parameters(name, built):
    """Same tree; random parameters (so no zero hides a difference) give the same outputs.

    Computed in float64, so that the two frameworks' programs (which may order sums
    differently) agree to about 1e-13 relative to the outputs' scale: a tolerance of 1e-9
    of it is rounding-proof, and any real difference (a missing multiplier, a swapped
    layer) is of the outputs' own size.
    """
    linen_net, params, model, nnx_params, inputs = built(name)
    assert jax.tree.map(jnp.shape, nnx_params) == jax.tree.map(jnp.shape, params)
    rng = np.random.default_rng(5)  # NumPy: no compilation per leaf shape
    params = jax.tree.map(lambda x: 0.3 * rng.standard_normal(x.shape), params)
    with jax.enable_x64(True):
        params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), params)
        inputs = jnp.asarray(inputs, jnp.float64) if jnp.issubdtype(inputs.dtype, jnp.floating) else inputs
        model = nnx.clone(model)
        state = nnx.state(model, nnx.Param)
        nnx.replace_by_pure_dict(state, params)
        nnx.update(model, state)
        for _, module in nnx.iter_graph(model):
            if isinstance(module, nnx.Embed):  # it fixed its compute dtype (float32) when it was built
                module.dtype = jnp.float64
        expected = np.asarray(linen_net.apply({"params": params}, inputs))
        got = np.asarray(model(inputs))
    assert expected.dtype == got.dtype == np.float64
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * scale)
    assert np.std(expected) > 0.1  # a non-trivial output


# --- T-Fixup's scaling, exactly -----------------------------------------------------------

SCALED = ("value", "out", "fc1", "fc2")
UNSCALED = ("query", "key")


@pytest.mark.parametrize("framework", ["linen", "nnx"])
def test_tfixup_scales_exactly_the_papers_weights(framework, built):
    """Same key with and without T-Fixup: common random numbers, so each weight's ratio is its factor.

    Xavier draws ``bound * u`` and the embedding ``std * z`` from the same keys, so the
    scaled kernels are the unscaled ones times ``0.67 N^(-1/4)`` and the embeddings times
    ``(9N)^(-1/4)``, up to float32 rounding of the bound (1e-6); queries, keys and the
    head are bitwise unchanged; biases start at 0.
    """
    index = 1 if framework == "linen" else 3
    scaled, plain = built("tfixup")[index], built("tfixup_off")[index]
    n, d_model = TFIXUP_ARGS[4], TFIXUP_ARGS[1]
    enc, emb = flaxinit.tfixup_encoder_scale(n), flaxinit.tfixup_decoder_scale(n)
    for i in range(n):
        s, p = scaled[f"layers_{i}"], plain[f"layers_{i}"]
        for name in SCALED:
            np.testing.assert_allclose(s[name]["kernel"], enc * p[name]["kernel"], rtol=1e-6, atol=0)
        for name in UNSCALED:
            assert_bitwise_equal(s[name]["kernel"], p[name]["kernel"])
        for name in SCALED + UNSCALED:
            assert not np.any(np.asarray(s[name]["bias"]))
        fan_in, fan_out = p["fc1"]["kernel"].shape
        assert np.max(np.abs(p["fc1"]["kernel"])) <= math.sqrt(6 / (fan_in + fan_out))  # Glorot uniform
    assert_bitwise_equal(scaled["head"]["kernel"], plain["head"]["kernel"])
    np.testing.assert_allclose(scaled["embed"]["embedding"], emb * plain["embed"]["embedding"], rtol=1e-6)
    np.testing.assert_allclose(scaled["pos_embedding"], emb * plain["pos_embedding"], rtol=1e-6)
    # unscaled embeddings: N(0, 1/d); (11 + 12) * 32 draws, relative SE of the std 1/sqrt(2n) = 0.026, 5 SE allowed
    table = np.concatenate([np.ravel(plain["embed"]["embedding"]), np.ravel(plain["pos_embedding"])])
    assert abs(table.std() * math.sqrt(d_model) - 1) < 5 / math.sqrt(2 * table.size)


# --- errors -------------------------------------------------------------------------------

RNGS = nnx.Rngs(0)

BUILD_ERRORS = [
    (lambda: flaxinit.fixup_scale(0, 2), ValueError, "num_branches must be an integer >= 1, got 0"),
    (lambda: flaxinit.fixup_scale(-4, 2), ValueError, "num_branches must be an integer >= 1"),
    (lambda: flaxinit.fixup_scale(4, 1), ValueError, r"branch_depth must be an integer >= 2 \(Fixup's scale"),
    (lambda: flaxinit.fixup_scale(4, 0), ValueError, "branch_depth must be an integer >= 2"),
    (lambda: flaxinit.fixup_scale(4.0, 2), TypeError, "num_branches must be an integer"),
    (lambda: flaxinit.fixup_scale(4, True), TypeError, "branch_depth must be an integer"),
    (lambda: flaxinit.fixup_branch_init(10, 1), ValueError, "branch_depth must be an integer >= 2"),
    (lambda: flaxinit.fixup_branch_init(10, 2, mode="fan_avg"), ValueError, "mode must be one of"),
    (lambda: flaxinit.tfixup_encoder_scale(0), ValueError, "num_layers must be an integer >= 1, got 0"),
    (lambda: flaxinit.tfixup_decoder_scale(-6), ValueError, "num_layers must be an integer >= 1"),
    (lambda: flaxinit.tfixup_encoder_init(0), ValueError, "num_layers must be an integer >= 1"),
    (lambda: flaxinit.tfixup_embedding_std(0), ValueError, "d_model must be an integer >= 1"),
    (lambda: flaxinit.tfixup_embedding_init(0, 6), ValueError, "d_model must be an integer >= 1"),
    (lambda: flaxinit.tfixup_embedding_init(64, 0), ValueError, "num_layers must be an integer >= 1"),
    (lambda: L.FixupBlock(8, num_branches=0), ValueError, "num_branches must be an integer >= 1"),
    (lambda: L.FixupBlock(8, 10, branch_depth=1), ValueError, "branch_depth must be an integer >= 2"),
    (lambda: N.FixupBlock(8, 10, 1, rngs=RNGS), ValueError, "branch_depth must be an integer >= 2"),
    (lambda: L.FixupBlock(0, 10), ValueError, "features must be an integer >= 1"),
    (lambda: N.SkipInitBlock(8, hidden_features=0, rngs=RNGS), ValueError, "hidden_features must be"),
    (lambda: L.SkipInitBlock(8, alpha_init=float("nan")), TypeError, "alpha_init must be a finite real"),
    (lambda: L.FixupResNet(8, 0, 3), ValueError, "num_blocks must be an integer >= 1"),
    (lambda: N.ReZeroResNet(4, 8, 5, 0, rngs=RNGS), ValueError, "num_outputs must be an integer >= 1"),
    (lambda: L.TFixupEncoderLayer(30, 4, 64, 6), ValueError, "d_model must be divisible by num_heads"),
    (lambda: N.TFixupEncoderLayer(32, 4, 64, 0, rngs=RNGS), ValueError, "num_layers must be an integer >= 1"),
    (lambda: L.TFixupEncoder(0, 32, 4, 64, 2, 10), ValueError, "vocab_size must be an integer >= 1"),
]


@pytest.mark.parametrize("call,exc,match", BUILD_ERRORS)
def test_errors_at_build_time(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


WIDTH_ERRORS = [
    (lambda x: L.FixupBlock(8, 10).init(KEY, x), "FixupBlock: the input has last axis of size 5"),
    (lambda x: L.SkipInitBlock(8).init(KEY, x), "SkipInitBlock: .* built with features=8"),
    (lambda x: L.ReZeroBlock(8).init(KEY, x), "ReZeroBlock: .* input's last axis must equal features"),
    (lambda x: N.FixupBlock(8, 10, rngs=nnx.Rngs(0))(x), "FixupBlock: the input has last axis of size 5"),
    (lambda x: N.SkipInitBlock(8, rngs=nnx.Rngs(0))(x), "SkipInitBlock"),
    (lambda x: N.ReZeroBlock(8, rngs=nnx.Rngs(0))(x), "ReZeroBlock"),
    (lambda x: L.TFixupEncoderLayer(16, 4, 32, 2).init(KEY, x), r"shape \(batch, length, d_model\)"),
    (lambda x: L.TFixupEncoderLayer(16, 4, 32, 2).init(KEY, x.reshape(1, 2, 5)), "built with d_model=16"),
    (lambda x: N.TFixupEncoderLayer(16, 4, 32, 2, rngs=nnx.Rngs(0))(x[None]), "built with d_model=16"),
]


@pytest.mark.parametrize("call,match", WIDTH_ERRORS)
def test_mismatched_widths_are_rejected_at_the_first_call(call, match):
    with pytest.raises(ValueError, match=match):
        call(jnp.ones((2, 5)))


@pytest.mark.parametrize("name", ["fixup", "skipinit", "rezero"])
def test_nnx_networks_check_their_input_width(name, built):
    model = built(name)[2]
    with pytest.raises(ValueError, match=f"{type(model).__name__}: .* built with in_features={WIDTH}"):
        model(jnp.ones((2, WIDTH + 1)))


def test_fixup_block_width_error_names_both_widths():
    with pytest.raises(ValueError) as err:
        L.FixupBlock(8, 10, hidden_features=16).init(KEY, jnp.ones((3, 6)))
    assert "last axis of size 6 (shape (3, 6))" in str(err.value) and "features=8" in str(err.value)


@pytest.mark.parametrize(
    "tokens,match",
    [
        (jnp.zeros((2, 13), jnp.int32), "the sequence has length 13, but max_len=12"),
        (jnp.zeros((2, 5)), "tokens must be an integer array"),
        (jnp.zeros((5,), jnp.int32), r"shape \(batch, length\)"),
    ],
)
@pytest.mark.parametrize("framework", ["linen", "nnx"])
def test_encoder_rejects_bad_tokens(tokens, match, framework, built):
    linen_net, _, model, _, _ = built("tfixup")  # max_len = 12
    with pytest.raises(ValueError, match=match):
        if framework == "linen":
            linen_net.init(KEY, tokens)
        else:
            model(tokens)


def test_linen_blocks_compose_with_other_modules():
    """A Fixup block inside a user's linen module, under jit: still the identity at init."""

    class Model(nn.Module):
        @nn.compact
        def __call__(self, x):
            return L.FixupBlock(WIDTH, num_branches=2)(nn.Dense(WIDTH)(x))

    model = Model()
    params = jax.jit(model.init)(KEY, X)
    # the Dense output and the block output from one program: x + 0 leaves every bit
    out, state = jax.jit(lambda p, x: model.apply(p, x, capture_intermediates=True))(params, X)
    [dense] = state["intermediates"]["Dense_0"]["__call__"]
    assert_bitwise_equal(out, dense)
