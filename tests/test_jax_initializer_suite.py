"""jax's own initializer tests, rewritten against flaxinit: they pass wherever jax's pass.

jax's ``tests/nn_test.py``, class ``NNInitializersTest`` (the same in jax 0.10.0 and in jax
0.12), checks the initializers of ``jax.nn.initializers``:

* ``testInitializer`` and ``testInitializerProvider``: 15 initializer records (``uniform``,
  ``normal``, the six aliases, ``orthogonal``, ``truncated_normal``, ``delta_orthogonal``,
  ``variance_scaling`` with ``fan_geo_avg`` and with three pairs of axes of which one is
  empty) x their shapes x their dtypes, where the dtype is given to the call or to the
  factory; the result has the shape and the (canonicalized) dtype asked for;
* ``testInitializerOrthogonalZeroSize``: ``orthogonal`` of every ``(rows, cols)`` in
  ``range(4)**2``, empty ones included, has orthonormal rows or columns;
* ``testVarianceScalingMultiAxis``, ``testVarianceScalingBatchAxis``,
  ``testVarianceScalingError`` (a rank-1 kernel with the default axes is a ``ValueError``),
  ``testAccidentalUpcasting`` (a float32 array as the scale, bfloat16 weights: bfloat16
  comes back).

jax's CI samples 10 cases of each product (``JAX_NUM_GENERATED_CASES``); here the whole
product is listed, with float64 enabled, where jax's dtype lists are largest: float32 and
float64, and complex64 and complex128 for ``normal`` and the six aliases. That is 528 +
32 + 4 cases (``testAccidentalUpcasting`` run as 3 here, one per initializer: 566). jax
0.10.0 and 0.12 pass every one of them on this project's CPU (run with
``JAX_NUM_GENERATED_CASES=100000 JAX_ENABLE_X64=1``), so flaxinit must pass every one.

The rewrite changes only the rank-1 error's message (flaxinit's, a ``ValueError`` too): the
factories take jax's arguments in jax's positions, so ``testAccidentalUpcasting``'s
``uniform(scale, dtype)`` and ``truncated_normal(stddev, dtype)`` are written as jax writes
them. Every case
compiles a small program or two (float64 and complex ones, and 4-d draws, slowly), so the
default tier runs a cover (one case of every record, both tests, every dtype and every rank
but 4 among them, an empty and a full orthogonal kernel, the error and the upcasting) and
the rest is marked slow.
"""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxinit

ALL_SHAPES = [(), (2,), (2, 2), (2, 3), (3, 2), (2, 3, 4), (4, 3, 2), (2, 3, 4, 5)]
FLOATING = [np.float32, np.float64]  # jax's jtu.dtypes.floating with float64 enabled
INEXACT = [*FLOATING, np.complex64, np.complex128]  # jtu.dtypes.inexact


def _record(name, factory, dtypes, min_dims=2, max_dims=4):
    return name, factory, [s for s in ALL_SHAPES if min_dims <= len(s) <= max_dims], dtypes


