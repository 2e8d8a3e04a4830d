"""The Philox4x32-10 key type: the published known answers, the key-type contract, statistics.

Random123's ``kat_vectors`` give the block function's exact output; everything else is
either exact (prefixes, bit slicing, determinism, domain separation) or a statistical test
at a fixed key whose tolerance is derived from the null distribution and says so.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import flaxinit
import mc
from flaxinit.prng import PHILOX, SEED_KEY, is_philox, philox4x32, philox_key, substream

# Random123's kat_vectors, philox4x32 with 10 rounds: counter words, key words, output words.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (
        (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF),
        (0xFFFFFFFF, 0xFFFFFFFF),
        (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD),
    ),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


def _reference_philox(counter, key):
    """Philox4x32-10 in Python integers, as Random123 states it: the oracle for random inputs."""
    x, (k0, k1) = list(counter), key
    mask = 0xFFFFFFFF
    for r in range(10):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) & mask, (k1 + 0xBB67AE85) & mask
        p0, p1 = 0xD2511F53 * x[0], 0xCD9E8D57 * x[2]
        x = [(p1 >> 32) ^ x[1] ^ k0, p1 & mask, (p0 >> 32) ^ x[3] ^ k1, p0 & mask]
    return tuple(x)


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_block_function_matches_the_published_known_answers(counter, key, expected):
    out = philox4x32(np.array(counter, np.uint32), np.array(key, np.uint32))
    assert tuple(int(w) for w in out) == expected
    assert _reference_philox(counter, key) == expected  # the oracle below agrees with Random123 too


def test_block_function_matches_the_reference_on_random_inputs_and_broadcasts():
    rng = np.random.default_rng(0)
    counters = rng.integers(0, 2**32, size=(64, 4), dtype=np.uint64).astype(np.uint32)
    keys = rng.integers(0, 2**32, size=(64, 2), dtype=np.uint64).astype(np.uint32)
    out = np.asarray(philox4x32(counters, keys))
    for c, k, o in zip(counters, keys, out, strict=True):
        assert tuple(int(w) for w in o) == _reference_philox(tuple(map(int, c)), tuple(map(int, k)))
    shared = np.asarray(philox4x32(counters, keys[0]))  # one key for every counter
    assert tuple(int(w) for w in shared[5]) == _reference_philox(tuple(map(int, counters[5])), tuple(map(int, keys[0])))
    jitted = np.asarray(jax.jit(philox4x32)(counters, keys))
    np.testing.assert_array_equal(jitted, out)


def _words(key, count):
    return np.asarray(jax.random.bits(key, (count,), jnp.uint32))


def test_draws_are_the_stream_layout_documented():
    # block j of key (k0, k1, s0, s1) is philox4x32((j, 0, s0, s1), (k0, k1)); its words come in order
    key = philox_key(7)
    k0, k1, s0, s1 = (int(w) for w in jax.random.key_data(key))
    expected = [w for j in range(3) for w in _reference_philox((j, 0, s0, s1), (k0, k1))]
    assert list(map(int, _words(key, 12))) == expected
    assert list(map(int, _words(key, 5))) == expected[:5]  # a draw is a prefix of a longer one
    seed_words = _reference_philox((7, 0, 0, 0), SEED_KEY)
    assert (k0, k1, s0, s1) == seed_words


@pytest.mark.parametrize("count", [1, 3, 4, 127, 128, 129, 2**13, 2**13 + 1, 10000])
def test_every_draw_size_is_a_prefix_of_the_stream(count):
    # small draws are laid out as a grid of blocks, large ones value by value: the same values
    key = philox_key(9)
    stream = _words(key, 12000)
    np.testing.assert_array_equal(_words(key, count), stream[:count])
    k0, k1, s0, s1 = (int(w) for w in jax.random.key_data(key))
    last = count - 1
    assert int(stream[last]) == _reference_philox((last // 4, 0, s0, s1), (k0, k1))[last % 4]


def test_narrow_and_wide_draws_slice_the_same_words():
    key = philox_key(3)
    words = _words(key, 8)
    halves = np.asarray(jax.random.bits(key, (16,), jnp.uint16))
    np.testing.assert_array_equal(halves[0::2], words & 0xFFFF)  # low half first
    np.testing.assert_array_equal(halves[1::2], words >> 16)
    quarters = np.asarray(jax.random.bits(key, (32,), jnp.uint8))
    np.testing.assert_array_equal(quarters[3::4], words >> 24)
    odd = np.asarray(jax.random.bits(key, (3,), jnp.uint8))  # a partial word
    np.testing.assert_array_equal(odd, quarters[:3])
    with jax.enable_x64(True):
        wide = np.asarray(jax.random.bits(philox_key(3), (4,), jnp.uint64))
    np.testing.assert_array_equal(wide, (words[0::2].astype(np.uint64) << 32) | words[1::2])


def test_seeds_agree_between_python_ints_and_integer_arrays():
    for seed in (0, 1, 12345, 2**31 - 1, -1, -(2**31)):
        a = jax.random.key_data(philox_key(seed))
        b = jax.random.key_data(jax.random.key(seed, impl=PHILOX))
        c = jax.random.key_data(philox_key(jnp.int32(seed)))
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    # Python ints are taken modulo 2**64: the 64-bit seeds all have their own key
    np.testing.assert_array_equal(jax.random.key_data(philox_key(-1)), jax.random.key_data(philox_key(2**64 - 1)))
    assert not np.array_equal(jax.random.key_data(philox_key(2**32)), jax.random.key_data(philox_key(0)))
    assert philox_key(5).dtype == jax.random.key(5, impl=PHILOX).dtype and philox_key(5).shape == ()


def test_split_and_fold_in_are_counter_blocks_apart_from_draws():
    key = philox_key(11)
    k0, k1, s0, s1 = (int(w) for w in jax.random.key_data(key))
    split = np.asarray(jax.random.key_data(jax.random.split(key, 3)))
    for j in range(3):
        assert tuple(map(int, split[j])) == _reference_philox((j, 0x80000000, s0, s1), (k0, k1))
    folded = tuple(map(int, jax.random.key_data(jax.random.fold_in(key, 9))))
    assert folded == _reference_philox((9, 0xC0000000, s0, s1), (k0, k1))
    # no derived key's words appear among the key's first draws (they come from other counters)
    draws = set(map(int, _words(key, 4096)))
    assert draws.isdisjoint(map(int, split.ravel())) and draws.isdisjoint(folded)
    # split equals the loop of its parts under vmap and jit
    keys = jax.random.split(key, 4)
    batched = jax.jit(jax.vmap(lambda k: jax.random.uniform(k, (5,))))(keys)
    np.testing.assert_array_equal(batched[2], jax.random.uniform(keys[2], (5,)))


def test_substreams_read_their_own_counters():
    key = philox_key(2)
    k0, k1, s0, s1 = (int(w) for w in jax.random.key_data(key))
    subs = substream(key, jnp.arange(3, dtype=jnp.uint32))
    assert subs.shape == (3,) and is_philox(subs)
    data = np.asarray(jax.random.key_data(subs))
    for i in range(3):
        assert tuple(map(int, data[i])) == (k0, k1, s0 ^ i, s1 ^ 0x80000000)
    far = jax.random.key_data(substream(key, (jnp.uint32(5), jnp.uint32(7))))
    assert tuple(map(int, far)) == (k0, k1, s0 ^ 5, s1 ^ 7 ^ 0x80000000)
    streams = [set(map(int, _words(k, 1024))) for k in (key, subs[0], subs[1])]
    assert streams[0].isdisjoint(streams[1]) and streams[1].isdisjoint(streams[2])


def test_every_initializer_and_flax_init_draw_from_a_philox_key():
    import flax.linen as nn

    key = philox_key(0)
    for init in (flaxinit.xavier_standard(), flaxinit.he_normal(), flaxinit.orthogonal(), flaxinit.truncated_normal()):
        w = init(key, (64, 32))
        assert w.shape == (64, 32) and bool(jnp.all(jnp.isfinite(w)))
    params = nn.Dense(8, kernel_init=flaxinit.letkeman_standard()).init(key, jnp.ones((1, 4)))
    assert params["params"]["kernel"].shape == (4, 8)
    assert jax.random.key_impl(key) == PHILOX and not is_philox(jax.random.key(0))


# --- statistics, at a fixed key: each bound is a quantile of the test's null distribution ---------


def test_uniform_values_pass_a_chi_square_test():
    # 2**20 float32 U[0, 1) values in 256 equal bins: chi-square with 255 degrees of freedom;
    # the bounds are its 1e-6 and 1 - 1e-6 quantiles
    u = np.asarray(jax.random.uniform(philox_key(1), (2**20,)))
    counts = np.bincount((u * 256).astype(np.int64), minlength=256)
    chi2 = float(((counts - u.size / 256) ** 2 / (u.size / 256)).sum())
    assert stats.chi2.ppf(1e-6, 255) < chi2 < stats.chi2.isf(1e-6, 255)


def test_bits_are_balanced_and_consecutive_values_uncorrelated():
    words = _words(philox_key(4), 2**20).astype(np.uint64)
    n = words.size
    # each of the 32 bit positions is set with probability 1/2: 5 binomial standard errors
    ones = np.array([((words >> b) & 1).sum() for b in range(32)])
    assert np.all(np.abs(ones - n / 2) < 5 * math.sqrt(n / 4))
    # lag-1..3 serial correlation of the uniforms: under independence r ~ N(0, 1/n): 5 sigma
    u = words / 2.0**32
    for lag in (1, 2, 3):
        r = np.corrcoef(u[:-lag], u[lag:])[0, 1]
        assert abs(r) < 5 / math.sqrt(n)


def test_monte_carlo_means_match_the_exact_expectation():
    # the standard test drawn with Philox (an int seed's default): the mean of |sum of n U(-b, b)|
    # within 4.5 of its standard errors of the exact E = b g(n), for every size
    results = mc.standard_test(3, [1, 5, 25, 100], 2**15, flaxinit.xavier_standard())
    for r in results:
        assert r.prng == "philox4x32_10"
        assert abs(r.mean - r.expected) < 4.5 * r.se, r


KEY = np.zeros(2, np.uint32)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: philox4x32(np.zeros(3, np.uint32), KEY), ValueError, "counter must have a last axis of 4"),
        (lambda: philox4x32(np.zeros(4, np.uint32), [0, 0, 0]), ValueError, "key must have a last axis of 2"),
        (lambda: philox4x32(np.zeros(4, np.float32), KEY), TypeError, "counter must have dtype uint32"),
        (lambda: philox4x32([-1, 0, 0, 0], [0, 0]), TypeError, "counter must hold unsigned 32-bit integers"),
        (lambda: philox_key(1.5), TypeError, "seed must be an integer"),
        (lambda: philox_key(True), TypeError, "seed must be an integer"),
        (lambda: substream(jax.random.key(0), jnp.uint32(1)), TypeError, "key must be a Philox key"),
    ],
)
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
