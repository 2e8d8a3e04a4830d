"""Letkeman schemes: bounds that make the expected |pre-activation| exactly 1."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Unpack

from flaxinit._base import FanOptions, FanScheme

__all__ = ["letkeman_normalized", "letkeman_standard"]


def letkeman_standard(
    method: Literal["exact", "article"] = "exact",
    constants: Mapping[str, float] | None = None,
    **options: Unpack[FanOptions],
) -> FanScheme:
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
      **options: the :class:`flaxinit.FanOptions`. ``fan_in=1`` is the Active Node Method,
        which the article always applies to one-hot and softmax inputs (bound 2);
        ``fan_out`` is accepted and unused.

    Returns:
      A :class:`flaxinit.FanScheme`.

    Examples:
      >>> import flaxinit
      >>> flaxinit.letkeman_standard().bound((3, 10))
      1.2307692307692308
      >>> flaxinit.letkeman_standard(fan_in=1).bound((65, 10))  # ANM for a one-hot input
      2.0
    """
    params = {"method": method, "constants": constants}
    return FanScheme.build("letkeman_standard", "uniform", "letkeman_standard", params, options)


def letkeman_normalized(
    method: Literal["exact", "article"] = "exact",
    constants: Mapping[str, float] | None = None,
    **options: Unpack[FanOptions],
) -> FanScheme:
    r"""Normalized Letkeman: ``U(-b, b)``, ``b = gain * (n + m) / (m g(n) + n g(m))``.

    ``n = fan_in``, ``m = fan_out``. With all-ones inputs and all-ones errors, the
    average expected magnitude over all ``n + m`` nodes of the forward and backward
    passes is exactly 1. ``method="article"`` uses the article's stand-in
    ``b = sqrt(6 / (n + m)) / A(n, m)`` (:func:`flaxinit.magnitude.article_normalized`).

    Args:
      method: ``"exact"`` (default) or ``"article"``.
      constants: for ``method="article"`` only, refitted ``{"a": ..., "b": ...}``
        (e.g. from ``mc.fit_normalized``); default the published ``{"a": 0.073, "b": -0.08}``.
      **options: the :class:`flaxinit.FanOptions`.

    Returns:
      A :class:`flaxinit.FanScheme`.

    Examples:
      >>> import flaxinit
      >>> flaxinit.letkeman_normalized().bound((1, 1))
      2.0
    """
    params = {"method": method, "constants": constants}
    return FanScheme.build("letkeman_normalized", "uniform", "letkeman_normalized", params, options)
