"""The scale rules: pure functions of the fans (and the rule's parameters) that set a scheme's scale.

Every fan-based scheme is one :class:`flaxinit.FanScheme`: a distribution, a rule from
:data:`RULES`, the rule's parameters, and the common options (axes, fan overrides,
``einsum``, ``gain``). A rule states its result in the form its paper does:

* ``"bound"``: the half-width ``b`` of a symmetric uniform ``U(-b, b)``;
* ``"std"``: the weights' standard deviation;
* ``"variance"``: the weights' variance (jax's ``variance_scaling``);
* ``"scale"``: the sampler's multiplier itself (jax's ``normal(stddev)``,
  ``uniform(scale)``, ``truncated_normal(stddev)``), for which no conversion applies.

:func:`sampler_scale` converts it to the multiplier of the distribution's unit draw, by the
same arithmetic the schemes have always used (``sqrt(3) * std`` for a uniform scheme given
a standard deviation, ``sqrt(3 * variance)``, ``sqrt(variance) / 0.8796...`` for jax's
truncated normal), so a given key keeps giving the same bits.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp

from flaxinit import _checks, magnitude

#: Unit draws of each distribution (what the sampler scales): U(-1, 1), U[0, 1), N(0, 1),
#: and N(0, 1) truncated to [lower, upper].
DISTRIBUTIONS = ("uniform", "uniform_positive", "normal", "truncated_normal")
FORMS = ("bound", "std", "variance", "scale")
#: Standard deviation of N(0, 1) truncated to [-2, 2] (jax's constant, to the digit).
TRUNCATED_STD_2 = 0.87962566103423978


@dataclasses.dataclass(frozen=True)
class Rule:
    """One scale rule.

    Attributes:
      form: what ``formula`` returns (see the module docstring).
      formula: ``formula(fan_in, fan_out, **params) -> float``; unused fans are None.
      needs: ``needs(**params) -> (fan_in?, fan_out?)``: which fans the formula reads.
      check: ``check(**params) -> params``: validates and canonicalizes the parameters
        (hashable values), raising errors that name the argument.
    """

    form: str
    formula: Callable[..., float]
    needs: Callable[..., tuple[bool, bool]] = lambda **params: (True, True)
    check: Callable[..., dict[str, Any]] = lambda **params: params


# --- Xavier ------------------------------------------------------------------------------


def _xavier_standard(fan_in, fan_out):
    return 1.0 / math.sqrt(fan_in)


def _xavier_normalized(fan_in, fan_out):
    return math.sqrt(6.0 / (fan_in + fan_out))


# --- Kaiming -----------------------------------------------------------------------------

KAIMING_MODES = ("fan_in", "fan_out")


def _kaiming(fan_in, fan_out, mode, negative_slope):
    fan = fan_in if mode == "fan_in" else fan_out
    return math.sqrt(2.0 / (1.0 + negative_slope**2) / fan)


def _check_kaiming(mode, negative_slope):
    _checks.check_choice(mode, "mode", KAIMING_MODES)
    return {"mode": mode, "negative_slope": _checks.check_real(negative_slope, "negative_slope", minimum=0.0)}


def _one_fan(mode, **_):
    return mode == "fan_in", mode == "fan_out"


# --- Letkeman ----------------------------------------------------------------------------

LETKEMAN_METHODS = ("exact", "article")


def _check_letkeman(published: Mapping[str, float]) -> Callable[..., dict[str, Any]]:
    def check(method, constants):
        _checks.check_choice(method, "method", LETKEMAN_METHODS)
        if isinstance(constants, tuple):  # already canonical (a FanScheme rebuilt by dataclasses.replace)
            constants = dict(constants)
        if constants is None:
            return {"method": method, "constants": None}
        if method != "article":
            raise ValueError("constants only apply to method='article'; method='exact' has none to set")
        if not isinstance(constants, Mapping):
            raise TypeError(f"constants must be a mapping like {dict(published)!r}, got {constants!r}")
        if set(constants) != set(published):
            raise ValueError(
                f"constants must have exactly the keys {sorted(published)} "
                f"(e.g. {dict(published)!r}), got {sorted(constants)}"
            )
        pairs = tuple(sorted((k, _checks.check_real(v, f"constants[{k!r}]")) for k, v in constants.items()))
        return {"method": method, "constants": pairs}

    return check


def _article(constants, published):
    return dict(constants) if constants else dict(published)


def _letkeman_standard(fan_in, fan_out, method, constants):
    if method == "exact":
        return 1.0 / magnitude.expected_abs_sum(fan_in)
    a = _article(constants, magnitude.ARTICLE_STANDARD_CONSTANTS)
    return 1.0 / (math.sqrt(fan_in) * magnitude.article_standard(fan_in, **a))


def _letkeman_normalized(fan_in, fan_out, method, constants):
    n, m = fan_in, fan_out
    if method == "exact":
        g = magnitude.expected_abs_sum
        return (n + m) / (m * g(n) + n * g(m))
    ab = _article(constants, magnitude.ARTICLE_NORMALIZED_CONSTANTS)
    return math.sqrt(6.0 / (n + m)) / magnitude.article_normalized(n, m, **ab)


# --- jax's variance scaling and the fixed scales -------------------------------------------

VARIANCE_MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")


def _variance_scaling(fan_in, fan_out, scale, mode, distribution):
    denominator = {
        "fan_in": lambda: fan_in,
        "fan_out": lambda: fan_out,
        "fan_avg": lambda: (fan_in + fan_out) / 2,
        "fan_geo_avg": lambda: (fan_in * fan_out) ** 0.5,
    }[mode]()
    return scale / denominator


def _check_variance_scaling(scale, mode, distribution):
    _checks.check_choice(mode, "mode", VARIANCE_MODES)
    scale = _checks.check_scalar(scale, "scale", minimum=0.0, strict=True)
    return {"scale": scale, "mode": mode, "distribution": distribution}


def _variance_needs(scale, mode, distribution):
    return mode != "fan_out", mode != "fan_in"


def _fixed(fan_in, fan_out, **params):
    """jax's ``normal(stddev)``, ``uniform(scale)``, ``truncated_normal(stddev, lower, upper)``: no fans."""
    return params["stddev"] if "stddev" in params else params["scale"]


