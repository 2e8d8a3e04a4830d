"""Bad input: a clear error, raised as early as the problem is visible, naming the argument."""

import jax
import jax.numpy as jnp
import pytest
from schemes import GENERIC, make

import flaxinit

KEY = jax.random.key(0)

# (factory call, exception, message fragment): raised when the factory is built.
BUILD_ERRORS = [
    (lambda: flaxinit.xavier_standard(fan_in=0), ValueError, "fan_in must be a positive integer"),
    (lambda: flaxinit.xavier_standard(fan_in=-3), ValueError, "fan_in must be a positive integer"),
    (lambda: flaxinit.letkeman_normalized(fan_out=2.5), TypeError, "fan_out must be a positive integer"),
    (lambda: flaxinit.letkeman_standard(fan_in=True), TypeError, "fan_in must be a positive integer"),
    (lambda: flaxinit.kaiming_normal(mode="fan_avg"), ValueError, "mode must be one of 'fan_in', 'fan_out'"),
    (lambda: flaxinit.kaiming_uniform(negative_slope=-0.1), ValueError, "negative_slope must be >= 0"),
    (lambda: flaxinit.kaiming_normal(negative_slope=float("nan")), TypeError, "negative_slope must be a finite"),
    (lambda: flaxinit.xavier_normalized(gain=-1.0), ValueError, "gain must be > 0"),
    (lambda: flaxinit.letkeman_standard(gain=0), ValueError, "gain must be > 0"),
    (lambda: flaxinit.letkeman_standard(method="approx"), ValueError, "method must be one of 'exact', 'article'"),
    (lambda: flaxinit.letkeman_normalized(method=None), ValueError, "method must be one of"),
    (lambda: flaxinit.letkeman_standard("article", {"b": 0.1}), ValueError, r"exactly the keys \['a'\]"),
    (lambda: flaxinit.letkeman_standard("article", {"a": 0.1, "b": 0}), ValueError, "exactly the keys"),
    (lambda: flaxinit.letkeman_normalized("article", {"a": 0.1}), ValueError, r"exactly the keys \['a', 'b'\]"),
    (lambda: flaxinit.letkeman_normalized("article", {"a": "x", "b": 0}), TypeError, "constants\\['a'\\] must be"),
    (lambda: flaxinit.letkeman_standard("article", [0.039]), TypeError, "constants must be a mapping"),
    (lambda: flaxinit.letkeman_standard("exact", {"a": 0.039}), ValueError, "constants only apply to method='article'"),
    (lambda: flaxinit.xavier_standard(in_axis=-1, out_axis=-1), ValueError, "out_axis and in_axis overlap"),
    (lambda: flaxinit.xavier_standard(batch_axis=(0, -2)), ValueError, "batch_axis and in_axis overlap"),
    (lambda: flaxinit.xavier_standard(in_axis="0"), TypeError, "in_axis must be an int or a sequence of ints"),
    (lambda: flaxinit.constant(float("inf")), TypeError, "value must be a finite real number"),
    (lambda: flaxinit.constant("1"), TypeError, "value must be a finite real number"),
    # a scale given as an array: 0-d and real, checked as a number when it is concrete
    (lambda: flaxinit.normal(jnp.ones(3)), TypeError, r"stddev must be .* a 0-d real array, got .* shape \(3,\)"),
    (lambda: flaxinit.uniform(jnp.array(1j)), TypeError, "scale must be .* a 0-d real array, got .* complex64"),
    (lambda: flaxinit.orthogonal(jnp.array(True)), TypeError, "scale must be .* a 0-d real array, got .* bool"),
    (lambda: flaxinit.variance_scaling(jnp.array(-1.0), "fan_in", "normal"), ValueError, "scale must be > 0"),
    (lambda: flaxinit.constant(jnp.array(jnp.nan)), TypeError, "value must be a finite real number"),
    (lambda: flaxinit.truncated_normal(dtype=jnp.complex64), TypeError, "real floating dtype for truncated_normal"),
]


@pytest.mark.parametrize("call,exc,match", BUILD_ERRORS)
def test_errors_at_build_time(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


ALL_SCHEMES = [make(n) for n in GENERIC]


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint8, jnp.bool_, "not-a-dtype"])
@pytest.mark.parametrize("init", ALL_SCHEMES, ids=lambda i: i.name)
def test_rejects_non_real_float_dtypes(init, dtype):
    with pytest.raises(TypeError, match="dtype must be a real floating dtype"):
        init(KEY, (4, 3), dtype)


#: The schemes whose jax namesakes draw complex weights (tests/test_jax_parity.py checks their values).
COMPLEX = {"variance_scaling", "normal", "orthogonal", "zeros", "ones", "constant"}


@pytest.mark.parametrize("init", ALL_SCHEMES, ids=lambda i: i.name)
def test_complex_dtypes_where_jax_takes_them(init):
    if init.name in COMPLEX:
        assert init(KEY, (4, 3), jnp.complex64).dtype == jnp.complex64
    else:  # jax's uniform and truncated_normal, and every scheme jax does not have
        with pytest.raises(TypeError, match=f"real floating dtype for {init.name}, got complex64; complex weights are"):
            init(KEY, (4, 3), jnp.complex64)


