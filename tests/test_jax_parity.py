"""jax's names give jax's values: the same key and shape, the same weights, for float32 and float64.

flaxinit computes a scheme's scale once in float64 and multiplies the unit draw by it;
jax computes the scale in the weights' dtype. The two scales then differ by at most one
rounding in that dtype, i.e. relative 2**-23 in float32, and each product rounds once
more (half an ulp each side), so every weight agrees to within ``2**-22`` relative: the
tolerance below. Where the two scales round alike the weights are bitwise equal (on this
project's CPU they all are). The one deliberate difference, narrow dtypes (flaxinit draws
in float32 and rounds once; jax draws in the narrow type), is stated and tested too.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxinit

KEY = jax.random.key(11)
REL = 2.0**-22
VARIANCE = [(0.5, mode, dist) for mode in ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
            for dist in ("truncated_normal", "normal", "uniform")]  # fmt: skip
# (flaxinit call, jax call) with the same arguments
PAIRS = {
    **{f"variance_scaling{v}": (lambda v=v: flaxinit.variance_scaling(*v),
                                lambda v=v: jax.nn.initializers.variance_scaling(*v)) for v in VARIANCE},
    **{name: (getattr(flaxinit, name), getattr(jax.nn.initializers, name)) for name in (
        "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal",
        "normal", "uniform", "truncated_normal", "orthogonal", "zeros", "ones")},
    "normal(0.3)": (lambda: flaxinit.normal(0.3), lambda: jax.nn.initializers.normal(0.3)),
    "truncated_normal(0.2, -1, 3)": (lambda: flaxinit.truncated_normal(0.2, lower=-1.0, upper=3.0),
                                     lambda: jax.nn.initializers.truncated_normal(0.2, lower=-1.0, upper=3.0)),
    "orthogonal(2, column_axis=0)": (lambda: flaxinit.orthogonal(2.0, 0),
                                     lambda: jax.nn.initializers.orthogonal(2.0, 0)),
    "constant(0.7)": (lambda: flaxinit.constant(0.7), lambda: jax.nn.initializers.constant(0.7)),
}  # fmt: skip
# every pair on a dense kernel in float32 (and on a conv kernel, but the 12 variance_scaling cases);
# in float64 one pair of each distribution
CASES = [(label, shape, jnp.float32) for label in PAIRS for shape in ((64, 48), (3, 3, 8, 16))
         if shape == (64, 48) or not label.startswith("variance_scaling")]  # fmt: skip
CASES += [(label, (7, 300), jnp.float64) for label in ("glorot_uniform", "he_normal", "lecun_normal", "normal",
                                                     "uniform", "truncated_normal", "orthogonal")]  # fmt: skip


def _pair(label):
    ours, theirs = PAIRS[label]
    return ours(), (theirs if label in ("zeros", "ones") else theirs())


# the conv kernels in CI's second tier: XLA's CPU backend compiles a 4-D draw about five
# times slower than a 2-D one (about 1.5 s against 0.3 s), and each case compiles two
PARAMS = [
    pytest.param(*c, id=f"{c[0]}-{c[1]}-{jnp.dtype(c[2]).name}", marks=[pytest.mark.slow] if len(c[1]) == 4 else [])
    for c in CASES
]


@pytest.mark.parametrize("label,shape,dtype", PARAMS)
def test_same_key_same_values_as_jax(label, shape, dtype):
    ours, theirs = _pair(label)
    with jax.enable_x64(dtype == jnp.float64):
        draw = jax.jit(lambda k, init: init(k, shape, dtype), static_argnums=1)
        a, b = np.asarray(draw(KEY, ours)), np.asarray(jax.jit(lambda k: theirs(k, shape, dtype))(KEY))
    assert a.dtype == b.dtype == np.dtype(dtype) and a.shape == b.shape == shape
    assert np.all(np.abs(a.astype(np.float64) - b) <= REL * np.abs(b))


@pytest.mark.parametrize("label", ["glorot_uniform", "he_normal", "normal", "uniform"])
def test_narrow_dtypes_are_jax_float32_draws_rounded_once(label):
    """The deliberate difference: bfloat16 weights are jax's float32 weights rounded to bfloat16
    (to one bfloat16 rounding, as the float32 scales may differ by one float32 rounding)."""
    ours, theirs = _pair(label)
    a = np.asarray(ours(KEY, (64, 48), jnp.bfloat16), np.float32)
    b = np.asarray(jnp.asarray(theirs(KEY, (64, 48), jnp.float32)).astype(jnp.bfloat16), np.float32)
    assert np.all(np.abs(a - b) <= 2.0**-8 * np.abs(b))


def test_delta_orthogonal_matches_jax():
    ours, theirs = flaxinit.delta_orthogonal(1.5), jax.nn.initializers.delta_orthogonal(1.5)
    for shape in [(3, 4, 6), (3, 3, 4, 4), (3, 2, 3, 5, 5)]:
        np.testing.assert_array_equal(ours(KEY, shape), theirs(KEY, shape))


def test_axis_arguments_and_default_dtype_as_jax():
    ours = flaxinit.variance_scaling(
        1.0, "fan_in", "normal", in_axis=0, out_axis=(1, 2), batch_axis=(), dtype="float64"
    )
    theirs = jax.nn.initializers.variance_scaling(
        1.0, "fan_in", "normal", in_axis=0, out_axis=(1, 2), dtype=jnp.float64
    )
    with jax.enable_x64(True):
        a, b = ours(KEY, (5, 4, 3)), theirs(KEY, (5, 4, 3))
    assert a.dtype == b.dtype == jnp.float64
    np.testing.assert_allclose(a, b, rtol=REL)
