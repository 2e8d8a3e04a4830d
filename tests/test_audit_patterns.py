"""mc.audit on Flax code as people write it: training-mode layers, RNG streams, layer stacks.

The battery (``model_patterns.py``) holds BatchNorm in training and eval mode, Dropout on and
off, logically partitioned parameters, token inputs through Embed and attention, ``nn.scan``,
``nn.remat``, an nnx model with BatchNorm and Dropout, and an nnx ``vmap``/``scan`` stack.

Monte Carlo assertions use the run's own standard errors (Z = 4.5: a fixed-key test that a
correct implementation fails with probability below 1e-5 per comparison). Where two runs
draw the same weights and compute the same values by different programs (a scanned body
against its unrolled copy, a rematerialized block against a plain one), they agree to float32
rounding: each output is at most a few chained sums of 16 products, which XLA may contract
into fused multiply-adds or not, so the statistics differ by a few ``gamma(17) ~ 1e-6``
relative per layer; ``REL = 1e-4`` bounds that with a margin for the condition of the sums.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from model_patterns import DEPTH, WIDTH, Block, LinenRemat, LinenScanned, NnxBlock, NnxScanned, patterns

import mc

OUTPUT = "(output)"
Z = 4.5
REL = 1e-4
ITERATIONS = 64
PATTERNS = patterns()


def _finite(result):
    for layer in result.layers:
        assert all(math.isfinite(getattr(layer, f)) for f in ("mean_abs", "rms", "grad_rms", "rms_se")), layer
    for param in result.params:
        assert math.isfinite(param.rms) and math.isfinite(param.grad_rms), param


@pytest.fixture(scope="module")
def audits():
    return {name: mc.audit(m, x, ITERATIONS, key=3, call_kwargs=kw) for name, (m, x, kw) in PATTERNS.items()}


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_every_pattern_audits_with_finite_per_layer_figures(audits, name):
    result = audits[name]
    _finite(result)
    assert result.layers[-1].path == OUTPUT and len(result.layers) >= 3
    assert result.iterations == ITERATIONS


@pytest.mark.parametrize(("name", "layer"), [("linen-batchnorm-train", "BatchNorm_0"),
                                             ("linen-batchnorm-train", "BatchNorm_1"),
                                             ("nnx-batchnorm-dropout", "bn")])  # fmt: skip
def test_training_mode_batchnorm_outputs_unit_rms(audits, name, layer):
    # batch statistics: per feature (x - mean) / sqrt(var + eps) over the batch of 8, so the mean
    # square is var / (var + eps) = 1 - eps / var + ...: with eps = 1e-5 and var ~ 1 (chi^2_7 / 7),
    # below 1 by about 1e-5; float32 normalization adds ~1e-7. Eval mode (running averages at
    # init: mean 0, var 1) passes the Dense outputs through, whose RMS is not 1.
    assert abs(audits[name].layer(layer).rms - 1) < 1e-3
    if name.startswith("linen"):
        assert abs(audits["linen-batchnorm-eval"].layer(layer).rms - 1) > 0.02


def test_dropout_draws_a_fresh_mask_per_iteration_from_the_dropout_stream(audits):
    # the same key draws the same weights with dropout on and off (the dropout stream is not
    # the params stream); on, inverted dropout with rate 1/2 doubles the mean square in
    # expectation and zeroes half of the units that were nonzero
    on, off = audits["linen-dropout-on"].layer("Dropout_0"), audits["linen-dropout-off"].layer("Dropout_0")
    dense_on, dense_off = (audits[f"linen-dropout-{m}"].layer("Dense_0") for m in ("on", "off"))
    assert (dense_on.rms, dense_on.mean_abs) == (dense_off.rms, dense_off.mean_abs)
    ms_on, ms_off = on.rms**2, off.rms**2
    se = math.hypot(2 * on.rms * on.rms_se, 2 * 2 * off.rms * off.rms_se)
    assert abs(ms_on - 2 * ms_off) < Z * se, (ms_on, ms_off, se)
    expected_zero = 1 - 0.5 * (1 - off.zero_fraction)
    assert abs(on.zero_fraction - expected_zero) < Z * math.hypot(on.zero_fraction_se, 0.5 * off.zero_fraction_se)


class Noisy(nn.Module):
    """Its output is a draw from a stream of its own name: random per iteration or not at all."""

    @nn.compact
    def __call__(self, x):
        return nn.Dense(4)(x) * 0 + jax.random.normal(self.make_rng("noise"), (x.shape[0], 4))


def test_user_named_rng_streams_are_drawn_from_each_iterations_key():
    r = mc.audit(Noisy(), jnp.ones((64, 3)), 256, key=1)
    out = r.layer(OUTPUT)
    assert out.mean_abs_se > 0  # a fixed noise would be the same in every iteration
    assert abs(out.mean_abs - math.sqrt(2 / math.pi)) < Z * out.mean_abs_se
    assert abs(out.rms**2 - 1) < Z * 2 * out.rms * out.rms_se


class TwoHeads(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3, name="head")(x)

    @nn.compact
    def encode(self, x, scale=1.0):
        return nn.Dense(5, name="encoder")(x) * scale


def test_method_and_call_kwargs_choose_what_runs():
    r = mc.audit(TwoHeads(), jnp.ones((2, 4)), 16, key=0, method="encode", call_kwargs={"scale": 0.0})
    assert [layer.path for layer in r.layers] == ["encoder", OUTPUT]
    assert r.layer(OUTPUT).shape == (2, 5) and r.layer(OUTPUT).rms == 0.0
    assert [p.path for p in r.params] == ["encoder/bias", "encoder/kernel"]

    class NnxTwo(nnx.Module):
        def __init__(self, rngs):
            self.a = nnx.Linear(4, 3, rngs=rngs)

        def __call__(self, x):
            return self.a(x)

        def half(self, x, factor):
            return self.a(x) * factor

    n = mc.audit(NnxTwo, jnp.ones((2, 4)), 16, key=0, method="half", call_kwargs={"factor": 0.5})
    assert [layer.path for layer in n.layers] == ["a", OUTPUT]
    assert n.layer(OUTPUT).rms == pytest.approx(0.5 * n.layer("a").rms, rel=1e-6)


def test_stacks_give_a_row_per_layer_and_stacked_parameters_per_index(audits):
    scan = audits["linen-scan"]
    inner = [f"ScanBlock_0[{i}]/{name}" for i in range(DEPTH) for name in ("Dense_1", "Dense_0")]
    assert [layer.path for layer in scan.layers] == ["Dense_0", *inner, "Dense_1", OUTPUT]
    kernels = [p for p in scan.params if p.path.startswith("ScanBlock_0/Dense_0/kernel")]
    assert [p.path for p in kernels] == [f"ScanBlock_0/Dense_0/kernel[{i}]" for i in range(DEPTH)]
    assert all(p.shape == (WIDTH, WIDTH) for p in kernels)
    # lecun_normal, flax's default: std 1/sqrt(16) per layer, each layer drawn on its own
    for p in kernels:
        assert abs(p.rms**2 - 1 / WIDTH) < Z * 2 * p.rms * p.rms_se
    stack = audits["nnx-vmap-scan"]
    per_layer = [f"blocks[{i}]/{name}" for i in range(DEPTH) for name in ("linear", "drop", "")]
    assert [layer.path for layer in stack.layers] == ["embed", *(p.rstrip("/") for p in per_layer), "head", OUTPUT]
    assert [p.path for p in stack.params if p.path.startswith("blocks/linear/kernel")] == [
        f"blocks/linear/kernel[{i}]" for i in range(DEPTH)
    ]


class Unrolled(nn.Module):
    """LinenScanned with its blocks as DEPTH separate modules."""

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(WIDTH)(x)
        for i in range(DEPTH):
            x, _ = Block(name=f"Block_{i}")(x)
        return nn.Dense(4)(x)


class NnxUnrolled(nnx.Module):
    def __init__(self, rngs):
        self.embed = nnx.Linear(8, WIDTH, rngs=rngs)
        self.blocks = nnx.List([NnxBlock(rngs) for _ in range(DEPTH)]) if hasattr(nnx, "List") else [
            NnxBlock(rngs) for _ in range(DEPTH)
        ]  # fmt: skip
        self.head = nnx.Linear(WIDTH, 4, rngs=rngs)

    def __call__(self, x):
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def _agree_within_se(a, b, fields=("mean_abs", "rms", "grad_rms")):
    for f in fields:
        va, vb = getattr(a, f), getattr(b, f)
        se = math.hypot(getattr(a, f + "_se"), getattr(b, f + "_se"))
        assert abs(va - vb) <= Z * se, (a.path, b.path, f, va, vb, se)


@pytest.mark.slow  # 4 audits of 512 iterations: CI's second tier (the exact equality below stays in the first)
@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_a_scanned_stack_and_the_same_stack_unrolled_give_the_same_per_layer_statistics(api):
    # independent draws (the scan splits its keys per layer, the unrolled model per name):
    # every layer's statistics agree within their standard errors
    x = PATTERNS["linen-scan"][1]
    if api == "linen":
        scanned, unrolled = mc.audit(LinenScanned(), x, 512, key=5), mc.audit(Unrolled(), x, 512, key=6)
        pairs = [(f"ScanBlock_0[{i}]/{n}", f"Block_{i}/{n}") for i in range(DEPTH) for n in ("Dense_1", "Dense_0")]
    else:
        scanned, unrolled = mc.audit(NnxScanned, x, 512, key=5), mc.audit(NnxUnrolled, x, 512, key=6)
        pairs = [(f"blocks[{i}]{n}", f"blocks/{i}{n}") for i in range(DEPTH) for n in ("/linear", "/drop", "")]
    assert len(scanned.layers) == len(unrolled.layers)
    for s, u in [*pairs, ("head" if api == "nnx" else "Dense_1",) * 2, (OUTPUT, OUTPUT)]:
        _agree_within_se(scanned.layer(s), unrolled.layer(u))


class SharedScan(nn.Module):
    """One block's weights applied DEPTH times: scanned, or called in a Python loop."""

    scan: bool

    @nn.compact
    def __call__(self, x):
        if self.scan:
            stack = nn.scan(Block, variable_broadcast="params", split_rngs={"params": False}, length=DEPTH)
            x, _ = stack(name="Shared")(x, None)
        else:
            block = Block(name="Shared")
            for _ in range(DEPTH):
                x, _ = block(x)
        return x


