"""mc: Monte Carlo means against exact values, bit-reproducibility, streaming precision.

The statistical tests are probabilistic: each compares a Monte Carlo mean with the exact
expectation from flaxinit.magnitude (or the scheme's closed form) and asserts agreement
within 4 standard errors, with fixed keys (seed 2024 unless stated). A correct engine
fails a given comparison with probability about 6e-5; with fixed keys the outcome never
changes between runs.
"""

import json
import math
import os
import subprocess
import sys
import textwrap
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from float_bounds import gamma

import flaxinit
import mc
from flaxinit.magnitude import expected_abs_sum, expected_normalized
from mc._engine import BLOCK, Accumulator, Engine

SEED = 2024
Z = 4.0


@pytest.mark.parametrize(
    "init",
    [
        flaxinit.xavier_standard(),
        flaxinit.letkeman_standard(),
        flaxinit.letkeman_standard("article"),
        flaxinit.xavier_normalized(),
        flaxinit.kaiming_normal(),
        flaxinit.kaiming_uniform(),
    ],
    ids=lambda i: i.name,
)
def test_standard_test_matches_exact(init):
    sizes = [1, 5, 25, 100]
    results = mc.standard_test(SEED, sizes, 20_000, init)
    assert [r.size for r in results] == sizes
    for r in results:
        assert r.iterations == 20_000
        assert r.expected == pytest.approx(init.expected_abs_sum((r.size, 1), r.size), rel=1e-15)
        assert abs(r.mean - r.expected) < Z * r.se, r
        assert r.ci95[0] < r.mean < r.ci95[1]


def test_standard_exact_values_come_from_magnitude():
    [r] = mc.standard_test(SEED, [25], 1024, flaxinit.xavier_standard())
    assert r.expected == pytest.approx(expected_abs_sum(25) / 5, rel=1e-15)
    assert r.bound == 0.2


def test_one_hot_inputs_show_why_anm_exists():
    """A one-hot input makes |pre-activation| = |one weight|: b/2, not b g(n)."""
    n = 100
    plain = flaxinit.letkeman_standard()
    [r] = mc.standard_test(SEED, [n], 20_000, plain, inputs="one_hot")
    assert r.expected == pytest.approx(plain.bound((n, 1)) / 2)
    assert abs(r.mean - r.expected) < Z * r.se
    assert r.mean < 0.2  # far below the magnitude 1 Letkeman aims for
    [anm] = mc.standard_test(SEED, [n], 20_000, flaxinit.letkeman_standard(fan_in=1), inputs="one_hot")
    assert anm.expected == 1.0
    assert abs(anm.mean - 1.0) < Z * anm.se


@pytest.mark.parametrize("inputs", ["gaussian", "softmax"])
def test_other_inputs_run_without_an_exact_value(inputs):
    [r] = mc.standard_test(SEED, [10], 2048, flaxinit.letkeman_standard(), inputs=inputs)
    assert r.expected is None and r.inputs == inputs and r.mean > 0 and r.se > 0


SHAPES = [(1, 1), (5, 5), (100, 1), (15, 25), (10, 100), (1, 1000)]


@pytest.mark.parametrize("convention", ["article", "per_node"])
@pytest.mark.parametrize(
    "init", [flaxinit.xavier_normalized(), flaxinit.letkeman_normalized(), flaxinit.letkeman_normalized("article")]
)
def test_normalized_test_matches_magnitude_oracle(init, convention):
    results = mc.normalized_test(SEED, SHAPES, 3000, init, convention=convention)
    assert [(r.n_in, r.n_out) for r in results] == SHAPES
    for r in results:
        exact = expected_normalized(r.n_in, r.n_out, init.bound((r.n_in, r.n_out)), convention)
        assert (r.expected_forward, r.expected_backward, r.expected_avg) == pytest.approx(tuple(exact), rel=1e-12)
        for field in ("forward", "backward", "avg"):
            mean, se, expected = getattr(r, field), getattr(r, f"{field}_se"), getattr(exact, field)
            assert abs(mean - expected) < Z * se, (field, r)


def test_conventions_swap_forward_and_backward_divisors():
    init = flaxinit.letkeman_normalized()
    [art] = mc.normalized_test(SEED, [(15, 25)], 1024, init, convention="article")
    [per] = mc.normalized_test(SEED, [(15, 25)], 1024, init, convention="per_node")
    # Same draws and the same kernel (it sums T_row and T_col; each convention divides their
    # means on the host, in float64): T_row's mean = forward_article * 25 = backward_per_node * 15,
    # each side one float64 division and one multiplication away from it (4 ulps in all)
    rel = 4 * 2**-53
    assert art.forward * 25 == pytest.approx(per.backward * 15, rel=rel)
    assert art.backward * 15 == pytest.approx(per.forward * 25, rel=rel)
    assert art.avg == per.avg


