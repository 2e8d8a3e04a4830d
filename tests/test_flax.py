"""Every flaxinit scheme works as an initializer of ``flax.linen`` and ``flax.nnx`` layers.

Table-driven over every name in ``flaxinit.available()`` (``constant`` built with
``value=0.5``), this file checks:

* ``flax.linen``: ``Dense``, ``Conv`` (3x3), ``DenseGeneral`` (``features=(4, 5)``,
  ``axis=(-2, -1)`` on a 3-D input) and ``LSTMCell`` (``kernel_init`` and
  ``recurrent_kernel_init``), initialized under ``jax.jit``: kernel shapes, float32
  dtype, finiteness; the jitted init matches the eager one; the jitted init traces
  once for two keys; every kernel is bitwise ``init(key, shape)`` for the key and the
  (for ``DenseGeneral`` flattened) shape that Flax passed, so for ``Dense`` the kernel
  is exactly the initializer's draw from Flax's derived key; and, for
  ``UniformScheme``s, ``|w| <= init.bound(shape)``.
* ``flax.linen.with_partitioning(init, (None, "model"))`` in ``nn.Dense``: the param
  is an ``nn.Partitioned`` box named ``(None, "model")`` holding the unwrapped
  init's kernel for the same key, and the boxed variables apply.
* Eager vs jitted: ``init(key, shape, dtype)`` against the same call under
  ``jax.jit`` (initializer and shape static), for float32 and bfloat16.
* No retrace: the jitted draw traces once for two keys of one shape, even when a
  fresh but equal initializer is passed as the static argument each call.
* ``flax.nnx``: ``Linear(3, 4)`` and ``Conv(2, 4, (3, 3))`` built eagerly and by an
  ``nnx.jit``-ed constructor (which creates its ``nnx.Rngs`` inside): same checks.

"Matches" is bitwise, except between eager and jitted draws of normal schemes
(``kaiming_normal``): under ``jit``, XLA folds the scheme's standard deviation into
the ``sqrt(2)`` factor of ``jax.random.normal`` (``(sqrt2 * x) * s`` becomes
``(sqrt2 * s) * x``), which can move a float32 weight by up to two roundings on each
side. flaxinit jits its sampler with the scale static, so on this project's CPU the two
agree bitwise, but XLA promises neither grouping: the test allows the rounding bound
``4u |w|`` (``u = 2**-24``). The same holds for ``jax.nn.initializers.normal``.

Layers are tiny, and compilations are shared where possible, so the file stays fast.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from float_bounds import U32
from jax.sharding import PartitionSpec
from schemes import GENERIC, draws_at_random, make

import flaxinit

NAMES = GENERIC  # the rank-limited structured schemes have their own tests (test_structured.py)
SEED = 0
DTYPES = pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])


def is_random(init: flaxinit.Initializer) -> bool:
    return draws_at_random(init)


def is_normal(init: flaxinit.Initializer) -> bool:
    """Schemes whose sampler multiplies a normal draw (XLA may regroup its constants under jit)."""
    return getattr(init, "distribution", "") in ("normal", "truncated_normal") or init.name == "orthogonal"


def assert_bitwise_equal(actual: Any, desired: Any) -> None:
    """Same shape, same dtype, same bits (so -0.0 != 0.0)."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.dtype == desired.dtype, (actual.dtype, desired.dtype)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    uint = np.dtype(f"uint{8 * actual.dtype.itemsize}")
    np.testing.assert_array_equal(actual.view(uint), desired.view(uint))


def assert_jit_matches_eager(init: flaxinit.Initializer, jitted: Any, eager: Any) -> None:
    """Bitwise, except for normal schemes: within two float32 roundings on each side (XLA's
    constant folding under jit; see the module doc)."""
    if not is_normal(init):
        assert_bitwise_equal(jitted, eager)
        return
    jitted, eager = np.asarray(jitted), np.asarray(eager)
    assert jitted.dtype == eager.dtype and jitted.shape == eager.shape
    if jitted.dtype == np.float32:
        # (sqrt2 * z) * s and (sqrt2 * s) * z each round twice: each within (1 + u)^2 of exact
        a, b = jitted.astype(np.float64), eager.astype(np.float64)
        assert np.all(np.abs(a - b) <= 4 * U32 * np.maximum(np.abs(a), np.abs(b)))
    else:  # one ulp of float32 may flip one rounding to a narrower type
        a, b = jitted.astype(np.float32), eager.astype(np.float32)
        ulp = float(jnp.finfo(jitted.dtype).eps)
        np.testing.assert_array_less(np.abs(a - b), ulp * np.maximum(np.abs(a), np.abs(b)) + np.finfo(np.float32).tiny)


