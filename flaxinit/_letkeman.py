"""Letkeman schemes: bounds that make the expected |pre-activation| exactly 1."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Literal

from flaxinit import _checks, magnitude
from flaxinit._base import UniformScheme

__all__ = ["letkeman_normalized", "letkeman_standard"]

_METHODS = ("exact", "article")


def _check_constants(constants: Mapping[str, float] | None, method: str, expected: Mapping[str, float]):
    """Validates ``constants`` and returns them as a sorted tuple of (name, value) pairs."""
    if constants is None:
        return None
    if method != "article":
        raise ValueError("constants only apply to method='article'; method='exact' has none to set")
    if not isinstance(constants, Mapping):
        raise TypeError(f"constants must be a mapping like {dict(expected)!r}, got {constants!r}")
    if set(constants) != set(expected):
        raise ValueError(
            f"constants must have exactly the keys {sorted(expected)} "
            f"(e.g. {dict(expected)!r}), got {sorted(constants)}"
        )
    return tuple(sorted((k, _checks.check_real(v, f"constants[{k!r}]")) for k, v in constants.items()))


@dataclasses.dataclass(frozen=True, kw_only=True)
class _LetkemanMixin:
    method: str = "exact"
    constants: tuple[tuple[str, float], ...] | None = None

    _published = magnitude.ARTICLE_STANDARD_CONSTANTS

    def _check_letkeman(self) -> None:
        _checks.check_choice(self.method, "method", _METHODS)
        constants = self.constants
        if isinstance(constants, tuple):  # already canonical (e.g. dataclasses.replace)
            constants = dict(constants)
        object.__setattr__(self, "constants", _check_constants(constants, self.method, self._published))

    def article_constants(self) -> dict[str, float]:
        """The constants the ``"article"`` method uses: refitted ones if given, else published."""
        return dict(self.constants) if self.constants else dict(self._published)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LetkemanStandard(_LetkemanMixin, UniformScheme):
    name = "letkeman_standard"

    def __post_init__(self):
        super().__post_init__()
        self._check_letkeman()

    def _needed_fans(self):
        return True, False

    def _unit_bound(self, fan_in, fan_out):
        if self.method == "exact":
            return 1.0 / magnitude.expected_abs_sum(fan_in)
        return 1.0 / (math.sqrt(fan_in) * magnitude.article_standard(fan_in, **self.article_constants()))


@dataclasses.dataclass(frozen=True, kw_only=True)
class LetkemanNormalized(_LetkemanMixin, UniformScheme):
    name = "letkeman_normalized"
    _published = magnitude.ARTICLE_NORMALIZED_CONSTANTS

    def __post_init__(self):
        super().__post_init__()
        self._check_letkeman()

    def _unit_bound(self, fan_in, fan_out):
        n, m = fan_in, fan_out
        if self.method == "exact":
            g = magnitude.expected_abs_sum
            return (n + m) / (m * g(n) + n * g(m))
        return math.sqrt(6.0 / (n + m)) / magnitude.article_normalized(n, m, **self.article_constants())


def letkeman_standard(
    method: Literal["exact", "article"] = "exact",
    constants: Mapping[str, float] | None = None,
    *,
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (),
    fan_in: int | None = None,
    fan_out: int | None = None,
    gain: float = 1.0,
) -> LetkemanStandard:
    r"""Standard Letkeman: ``U(-b, b)``, ``b = gain / g(fan_in)``.

    ``g(n) = E|U_1 + ... + U_n|`` for ``U_i ~ U(-1, 1)``
    (:func:`flaxinit.magnitude.expected_abs_sum`). Fed a vector of ones, every
    pre-activation then has expected magnitude exactly 1 (at ``gain=1``).
    ``method="article"`` uses the article's stand-in instead:
    ``b = 1 / (sqrt(fan_in) * M(fan_in))`` with ``M`` from
    :func:`flaxinit.magnitude.article_standard`.

    Args:
      method: ``"exact"`` (default) or ``"article"``.
      constants: for ``method="article"`` only, refitted constants ``{"a": ...}``
        (e.g. from ``mc.fit_standard``); default the published ``{"a": 0.039}``.
      in_axis: axis or axes of the kernel's input dimension.
      out_axis: axis or axes of the kernel's output dimension.
      batch_axis: axis or axes to ignore.
      fan_in: overrides the fan-in. ``fan_in=1`` is the Active Node Method, which
        the article always applies to one-hot and softmax inputs (bound 2).
      fan_out: overrides the fan-out (unused by this scheme; accepted for uniformity).
      gain: positive factor on the bound.

    Returns:
      An initializer ``init(key, shape, dtype=jnp.float32) -> jax.Array``.

    Examples:
      >>> import flaxinit
      >>> flaxinit.letkeman_standard().bound((3, 10))
      1.2307692307692308
      >>> flaxinit.letkeman_standard(fan_in=1).bound((65, 10))  # ANM for a one-hot input
      2.0
    """
    return LetkemanStandard(
        method=method,
        constants=constants,
        in_axis=in_axis,
        out_axis=out_axis,
        batch_axis=batch_axis,
        fan_in=fan_in,
        fan_out=fan_out,
        gain=gain,
    )


def letkeman_normalized(
    method: Literal["exact", "article"] = "exact",
    constants: Mapping[str, float] | None = None,
    *,
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (),
    fan_in: int | None = None,
    fan_out: int | None = None,
    gain: float = 1.0,
) -> LetkemanNormalized:
    r"""Normalized Letkeman: ``U(-b, b)``, ``b = gain * (n + m) / (m g(n) + n g(m))``.

    ``n = fan_in``, ``m = fan_out``. With all-ones inputs and all-ones errors, the
    average expected magnitude over all ``n + m`` nodes of the forward and backward
    passes is exactly 1. ``method="article"`` uses the article's stand-in
    ``b = sqrt(6 / (n + m)) / A(n, m)`` (:func:`flaxinit.magnitude.article_normalized`).

    Args:
      method: ``"exact"`` (default) or ``"article"``.
      constants: for ``method="article"`` only, refitted ``{"a": ..., "b": ...}``
        (e.g. from ``mc.fit_normalized``); default the published ``{"a": 0.073, "b": -0.08}``.
      in_axis: axis or axes of the kernel's input dimension.
      out_axis: axis or axes of the kernel's output dimension.
      batch_axis: axis or axes to ignore.
      fan_in: overrides the fan-in (``fan_in=1``: Active Node Method).
      fan_out: overrides the fan-out.
      gain: positive factor on the bound.

    Returns:
      An initializer ``init(key, shape, dtype=jnp.float32) -> jax.Array``.

    Examples:
      >>> import flaxinit
      >>> flaxinit.letkeman_normalized().bound((1, 1))
      2.0
    """
    return LetkemanNormalized(
        method=method,
        constants=constants,
        in_axis=in_axis,
        out_axis=out_axis,
        batch_axis=batch_axis,
        fan_in=fan_in,
        fan_out=fan_out,
        gain=gain,
    )
