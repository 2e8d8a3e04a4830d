"""Base classes: an initializer is a frozen, hashable config with a ``__call__``.

Every factory in :mod:`flaxinit` returns an instance of a subclass of
:class:`Initializer`. Instances satisfy ``jax.nn.initializers.Initializer``
(``init(key, shape, dtype) -> jax.Array``), compare and hash by value (so they are
safe as static arguments and as fields of Flax modules), and round-trip through a
plain, JSON-friendly dict with :meth:`Initializer.get_config` and :func:`flaxinit.get`.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import jax
import numpy as np
from jax.typing import DTypeLike

from flaxinit import _checks, _sampling, magnitude
from flaxinit._fans import compute_fans


@dataclasses.dataclass(frozen=True)
class Initializer(abc.ABC):
    """Base class of every flaxinit initializer."""

    #: The name :func:`flaxinit.get` knows the scheme by.
    name: ClassVar[str]

    def __call__(
        self,
        key: jax.Array,
        shape: tuple[int, ...],
        dtype: DTypeLike | None = None,
        out_sharding: Any = None,
    ) -> jax.Array:
        """Draws weights of ``shape`` and ``dtype`` (default float32) from ``key``."""
        key = _checks.check_key(key)
        dims = _checks.check_shape(shape)
        return self._draw(key, dims, _checks.check_dtype(dtype), out_sharding)

    @abc.abstractmethod
    def _draw(self, key: jax.Array, shape: tuple[int, ...], dtype: np.dtype, out_sharding: Any) -> jax.Array: ...

    def expected_abs_sum(self, shape: tuple[int, ...], terms: int) -> float | None:
        """``E|w_1 + ... + w_terms|`` for iid weights drawn as for a kernel of ``shape``.

        The exact expectation behind the Monte Carlo tests (``None`` where the scheme has
        no closed form). With an all-ones input, ``terms = fan_in`` gives the mean
        |pre-activation|.
        """
        return None

    def get_config(self) -> dict[str, Any]:
        """Returns ``{"name": ..., **arguments}``: plain Python values, JSON-serializable.

        ``flaxinit.get(init.get_config()) == init`` for every initializer.
        """
        config: dict[str, Any] = {"name": self.name}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, tuple):
                value = dict(value) if field.name == "constants" else list(value)
            config[field.name] = value
        return config


@dataclasses.dataclass(frozen=True, kw_only=True)
class FanScheme(Initializer):
    """An initializer whose scale depends on the kernel's fan-in and/or fan-out.

    Attributes:
      in_axis: axis or axes of the input dimension (see :func:`flaxinit.compute_fans`).
      out_axis: axis or axes of the output dimension.
      batch_axis: axis or axes to ignore.
      fan_in: explicit override of the fan-in computed from the shape. ``fan_in=1`` is
        the Active Node Method: for a one-hot or softmax input the total input
        magnitude is 1, so the layer has one active input.
      fan_out: explicit override of the fan-out computed from the shape.
      gain: a positive factor applied to the scale (bound or standard deviation).
    """

    in_axis: int | tuple[int, ...] = -2
    out_axis: int | tuple[int, ...] = -1
    batch_axis: int | tuple[int, ...] = ()
    fan_in: int | None = None
    fan_out: int | None = None
    gain: float = 1.0

    def __post_init__(self) -> None:
        axes = {n: _checks.check_axes(getattr(self, n), n) for n in ("in_axis", "out_axis", "batch_axis")}
        _checks.check_literal_overlap(**axes)
        for n, v in axes.items():
            object.__setattr__(self, n, v)
        object.__setattr__(self, "fan_in", _checks.check_optional_fan(self.fan_in, "fan_in"))
        object.__setattr__(self, "fan_out", _checks.check_optional_fan(self.fan_out, "fan_out"))
        object.__setattr__(self, "gain", _checks.check_real(self.gain, "gain", minimum=0.0, strict=True))

    def _needed_fans(self) -> tuple[bool, bool]:
        """Which of (fan_in, fan_out) the scale depends on."""
        return True, True

    def fans(self, shape: tuple[int, ...]) -> tuple[int | None, int | None]:
        """The ``(fan_in, fan_out)`` this scheme uses for ``shape`` (None where unused)."""
        need_in, need_out = self._needed_fans()
        fan_in = self.fan_in if need_in else None
        fan_out = self.fan_out if need_out else None
        if (need_in and fan_in is None) or (need_out and fan_out is None):
            computed = compute_fans(shape, self.in_axis, self.out_axis, self.batch_axis)
            fan_in = computed[0] if need_in and fan_in is None else fan_in
            fan_out = computed[1] if need_out and fan_out is None else fan_out
        return fan_in, fan_out


@dataclasses.dataclass(frozen=True, kw_only=True)
class UniformScheme(FanScheme):
    """Weights ``U(-bound, bound)`` with a bound set by the fans."""

    @abc.abstractmethod
    def _unit_bound(self, fan_in: int | None, fan_out: int | None) -> float:
        """The bound at ``gain = 1``."""

    def bound(self, shape: tuple[int, ...]) -> float:
        """The bound ``b`` of ``U(-b, b)`` for a kernel of ``shape`` (a Python float)."""
        return self.gain * self._unit_bound(*self.fans(_checks.check_shape(shape)))

    def expected_abs_sum(self, shape, terms):
        return self.bound(shape) * magnitude.expected_abs_sum(terms)

    def _draw(self, key, shape, dtype, out_sharding):
        return _sampling.uniform(key, shape, dtype, self.bound(shape), out_sharding)
