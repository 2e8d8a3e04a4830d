"""Every flaxinit scheme works as an initializer of ``flax.linen`` and ``flax.nnx`` layers.

Table-driven over every name in ``flaxinit.available()`` (``constant`` built with
``value=0.5``), this file checks:

* ``flax.linen``: ``Dense``, ``Conv`` (3x3), ``DenseGeneral`` (``features=(4, 5)``,
  ``axis=(-2, -1)`` on a 3-D input) and ``LSTMCell`` (``kernel_init`` and
  ``recurrent_kernel_init``) initialized under ``jax.jit``: kernel shapes, float32
  dtype, finiteness; the jitted init is bitwise equal to the eager one; every kernel
  is exactly ``init(key, shape)`` for the key and (flattened) shape Flax passed; and,
  for ``UniformScheme``s, ``|w| <= init.bound(shape)``.
* ``flax.linen.with_partitioning(init, (None, "model"))`` in ``nn.Dense``: the param
  is an ``nn.Partitioned`` box with those names, holding the unwrapped init's kernel.
* Eager vs jitted calls (``static_argnums`` and a closure over the shape) give
  bitwise-identical arrays, for float32 and bfloat16, with typed and legacy keys.
* No retracing: a jitted function calling the initializer traces once for two keys
  of the same shape, and equal initializers used as a static argument share a trace.
* ``flax.nnx``: ``Linear(3, 4)`` and ``Conv(2, 4, (3, 3))`` built eagerly and inside an
  ``nnx.jit``-ed constructor (``nnx.Rngs`` created inside it): same checks as linen.

Layers are tiny so the file stays fast on a small CPU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec

import flaxinit

NAMES = flaxinit.available()
KEY_SEED = 0


def make(name: str) -> flaxinit.Initializer:
    """The scheme ``name`` with default arguments (``constant`` needs a value)."""
    return flaxinit.get(name, value=0.5) if name == "constant" else flaxinit.get(name)


def is_random(init: flaxinit.Initializer) -> bool:
    return isinstance(init, flaxinit.FanScheme)


def assert_bitwise_equal(actual: Any, desired: Any) -> None:
    """Same shape, same dtype, same bits (so -0.0 != 0.0 and NaNs are compared too)."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.dtype == desired.dtype, (actual.dtype, desired.dtype)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    uint = np.dtype(f"uint{8 * actual.dtype.itemsize}")
    np.testing.assert_array_equal(actual.view(uint), desired.view(uint))


def assert_within_bound(init: flaxinit.Initializer, w: Any, shape: tuple[int, ...]) -> None:
    """``|w| <= init.bound(shape)`` for uniform schemes (no-op otherwise).

    The bound is compared in float32, the precision the weights are scaled in: a draw
    of exactly -1 gives ``-float32(bound)``, which may exceed the Python float by an ulp.
    """
    if isinstance(init, flaxinit.UniformScheme):
        bound = np.float32(init.bound(shape))
        assert np.all(np.abs(np.asarray(w, np.float32)) <= bound), (float(np.max(np.abs(w))), float(bound))


def assert_kernel_basics(w: Any, shape: tuple[int, ...], dtype: Any = jnp.float32) -> None:
    w = np.asarray(w)
    assert w.shape == shape
    assert w.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(w.astype(np.float32)))


class Recorder:
    """Wraps an initializer and records ``(key, shape, dtype, output)`` of every call (eager use only)."""

    def __init__(self, init: flaxinit.Initializer) -> None:
        self.init = init
        self.calls: list[tuple[jax.Array, tuple[int, ...], Any, jax.Array]] = []

    def __call__(self, key, shape, dtype=jnp.float32, out_sharding=None):
        out = self.init(key, shape, dtype, out_sharding)
        self.calls.append((key, tuple(shape), dtype, out))
        return out


# --------------------------------------------------------------------------- linen


@dataclasses.dataclass(frozen=True)
class LinenCase:
    """A linen module built around ``kernel_init``, its init args, and its kernels' paths and shapes."""

    build: Callable[[Callable], nn.Module]
    args: Callable[[], tuple]
    kernels: dict[tuple[str, ...], tuple[int, ...]]


_LSTM_IN, _LSTM_HIDDEN, _BATCH = 3, 5, 2