def test_depth_test_shows_vanishing_gradients_under_sigmoid():
    r = mc.depth_test(SEED, [16] * 7, "sigmoid", flaxinit.xavier_standard(), 512)
    assert len(r.forward) == len(r.backward) == 6
    assert all(0.4 < f < 0.6 for f in r.forward)  # sigmoid outputs around 1/2
    # the backward magnitude shrinks layer after layer towards the input
    assert all(b0 < b1 for b0, b1 in zip(r.backward, r.backward[1:], strict=False))


def test_depth_test_takes_any_activation_and_reports_the_preactivation_second_moment():
    """A jax.nn name or a callable; the derivative by jax.grad. Linear layers of constant weights 1/2 fed
    ones have pre-activations exactly 3 * 1/2 then 4 * 3/2 * 1/2: mean squares 2.25 and 9."""
    r = mc.depth_test(0, [3, 4, 2], "linear", flaxinit.constant(0.5), mc.BLOCK)
    assert r.preactivation_ms == (2.25, 9.0) and r.preactivation_ms_se == (0.0, 0.0)
    g = mc.depth_test(0, [3, 4, 2], jax.nn.gelu, flaxinit.constant(0.5), mc.BLOCK)
    named = mc.depth_test(0, [3, 4, 2], "gelu", flaxinit.constant(0.5), mc.BLOCK)
    assert (g.forward, g.backward) == (named.forward, named.backward) and g.activation == named.activation == "gelu"
    # gelu(1.5) = 1.5 * Phi(1.5) with jax's tanh approximation: well inside (1.39, 1.41)
    assert 1.39 < g.forward[0] < 1.41


def test_depth_test_exact_for_constant_weights():
    # one full block: its mean is an exact division by 1024, so the spread is exactly 0
    r = mc.depth_test(0, [3, 4, 2], "relu", flaxinit.constant(0.5), mc.BLOCK)
    assert r.forward == (1.5, 3.0)  # 3 * 0.5, then 4 * 1.5 * 0.5
    assert r.backward == (1.0, 1.0)  # relu' = 1 on positive inputs; 2 * 0.5 * 1
    assert r.forward_se == (0.0, 0.0)


# --- reproducibility ---------------------------------------------------------------------------


# threefry draws one key per iteration (several times the work of Philox's groups): CI's second tier
@pytest.mark.parametrize("prng", ["philox", pytest.param("threefry", marks=pytest.mark.slow)])
@pytest.mark.parametrize("chunk_size", [1, 1500, 3 * BLOCK, 10**6])
def test_bits_do_not_depend_on_chunk_size(chunk_size, prng):
    # chunk_size sets the iterations per device call (1 and 1500: one chunk per call, many
    # calls); Philox: n = 1 and n = 25 draw in groups of 1024 and 128 iterations per key;
    # threefry: one key per iteration. Products are included (the scale times a unit draw in
    # every test; Gaussian inputs; the depth test's matrix products and activations): the
    # statistic is compiled for one batch shape, so no fused multiply-add differs.
    key = mc.philox_key(SEED) if prng == "philox" else jax.random.key(SEED)
    iterations = 5 * BLOCK + 123  # a partial last block
    init = flaxinit.letkeman_standard()
    reference = mc.standard_test(key, [1, 25], iterations, init)
    assert mc.standard_test(key, [1, 25], iterations, init, chunk_size=chunk_size) == reference
    ref_g = mc.standard_test(key, [25], iterations, init, inputs="gaussian")
    assert mc.standard_test(key, [25], iterations, init, inputs="gaussian", chunk_size=chunk_size) == ref_g
    ref_n = mc.normalized_test(key, [(15, 25)], iterations, flaxinit.letkeman_normalized())
    assert mc.normalized_test(key, [(15, 25)], iterations, flaxinit.letkeman_normalized(), chunk_size=chunk_size) == (
        ref_n
    )
    he = flaxinit.kaiming_normal()
    ref_d = mc.depth_test(key, [16, 16, 16], "tanh", he, iterations)
    assert mc.depth_test(key, [16, 16, 16], "tanh", he, iterations, chunk_size=chunk_size) == ref_d