RECORDS = [
    _record("uniform", flaxinit.uniform, FLOATING, 1),
    _record("normal", flaxinit.normal, INEXACT, 1),
    *[_record(n, getattr(flaxinit, n), INEXACT) for n in (
        "he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "lecun_normal", "lecun_uniform")],
    _record("orthogonal", flaxinit.orthogonal, FLOATING, 2, 2),
    _record("truncated_normal", flaxinit.truncated_normal, FLOATING, 1),
    _record("delta_orthogonal", flaxinit.delta_orthogonal, FLOATING, 4, 4),
    _record("variance_scaling_fan_geo_avg",
            functools.partial(flaxinit.variance_scaling, 1, "fan_geo_avg", "normal"), FLOATING),
    _record("variance_scaling_fan_in_0_",
            functools.partial(flaxinit.variance_scaling, 1, "fan_in", "normal", in_axis=[0], out_axis=[]),
            FLOATING, 1),
    _record("variance_scaling_fan_in__0",
            functools.partial(flaxinit.variance_scaling, 1, "fan_in", "normal", in_axis=[], out_axis=[0]),
            FLOATING, 1),
    _record("variance_scaling_fan_in__",
            functools.partial(flaxinit.variance_scaling, 1, "fan_in", "normal", in_axis=[], out_axis=[]),
            FLOATING, 0),
]  # fmt: skip


def _cases():
    """(factory, shape, dtype) of every record; the default tier's cover is one case per record,
    the dtypes and shapes taken in turn from record to record (every dtype, every rank but 4)."""
    for i, (name, factory, shapes, dtypes) in enumerate(RECORDS):
        dense = [s for s in shapes if len(s) < 4] or shapes
        cover = (dense[i % len(dense)], dtypes[i % len(dtypes)])
        for shape, dtype in itertools.product(shapes, dtypes):
            label = f"{name}-{shape}-{np.dtype(dtype).name}"
            marks = [] if (shape, dtype) == cover else [pytest.mark.slow]
            yield pytest.param(factory, shape, dtype, id=label, marks=marks)


CASES = list(_cases())


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("factory,shape,dtype", CASES)
def test_initializer(factory, shape, dtype):
    """jax's ``testInitializer``: the dtype given to the call."""
    val = factory()(jax.random.PRNGKey(0), shape, dtype)
    assert jnp.shape(val) == shape
    assert val.dtype == jax.dtypes.canonicalize_dtype(dtype)


@pytest.mark.parametrize("factory,shape,dtype", CASES)
def test_initializer_provider(factory, shape, dtype):
    """jax's ``testInitializerProvider``: the dtype given to the factory."""
    val = factory(dtype=dtype)(jax.random.PRNGKey(0), shape)
    assert jnp.shape(val) == shape
    assert val.dtype == jax.dtypes.canonicalize_dtype(dtype)


ZERO_SIZE = [
    pytest.param(rows, cols, dtype, id=f"{rows}x{cols}-{np.dtype(dtype).name}",
                 marks=[] if (rows, cols, dtype) in ((0, 3, np.float32), (3, 2, np.float32)) else [pytest.mark.slow])
    for rows, cols, dtype in itertools.product(range(4), range(4), FLOATING)
]  # fmt: skip


@pytest.mark.parametrize("rows,cols,dtype", ZERO_SIZE)
def test_initializer_orthogonal_zero_size(rows, cols, dtype):
    """jax's ``testInitializerOrthogonalZeroSize`` (its CPU tolerances: assertAllClose's defaults)."""
    val = flaxinit.orthogonal()(jax.random.PRNGKey(0), (rows, cols), dtype)
    assert val.shape == (rows, cols) and val.dtype == dtype
    tol = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-15}[np.dtype(dtype)]
    if rows <= cols:
        np.testing.assert_allclose(val @ val.T, np.eye(rows, dtype=dtype), atol=tol, rtol=tol)
    if cols <= rows:
        np.testing.assert_allclose(val.T @ val, np.eye(cols, dtype=dtype), atol=tol, rtol=tol)


@pytest.mark.slow  # a 4-d draw
def test_variance_scaling_multi_axis():
    init = flaxinit.variance_scaling(
        scale=1.0, mode="fan_avg", distribution="truncated_normal", in_axis=(0, 1), out_axis=(-2, -1)
    )
    assert jnp.shape(init(jax.random.PRNGKey(0), (2, 3, 4, 5))) == (2, 3, 4, 5)


@pytest.mark.slow  # a 4-d draw
def test_variance_scaling_batch_axis():
    init = flaxinit.variance_scaling(
        scale=1.0, mode="fan_avg", distribution="truncated_normal", in_axis=0, out_axis=(2, 3), batch_axis=1
    )
    assert jnp.shape(init(jax.random.PRNGKey(0), (2, 3, 4, 5))) == (2, 3, 4, 5)


def test_variance_scaling_error():
    init = flaxinit.variance_scaling(scale=1.0, mode="fan_avg", distribution="truncated_normal")
    with pytest.raises(ValueError, match=r"cannot infer fans of a rank-1 kernel .* it needs rank >= 2"):
        init(jax.random.PRNGKey(0), (5,))


@pytest.mark.parametrize("factory", [flaxinit.uniform, flaxinit.normal, flaxinit.truncated_normal])
def test_accidental_upcasting(factory):
    scalar_param = jnp.array(1.0, dtype=jnp.float32)
    val = factory(scalar_param, jnp.bfloat16)(jax.random.PRNGKey(0), (4, 4))
    assert val.dtype == jnp.bfloat16