def assert_within_bound(init: flaxinit.Initializer, w: Any, shape: tuple[int, ...]) -> None:
    """``|w| <= init.bound(shape)`` for uniform schemes (no-op otherwise).

    The bound is compared in float32, the precision the weights are scaled in: a draw
    of exactly -1 gives ``-float32(bound)``, which may exceed the Python float by an ulp.
    """
    if getattr(init, "distribution", None) == "uniform":
        w = np.abs(np.asarray(w, np.float32))
        bound = np.float32(init.bound(shape))
        assert np.all(w <= bound), (float(w.max()), float(bound))


def assert_kernel_basics(w: Any, shape: tuple[int, ...], dtype: Any = jnp.float32) -> None:
    w = np.asarray(w)
    assert w.shape == shape
    assert w.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(w.astype(np.float32)))


class Recorder:
    """Wraps an initializer, counting its calls (traces, under jit) and, eagerly, recording ``(key, shape, dtype)``."""

    def __init__(self, init: flaxinit.Initializer) -> None:
        self.init = init
        self.calls: list[tuple[jax.Array, tuple[int, ...], Any]] = []

    def __call__(self, key, shape, dtype=jnp.float32, out_sharding=None):
        self.calls.append((key, tuple(shape), dtype))
        return self.init(key, shape, dtype, out_sharding)


# --------------------------------------------------------------------------- flax.linen


@dataclasses.dataclass(frozen=True)
class LinenCase:
    """A linen module around ``kernel_init``, its ``init`` arguments, and its kernels' paths and shapes."""

    build: Callable[[Callable], nn.Module]
    args: Callable[[], tuple]
    kernels: dict[tuple[str, ...], tuple[int, ...]]


_BATCH, _LSTM_IN, _LSTM_HIDDEN = 2, 2, 3

LINEN_CASES = {
    "Dense": LinenCase(
        build=lambda init: nn.Dense(4, kernel_init=init),
        args=lambda: (jnp.ones((_BATCH, 3)),),
        kernels={("kernel",): (3, 4)},
    ),
    "Conv3x3": LinenCase(
        build=lambda init: nn.Conv(2, (3, 3), kernel_init=init),
        args=lambda: (jnp.ones((1, 4, 4, 1)),),
        kernels={("kernel",): (3, 3, 1, 2)},
    ),
    "DenseGeneral": LinenCase(
        build=lambda init: nn.DenseGeneral(features=(4, 5), axis=(-2, -1), kernel_init=init),
        args=lambda: (jnp.ones((_BATCH, 2, 1)),),
        kernels={("kernel",): (2, 1, 4, 5)},
    ),
    "LSTMCell": LinenCase(
        build=lambda init: nn.LSTMCell(_LSTM_HIDDEN, kernel_init=init, recurrent_kernel_init=init),
        args=lambda: (
            (jnp.zeros((_BATCH, _LSTM_HIDDEN)), jnp.zeros((_BATCH, _LSTM_HIDDEN))),
            jnp.ones((_BATCH, _LSTM_IN)),
        ),
        kernels={
            **{(gate, "kernel"): (_LSTM_IN, _LSTM_HIDDEN) for gate in ("ii", "if", "ig", "io")},
            **{(gate, "kernel"): (_LSTM_HIDDEN, _LSTM_HIDDEN) for gate in ("hi", "hf", "hg", "ho")},
        },
    ),
}


def _param(variables: Any, path: tuple[str, ...]) -> Any:
    node = variables["params"]
    for part in path:
        node = node[part]
    return node