def test_scanned_equals_unrolled_where_the_draws_coincide():
    # broadcast weights are drawn once, from the same path in both models: the same weights,
    # so every layer's statistics agree to float32 rounding (module docstring)
    x = jnp.asarray(np.random.default_rng(2).standard_normal((8, WIDTH)), jnp.float32)
    scanned = mc.audit(SharedScan(scan=True), x, 64, key=2)
    unrolled = mc.audit(SharedScan(scan=False), x, 64, key=2)
    names = [f"Shared[{i}]/{n}" for i in range(DEPTH) for n in ("Dense_1", "Dense_0")]
    loop = [f"Shared/{n}" + (f"#{i + 1}" if i else "") for i in range(DEPTH) for n in ("Dense_1", "Dense_0")]
    assert [layer.path for layer in scanned.layers] == [*names, OUTPUT]
    assert [layer.path for layer in unrolled.layers] == [*loop, OUTPUT]
    for a, b in zip(scanned.layers, unrolled.layers, strict=True):
        for f in ("mean_abs", "rms", "grad_rms", "zero_fraction"):
            assert getattr(a, f) == pytest.approx(getattr(b, f), rel=REL), (a.path, f)
    assert [p.rms for p in scanned.params] == pytest.approx([p.rms for p in unrolled.params], rel=REL)


