"""jax's names give jax's values: the same key and shape, the same weights, for float32 and float64.

flaxinit computes a scheme's scale once in float64 and multiplies the unit draw by it;
jax computes the scale in the weights' dtype. The two scales then differ by at most one
rounding in that dtype, i.e. relative 2**-23 in float32, and each product rounds once
more (half an ulp each side), so every weight agrees to within ``2**-22`` relative: the
tolerance below. Where the two scales round alike the weights are bitwise equal (on this
project's CPU they all are). The one deliberate difference, narrow dtypes (flaxinit draws
in float32 and rounds once; jax draws in the narrow type), is stated and tested too.

Complex weights (complex64, complex128), where jax draws them (``normal``,
``variance_scaling`` and its aliases, ``orthogonal``, ``delta_orthogonal``, the
constants), are drawn by jax's own operations in the complex dtype, in jax's order, scale
included: the same program, so the same bits, which the complex tests assert (tolerance
0). Both sides are compared jitted, as above: jax's own eager values for the complex
truncated normal differ from its jitted ones (XLA fuses its ``exp`` and ``log``
differently when they are compiled one by one), by up to about 2e-6 relative in complex64.

A scale given as a 0-d array is jax's ``jnp.array(scale, dtype)``: a concrete one is read
as a Python float (the path above, the same tolerance); a traced one (inside ``jit``) is
cast to the sampling dtype and the scale's arithmetic runs in it, as jax's does in the
weights' dtype (one rounding each side of every product again, ``2**-22``). Either way the
weights keep the requested dtype.
"""

