"""Every article factory on every shape (float32), and on a dense and a conv kernel in each other dtype.

Distribution checks are Kolmogorov-Smirnov tests against scipy's CDF with fixed keys and
a significance level of 1e-4 per case; a correct sampler fails a given case with
probability 1e-4, and since the keys are fixed the outcome never changes between runs.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import flaxinit
from flaxinit.magnitude import article_normalized, article_standard, expected_abs_sum

KS_ALPHA = 1e-4

# name -> kwargs for get(); every scheme appears, several with non-default options.
SCHEMES = {
    "xavier_standard": {},
    "xavier_normalized": {},
    "kaiming_normal": {},
    "kaiming_normal_fan_out_leaky": {"name": "kaiming_normal", "mode": "fan_out", "negative_slope": 0.2},
    "kaiming_uniform": {},
    "letkeman_standard": {},
    "letkeman_standard_article": {"name": "letkeman_standard", "method": "article"},
    "letkeman_normalized": {},
    "letkeman_normalized_article": {"name": "letkeman_normalized", "method": "article"},
}

# (shape, axis kwargs, (fan_in, fan_out))
SHAPES = [
    ((64, 48), {}, (64, 48)),
    ((5, 16, 24), {}, (80, 120)),
    ((3, 3, 8, 16), {}, (72, 144)),
    ((2, 3, 3, 4, 8), {}, (72, 144)),
    ((4, 32, 24), {"batch_axis": 0}, (32, 24)),
    ((24, 32), {"in_axis": -1, "out_axis": -2}, (32, 24)),
]

DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16, jnp.float64]


def build(label, **axis_kwargs):
    kwargs = dict(SCHEMES[label])
    name = kwargs.pop("name", label)
    return flaxinit.get(name, **kwargs, **axis_kwargs)


def reference_scale(init, fan_in, fan_out):
    """The scheme's bound (uniform) or standard deviation (normal), from SPEC section 2's formulas."""
    n, m = fan_in, fan_out
    g = expected_abs_sum
    if init.name == "xavier_standard":
        return 1 / math.sqrt(n)
    if init.name == "xavier_normalized":
        return math.sqrt(6) / math.sqrt(n + m)
    if init.name.startswith("kaiming"):
        fan = n if init.mode == "fan_in" else m
        std = math.sqrt(2 / (1 + init.negative_slope**2) / fan)
        return std if init.name == "kaiming_normal" else math.sqrt(3) * std
    if init.name == "letkeman_standard":
        return 1 / g(n) if init.method == "exact" else 1 / math.sqrt(n) / article_standard(n)
    if init.name == "letkeman_normalized":
        if init.method == "exact":
            return (n + m) / (m * g(n) + n * g(m))
        return math.sqrt(6) / math.sqrt(n + m) / article_normalized(n, m)
    raise AssertionError(init.name)


# every scheme on every shape in float32, and on a dense and a conv kernel in every other dtype
GRID = [(label, shape, jnp.float32) for label in SCHEMES for shape in SHAPES]
GRID += [(label, shape, dtype) for label in SCHEMES for shape in SHAPES[::2][:2] for dtype in DTYPES[1:]]


@pytest.mark.parametrize("label,shape,dtype", GRID, ids=[f"{g[0]}-{g[1][0]}-{jnp.dtype(g[2]).name}" for g in GRID])
def test_shape_dtype_support_distribution(label, shape, dtype, key):
    shape, axes, fans = shape
    init = build(label, **axes)
    with jax.enable_x64(dtype == jnp.float64):
        w = init(key, shape, dtype)
        scale = reference_scale(init, *fans)
        scale_in_dtype = float(jnp.asarray(scale, dtype))
    assert w.shape == shape
    assert w.dtype == jnp.dtype(dtype)
    values = np.asarray(w, dtype=np.float64).ravel()
    assert np.all(np.isfinite(values))
    if init.distribution == "uniform":
        assert init.bound(shape) == pytest.approx(scale, rel=1e-15)
        # rounding to dtype is monotone, so |w| <= b implies |w| <= b rounded to dtype
        assert np.max(np.abs(values)) <= scale_in_dtype
        cdf = stats.uniform(loc=-scale, scale=2 * scale).cdf
    else:
        assert init.stddev(shape) == pytest.approx(scale, rel=1e-15)
        cdf = stats.norm(scale=scale).cdf
    assert stats.kstest(values, cdf).pvalue > KS_ALPHA


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_narrow_dtypes_are_rounded_float32_draws(dtype, key):
    """Narrow types are sampled in float32 and cast once: no extra mass at the bounds."""
    init = flaxinit.letkeman_standard()
    shape = (3, 4096)
    w = init(key, shape, dtype)
    np.testing.assert_array_equal(w, init(key, shape, jnp.float32).astype(dtype))
    b = jnp.asarray(init.bound(shape), dtype)
    at_bound = float(jnp.mean(jnp.abs(w) == b))
    assert at_bound < 0.01  # a draw lands within half a bf16 ulp of b with prob ~2^-9


def test_uniform_schemes_share_their_draws(key):
    """Common random numbers: for one key, uniform schemes are exact rescalings of one draw."""
    shape = (3, 3, 8, 16)
    u = jax.random.uniform(key, shape, jnp.float32, -1.0, 1.0)
    for name in ("xavier_standard", "xavier_normalized", "kaiming_uniform", "letkeman_standard", "letkeman_normalized"):
        init = flaxinit.get(name)
        np.testing.assert_array_equal(init(key, shape), u * jnp.float32(init.bound(shape)))


@pytest.mark.parametrize(
    "factory,value", [(flaxinit.zeros, 0.0), (flaxinit.ones, 1.0), (lambda: flaxinit.constant(-0.25), -0.25)]
)
@pytest.mark.parametrize("shape", [(), (7,), (3, 4), (3, 3, 2, 5)])
def test_constant_schemes(factory, value, shape, key):
    w = factory()(key, shape, jnp.bfloat16)
    assert w.shape == shape and w.dtype == jnp.bfloat16
    np.testing.assert_array_equal(w, np.full(shape, value))


@pytest.mark.parametrize(
    "shape,kwargs",
    [
        ((7, 9), {}),
        ((3, 3, 16, 32), {}),
        ((5, 7, 11), {"in_axis": 0, "out_axis": -1, "batch_axis": 1}),
        ((2, 3, 4, 5), {"in_axis": (0, 1), "out_axis": -1}),
        ((2, 3, 4, 5), {"in_axis": -2, "out_axis": (-1, 0)}),
        ((6, 8), {"in_axis": 1, "out_axis": 0}),
    ],
)
def test_compute_fans_matches_jax(shape, kwargs):
    from jax._src.nn.initializers import _compute_fans

    fans = flaxinit.compute_fans(shape, **kwargs)
    assert all(type(f) is int for f in fans)
    assert fans == tuple(int(f) for f in _compute_fans(shape, **kwargs))


def test_active_node_method_is_a_fan_override(key):
    """ANM: fan_in=1 whatever the input width, for any scheme."""
    shape = (65, 128)  # e.g. a one-hot character input
    assert flaxinit.letkeman_standard(fan_in=1).bound(shape) == 2.0
    assert flaxinit.xavier_standard(fan_in=1).bound(shape) == 1.0
    assert flaxinit.kaiming_normal(fan_in=1).stddev(shape) == math.sqrt(2)
    assert flaxinit.letkeman_normalized(fan_in=1).bound(shape) == pytest.approx(
        (1 + 128) / (128 * 0.5 + 1 * expected_abs_sum(128)), rel=1e-15
    )


def test_explicit_fans_allow_rank_one_and_zero(key):
    w = flaxinit.xavier_standard(fan_in=4)(key, (10,))
    assert np.max(np.abs(w)) <= 0.5
    assert flaxinit.letkeman_normalized(fan_in=3, fan_out=5)(key, ()).shape == ()


def test_gain_scales_the_bound_and_std():
    assert flaxinit.letkeman_standard(gain=0.5).bound((10, 3)) == 0.5 * flaxinit.letkeman_standard().bound((10, 3))
    assert flaxinit.kaiming_normal(gain=3.0).stddev((8, 3)) == 1.5


def test_refitted_constants_plug_in():
    base = flaxinit.letkeman_standard(method="article")
    refit = flaxinit.letkeman_standard(method="article", constants={"a": 0.05})
    n = 40
    assert refit.bound((n, 2)) == pytest.approx(1 / math.sqrt(n) / (0.45 + 0.05 / (2 * n - 1)), rel=1e-15)
    assert refit.bound((n, 2)) != base.bound((n, 2))
    norm = flaxinit.letkeman_normalized(method="article", constants={"a": 0.1, "b": -0.1})
    assert norm.bound((15, 25)) == pytest.approx(math.sqrt(6 / 40) / article_normalized(15, 25, a=0.1, b=-0.1))


# --- the point of Letkeman: an all-ones input gives mean |pre-activation| 1 ---------------

STANDARD_FAN_INS = [1, 2, 3, 5, 25, 100, 1000]


def ones_input_magnitudes(init, fan_in, columns, key):
    """|pre-activation| of each of ``columns`` outputs of a (fan_in, columns) layer fed ones."""
    kernel = init(key, (fan_in, columns))
    return np.asarray(jnp.abs(jnp.ones((1, fan_in)) @ kernel), dtype=np.float64).ravel()


@pytest.mark.parametrize("fan_in", STANDARD_FAN_INS)
def test_standard_letkeman_keeps_magnitude_one(fan_in, key):
    # mean of 16384 iid |sums|; within 4 standard errors of the exact value 1
    mags = ones_input_magnitudes(flaxinit.letkeman_standard(), fan_in, 16384, key)
    se = mags.std(ddof=1) / math.sqrt(mags.size)
    assert abs(mags.mean() - 1.0) < 4 * se


@pytest.mark.parametrize("fan_in", STANDARD_FAN_INS)
def test_xavier_magnitude_is_g_over_sqrt_n_not_one(fan_in, key):
    mags = ones_input_magnitudes(flaxinit.xavier_standard(), fan_in, 16384, key)
    se = mags.std(ddof=1) / math.sqrt(mags.size)
    known = expected_abs_sum(fan_in) / math.sqrt(fan_in)  # 0.5 at fan_in=1, -> 0.4607
    assert abs(mags.mean() - known) < 4 * se
    assert abs(mags.mean() - 1.0) > 20 * se


NORMALIZED_SHAPES = [(1, 1), (5, 5), (100, 1), (15, 25), (10, 100), (100, 50), (1000, 10), (1, 1000)]


@pytest.mark.parametrize("shape", NORMALIZED_SHAPES)
def test_normalized_letkeman_average_over_both_passes_is_one(shape, key):
    """(T_row + T_col) / (n + m) averaged over 2000 matrices; within 4 standard errors of 1."""
    init = flaxinit.letkeman_normalized()
    n, m = shape

    def both_passes(k):
        w = init(k, shape)
        t_col = jnp.abs(jnp.ones((1, n)) @ w).sum()  # forward: each output's incoming sum
        t_row = jnp.abs(w @ jnp.ones((m, 1))).sum()  # backward: each input's outgoing sum
        return (t_row + t_col) / (n + m)

    draws = np.asarray(jax.vmap(both_passes)(jax.random.split(key, 2000)), dtype=np.float64)
    se = draws.std(ddof=1) / math.sqrt(draws.size)
    assert abs(draws.mean() - 1.0) < 4 * se
