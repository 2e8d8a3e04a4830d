"""Fixed-scale draws with jax's names: ``normal(stddev)``, ``uniform(scale)``, ``truncated_normal(stddev)``.

No fans: any rank works (biases and embeddings included). A given key gives
``jax.nn.initializers``' values for float32 and float64, and for complex64 and complex128
where jax takes them (``normal``; jax's ``uniform`` and ``truncated_normal`` draw real
weights only, and so do these); narrow dtypes are drawn in float32 and rounded once. As in
jax, the scale may be a Python number or a 0-d array (a concrete one is read as a float;
a traced one, inside ``jit``, is cast to the weights' sampling dtype), and the default
``dtype`` may be given in jax's position: ``normal(0.02, jnp.bfloat16)``.
"""

from __future__ import annotations

from typing import Unpack

from jax.typing import DTypeLike

from flaxinit._base import FanOptions, FanScheme

__all__ = ["normal", "truncated_normal", "uniform"]


def normal(stddev: float = 1e-2, dtype: DTypeLike | None = None, **options: Unpack[FanOptions]) -> FanScheme:
    """``N(0, stddev^2)`` weights (times ``gain``), as ``jax.nn.initializers.normal``.

    Complex dtypes are accepted, as by jax: ``stddev`` times ``jax.random.normal``'s complex
    draw, whose real and imaginary parts are independent ``N(0, 1/2)`` (``E|w|^2 = stddev^2``).

    Args:
      stddev: the standard deviation: a real number, or a 0-d array (jax's test passes
        ``jnp.array(1.0)``); the weights keep the requested dtype either way.
      dtype: the default dtype of the weights (jax's position; a call's ``dtype`` wins).
      **options: the :class:`flaxinit.FanOptions` (``gain``; the fan options are unused).

    Returns:
      A :class:`flaxinit.FanScheme`.

    Examples:
      >>> import jax, jax.numpy as jnp, flaxinit
      >>> flaxinit.normal(0.5).stddev((7,))
      0.5
      >>> flaxinit.normal(0.5)(jax.random.key(0), (3, 4), jnp.complex64).dtype
      dtype('complex64')
      >>> flaxinit.normal(jnp.array(1.0))(jax.random.key(0), (3, 4), jnp.bfloat16).dtype
      dtype(bfloat16)
    """
    return FanScheme.build("normal", "normal", "fixed", {"stddev": stddev}, options, dtype)


def uniform(scale: float = 1e-2, dtype: DTypeLike | None = None, **options: Unpack[FanOptions]) -> FanScheme:
    """``U[0, scale)`` weights, as ``jax.nn.initializers.uniform`` (one-sided, unlike the symmetric schemes).

    Real dtypes only, as jax's (a complex ``dtype`` is an error).

    Args:
      scale: the upper end of the interval: a real number or a 0-d array.
      dtype: the default dtype of the weights (jax's position; a call's ``dtype`` wins).
      **options: the :class:`flaxinit.FanOptions` (``gain``; the fan options are unused).

    Returns:
      A :class:`flaxinit.FanScheme`.

    Examples:
      >>> import jax, flaxinit
      >>> w = flaxinit.uniform(2.0)(jax.random.key(0), (1000,))
      >>> bool(w.min() >= 0.0), bool(w.max() < 2.0)
      (True, True)
    """
    return FanScheme.build("uniform", "uniform_positive", "fixed", {"scale": scale}, options, dtype)


def truncated_normal(
    stddev: float = 1e-2,
    dtype: DTypeLike | None = None,
    lower: float = -2.0,
    upper: float = 2.0,
    **options: Unpack[FanOptions],
) -> FanScheme:
    """``stddev`` times ``N(0, 1)`` truncated to ``[lower, upper]``, as ``jax.nn.initializers.truncated_normal``.

    As in jax, ``stddev`` scales the unit truncated draw (the weights' standard deviation
    is ``stddev`` times that of the truncated unit normal, 0.8796 for ``[-2, 2]``). The
    arguments are jax's, in jax's order (``dtype`` second). Real dtypes only, as jax's (a
    complex ``dtype`` is an error).

    Args:
      stddev: the multiplier of the truncated unit normal: a real number or a 0-d array.
      dtype: the default dtype of the weights (a call's ``dtype`` wins).
      lower: the lower truncation point, in units of ``stddev`` (a concrete number).
      upper: the upper truncation point, ``> lower``.
      **options: the :class:`flaxinit.FanOptions` (``gain``; the fan options are unused).

    Returns:
      A :class:`flaxinit.FanScheme`.

    Examples:
      >>> import flaxinit
      >>> round(flaxinit.truncated_normal(1.0).stddev((3,)), 6)
      0.879626
    """
    params = {"stddev": stddev, "lower": lower, "upper": upper}
    return FanScheme.build("truncated_normal", "truncated_normal", "fixed", params, options, dtype)
