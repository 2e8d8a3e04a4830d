"""Einsum fans: what an equation sums over, checked against real Flax layers.

``nnx.Einsum`` hands its initializer the raw kernel shape, so jax's axis rules miscount:
a ``d, n, h`` attention kernel of ``"btd,dnh->btnh"`` gets ``fan_in = d * n``. With
``einsum=`` flaxinit counts ``fan_in = d`` (what each output sums over), the same as
linen's ``DenseGeneral``, which flattens the kernel to ``(d, n * h)`` before calling its
initializer. Statistical checks use 5 standard errors of the sample standard deviation.
"""

import math

import flax.linen as nn
import jax
import numpy as np
import pytest
from flax import nnx

import flaxinit

D, N, H = 64, 4, 16


@pytest.mark.parametrize(
    "equation,shape,fans",
    [
        ("btd,dnh->btnh", (D, N, H), (D, N * H)),  # attention projection: d contracted, (n, h) out
        ("btnh,nhd->btd", (N, H, D), (N * H, D)),  # attention output: (n, h) contracted
        ("bd,df->bf", (5, 7), (5, 7)),  # a dense layer
        ("bnd,ndh->bnh", (3, 5, 7), (5, 7)),  # n in all three: a batch dimension
        ("bd,dk->b", (5, 7), (35, 1)),  # k summed by the kernel alone counts in fan_in
        ("...d,dh->...h".replace("...", "b"), (8, 2), (8, 2)),
    ],
)
def test_fans_of_an_equation(equation, shape, fans):
    assert flaxinit.compute_fans(shape, einsum=equation) == fans
    assert flaxinit.lecun_normal(einsum=equation).fans(shape) == (fans[0], None)


@pytest.mark.parametrize(
    "equation,shape,exc,match",
    [
        ("btd,dnh", (D, N, H), ValueError, "must look like 'lhs,kernel->out'"),
        ("btd->btnh", (D, N, H), ValueError, "must look like"),
        ("bt1,dnh->btnh", (D, N, H), ValueError, "letter labels"),
        ("btd,dnh->btnh", (D, N), ValueError, "gives the kernel 3 axes"),
        ("btd,ddh->btnh", (D, D, H), ValueError, "a label repeats within kernel"),
        ("btd,dnh->btnhz", (D, N, H), ValueError, r"output labels \['z'\] come from no operand"),
        (3, (D, N, H), TypeError, "einsum must be an equation string"),
    ],
)
def test_bad_equations(equation, shape, exc, match):
    with pytest.raises(exc, match=match):
        flaxinit.compute_fans(shape, einsum=equation)


def test_einsum_and_axes_are_exclusive():
    with pytest.raises(ValueError, match="two ways to say the same thing"):
        flaxinit.lecun_normal(einsum="bd,df->bf", in_axis=0)
    with pytest.raises(ValueError, match="two ways to say the same thing"):
        flaxinit.compute_fans((5, 7), batch_axis=0, einsum="bd,df->bf")


def test_nnx_einsum_gets_the_layer_fans_and_matches_dense_general():
    equation = "btd,dnh->btnh"
    right = flaxinit.lecun_normal(einsum=equation)
    layer = nnx.Einsum(equation, (D, N, H), kernel_init=right, rngs=nnx.Rngs(0))
    kernel = np.asarray(layer.kernel[...])
    assert kernel.shape == (D, N, H) and right.stddev((D, N, H)) == 1 / math.sqrt(D)
    se = kernel.std() / math.sqrt(2 * kernel.size)
    assert abs(kernel.std() - 1 / math.sqrt(D)) < 5 * se
    # the default counts fan_in = d * n: std sqrt(n) = 2 times too small
    default = nnx.Einsum(equation, (D, N, H), kernel_init=flaxinit.lecun_normal(), rngs=nnx.Rngs(0))
    assert abs(np.asarray(default.kernel[...]).std() * math.sqrt(N) - 1 / math.sqrt(D)) < 5 * math.sqrt(N) * se
    # linen DenseGeneral flattens the kernel to (d, n * h) first: the same fans, the same scale
    dense = nn.DenseGeneral(features=(N, H), axis=-1, kernel_init=flaxinit.lecun_normal())
    shapes = jax.eval_shape(dense.init, jax.random.key(0), np.zeros((2, 3, D), np.float32))
    assert shapes["params"]["kernel"].shape == (D, N, H)
    assert flaxinit.lecun_normal().multiplier((D, N * H)) == right.multiplier((D, N, H))