@pytest.mark.parametrize("case_name", list(LINEN_CASES))
@pytest.mark.parametrize("name", NAMES)
def test_linen_kernel_init(name, case_name):
    init = make(name)
    case = LINEN_CASES[case_name]
    key, other_key = jax.random.key(SEED), jax.random.key(SEED + 1)
    args = case.args()

    # jitted init: one trace (one initializer call per kernel) serves two keys
    tracer = Recorder(init)
    model_init = jax.jit(case.build(tracer).init)
    jitted = model_init(key, *args)
    other = model_init(other_key, *args)
    assert len(tracer.calls) == len(case.kernels)

    recorder = Recorder(init)
    eager = case.build(recorder).init(key, *args)
    assert len(recorder.calls) == len(case.kernels)

    for path, shape in case.kernels.items():
        w = _param(jitted, path)
        assert_kernel_basics(w, shape)
        assert_jit_matches_eager(init, w, _param(eager, path))
        assert is_random(init) != np.array_equal(w, _param(other, path))  # new key, new draw (random schemes)

    # Each call's direct redraw (reshaped: DenseGeneral asks for its flattened kernel) is one of the kernels.
    eager_kernels = {path: np.asarray(_param(eager, path)) for path in case.kernels}
    for call_key, call_shape, call_dtype in recorder.calls:
        direct = np.asarray(init(call_key, call_shape, call_dtype))
        assert direct.dtype == np.float32
        matches = [p for p, w in eager_kernels.items() if w.size == direct.size and w.tobytes() == direct.tobytes()]
        assert matches, f"no kernel equals init(key, {call_shape})"
        assert_within_bound(init, eager_kernels[matches[0]], call_shape)
        assert_within_bound(init, _param(jitted, matches[0]), call_shape)

    if case_name == "Dense":
        [(flax_key, shape, dtype)] = recorder.calls
        assert shape == (3, 4) and np.dtype(dtype) == np.float32
        assert_bitwise_equal(eager["params"]["kernel"], init(flax_key, shape))  # default dtype float32
        assert_jit_matches_eager(init, jitted["params"]["kernel"], init(flax_key, shape))
        assert is_random(init) != np.array_equal(jitted["params"]["kernel"], init(key, shape))  # flax folds the key
    if case_name == "DenseGeneral":
        # the initializer sees the flattened (prod(in), prod(out)) kernel: fans 2 and 20
        assert [call[1] for call in recorder.calls] == [(2, 20)]


@pytest.mark.parametrize("name", NAMES)
def test_linen_with_partitioning(name):
    init = make(name)
    x = jnp.ones((_BATCH, 3))
    key = jax.random.key(SEED)
    model = nn.Dense(4, kernel_init=nn.with_partitioning(init, (None, "model")))

    variables = jax.jit(model.init)(key, x)
    boxed = variables["params"]["kernel"]
    assert isinstance(boxed, nn.Partitioned)
    assert boxed.names == (None, "model")
    assert_kernel_basics(boxed.value, (3, 4))
    assert_bitwise_equal(boxed.unbox(), boxed.value)
    assert_within_bound(init, boxed.value, (3, 4))

    plain = nn.Dense(4, kernel_init=init).init(key, x)["params"]["kernel"]  # eager, unwrapped
    assert_jit_matches_eager(init, boxed.value, plain)
    assert_bitwise_equal(
        nn.Dense(4, kernel_init=nn.with_partitioning(init, (None, "model"))).init(key, x)["params"]["kernel"].value,
        plain,
    )

    assert nn.get_partition_spec(variables)["params"]["kernel"] == PartitionSpec(None, "model")
    y = model.apply(variables, x)  # linen unboxes the param on apply
    assert y.shape == (_BATCH, 4)
    assert np.all(np.isfinite(np.asarray(y)))


# --------------------------------------------------------------------------- eager vs jit, retracing

SHAPE = (3, 3, 1, 2)  # a small conv kernel, as in the linen Conv case (XLA's compile time grows with the size)
_TRACES: collections.Counter = collections.Counter()