def _check_fixed(**params):
    # the truncation points set the unit draw (a static argument): concrete numbers only
    static = ("lower", "upper")
    out = {name: _checks.check_scalar(value, name, traced=name not in static) for name, value in params.items()}
    if "lower" in out and not out["lower"] < out["upper"]:
        raise ValueError(f"lower must be < upper, got lower={out['lower']!r}, upper={out['upper']!r}")
    return out


def _no_fans(**_):
    return False, False


RULES: dict[str, Rule] = {
    "xavier_standard": Rule("bound", _xavier_standard, lambda: (True, False)),
    "xavier_normalized": Rule("bound", _xavier_normalized),
    "kaiming": Rule("std", _kaiming, _one_fan, _check_kaiming),
    "letkeman_standard": Rule(
        "bound", _letkeman_standard, lambda **_: (True, False), _check_letkeman(magnitude.ARTICLE_STANDARD_CONSTANTS)
    ),
    "letkeman_normalized": Rule(
        "bound", _letkeman_normalized, check=_check_letkeman(magnitude.ARTICLE_NORMALIZED_CONSTANTS)
    ),
    "variance_scaling": Rule("variance", _variance_scaling, _variance_needs, _check_variance_scaling),
    "fixed": Rule("scale", _fixed, _no_fans, _check_fixed),
}


# --- from a rule's value to the sampler's multiplier -------------------------------------------


def unit_std(distribution: str, lower: float = -2.0, upper: float = 2.0) -> float:
    """Standard deviation of the distribution's unit draw (before the sampler's multiplier)."""
    if distribution == "uniform":
        return 1.0 / math.sqrt(3.0)
    if distribution == "uniform_positive":
        return 1.0 / math.sqrt(12.0)
    if distribution == "normal":
        return 1.0
    if (lower, upper) == (-2.0, 2.0):
        return TRUNCATED_STD_2
    return _truncated_std(lower, upper)


def _truncated_std(lower: float, upper: float) -> float:
    """Standard deviation of N(0, 1) truncated to [lower, upper]."""

    def pdf(x):
        return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi) if math.isfinite(x) else 0.0

    def cdf(x):
        return 0.5 * math.erfc(-x / math.sqrt(2))

    mass = cdf(upper) - cdf(lower)
    tail = (lower * pdf(lower) if math.isfinite(lower) else 0.0) - (upper * pdf(upper) if math.isfinite(upper) else 0.0)
    mean = (pdf(lower) - pdf(upper)) / mass
    return math.sqrt(1.0 + tail / mass - mean * mean)


def _sqrt(x: Any) -> Any:
    """``math.sqrt`` of a Python number, ``jnp.sqrt`` of a traced one (a scale given as a jit argument)."""
    return math.sqrt(x) if isinstance(x, int | float) else jnp.sqrt(x)


def sampler_scale(form: str, value: float, distribution: str, lower: float = -2.0, upper: float = 2.0) -> float:
    """The multiplier of the distribution's unit draw for a rule's ``value`` of ``form``.

    A Python float for a Python ``value``; for a traced ``value`` (an argument given as a
    traced array) the same arithmetic on the array, in its dtype.
    """
    if form == "scale":
        return value
    if distribution == "uniform":  # the forms' own arithmetic, as the schemes always computed it
        return {"bound": value, "std": math.sqrt(3.0) * value, "variance": _sqrt(3.0 * value)}[form]
    std = {"bound": value / math.sqrt(3.0), "std": value, "variance": _sqrt(value)}[form]
    return std if distribution == "normal" else std / unit_std(distribution, lower, upper)