import json

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
    # jax's positional arguments, dtype included
    "normal(0.3, float32)": (lambda: flaxinit.normal(0.3, jnp.float32),
                             lambda: jax.nn.initializers.normal(0.3, jnp.float32)),
    "uniform(0.3, float32)": (lambda: flaxinit.uniform(0.3, jnp.float32),
                              lambda: jax.nn.initializers.uniform(0.3, jnp.float32)),
    "truncated_normal(0.2, float32, -1, 3)": (
        lambda: flaxinit.truncated_normal(0.2, jnp.float32, -1.0, 3.0),
        lambda: jax.nn.initializers.truncated_normal(0.2, jnp.float32, -1.0, 3.0)),
    "variance_scaling(1, fan_in, normal, 0, 1, (), float32)": (
        lambda: flaxinit.variance_scaling(1.0, "fan_in", "normal", 0, 1, (), jnp.float32),
        lambda: jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal", 0, 1, (), jnp.float32)),
    "he_uniform(0, 1)": (lambda: flaxinit.he_uniform(0, 1), lambda: jax.nn.initializers.he_uniform(0, 1)),
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


# --- complex weights: jax's bits -----------------------------------------------------------------

#: complex64: every distribution of variance_scaling (a different mode each), every alias, normal,
#: orthogonal and the constants; complex128: one of each kind. Each case compiles two programs
#: of about a second: the aliases (variance_scaling's code path, with its own values) and the
#: complex128 draws but normal's run in CI's second tier.
COMPLEX_CASES = [(label, (64, 48), jnp.complex64) for label in (
    "variance_scaling(0.5, 'fan_in', 'truncated_normal')", "variance_scaling(0.5, 'fan_geo_avg', 'normal')",
    "variance_scaling(0.5, 'fan_avg', 'uniform')", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
    "lecun_uniform", "lecun_normal", "normal(0.3)", "orthogonal(2, column_axis=0)", "zeros", "ones",
    "constant(0.7)")]  # fmt: skip
COMPLEX_CASES += [(label, (7, 300), jnp.complex128) for label in (
    "normal", "glorot_uniform", "he_normal", "variance_scaling(0.5, 'fan_out', 'normal')", "orthogonal",
    "constant(0.7)")]  # fmt: skip
_SECOND_TIER = ("glorot_", "he_", "lecun_", "variance_scaling", "orthogonal")
COMPLEX_PARAMS = [
    pytest.param(*c, id=f"{c[0]}-{jnp.dtype(c[2]).name}", marks=[pytest.mark.slow] if (
        c[0].startswith(("glorot_", "he_", "lecun_")) or (c[2] == jnp.complex128 and c[0].startswith(_SECOND_TIER))
    ) else [])
    for c in COMPLEX_CASES
]  # fmt: skip


def _jitted_pair(ours, theirs, shape, dtype):
    draw = jax.jit(lambda k, init: init(k, shape, dtype), static_argnums=1)
    return np.asarray(draw(KEY, ours)), np.asarray(jax.jit(lambda k: theirs(k, shape, dtype))(KEY))


@pytest.mark.parametrize("label,shape,dtype", COMPLEX_PARAMS)
def test_complex_weights_are_jax_bits(label, shape, dtype):
    ours, theirs = _pair(label)
    with jax.enable_x64(dtype == jnp.complex128):
        a, b = _jitted_pair(ours, theirs, shape, dtype)
    assert a.dtype == b.dtype == np.dtype(dtype) and a.shape == b.shape == shape
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # orthogonal's complex path (tested above), placed at a conv kernel's centre
def test_complex_delta_orthogonal_is_jax_bits():
    ours, theirs = flaxinit.delta_orthogonal(1.5), jax.nn.initializers.delta_orthogonal(1.5)
    a, b = _jitted_pair(ours, theirs, (3, 4, 6), jnp.complex64)
    assert a.dtype == np.complex64
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("label", ["uniform", "truncated_normal"])
def test_complex_dtypes_rejected_where_jax_rejects_them(label):
    ours, theirs = _pair(label)
    with pytest.raises(ValueError, match="must be a float dtype"):
        theirs(KEY, (4, 3), jnp.complex64)
    with pytest.raises(TypeError, match=f"dtype must be a real floating dtype for {label}, got complex64"):
        ours(KEY, (4, 3), jnp.complex64)


# --- a 0-d array as the scale -----------------------------------------------------------------------

F32, BF16 = jnp.float32, jnp.bfloat16
# (factory, the array scale, weights' dtype, in the default tier?): flaxinit's factory and jax's of
# the same name. A concrete array is read as a float (the first tests' path): one case of it in
# the default tier; the traced cases exercise the array arithmetic of each kind of scale.
ARRAY_SCALES = [
    ("normal", jnp.array(0.3, BF16), F32, True),
    ("uniform", jnp.array(0.3, F32), F32, False),
    ("truncated_normal", jnp.array(0.3, F32), F32, False),
    ("variance_scaling_uniform", jnp.array(0.5, F32), F32, False),
    ("variance_scaling_truncated_normal", jnp.array(0.5, F32), F32, True),
    ("orthogonal", jnp.array(2.0, F32), F32, True),
    ("normal", jnp.array(0.3, F32), jnp.complex64, True),
    ("variance_scaling_truncated_normal", jnp.array(0.5, F32), jnp.complex64, False),
]
ARRAY_PARAMS = [
    pytest.param(name, scale, dtype, traced, id=f"{name}-{scale.dtype}-{jnp.dtype(dtype).name}-{kind}",
                 marks=[] if fast and (traced or (name == "normal" and dtype == F32)) else [pytest.mark.slow])
    for name, scale, dtype, fast in ARRAY_SCALES
    for traced, kind in ((False, "concrete"), (True, "traced"))
]  # fmt: skip


def _factories(name):
    if name.startswith("variance_scaling_"):
        dist = name.removeprefix("variance_scaling_")
        return (lambda s: flaxinit.variance_scaling(s, "fan_in", dist),
                lambda s: jax.nn.initializers.variance_scaling(s, "fan_in", dist))  # fmt: skip
    return getattr(flaxinit, name), getattr(jax.nn.initializers, name)


@pytest.mark.parametrize("name,scale,dtype,traced", ARRAY_PARAMS)
def test_array_scale_same_values_as_jax(name, scale, dtype, traced):
    ours, theirs = _factories(name)
    shape = (64, 48)
    if traced:  # the initializer built inside jit, from the traced argument
        a = jax.jit(lambda k, s: ours(s)(k, shape, dtype))(KEY, scale)
    else:
        a = jax.jit(lambda k, init: init(k, shape, dtype), static_argnums=1)(KEY, ours(scale))
    b = jax.jit(lambda k, s: theirs(s)(k, shape, dtype))(KEY, scale)
    assert a.dtype == b.dtype == jnp.dtype(dtype) and a.shape == b.shape == shape
    a, b = np.asarray(a), np.asarray(b)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        np.testing.assert_array_equal(a, b)
    else:
        assert np.all(np.abs(a.astype(np.float64) - b) <= REL * np.abs(b))


@pytest.mark.parametrize("name", ["normal", "uniform", pytest.param("orthogonal", marks=pytest.mark.slow), "constant"])
def test_concrete_array_scale_is_its_float(name):
    """A concrete 0-d array is read as a Python float: equal, hashable, JSON-serializable configs."""
    factory = getattr(flaxinit, name)
    scale = jnp.array(0.3, BF16)
    init = factory(scale)
    assert init == factory(float(scale)) and hash(init) == hash(factory(float(scale)))
    assert flaxinit.get(json.loads(json.dumps(init.get_config()))) == init
    assert init(KEY, (4, 3), BF16).dtype == BF16  # jax's test: no upcast