@functools.partial(jax.jit, static_argnums=(0, 2))
def jit_draw(init, key, shape):
    """``init(key, shape, dtype)`` under jit for float32 and bfloat16, the initializer static; counts its traces."""
    _TRACES[init, shape] += 1
    return {"float32": init(key, shape, jnp.float32), "bfloat16": init(key, shape, jnp.bfloat16)}


@DTYPES
@pytest.mark.parametrize("name", NAMES)
def test_eager_matches_jit(name, dtype):
    init = make(name)
    key = jax.random.key(7)

    eager = init(key, SHAPE, dtype)
    assert_kernel_basics(eager, SHAPE, dtype)
    assert_within_bound(init, eager, SHAPE)
    assert_jit_matches_eager(init, jit_draw(init, key, SHAPE)[np.dtype(dtype).name], eager)
    assert_bitwise_equal(init(key, SHAPE, dtype), eager)  # eager is deterministic
    if dtype == jnp.float32:
        assert_bitwise_equal(init(key, SHAPE), eager)  # dtype=None means float32


@pytest.mark.parametrize("name", NAMES)
def test_no_retrace(name):
    """Two keys of one shape, and a fresh (equal, equally hashed) initializer each call: one trace."""
    first, second = make(name), make(name)
    assert first is not second and first == second and hash(first) == hash(second)
    a = jit_draw(first, jax.random.key(1), SHAPE)
    b = jit_draw(second, jax.random.key(2), SHAPE)
    assert _TRACES[first, SHAPE] == 1
    for dtype in ("float32", "bfloat16"):
        assert_kernel_basics(a[dtype], SHAPE, dtype)
        assert_jit_matches_eager(first, a[dtype], first(jax.random.key(1), SHAPE, dtype))
        assert_jit_matches_eager(first, b[dtype], first(jax.random.key(2), SHAPE, dtype))
        assert is_random(first) != np.array_equal(np.asarray(a[dtype]), np.asarray(b[dtype]))


def test_trace_counter_sees_new_shapes():
    """The counter itself works: a new shape is a new trace, a new key is not."""
    init = flaxinit.zeros()
    jit_draw(init, jax.random.key(0), (2, 2))
    jit_draw(init, jax.random.key(0), (2, 3))
    jit_draw(init, jax.random.key(1), (2, 3))
    assert _TRACES[init, (2, 2)] == 1
    assert _TRACES[init, (2, 3)] == 1


# --------------------------------------------------------------------------- flax.nnx

NNX_CASES = {
    "Linear": (lambda init, rngs: nnx.Linear(3, 4, kernel_init=init, rngs=rngs), nnx.Linear, (3, 4), (_BATCH, 3)),
    "Conv3x3": (
        lambda init, rngs: nnx.Conv(2, 4, (3, 3), kernel_init=init, rngs=rngs),
        nnx.Conv,
        (3, 3, 2, 4),
        (1, 5, 5, 2),
    ),
}


@pytest.mark.parametrize("case_name", list(NNX_CASES))
@pytest.mark.parametrize("name", NAMES)
def test_nnx_kernel_init(name, case_name):
    init = make(name)
    build, cls, shape, x_shape = NNX_CASES[case_name]

    recorder = Recorder(init)
    eager = build(recorder, nnx.Rngs(SEED))
    [(nnx_key, call_shape, call_dtype)] = recorder.calls
    assert call_shape == shape
    kernel = eager.kernel[...]
    assert_kernel_basics(kernel, shape)
    assert_bitwise_equal(kernel, init(nnx_key, shape, call_dtype))  # exactly the draw from nnx's key
    assert_within_bound(init, kernel, shape)

    tracer = Recorder(init)

    @nnx.jit
    def create():
        return build(tracer, nnx.Rngs(SEED))

    jitted = create()
    assert isinstance(jitted, cls)
    assert len(tracer.calls) == 1
    assert_kernel_basics(jitted.kernel[...], shape)
    assert_jit_matches_eager(init, jitted.kernel[...], kernel)
    assert_within_bound(init, jitted.kernel[...], shape)

    y = jitted(jnp.ones(x_shape))
    assert y.shape[-1] == 4
    assert np.all(np.isfinite(np.asarray(y)))
