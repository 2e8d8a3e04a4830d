"""Schemes with structure, not just a scale: orthogonal, delta-orthogonal, identity, Dirac, sparse.

jax's ``orthogonal`` and ``delta_orthogonal`` (same names, arguments and, for float32,
float64, complex64 and complex128, values), and PyTorch's / Keras' ``eye``/``Identity``,
``dirac_`` and ``sparse_``.
Every one takes ``out_sharding`` (jax's orthogonal ones raise ``NotImplementedError``):
the QR factorization behind the orthogonal schemes runs on one device (XLA has no
distributed QR), so it needs the whole ``rows x cols`` matrix in one device's memory;
its result is then placed with ``jax.device_put(..., out_sharding)``. The values never
depend on the sharding.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from flaxinit import _checks, _sampling
from flaxinit._base import Initializer

__all__ = ["delta_orthogonal", "dirac", "eye", "identity", "orthogonal", "sparse"]


def _canonical_dtype(init: Initializer) -> None:
    if init.dtype is not None:
        object.__setattr__(init, "dtype", init._check_dtype(init.dtype).name)


def _orthogonal_kernel(key, shape, dtype, scale, column_axis):
    """jax's orthogonal: QR of a normal (rows, cols) matrix, signs of R's diagonal folded in.

    For a complex dtype, of a complex normal matrix: a Haar-distributed unitary (jax's too).
    """
    rows, cols = math.prod(shape) // shape[column_axis], shape[column_axis]
    q = jax.random.orthogonal(key, rows, (), _sampling.sampling_dtype(dtype), cols)
    q = jnp.moveaxis(q.reshape(*np.delete(shape, column_axis), cols), -1, column_axis)
    scale = scale if isinstance(scale, int | float) else jnp.asarray(scale, q.dtype)
    return (scale * q).astype(dtype)


@_sampling.scaled_jit(static=(1, 2, 4, 5))
def _orthogonal(key, shape, dtype, scale, column_axis, out_sharding=None):
    return _sampling.place(_orthogonal_kernel(key, shape, dtype, scale, column_axis), out_sharding)


@_sampling.scaled_jit(static=(1, 2, 4, 5))
def _delta_orthogonal(key, shape, dtype, scale, column_axis, out_sharding=None):
    # one program: the matrix and its placement at the spatial centre fuse
    center = tuple((k - 1) // 2 for k in shape[:-2])
    matrix = _orthogonal_kernel(key, shape[-2:], dtype, scale, column_axis)
    return _sampling.place(jnp.zeros(shape, dtype).at[center].set(matrix), out_sharding)


@dataclasses.dataclass(frozen=True)
class Orthogonal(Initializer):
    """See :func:`orthogonal`."""

    name = "orthogonal"
    scale: float = 1.0
    column_axis: int = -1
    dtype: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", _checks.check_scalar(self.scale, "scale"))
        object.__setattr__(self, "column_axis", _checks.check_axes(self.column_axis, "column_axis"))
        if not isinstance(self.column_axis, int):
            raise TypeError(f"column_axis must be one int, got {self.column_axis!r}")
        _canonical_dtype(self)

    def _complex_ok(self) -> bool:
        return True  # as jax's: a unitary kernel

    def _draw(self, key, shape, dtype, out_sharding):
        if len(shape) < 2:
            raise ValueError(f"orthogonal needs a kernel of rank >= 2, got shape {shape}")
        if not -len(shape) <= self.column_axis < len(shape):
            raise ValueError(f"column_axis={self.column_axis} is out of range for shape {shape}")
        return _orthogonal(key, shape, dtype, self.scale, self.column_axis % len(shape), out_sharding)


def orthogonal(scale: float = 1.0, column_axis: int = -1, dtype: DTypeLike | None = None) -> Orthogonal:
    """A (semi-)orthogonal kernel times ``scale``, as ``jax.nn.initializers.orthogonal`` (Saxe et al.).

    The kernel, flattened to a ``(rows, cols)`` matrix with ``cols = shape[column_axis]``,
    has orthonormal columns if ``rows >= cols``, else orthonormal rows: the QR factor of
    a standard-normal matrix with the signs of R's diagonal folded in (Haar-distributed).
    A complex dtype gives a unitary kernel (QR of a complex normal matrix), as jax's does.

    Args:
      scale: the factor (the kernel's singular values): a real number or a 0-d array.
      column_axis: the axis that indexes the columns.
      dtype: the default dtype of the weights.

    Returns:
      An initializer.

    Examples:
      >>> import jax, jax.numpy as jnp, flaxinit
      >>> w = flaxinit.orthogonal()(jax.random.key(0), (6, 4))
      >>> bool(jnp.allclose(w.T @ w, jnp.eye(4), atol=1e-5))
      True
      >>> u = flaxinit.orthogonal()(jax.random.key(0), (6, 4), jnp.complex64)
      >>> bool(jnp.allclose(u.conj().T @ u, jnp.eye(4), atol=1e-5))
      True
    """
    return Orthogonal(scale, column_axis, dtype)


@dataclasses.dataclass(frozen=True)
class DeltaOrthogonal(Orthogonal):
    """See :func:`delta_orthogonal`."""

    name = "delta_orthogonal"

    def _draw(self, key, shape, dtype, out_sharding):
        if len(shape) not in (3, 4, 5):
            raise ValueError(f"delta_orthogonal needs a 1-d, 2-d or 3-d conv kernel (rank 3 to 5), got shape {shape}")
        if shape[-1] < shape[-2]:
            raise ValueError(f"delta_orthogonal needs in <= out channels (shape[-2] <= shape[-1]), got shape {shape}")
        return _delta_orthogonal(key, shape, dtype, self.scale, self.column_axis % 2, out_sharding)


def delta_orthogonal(scale: float = 1.0, column_axis: int = -1, dtype: DTypeLike | None = None) -> DeltaOrthogonal:
    """An orthogonal ``(in, out)`` matrix at a conv kernel's spatial centre, zeros elsewhere.

    As ``jax.nn.initializers.delta_orthogonal`` (Xiao et al., 2018): the conv then starts as
    an orthogonal map of the channels at every position. The centre is ``(k - 1) // 2``
    along each spatial axis; ``in <= out`` channels. A complex dtype gives a unitary matrix.

    Args:
      scale: the factor on the orthogonal matrix: a real number or a 0-d array.
      column_axis: the axis of the ``(in, out)`` matrix that indexes its columns.
      dtype: the default dtype of the weights.

    Returns:
      An initializer for rank-3, -4 and -5 kernels.

    Examples:
      >>> import jax, flaxinit
      >>> w = flaxinit.delta_orthogonal()(jax.random.key(0), (3, 3, 4, 4))
      >>> float(abs(w[0, 0]).sum()), w[1, 1].shape
      (0.0, (4, 4))
    """
    return DeltaOrthogonal(scale, column_axis, dtype)


@dataclasses.dataclass(frozen=True)
class Identity(Initializer):
    """See :func:`identity`."""

    name = "identity"
    gain: float = 1.0
    dtype: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "gain", _checks.check_real(self.gain, "gain"))
        _canonical_dtype(self)

    def _draw(self, key, shape, dtype, out_sharding):
        del key  # deterministic
        if len(shape) != 2:
            raise ValueError(f"identity needs a 2-d kernel, got shape {shape}")
        return _sampling.place(self.gain * jnp.eye(*shape, dtype=dtype), out_sharding)


def identity(gain: float = 1.0, dtype: DTypeLike | None = None) -> Identity:
    """``gain`` times the identity matrix (ones on the main diagonal of a non-square kernel).

    PyTorch's ``eye_`` and Keras' ``Identity(gain)``. A dense layer with this kernel (and
    zero bias) passes its input through, at init.

    Examples:
      >>> import jax, flaxinit
      >>> flaxinit.identity(2.0)(jax.random.key(0), (2, 3)).tolist()
      [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]
    """
    return Identity(gain, dtype)


#: PyTorch's name for :func:`identity`.
eye = identity


@dataclasses.dataclass(frozen=True)
class Dirac(Initializer):
    """See :func:`dirac`."""

    name = "dirac"
    groups: int = 1
    dtype: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", _checks.check_int(self.groups, "groups"))
        _canonical_dtype(self)

    def _draw(self, key, shape, dtype, out_sharding):
        del key  # deterministic
        if len(shape) not in (3, 4, 5):
            raise ValueError(f"dirac needs a 1-d, 2-d or 3-d conv kernel (rank 3 to 5), got shape {shape}")
        per_group, rest = divmod(shape[-1], self.groups)
        if rest:
            raise ValueError(f"dirac: the {shape[-1]} output channels do not split into groups={self.groups}")
        kernel = np.zeros(shape, np.float32)
        center = tuple((k - 1) // 2 for k in shape[:-2])
        for g in range(self.groups):
            for d in range(min(per_group, shape[-2])):
                kernel[(*center, d, g * per_group + d)] = 1.0
        return _sampling.place(jnp.asarray(kernel, dtype), out_sharding)


def dirac(groups: int = 1, dtype: DTypeLike | None = None) -> Dirac:
    """A conv kernel whose convolution is the identity, per group: PyTorch's ``dirac_``.

    For a flax kernel ``(*spatial, in_per_group, out)`` and ``groups`` groups of
    ``out / groups`` output channels, output channel ``g * out/groups + d`` reads input
    channel ``d`` of its group at the spatial centre ``(k - 1) // 2`` (the tap a stride-1
    ``"SAME"`` conv aligns with the output position), for ``d < min(out/groups, in)``. Use
    ``feature_group_count=groups`` on the conv; with as many outputs as inputs the conv
    starts as the identity map.

    Args:
      groups: the conv's number of groups (``feature_group_count``); it divides ``out``.
      dtype: the default dtype of the weights.

    Returns:
      An initializer for rank-3, -4 and -5 kernels.

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, flaxinit
      >>> conv = nn.Conv(3, (3, 3), kernel_init=flaxinit.dirac(), use_bias=False)
      >>> x = jax.random.normal(jax.random.key(0), (1, 5, 5, 3))
      >>> bool(jnp.array_equal(conv.apply(conv.init(jax.random.key(1), x), x), x))
      True
    """
    return Dirac(groups, dtype)


@dataclasses.dataclass(frozen=True)
class Sparse(Initializer):
    """See :func:`sparse`."""

    name = "sparse"
    sparsity: float = 0.1
    stddev: float = 0.01
    dtype: str | None = None

    def __post_init__(self) -> None:
        sparsity = _checks.check_real(self.sparsity, "sparsity", minimum=0.0)
        if sparsity > 1:
            raise ValueError(f"sparsity must be a fraction in [0, 1], got {sparsity!r}")
        object.__setattr__(self, "sparsity", sparsity)
        object.__setattr__(self, "stddev", _checks.check_real(self.stddev, "stddev"))
        _canonical_dtype(self)

    def zeros_per_column(self, rows: int) -> int:
        """``ceil(sparsity * rows)``: the zeros in every column."""
        return math.ceil(self.sparsity * rows)

    def _draw(self, key, shape, dtype, out_sharding):
        if len(shape) != 2:
            raise ValueError(f"sparse needs a 2-d kernel, got shape {shape}")
        return _sparse(key, shape, dtype, self.stddev, self.zeros_per_column(shape[0]), out_sharding)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _sparse(key, shape, dtype, stddev, zeros, out_sharding=None):
    k_values, k_rows = jax.random.split(key)
    values = _sampling.normal(k_values, shape, np.dtype(np.float32), stddev)
    # the rows of each column's `zeros` smallest uniforms are zeroed: a uniformly random subset
    order = jnp.argsort(jax.random.uniform(k_rows, shape), axis=0)
    rank = jnp.argsort(order, axis=0)  # each entry's position within its column's order
    return _sampling.place(jnp.where(rank < zeros, 0.0, values).astype(dtype), out_sharding)


def sparse(sparsity: float = 0.1, stddev: float = 0.01, dtype: DTypeLike | None = None) -> Sparse:
    """PyTorch's ``sparse_`` (Martens, 2010): ``N(0, stddev^2)``, exactly ``ceil(sparsity * rows)`` zeros per column.

    For a flax kernel ``(in, out)`` a column is one output unit: each unit keeps a fixed
    number of nonzero incoming weights, at uniformly random rows (the same array rule as
    torch's, whose ``(out, in)`` weights put the zeros per input instead).

    Args:
      sparsity: the fraction of each column set to zero, in ``[0, 1]``.
      stddev: the standard deviation of the nonzero weights.
      dtype: the default dtype of the weights.

    Returns:
      An initializer for 2-d kernels.

    Examples:
      >>> import jax, flaxinit
      >>> w = flaxinit.sparse(0.25)(jax.random.key(0), (8, 3))
      >>> (w == 0).sum(axis=0).tolist()
      [2, 2, 2]
    """
    return Sparse(sparsity, stddev, dtype)