def test_result_depends_on_key_and_iterations_only():
    init = flaxinit.xavier_standard()
    [a] = mc.standard_test(mc.philox_key(5), [25], 2000, init)
    [b] = mc.standard_test(5, [25, 100], 2000, init)[:1]  # an int seed is mc.philox_key(seed)
    assert a == b and a.prng == "philox4x32_10"
    [c] = mc.standard_test(6, [25], 2000, init)
    assert c.mean != a.mean
    [d] = mc.standard_test(jax.random.key(5), [25], 2000, init)  # a key keeps its own generator
    assert d.prng == "threefry2x32" and d.mean != a.mean


def test_a_second_identical_run_reuses_the_compiled_kernels():
    init = flaxinit.letkeman_standard()
    [first] = mc.standard_tasks(0, [25], 4096, init)
    first.run()
    kernels = dict(first.engine._kernels)
    compiled = {k: f._cache_size() for k, f in kernels.items()}
    [again] = mc.standard_tasks(1, [25], 4096, init)  # another seed: same statistic, shapes and scheme
    assert again.engine is first.engine
    again.run()
    assert first.engine._kernels == kernels and {k: f._cache_size() for k, f in kernels.items()} == compiled
    # Philox keys draw 128 iterations' kernels at once at n = 25; threefry keys one per iteration
    [fry] = mc.standard_tasks(jax.random.key(0), [25], 4096, init)
    assert (first.engine.group, fry.engine.group) == (128, 1)


_DEVICE_SCRIPT = textwrap.dedent(
    """
    import json, jax, flaxinit, mc
    results = []
    for key in (mc.philox_key(11), jax.random.key(11)):
        std = mc.standard_test(key, [1, 25], 9 * 1024 + 7, flaxinit.letkeman_standard())
        norm = mc.normalized_test(key, [(15, 25), (3, 100)], 5 * 1024 + 1, flaxinit.letkeman_normalized())
        depth = mc.depth_test(key, [8, 8, 8], "tanh", flaxinit.xavier_standard(), 3 * 1024)
        relu = mc.depth_test(key, [6, 6, 6], "relu", flaxinit.kaiming_normal(), 5 * 1024 + 9)
        gauss = mc.standard_test(key, [25], 5 * 1024 + 3, flaxinit.xavier_standard(), inputs="gaussian")
        results += [r.to_dict() for r in std + norm + gauss + [depth, relu]]
    print(json.dumps({"devices": jax.device_count(), "results": results}))
    """
)


def _run_with_devices(*counts: int) -> list[dict]:
    """The script's output with each device count, the processes run side by side (mostly compiling)."""
    procs = []
    for count in counts:
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={count}", JAX_PLATFORMS="cpu")
        cmd = [sys.executable, "-c", _DEVICE_SCRIPT]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    for proc in procs:
        out, err = proc.communicate()
        assert proc.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    return outputs


@pytest.mark.slow  # three fresh processes compiling every statistic: CI's second tier
def test_bits_do_not_depend_on_device_count():
    one, four, three = _run_with_devices(1, 4, 3)
    assert (one["devices"], four["devices"], three["devices"]) == (1, 4, 3)
    assert four["results"] == one["results"]
    assert three["results"] == one["results"]


# --- streaming precision ------------------------------------------------------------------------


