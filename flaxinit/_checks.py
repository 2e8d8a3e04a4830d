"""Argument checks shared by every scheme: one place for every error message."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

Axes = int | tuple[int, ...]


#: Complex weights: the schemes that take them, as jax's functions of those names do.
COMPLEX_SCHEMES = (
    "normal, variance_scaling and its aliases (glorot_*, he_*, lecun_*), orthogonal, delta_orthogonal, "
    "constant, zeros and ones"
)


def check_dtype(dtype: DTypeLike | None, *, complex_ok: bool = False, scheme: str | None = None) -> np.dtype:
    """Returns ``dtype`` as a NumPy dtype if it is a real floating type (None: float32).

    With ``complex_ok``, complex64 and complex128 are accepted too; otherwise a complex dtype
    is an error that names ``scheme`` and the schemes that take one.
    """
    if dtype is None:
        return np.dtype(jnp.float32)
    try:
        dt = jnp.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"dtype must be a real floating dtype such as jnp.float32, got {dtype!r}") from err
    if complex_ok and jnp.issubdtype(dt, jnp.complexfloating):
        return dt
    if jnp.issubdtype(dt, jnp.complexfloating):
        raise TypeError(
            f"dtype must be a real floating dtype{f' for {scheme}' if scheme else ''}, got {dt.name}; "
            f"complex weights are drawn by {COMPLEX_SCHEMES} (as in jax.nn.initializers)"
        )
    if not jnp.issubdtype(dt, jnp.floating):
        raise TypeError(
            f"dtype must be a real floating dtype (float16, bfloat16, float32 or float64), "
            f"got {dt.name}; integer and bool weights are not supported"
        )
    return dt


def check_shape(shape: Any, *, empty: bool = False) -> tuple[int, ...]:
    """Returns ``shape`` as a tuple of positive Python ints (``empty=True``: zero allowed too)."""
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError as err:
        raise TypeError(f"shape must be a sequence of positive integers, got {shape!r}") from err
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral):
            raise TypeError(f"shape must be a sequence of positive integers, got {shape!r}")
        if d < 0 or (d == 0 and not empty):
            allowed = "non-negative dimensions" if empty else "positive dimensions (no zero-size or negative axes)"
            raise ValueError(f"shape must have {allowed}, got {dims}")
    return tuple(int(d) for d in dims)


def check_positive_int(value: Any, name: str) -> int:
    """Returns ``value`` as a positive Python int, or raises naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer or None, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    return int(value)


def check_int(value: Any, name: str, minimum: int = 1, why: str = "") -> int:
    """Returns ``value`` as a Python int ``>= minimum``, or raises naming ``name``.

    ``why`` (optional) is appended to the ``ValueError`` to say where the bound comes from.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{why}, got {value!r}")
    return int(value)


def check_key(key: Any, *, seeds: bool = False) -> jax.Array:
    """Returns ``key`` if it is one PRNG key, or raises naming ``key``.

    Accepted: a typed key (``jax.random.key(seed)``, any impl), or a legacy raw key
    (``jax.random.PRNGKey(seed)``: a 1-D uint32 array), traced or not; with ``seeds=True``
    also an int seed, returned as ``jax.random.key(seed)``.
    """
    if seeds and isinstance(key, numbers.Integral) and not isinstance(key, bool):
        return jax.random.key(int(key))
    expected = "a PRNG key from jax.random.key(seed) (or a legacy uint32 key from jax.random.PRNGKey)"
    expected += ", or an int seed" if seeds else ""
    if not isinstance(key, jax.Array | np.ndarray):
        raise TypeError(f"key must be {expected}; got {type(key).__name__} {key!r:.80}")
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"key must be a single PRNG key (shape ()), got an array of keys of shape {key.shape}")
        return key
    if key.dtype != np.uint32 or key.ndim != 1:
        raise TypeError(f"key must be {expected}; got an array of dtype {key.dtype} and shape {key.shape}")
    return key


def check_optional_fan(value: Any, name: str) -> int | None:
    return None if value is None else check_positive_int(value, name)


def check_real(value: Any, name: str, *, minimum: float | None = None, strict: bool = False) -> float:
    """Returns ``value`` as a finite float (``TypeError`` otherwise), optionally bounded below
    (``ValueError``), naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite real number, got {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be {relation} {minimum}, got {value!r}")
    return float(value)


def check_scalar(
    value: Any, name: str, *, minimum: float | None = None, strict: bool = False, traced: bool = True
) -> float | jax.Array:
    """A finite real number given as a Python number or as a 0-d real array (NumPy or jax).

    A Python number or a concrete array is returned as a Python float, checked as
    :func:`check_real` checks it (so an initializer built with ``jnp.array(0.5)`` equals,
    hashes and serializes as one built with ``0.5``). A traced array (an argument of a
    ``jax.jit``-ed function) is returned as an array of at least float32 precision: its
    value is unknown until run time, so only its shape and dtype are checked (``traced=False``:
    an error instead).
    """
    if isinstance(value, np.ndarray | jax.Array):
        if value.ndim != 0 or not (
            jnp.issubdtype(value.dtype, jnp.floating) or jnp.issubdtype(value.dtype, jnp.integer)
        ):
            raise TypeError(
                f"{name} must be a finite real number or a 0-d real array, "
                f"got an array of dtype {value.dtype} and shape {value.shape}"
            )
        if isinstance(value, jax.core.Tracer):
            if not traced:
                raise TypeError(f"{name} must be a concrete number (a Python number or a 0-d array), not traced")
            return value.astype(jnp.promote_types(value.dtype, jnp.float32))
        value = float(value)
    return check_real(value, name, minimum=minimum, strict=strict)


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """Returns ``value`` if it is one of ``choices``, or raises ``ValueError`` naming ``name``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_axes(value: Any, name: str) -> Axes:
    """Returns an axis spec as an int or a tuple of ints (lists become tuples)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        if all(isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in value):
            return tuple(int(a) for a in value)
    raise TypeError(f"{name} must be an int or a sequence of ints, got {value!r}")


def as_tuple(axes: Axes) -> tuple[int, ...]:
    return (axes,) if isinstance(axes, int) else axes


def check_literal_overlap(in_axis: Axes, out_axis: Axes, batch_axis: Axes) -> None:
    """Rejects axis specs that overlap as written (before the rank is known)."""
    groups = {"in_axis": as_tuple(in_axis), "out_axis": as_tuple(out_axis), "batch_axis": as_tuple(batch_axis)}
    seen: dict[int, str] = {}
    for name, axes in groups.items():
        for a in axes:
            if a in seen:
                raise ValueError(f"{name} and {seen[a]} overlap at axis {a}; each axis may appear once")
            seen[a] = name
