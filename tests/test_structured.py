"""The structured schemes do what their names promise, checked by what a layer computes with them.

dirac: a conv with it is the identity map (bitwise: each output is one input times 1.0
plus zeros); identity likewise for a dense layer; sparse: exactly ceil(sparsity * rows)
zeros in every column, the rest N(0, stddev^2) (a 5-SE check of the standard deviation);
orthogonal and delta-orthogonal: orthonormality to float32 rounding, a bound of a few
float32 ulps of sqrt(rows) (the QR and the products round).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxinit

KEY = jax.random.key(3)


@pytest.mark.parametrize(
    "spatial,groups", [((3,), 1), ((3, 3), 1), ((5, 5), 1), ((3, 3, 3), 1), ((3, 3), 2), ((3, 3), 4), ((2, 4), 1)]
)
def test_dirac_conv_is_the_identity(spatial, groups):
    channels = 4
    x = jax.random.normal(KEY, (2, *[6] * len(spatial), channels))
    conv = nn.Conv(channels, spatial, feature_group_count=groups, use_bias=False, kernel_init=flaxinit.dirac(groups))
    params = conv.init(jax.random.key(0), x)
    assert params["params"]["kernel"].shape == (*spatial, channels // groups, channels)
    np.testing.assert_array_equal(conv.apply(params, x), x)


def test_dirac_with_more_outputs_copies_each_group_and_zeros_the_rest():
    w = np.asarray(flaxinit.dirac(groups=2)(KEY, (3, 3, 2, 6)))
    assert w.sum() == 4 and w[1, 1, 0, 0] == w[1, 1, 1, 1] == w[1, 1, 0, 3] == w[1, 1, 1, 4] == 1.0


def test_identity_dense_layer_passes_its_input():
    x = jax.random.normal(KEY, (5, 7))
    dense = nn.Dense(7, kernel_init=flaxinit.eye(), use_bias=False)
    np.testing.assert_array_equal(dense.apply(dense.init(jax.random.key(0), x), x), x)
    assert flaxinit.identity(0.5)(KEY, (3, 2)).tolist() == [[0.5, 0.0], [0.0, 0.5], [0.0, 0.0]]


@pytest.mark.parametrize("sparsity,rows", [(0.1, 100), (0.25, 8), (0.5, 33), (0.0, 10), (1.0, 10)])
def test_sparse_has_exactly_ceil_sparsity_rows_zeros_per_column(sparsity, rows):
    init = flaxinit.sparse(sparsity, stddev=0.2)
    w = np.asarray(init(KEY, (rows, 300)))
    zeros = math.ceil(sparsity * rows)
    assert np.all((w == 0).sum(axis=0) == zeros)
    nonzero = w[w != 0]
    if nonzero.size > 100:  # the rest is N(0, 0.2^2): sample std within 5 of its standard errors
        se = 0.2 / math.sqrt(2 * nonzero.size)
        assert abs(nonzero.std() - 0.2) < 5 * se


def test_sparse_columns_differ():
    w = np.asarray(flaxinit.sparse(0.5)(KEY, (16, 40)))
    patterns = {tuple(col == 0) for col in w.T}
    assert len(patterns) > 30  # uniformly random rows per column, not one pattern


@pytest.mark.parametrize("shape,column_axis", [((6, 4), -1), ((4, 6), -1), ((3, 3, 8, 16), -1), ((10, 3), 0)])
def test_orthogonal_has_orthonormal_columns_or_rows(shape, column_axis):
    w = np.asarray(flaxinit.orthogonal(2.0, column_axis)(KEY, shape), np.float64) / 2.0
    m = np.moveaxis(w, column_axis, -1).reshape(-1, shape[column_axis])
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, np.eye(len(gram)), atol=32 * 2.0**-24 * math.sqrt(max(m.shape)))


def test_delta_orthogonal_is_orthogonal_at_the_centre_and_zero_elsewhere():
    w = np.asarray(flaxinit.delta_orthogonal()(KEY, (3, 3, 4, 6)), np.float64)
    centre = w[1, 1]
    np.testing.assert_allclose(centre @ centre.T, np.eye(4), atol=32 * 2.0**-24 * math.sqrt(6))
    w[1, 1] = 0
    assert not w.any()


@pytest.mark.parametrize(
    "init,shape,match",
    [
        (flaxinit.dirac(), (4, 4), "dirac needs a 1-d, 2-d or 3-d conv kernel"),
        (flaxinit.dirac(groups=3), (3, 3, 4, 4), "do not split into groups=3"),
        (flaxinit.identity(), (3, 3, 4), "identity needs a 2-d kernel"),
        (flaxinit.sparse(), (3, 3, 4), "sparse needs a 2-d kernel"),
        (flaxinit.delta_orthogonal(), (4, 4), "rank 3 to 5"),
        (flaxinit.delta_orthogonal(), (3, 3, 8, 4), "in <= out channels"),
        (flaxinit.orthogonal(), (5,), "rank >= 2"),
        (flaxinit.orthogonal(column_axis=2), (4, 4), "column_axis=2 is out of range"),
    ],
)
def test_shapes_they_cannot_take(init, shape, match):
    with pytest.raises(ValueError, match=match):
        init(KEY, shape)


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: flaxinit.sparse(1.5), ValueError, r"sparsity must be a fraction in \[0, 1\]"),
        (lambda: flaxinit.sparse(-0.1), ValueError, "sparsity must be >= 0"),
        (lambda: flaxinit.dirac(groups=0), ValueError, "groups must be an integer >= 1"),
        (lambda: flaxinit.orthogonal(column_axis=(0, 1)), TypeError, "column_axis must be one int"),
        (lambda: flaxinit.identity("2"), TypeError, "gain must be a finite real number"),
        (lambda: flaxinit.orthogonal(dtype="int32"), TypeError, "dtype must be a real floating dtype"),
    ],
)
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_default_dtype_and_call_dtype():
    init = flaxinit.orthogonal(dtype="bfloat16")
    assert init(KEY, (4, 4)).dtype == jnp.bfloat16
    assert init(KEY, (4, 4), jnp.float32).dtype == jnp.float32