def test_exact_accumulation_matches_exact_rational_reference():
    """Across 2^20 iterations the engine adds its blocks exactly and divides once.

    The statistic is a 12-bit integer from each iteration's random bits, so every value and
    every float32 block sum (below 2^22) is exact in any program; the engine's mean must
    then be the correctly rounded rational mean, bit for bit. The standard error comes from
    float32 sums of squared deviations inside blocks (pairwise over 1024 non-negative
    terms: relative error <= gamma(12)), so it matches the exact one to that, halved by the
    square root.
    """
    iterations = 2**20
    key = jax.random.key(SEED)

    def stat(k):
        return (jax.random.bits(k, (), jnp.uint32) >> 20).astype(jnp.float32)[None]

    (mean,), (se,) = Engine(stat, 1, 16).run(key, Accumulator(iterations, 1)).moments()

    @jax.jit
    def block_values(block):
        block_key = jax.random.fold_in(key, block)
        keys = jax.vmap(lambda j: jax.random.fold_in(block_key, j))(jnp.arange(BLOCK, dtype=jnp.uint32))
        return jax.vmap(lambda k: jax.random.bits(k, (), jnp.uint32) >> 20)(keys)

    values = np.asarray(jax.lax.map(block_values, jnp.arange(iterations // BLOCK, dtype=jnp.uint32))).ravel()
    values = [int(v) for v in values]
    total, squares = sum(values), sum(v * v for v in values)
    assert mean == float(Fraction(total, iterations))
    variance = Fraction(squares - Fraction(total * total, iterations), iterations - 1)
    assert se == pytest.approx(math.sqrt(variance / iterations), rel=gamma(12))


@pytest.mark.slow  # a quarter of a million blocks: CI's second tier
def test_a_billion_iterations_keep_their_digits():
    """10^9 iterations of |U(-2, 2)| (standard Letkeman at n = 1): exact mean 1.

    A float32 running sum would stall near 2^24 and report a mean near 0.017; the engine
    keeps every digit the statistics allow: |mean - 1| < 4 SE with SE ~ 1.8e-5 (so the
    mean carries about five significant digits, the sampling limit at this count, and
    its numerical error is far below that, see the float64 reference test above).
    """
    [r] = mc.standard_test(SEED, [1], 10**9, flaxinit.letkeman_standard())
    assert r.iterations == 10**9
    assert r.se == pytest.approx(1 / math.sqrt(3) / math.sqrt(1e9), rel=1e-3)  # sd of |U(-2,2)| is 2/sqrt(12)
    assert abs(r.mean - 1.0) < Z * r.se


def test_constant_statistic_over_many_blocks():
    """10^8 + 3 copies of float32(0.1): the only rounding is float32's inside the last,
    partial block (0.1f + 0.1f + 0.1f), far below the documented 1e-7 relative. The
    variance comes from deviations about each block's mean, so a constant has none."""
    engine = Engine(lambda k: jnp.full((1,), 0.1, jnp.float32), 1, 16)
    acc = engine.run(jax.random.key(0), Accumulator(10**8 + 3, 1))
    (mean,), (se,) = acc.moments()
    assert mean == pytest.approx(float(np.float32(0.1)), rel=1e-12)
    assert se < 1e-15


def test_accumulator_state_round_trips():
    acc = Accumulator(10, 2, blocks_done=1, sums=[2**200 + 1, 5], m2s=[7, 3**150], between=[Fraction(2**300, 7), 0])
    assert Accumulator.from_dict(json.loads(json.dumps(acc.to_dict()))) == acc


def test_tree_sum_is_pairwise_and_pads():
    x = jnp.asarray([1e8, 1.0, -1e8, 1.0], jnp.float32)
    assert float(mc.tree_sum(x)) == float((x[0] + x[2]) + (x[1] + x[3]))  # (1e8+(-1e8)) + 2
    assert float(mc.tree_sum(jnp.ones(7))) == 7.0
    np.testing.assert_array_equal(mc.tree_sum(jnp.ones((5, 3)), 0), jnp.full(3, 5.0))


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: mc.standard_test(0, [5], 0), ValueError, "iterations must be an integer >= 1"),
        (lambda: mc.standard_test(0, [0], 10), ValueError, "each size must be an integer >= 1"),
        (lambda: mc.standard_test(0, [], 10), ValueError, "sizes must not be empty"),
        (lambda: mc.standard_test(0, [5], 10, inputs="zeros"), ValueError, "inputs must be one of"),
        (lambda: mc.standard_test(0, [5], 10, chunk_size=0), ValueError, "chunk_size must be an integer >= 1"),
        (lambda: mc.standard_test(0, [5], 2.5), TypeError, "iterations must be an integer >= 1"),  # as flaxinit
        (lambda: mc.standard_test("seed", [5], 10), TypeError, "key must be a PRNG key from jax.random.key"),
        (lambda: mc.standard_test(0, [5], 10, init="xavier"), TypeError, "init must be an initializer"),
        (lambda: mc.normalized_test(0, [(5,)], 10), ValueError, "each shape must be a pair"),
        (lambda: mc.normalized_test(0, [(5, 0)], 10), ValueError, "n_out must be an integer >= 1"),
        (lambda: mc.normalized_test(0, [(5, 5)], 10, convention="rows"), ValueError, "convention must be one of"),
        (lambda: mc.depth_test(0, [5], "relu", flaxinit.ones(), 10), ValueError, "widths must list"),
        (lambda: mc.depth_test(0, [5, 5], "softmax", flaxinit.ones(), 10), ValueError, "activation must be 'linear'"),
        (lambda: mc.depth_test(0, [5, 5], "nope", flaxinit.ones(), 10), ValueError, "elementwise jax.nn activation"),
    ],
)
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
