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
]


@pytest.mark.parametrize("call,exc,match", BUILD_ERRORS)
def test_errors_at_build_time(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


ALL_SCHEMES = [make(n) for n in GENERIC]


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint8, jnp.bool_, jnp.complex64, "not-a-dtype"])
@pytest.mark.parametrize("init", ALL_SCHEMES, ids=lambda i: i.name)
def test_rejects_non_real_float_dtypes(init, dtype):
    with pytest.raises(TypeError, match="dtype must be a real floating dtype"):
        init(KEY, (4, 3), dtype)


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


@pytest.mark.parametrize("shape", [(0, 3), (4, 0), (3, 3, 0, 8), (-1, 2)])
@pytest.mark.parametrize("init", ALL_SCHEMES, ids=lambda i: i.name)
def test_rejects_zero_size_dimensions(init, shape):
    with pytest.raises(ValueError, match="positive dimensions"):
        init(KEY, shape)


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
        ({"in_axis": ()}, "must each name at least one axis"),
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