def test_traced_truncation_points_are_an_error():
    with pytest.raises(TypeError, match="lower must be a concrete number"):
        jax.jit(lambda a: flaxinit.truncated_normal(lower=a)(KEY, (3,)))(jnp.float32(-1.0))


BAD_KEYS = [
    ("a string", "seed", TypeError, "key must be a PRNG key from jax.random.key"),
    ("an int seed", 0, TypeError, "key must be a PRNG key .*got int 0"),
    ("floats", jnp.zeros(2), TypeError, r"key must be .*got an array of dtype float32 and shape \(2,\)"),
    ("a batch of keys", jax.random.split(KEY, 3), ValueError, r"key must be a single PRNG key .*shape \(3,\)"),
]


@pytest.mark.parametrize("label,key,exc,match", BAD_KEYS, ids=[k[0] for k in BAD_KEYS])
@pytest.mark.parametrize("init", ALL_SCHEMES, ids=lambda i: i.name)
def test_rejects_what_is_not_one_key(init, label, key, exc, match):
    with pytest.raises(exc, match=match):
        init(key, (4, 3))


@pytest.mark.parametrize("init", ALL_SCHEMES, ids=lambda i: i.name)
def test_accepts_typed_legacy_and_traced_keys(init):
    typed = init(KEY, (4, 3))
    assert init(jax.random.PRNGKey(0), (4, 3)).shape == typed.shape
    assert jax.jit(lambda k: init(k, (4, 3)))(KEY).shape == typed.shape


@pytest.mark.parametrize("init", ALL_SCHEMES, ids=lambda i: i.name)
def test_rejects_negative_dimensions(init):
    with pytest.raises(ValueError, match="non-negative dimensions"):
        init(KEY, (-1, 2))


@pytest.mark.parametrize("shape", [(0, 3), (4, 0), (3, 3, 0, 8)])
@pytest.mark.parametrize("init", ALL_SCHEMES, ids=lambda i: i.name)
def test_zero_size_dimensions_give_an_empty_array(init, shape):
    """As jax's initializers: no weights to draw (and no fans to divide by)."""
    w = init(KEY, shape, jnp.bfloat16)
    assert w.shape == shape and w.dtype == jnp.bfloat16


def test_compute_fans_rejects_zero_size_dimensions():
    with pytest.raises(ValueError, match="positive dimensions"):
        flaxinit.compute_fans((0, 3))


@pytest.mark.parametrize("shape", [(8,), ()])
@pytest.mark.parametrize(
    "init",
    [flaxinit.xavier_standard(), flaxinit.letkeman_standard(), flaxinit.kaiming_normal(), flaxinit.xavier_normalized()],
    ids=lambda i: i.name,
)
def test_rank_below_two_says_how_to_pass_fans(init, shape):
    with pytest.raises(ValueError, match=r"rank >= 2.*fan_in=") as err:
        init(KEY, shape)
    assert "Pass the fans explicitly" in str(err.value)


@pytest.mark.parametrize(
    "shape,axes,fans",
    [
        ((4, 3), {"in_axis": ()}, (4, 12)),
        ((2,), {"in_axis": 0, "out_axis": ()}, (2, 1)),
        ((), {"in_axis": [], "out_axis": []}, (1, 1)),
    ],
)
def test_an_empty_axis_has_size_one_as_in_jax(shape, axes, fans):
    assert flaxinit.compute_fans(shape, **axes) == fans
    assert flaxinit.variance_scaling(1.0, "fan_in", "normal", **axes)(KEY, shape).shape == shape


def test_rank_one_with_only_one_needed_fan():
    flaxinit.letkeman_standard(fan_in=3)(KEY, (8,))  # fan_out unused: fine
    with pytest.raises(ValueError, match="fan_out"):
        flaxinit.letkeman_normalized(fan_in=3)(KEY, (8,))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"in_axis": 2}, r"in_axis=2 is out of range for a kernel of rank 2"),
        ({"out_axis": -3}, r"out_axis=-3 is out of range"),
        ({"in_axis": 0, "out_axis": -2}, "out_axis and in_axis overlap at axis 0"),
        ({"batch_axis": 1}, "batch_axis and out_axis overlap"),
    ],
)
def test_axes_checked_against_the_shape(kwargs, match):
    init = flaxinit.xavier_normalized(**kwargs)
    with pytest.raises(ValueError, match=match):
        init(KEY, (4, 3))
    with pytest.raises(ValueError, match=match):
        flaxinit.compute_fans((4, 3), **kwargs)


@pytest.mark.parametrize("shape", [(4, "3"), (4, 3.0), 4.5, None])
def test_rejects_non_integer_shapes(shape):
    with pytest.raises(TypeError, match="shape must be a sequence of positive integers"):
        flaxinit.xavier_standard()(KEY, shape)


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown scheme 'glorot'; available: zeros, ones"):
        flaxinit.get("glorot")
    with pytest.raises(ValueError, match="must have a 'name' entry"):
        flaxinit.get({"gain": 2.0})
    with pytest.raises(TypeError, match="scheme 'xavier_standard' does not take"):
        flaxinit.get("xavier_standard", mode="fan_in")
    with pytest.raises(TypeError, match="identifier must be"):
        flaxinit.get(3)
    with pytest.raises(ValueError, match="fan_in must be a positive integer"):
        flaxinit.get({"name": "letkeman_standard", "fan_in": 0})
