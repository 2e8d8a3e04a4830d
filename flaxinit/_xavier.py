"""Xavier (Glorot) schemes: standard ``U(±1/sqrt(n))`` and normalized ``U(±sqrt(6/(n+m)))``."""

from __future__ import annotations

from typing import Unpack

from flaxinit._base import FanOptions, FanScheme

__all__ = ["xavier_normalized", "xavier_standard"]


def xavier_standard(**options: Unpack[FanOptions]) -> FanScheme:
    r"""Standard Xavier: ``U(-b, b)`` with ``b = gain / sqrt(fan_in)``.

    Glorot & Bengio's "commonly used heuristic", and PyTorch's default ``nn.Linear`` /
    ``nn.Conv`` weight init (``kaiming_uniform_(a=sqrt(5))`` is ``U(±1/sqrt(fan_in))``).
    With an all-ones input its mean |pre-activation| is ``g(fan_in) / sqrt(fan_in)``,
    which falls from 0.5 to ``sqrt(2 / (3 pi)) = 0.4607`` as ``fan_in`` grows, not 1.

    Args:
      **options: the :class:`flaxinit.FanOptions` (axes or ``einsum``, fan overrides,
        ``gain``, ``dtype``); ``fan_out`` is accepted and unused.

    Returns:
      A :class:`flaxinit.FanScheme`: ``init(key, shape, dtype=jnp.float32) -> jax.Array``.

    Examples:
      >>> import jax, flaxinit
      >>> init = flaxinit.xavier_standard()
      >>> init.bound((4, 3))
      0.5
      >>> init(jax.random.key(0), (4, 3)).shape
      (4, 3)
    """
    return FanScheme.build("xavier_standard", "uniform", "xavier_standard", {}, options)


def xavier_normalized(**options: Unpack[FanOptions]) -> FanScheme:
    r"""Normalized Xavier (Glorot uniform): ``U(-b, b)``, ``b = gain * sqrt(6 / (fan_in + fan_out))``.

    Same distribution as ``jax.nn.initializers.glorot_uniform()`` (whose scale jax computes
    in the weights' dtype, so the two can differ by one rounding of the bound).

    Args:
      **options: the :class:`flaxinit.FanOptions`.

    Returns:
      A :class:`flaxinit.FanScheme`.

    Examples:
      >>> import flaxinit
      >>> flaxinit.xavier_normalized().bound((2, 1))
      1.4142135623730951
    """
    return FanScheme.build("xavier_normalized", "uniform", "xavier_normalized", {}, options)