def test_remat_is_seen_through():
    # nn.remat recomputes in the backward pass what it saved nothing of: the same weights
    # (same module names), the same values; and its layers get rows of their own
    class Plain(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Dense(WIDTH)(x)
            for i in range(2):
                x, _ = Block(name=f"CheckpointBlock_{i}")(x)
            return nn.Dense(4)(x)

    x = PATTERNS["linen-remat"][1]
    remat, plain = mc.audit(LinenRemat(), x, 64, key=4), mc.audit(Plain(), x, 64, key=4)
    assert [layer.path for layer in remat.layers] == [layer.path for layer in plain.layers]
    assert "CheckpointBlock_1/Dense_0" in {layer.path for layer in remat.layers}
    for a, b in zip(remat.layers, plain.layers, strict=True):
        for f in ("rms", "grad_rms"):
            assert getattr(a, f) == pytest.approx(getattr(b, f), rel=REL), (a.path, f)


def test_partitioned_parameters_are_reported_unboxed(audits):
    paths = [p.path for p in audits["linen-partitioned"].params]
    assert paths == ["Dense_0/bias", "Dense_0/kernel", "Dense_1/bias", "Dense_1/kernel"]
    paths = [p.path for p in audits["nnx-partitioned"].params]
    assert paths == ["l1/bias", "l1/kernel", "l2/bias", "l2/kernel"]


def test_attention_parameters_keep_their_projection_names(audits):
    # the value projection is a module named "value", not an nnx Variable's .value
    paths = {p.path for p in audits["linen-tokens-attention"].params}
    assert {f"MultiHeadDotProductAttention_0/{n}/kernel" for n in ("query", "key", "value", "out")} <= paths


def test_correlation_map_sees_inside_stacks():
    r = mc.correlation_map(LinenScanned(), (8, 8), 0.5, 64, key=0)
    paths = [p for p, _, _ in r.layers]
    assert paths[1:3] == ["ScanBlock_0[0]/Dense_1", "ScanBlock_0[0]/Dense_0"] and len(paths) == 2 * DEPTH + 3
    assert all(np.isfinite(c) and -1 <= c <= 1 + 1e-6 for c in r.correlation)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"call_kwargs": [("train", True)]}, TypeError, "call_kwargs must be a mapping"),
        ({"method": 3}, TypeError, "method must be the name"),
        ({"method": "nope"}, ValueError, "method must name a method of LinenDropoutMLP"),
    ],
)
def test_bad_call_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        mc.audit(PATTERNS["linen-dropout-on"][0], jnp.ones((2, 8)), 4, key=0, **kwargs)
