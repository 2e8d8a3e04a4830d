"""Initializers: frozen, hashable configs with a ``__call__``; the one type behind every fan-based scheme.

Every factory in :mod:`flaxinit` returns an :class:`Initializer`. Instances satisfy
``jax.nn.initializers.Initializer`` (``init(key, shape, dtype) -> jax.Array``), compare and
hash by value (so they are safe as static arguments and as fields of Flax modules), and
round-trip through a plain, JSON-friendly dict with :meth:`Initializer.get_config` and
:func:`flaxinit.get`.

Every scheme whose scale comes from a formula (Xavier, Kaiming, Letkeman, jax's variance
scaling and its fixed-scale ``normal``/``uniform``/``truncated_normal``) is a
:class:`FanScheme`: a distribution, a scale rule of :mod:`flaxinit._rules` with its
parameters, and the options every such factory takes (:class:`FanOptions`). A named
factory is a thin call of :meth:`FanScheme.build`.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypedDict

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from flaxinit import _checks, _rules, _sampling, magnitude
from flaxinit._fans import compute_fans, parse_einsum


@dataclasses.dataclass(frozen=True)
class Initializer(abc.ABC):
    """Base class of every flaxinit initializer."""

    #: The name :func:`flaxinit.get` knows the scheme by.
    name: ClassVar[str]

    def __call__(
        self,
        key: jax.Array,
        shape: Sequence[int],
        dtype: DTypeLike | None = None,
        out_sharding: Any = None,
    ) -> jax.Array:
        """Draws weights of ``shape`` and ``dtype`` from ``key``.

        A shape with a zero-size dimension gives an empty array of that shape (as jax's
        initializers do). ``dtype`` defaults to the initializer's own ``dtype`` option
        where it has one, else float32; complex dtypes are accepted by the schemes whose
        jax namesakes accept them (``normal``, ``variance_scaling`` and its aliases,
        ``orthogonal``, ``delta_orthogonal``, the constants), an error elsewhere.
        ``out_sharding`` (a ``jax.sharding.Sharding``) places the result; for the same key
        the values do not depend on it.
        """
        key = _checks.check_key(key)
        dims = _checks.check_shape(shape, empty=True)
        default = getattr(self, "dtype", None)
        dtype = self._check_dtype(default if dtype is None else dtype)
        if 0 in dims:  # no weights to draw: an empty array, as jax's initializers return
            return _sampling.place(jnp.zeros(dims, dtype), out_sharding)
        return self._draw(key, dims, dtype, out_sharding)

    def _complex_ok(self) -> bool:
        """Whether the scheme draws complex weights (those of jax's schemes that do)."""
        return False

    def _check_dtype(self, dtype: DTypeLike | None) -> np.dtype:
        return _checks.check_dtype(dtype, complex_ok=self._complex_ok(), scheme=self.name)

    @abc.abstractmethod
    def _draw(self, key: jax.Array, shape: tuple[int, ...], dtype: np.dtype, out_sharding: Any) -> jax.Array: ...

    def expected_abs_sum(self, shape: tuple[int, ...], terms: int) -> float | None:
        """``E|w_1 + ... + w_terms|`` for iid weights drawn as for a kernel of ``shape``.

        The exact expectation behind the Monte Carlo tests (``None`` where the scheme has
        no closed form). With an all-ones input, ``terms = fan_in`` gives the mean
        |pre-activation|.
        """
        return None

    def stacked(self) -> Initializer | None:
        """This scheme for a stack of independent kernels along a new leading axis, or None.

        ``init.stacked()(key, (G, *shape))[g]`` is distributed as ``init(k, shape)`` (same
        fans, same scale), and the ``G`` kernels are independent: one call draws them all
        from one key. The Monte Carlo engine uses it to draw many small kernels at once.
        None where the scheme's draw is not elementwise (orthogonal, sparse, ...).
        """
        return None

    def get_config(self) -> dict[str, Any]:
        """Returns ``{"name": ..., **arguments}``: plain Python values, JSON-serializable.

        ``flaxinit.get(init.get_config()) == init`` for every initializer. A scale or value
        given as a concrete 0-d array was read as a Python float when the initializer was
        built, so it appears as one here; one given as a traced array (an initializer built
        inside ``jax.jit`` from a traced argument) stays that array, which no config can
        serialize (nor can such an initializer be hashed or compared).
        """
        config: dict[str, Any] = {"name": self.name}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            config[field.name] = list(value) if isinstance(value, tuple) else value
        return config


class FanOptions(TypedDict, total=False):
    """The options every fan-based factory takes, as keyword arguments.

    Attributes:
      in_axis: axis or axes of the kernel's input dimension (default -2).
      out_axis: axis or axes of the kernel's output dimension (default -1).
      batch_axis: axis or axes to ignore (default none).
      einsum: the layer's einsum equation (``"btd,dnh->btnh"``, the kernel the second
        operand), instead of the axes: the fans are then what the equation sums over
        (see :func:`flaxinit.compute_fans`).
      fan_in: overrides the fan-in computed from the shape. ``fan_in=1`` is the Active
        Node Method: for a one-hot or softmax input the total input magnitude is 1, so
        the layer has one active input.
      fan_out: overrides the fan-out computed from the shape.
      gain: a positive factor on the scale (the bound, or the standard deviation), for
        instance :func:`flaxinit.gain` of the activation that follows.
      dtype: the default dtype of the weights (a call's ``dtype`` wins), as jax's
        initializers take it.
    """

    in_axis: int | Sequence[int]
    out_axis: int | Sequence[int]
    batch_axis: int | Sequence[int]
    einsum: str | None
    fan_in: int | None
    fan_out: int | None
    gain: float
    dtype: DTypeLike | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class FanScheme(Initializer):
    """Weights from a distribution whose scale a rule sets from the kernel's fans.

    ``distribution`` is the unit draw (``"uniform"``: ``U(-1, 1)``; ``"uniform_positive"``:
    ``U[0, 1)``; ``"normal"``; ``"truncated_normal"``: ``N(0, 1)`` truncated to
    ``[lower, upper]``, default ``[-2, 2]``), ``rule`` a scale rule of
    :data:`flaxinit._rules.RULES` and ``params`` its parameters; the weights are the unit
    draw times ``gain * scale``. The other attributes are the :class:`FanOptions`.
    Build one with a factory (``flaxinit.xavier_standard()``, ...) or :func:`flaxinit.get`.
    """

    name: str
    distribution: str
    rule: str
    params: tuple[tuple[str, Any], ...] = ()
    in_axis: int | tuple[int, ...] = -2
    out_axis: int | tuple[int, ...] = -1
    batch_axis: int | tuple[int, ...] = ()
    einsum: str | None = None
    fan_in: int | None = None
    fan_out: int | None = None
    gain: float = 1.0
    dtype: str | None = None

    @classmethod
    def build(
        cls,
        name: str,
        distribution: str,
        rule: str,
        params: Mapping[str, Any],
        options: Mapping[str, Any],
        dtype: DTypeLike | None = None,
    ) -> FanScheme:
        """The scheme a named factory returns: ``name``'s rule and parameters, with the caller's
        options (``dtype``: a default dtype given in jax's position, not among them)."""
        unknown = sorted(set(options) - set(FanOptions.__annotations__))
        if unknown:
            raise TypeError(f"{name}() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}")
        if dtype is not None:
            options = {**options, "dtype": dtype}
        return cls(name=name, distribution=distribution, rule=rule, params=tuple(params.items()), **options)

    def __post_init__(self) -> None:
        _checks.check_choice(self.distribution, "distribution", _rules.DISTRIBUTIONS)
        rule = _rules.RULES[self.rule]
        object.__setattr__(self, "params", tuple(rule.check(**dict(self.params)).items()))
        axes = {n: _checks.check_axes(getattr(self, n), n) for n in ("in_axis", "out_axis", "batch_axis")}
        _checks.check_literal_overlap(**axes)
        for n, v in axes.items():
            object.__setattr__(self, n, v)
        if self.einsum is not None:
            parse_einsum(self.einsum)
            if (self.in_axis, self.out_axis, self.batch_axis) != (-2, -1, ()):
                raise ValueError("einsum= and in_axis/out_axis/batch_axis are two ways to say the same thing: give one")
        object.__setattr__(self, "fan_in", _checks.check_optional_fan(self.fan_in, "fan_in"))
        object.__setattr__(self, "fan_out", _checks.check_optional_fan(self.fan_out, "fan_out"))
        object.__setattr__(self, "gain", _checks.check_real(self.gain, "gain", minimum=0.0, strict=True))
        if self.dtype is not None:
            object.__setattr__(self, "dtype", self._check_dtype(self.dtype).name)

    def _complex_ok(self) -> bool:
        # as jax: its normal(stddev) and variance_scaling (every distribution) take complex
        # dtypes; its uniform(scale) and truncated_normal(stddev) do not
        return self.rule == "variance_scaling" or (self.rule == "fixed" and self.distribution == "normal")

    def __getattr__(self, name: str) -> Any:
        """The rule's parameters read as attributes: ``init.mode``, ``init.method``, ``init.scale``..."""
        for key, _ in self.__dict__.get("params", ()):
            if key == name:
                return self.arguments[name]
        raise AttributeError(f"{type(self).__name__} {self.__dict__.get('name')!r} has no attribute {name!r}")

    # --- the scale -------------------------------------------------------------------------

    @property
    def arguments(self) -> dict[str, Any]:
        """The rule's parameters as a dict (Letkeman's ``constants`` as a dict too)."""
        return {k: dict(v) if k == "constants" and v is not None else v for k, v in self.params}

    def fans(self, shape: Sequence[int]) -> tuple[int | None, int | None]:
        """The ``(fan_in, fan_out)`` this scheme uses for ``shape`` (None where the rule reads none)."""
        need_in, need_out = _rules.RULES[self.rule].needs(**dict(self.params))
        fan_in = self.fan_in if need_in else None
        fan_out = self.fan_out if need_out else None
        if (need_in and fan_in is None) or (need_out and fan_out is None):
            computed = compute_fans(shape, self.in_axis, self.out_axis, self.batch_axis, einsum=self.einsum)
            fan_in = computed[0] if need_in and fan_in is None else fan_in
            fan_out = computed[1] if need_out and fan_out is None else fan_out
        return fan_in, fan_out

    @property
    def truncation(self) -> tuple[float, float]:
        """``(lower, upper)`` of a truncated normal's unit draw."""
        params = dict(self.params)
        return params.get("lower", -2.0), params.get("upper", 2.0)

    def multiplier(self, shape: Sequence[int]) -> float:
        """The multiplier of the unit draw for a kernel of ``shape``: ``gain`` times the rule's scale."""
        rule = _rules.RULES[self.rule]
        value = rule.formula(*self.fans(_checks.check_shape(shape)), **dict(self.params))
        return self.gain * _rules.sampler_scale(rule.form, value, self.distribution, *self.truncation)

    def bound(self, shape: Sequence[int]) -> float:
        """The bound ``b`` of ``U(-b, b)`` for a kernel of ``shape`` (uniform schemes only)."""
        if self.distribution != "uniform":
            raise TypeError(f"bound applies to symmetric uniform schemes; {self.name} draws {self.distribution}")
        return self.multiplier(shape)

    def stddev(self, shape: Sequence[int]) -> float:
        """The weights' standard deviation for a kernel of ``shape``."""
        unit = _rules.unit_std(self.distribution, *self.truncation)
        return self.multiplier(shape) * unit if unit != 1.0 else self.multiplier(shape)

    def expected_abs_sum(self, shape, terms):
        if self.distribution == "uniform":
            return self.multiplier(shape) * magnitude.expected_abs_sum(terms)
        if self.distribution == "normal":
            return self.stddev(shape) * math.sqrt(2.0 * terms / math.pi)  # |N(0, terms s^2)|
        return None

    def stacked(self) -> FanScheme | None:
        if self.einsum is not None:
            return None

        def shifted(axes):  # non-negative axes move one place right; negative ones stay
            moved = tuple(a + 1 if a >= 0 else a for a in _checks.as_tuple(axes))
            return moved[0] if isinstance(axes, int) else moved

        batch = (0, *_checks.as_tuple(shifted(self.batch_axis)))
        in_axis, out_axis = shifted(self.in_axis), shifted(self.out_axis)
        return dataclasses.replace(self, in_axis=in_axis, out_axis=out_axis, batch_axis=batch)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"name": self.name, **self.arguments}
        for field in ("in_axis", "out_axis", "batch_axis", "einsum", "fan_in", "fan_out", "gain", "dtype"):
            value = getattr(self, field)
            config[field] = list(value) if isinstance(value, tuple) else value
        return config

    def _draw(self, key, shape, dtype, out_sharding):
        if jnp.issubdtype(dtype, jnp.complexfloating):
            # jax's arithmetic in the complex dtype: the rule's value (the stddev, or the
            # variance) cast to it, and the complex unit draw of the distribution
            rule = _rules.RULES[self.rule]
            value = rule.formula(*self.fans(shape), **dict(self.params))
            form = "variance" if rule.form == "variance" else "stddev"
            return _sampling.complex_draw(key, shape, dtype, value, self.gain, self.distribution, form, out_sharding)
        scale = self.multiplier(shape)
        if self.distribution == "normal":
            return _sampling.normal(key, shape, dtype, scale, out_sharding)
        if self.distribution == "truncated_normal":
            return _sampling.truncated_normal(key, shape, dtype, scale, *self.truncation, out_sharding)
        minval = -1.0 if self.distribution == "uniform" else 0.0
        return _sampling.uniform(key, shape, dtype, scale, out_sharding, minval)
