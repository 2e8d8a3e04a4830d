"""flaxinit.gain against 20-digit mpmath quadrature, its closed forms, and the fixed point it promises.

The reference for each activation is an mpmath implementation of the same formula as
jax's, integrated against the standard normal density with ``mp.quad`` at 20 digits,
split at the activation's kinks; ``gain`` must agree to 1e-10 relative (its quadrature
is float64 Gauss-Legendre, far more accurate than that; the bound leaves room for the
last bits of jax's float64 activations, which other CPUs may round differently).
"""

import functools
import math

import jax
import mpmath as mp
import pytest

import flaxinit
import mc

mp.mp.dps = 20
SELU_SCALE = mp.mpf("1.0507009873554804934193349852946")
SELU_ALPHA = mp.mpf("1.6732632423543772848170429916717")


def _sigmoid(x):
    return 1 / (1 + mp.exp(-x))


def _softplus(x):
    return mp.log1p(mp.exp(x))


def _elu(x, alpha=1):
    return x if x > 0 else alpha * (mp.exp(x) - 1)


def _gelu_tanh(x):
    return x / 2 * (1 + mp.tanh(mp.sqrt(2 / mp.pi) * (x + mp.mpf("0.044715") * x**3)))


def _hard_sigmoid(x):
    return min(max(x + 3, 0), 6) / 6


def _sparse_plus(x):
    return 0 if x <= -1 else (x + 1) ** 2 / 4 if x < 1 else x


# name -> (jax.nn keyword arguments, mpmath activation)
REFERENCES = {
    "sigmoid": ({}, _sigmoid),
    "tanh": ({}, mp.tanh),
    "gelu": ({}, _gelu_tanh),
    "gelu_exact": ({"approximate": False}, lambda x: x * (1 + mp.erf(x / mp.sqrt(2))) / 2),
    "silu": ({}, lambda x: x * _sigmoid(x)),
    "elu": ({}, _elu),
    "selu": ({}, lambda x: SELU_SCALE * (x if x > 0 else SELU_ALPHA * (mp.exp(x) - 1))),
    "celu": ({"alpha": 0.5}, lambda x: max(x, 0) + min(0, mp.mpf("0.5") * (mp.exp(x / mp.mpf("0.5")) - 1))),
    "softplus": ({}, _softplus),
    "mish": ({}, lambda x: x * mp.tanh(_softplus(x))),
    "log_sigmoid": ({}, lambda x: -_softplus(-x)),
    "soft_sign": ({}, lambda x: x / (1 + abs(x))),
    "relu6": ({}, lambda x: min(max(x, 0), 6)),
    "hard_tanh": ({}, lambda x: min(max(x, -1), 1)),
    "hard_sigmoid": ({}, _hard_sigmoid),
    "hard_silu": ({}, lambda x: x * _hard_sigmoid(x)),
    "squareplus": ({}, lambda x: (x + mp.sqrt(x * x + 4)) / 2),
    "sparse_plus": ({}, _sparse_plus),
    "sparse_sigmoid": ({}, lambda x: 0 if x <= -1 else (x + 1) / 2 if x < 1 else 1),
}
KINKS = [-mp.inf, -6, -3, -1, 0, 1, 3, 6, mp.inf]


def reference_gain(phi, mode: str) -> float:
    if mode == "forward":
        f = phi
    else:  # the derivative of each smooth piece (no node lands on a kink)
        f = functools.partial(lambda x, phi: mp.diff(phi, x), phi=phi)
    moment = mp.quad(lambda z: f(z) ** 2 * mp.npdf(z), KINKS)
    return float(1 / mp.sqrt(moment))


@pytest.mark.parametrize("mode", ["forward", "backward"])
@pytest.mark.parametrize("label", list(REFERENCES))
def test_gain_matches_a_20_digit_reference(label, mode):
    params, phi = REFERENCES[label]
    name = "gelu" if label == "gelu_exact" else label
    assert flaxinit.gain(name, mode, **params) == pytest.approx(reference_gain(phi, mode), rel=1e-10)


def test_callables_and_names_agree():
    assert flaxinit.gain(jax.nn.silu) == flaxinit.gain("silu")
    assert flaxinit.gain(lambda x: 2.0 * x) == pytest.approx(0.5, rel=1e-14)  # E[(2z)^2] = 4


@pytest.mark.parametrize(
    "name,params,expected",
    [
        ("linear", {}, 1.0),
        ("relu", {}, math.sqrt(2)),
        ("leaky_relu", {}, math.sqrt(2 / (1 + 0.01**2))),
        ("leaky_relu", {"negative_slope": 0.2}, math.sqrt(2 / 1.04)),
    ],
)
@pytest.mark.parametrize("mode", ["forward", "backward"])
def test_closed_forms(name, params, expected, mode):
    assert flaxinit.gain(name, mode, **params) == expected


@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
def test_quadrature_reproduces_the_closed_forms(name):
    """The numerical path (a callable) agrees with the formula to float64 quadrature error."""
    phi = getattr(jax.nn, name)
    assert flaxinit.gain(lambda x: phi(x)) == pytest.approx(flaxinit.gain(name), rel=1e-13)


@pytest.mark.parametrize(
    "activation,exc,match",
    [
        ("softmax", ValueError, "not an elementwise jax.nn activation"),
        ("nope", ValueError, "not an elementwise jax.nn activation"),
        (3.0, TypeError, "activation must be a jax.nn name or a callable"),
        (lambda x: x - x.mean(), ValueError, "not elementwise"),
        (lambda x: 0.0 * x, ValueError, "no finite gain"),
    ],
)
def test_bad_activations(activation, exc, match):
    with pytest.raises(exc, match=match):
        flaxinit.gain(activation)


def test_bad_mode():
    with pytest.raises(ValueError, match="mode must be one of 'forward', 'backward'"):
        flaxinit.gain("tanh", "both")


@pytest.mark.slow  # 2 x 1,024 ten-layer networks of width 256: CI's second tier
def test_the_gain_keeps_unit_preactivations_where_he_does_not():
    """10 GELU layers of width 256 fed standard-normal inputs (first layer std 1/sqrt(n)), 1,024 networks.

    With std gain/sqrt(n) after the first layer the expected second moment is 1 at the
    fixed point q = 1. At finite width the mean drifts upward from it, slowly here: the
    fixed point is unstable for GELU (its stability 1.14 > 1, recorded by the gain-depth
    demo) and E[gelu(sqrt(q) z)^2] is convex in q. Measured 1.12 ± 0.02 at layer 10, so
    the band 0.15 leaves room; He's (gain sqrt 2, short of GELU's 1.53) falls by about
    0.85 per layer, below 0.3 by layer 8: both far apart beyond sampling and rounding.
    """
    g = flaxinit.gain("gelu")
    first = flaxinit.variance_scaling(1.0, "fan_in", "normal")
    exact = mc.depth_test(0, [256] * 11, "gelu", [first] + [flaxinit.variance_scaling(g * g, "fan_in", "normal")] * 9,
                          1024, inputs="gaussian")  # fmt: skip
    he = mc.depth_test(0, [256] * 11, "gelu", [first] + [flaxinit.kaiming_normal()] * 9, 1024, inputs="gaussian")
    assert all(abs(m - 1) < 0.15 for m in exact.preactivation_ms), exact.preactivation_ms
    assert max(exact.preactivation_ms_se) < 0.05
    assert he.preactivation_ms[7] < 0.3 and he.preactivation_ms[-1] < 0.25 * exact.preactivation_ms[-1]