LINEN_CASES = {
    "Dense": LinenCase(
        build=lambda init: nn.Dense(4, kernel_init=init),
        args=lambda: (jnp.ones((_BATCH, 3)),),
        kernels={("kernel",): (3, 4)},
    ),
    "Conv3x3": LinenCase(
        build=lambda init: nn.Conv(4, (3, 3), kernel_init=init),
        args=lambda: (jnp.ones((1, 5, 5, 2)),),
        kernels={("kernel",): (3, 3, 2, 4)},
    ),
    "DenseGeneral": LinenCase(
        build=lambda init: nn.DenseGeneral(features=(4, 5), axis=(-2, -1), kernel_init=init),
        args=lambda: (jnp.ones((_BATCH, 3, 6)),),
        kernels={("kernel",): (3, 6, 4, 5)},
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
    key = jax.random.key(KEY_SEED)
    args = case.args()

    jitted = jax.jit(case.build(init).init)(key, *args)
    recorder = Recorder(init)
    eager = case.build(recorder).init(key, *args)

    kernels = {}
    for path, shape in case.kernels.items():
        w = _param(jitted, path)
        assert_kernel_basics(w, shape)
        assert_bitwise_equal(w, _param(eager, path))
        kernels[path] = np.asarray(w)

    # The module called the initializer once per kernel; each call's output (reshaped by
    # DenseGeneral from its flat 2-D shape) is a kernel, and equals a fresh direct call.
    assert len(recorder.calls) == len(case.kernels)
    for call_key, call_shape, call_dtype, _ in recorder.calls:
        direct = np.asarray(init(call_key, call_shape, call_dtype))
        assert direct.dtype == np.float32
        matches = [
            p for p, w in kernels.items() if w.size == direct.size and np.array_equal(w.reshape(direct.shape), direct)
        ]
        assert matches, f"no kernel equals init(key, {call_shape})"
        assert_within_bound(init, kernels[matches[0]], call_shape)

    if case_name == "DenseGeneral":
        # the initializer sees the flattened (prod(in), prod(out)) kernel, so its fans are 18 and 20
        assert [c[1] for c in recorder.calls] == [(18, 20)]
    if case_name == "Dense" and is_random(init):
        assert not np.array_equal(kernels[("kernel",)], np.asarray(init(key, (3, 4))))  # flax folds the key


@pytest.mark.parametrize("name", NAMES)
def test_linen_dense_kernel_is_init_of_flax_key(name):
    """The Dense kernel is bitwise ``init(k, (3, 4))`` for the key ``k`` that flax hands to kernel_init."""
    init = make(name)
    x = jnp.ones((_BATCH, 3))
    recorder = Recorder(init)
    nn.Dense(4, kernel_init=recorder).init(jax.random.key(KEY_SEED), x)
    [(flax_key, shape, dtype, _)] = recorder.calls
    assert shape == (3, 4)
    kernel = jax.jit(nn.Dense(4, kernel_init=init).init)(jax.random.key(KEY_SEED), x)["params"]["kernel"]
    assert_bitwise_equal(kernel, init(flax_key, shape, dtype))
    assert_bitwise_equal(kernel, init(flax_key, shape))  # flax passes float32 == the default dtype
    assert_within_bound(init, kernel, shape)


@pytest.mark.parametrize("name", NAMES)
def test_linen_with_partitioning(name):
    init = make(name)
    x = jnp.ones((_BATCH, 3))
    key = jax.random.key(KEY_SEED)
    model = nn.Dense(4, kernel_init=nn.with_partitioning(init, (None, "model")))

    variables = jax.jit(model.init)(key, x)
    boxed = variables["params"]["kernel"]
    assert isinstance(boxed, nn.Partitioned)
    assert boxed.names == (None, "model")
    plain = jax.jit(nn.Dense(4, kernel_init=init).init)(key, x)["params"]["kernel"]
    assert_kernel_basics(boxed.value, (3, 4))
    assert_bitwise_equal(boxed.value, plain)
    assert_bitwise_equal(boxed.unbox(), plain)
    assert_within_bound(init, boxed.value, (3, 4))

    assert nn.get_partition_spec(variables)["params"]["kernel"] == PartitionSpec(None, "model")
    y = model.apply(variables, x)  # linen unboxes the param on apply
    assert y.shape == (_BATCH, 4)
    assert np.all(np.isfinite(np.asarray(y)))


# --------------------------------------------------------------------------- eager vs jit


@pytest.mark.parametrize("key_kind", ["typed", "legacy"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("shape", [(4, 3), (3, 3, 2, 4)], ids=["dense", "conv"])
@pytest.mark.parametrize("name", NAMES)
def test_eager_matches_jit(name, shape, dtype, key_kind):
    init = make(name)
    key = jax.random.key(7) if key_kind == "typed" else jax.random.PRNGKey(7)

    eager = init(key, shape, dtype)
    assert_kernel_basics(eager, shape, dtype)
    assert_bitwise_equal(jax.jit(init, static_argnums=(1, 2))(key, shape, dtype), eager)
    assert_bitwise_equal(jax.jit(lambda k: init(k, shape, dtype))(key), eager)
    assert_within_bound(init, eager, shape)
    if dtype == jnp.float32:
        assert_bitwise_equal(jax.jit(init, static_argnums=1)(key, shape), eager)  # dtype=None means float32


# --------------------------------------------------------------------------- retracing


@pytest.mark.parametrize("name", NAMES)
def test_no_retrace_for_new_keys(name):
    init = make(name)
    traces = 0

    @jax.jit
    def draw(key):
        nonlocal traces
        traces += 1
        return init(key, (4, 3))

    a = draw(jax.random.key(1))
    b = draw(jax.random.key(2))
    assert traces == 1
    assert_kernel_basics(a, (4, 3))
    assert_bitwise_equal(a, init(jax.random.key(1), (4, 3)))
    assert_bitwise_equal(b, init(jax.random.key(2), (4, 3)))
    if is_random(init):
        assert not np.array_equal(np.asarray(a), np.asarray(b))
    else:
        assert_bitwise_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_equal_initializers_share_a_trace(name):
    """Initializers hash by value, so two equal instances as a static argument reuse one trace."""
    traces = 0

    def draw(init, key):
        nonlocal traces
        traces += 1
        return init(key, (4, 3))

    draw_jit = jax.jit(draw, static_argnums=0)
    first, second = make(name), make(name)
    assert first is not second and first == second and hash(first) == hash(second)
    assert_bitwise_equal(draw_jit(first, jax.random.key(1)), draw_jit(second, jax.random.key(1)))
    draw_jit(second, jax.random.key(3))
    assert traces == 1


@pytest.mark.parametrize("name", NAMES)
def test_linen_init_no_retrace(name):
    init = make(name)
    traces = 0

    def counting(key, shape, dtype=jnp.float32):
        nonlocal traces
        traces += 1
        return init(key, shape, dtype)

    model_init = jax.jit(nn.Dense(4, kernel_init=counting).init)
    x = jnp.ones((_BATCH, 3))
    a = model_init(jax.random.key(1), x)["params"]["kernel"]
    b = model_init(jax.random.key(2), x)["params"]["kernel"]
    assert traces == 1
    assert is_random(init) != np.array_equal(np.asarray(a), np.asarray(b))


# --------------------------------------------------------------------------- nnx

NNX_CASES = {
    "Linear": (lambda init, rngs: nnx.Linear(3, 4, kernel_init=init, rngs=rngs), (3, 4), (_BATCH, 3)),
    "Conv3x3": (lambda init, rngs: nnx.Conv(2, 4, (3, 3), kernel_init=init, rngs=rngs), (3, 3, 2, 4), (1, 5, 5, 2)),
}


@pytest.mark.parametrize("case_name", list(NNX_CASES))
@pytest.mark.parametrize("name", NAMES)
def test_nnx_kernel_init(name, case_name):
    init = make(name)
    build, shape, x_shape = NNX_CASES[case_name]

    recorder = Recorder(init)
    eager = build(recorder, nnx.Rngs(KEY_SEED))
    [(nnx_key, call_shape, call_dtype, _)] = recorder.calls
    assert call_shape == shape
    kernel = eager.kernel[...]
    assert_kernel_basics(kernel, shape)
    assert_bitwise_equal(kernel, init(nnx_key, shape, call_dtype))
    assert_within_bound(init, kernel, shape)

    @nnx.jit
    def create():
        return build(init, nnx.Rngs(KEY_SEED))

    jitted = create()
    assert isinstance(jitted, nnx.Linear if case_name == "Linear" else nnx.Conv)
    assert_kernel_basics(jitted.kernel[...], shape)
    assert_bitwise_equal(jitted.kernel[...], kernel)

    y = jitted(jnp.ones(x_shape))
    assert y.shape[-1] == 4
    assert np.all(np.isfinite(np.asarray(y)))
