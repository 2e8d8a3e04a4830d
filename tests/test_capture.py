"""The capture's interception of flax's lifted transforms (mc._capture).

flax's lifted ``scan``, ``vmap`` and ``remat`` (linen and nnx) reach jax through
``jax.lax.scan``, ``jax.vmap`` and ``jax.checkpoint``; the capture wraps those while a model
is traced, so the layers inside a stack are recorded one row per layer. These tests count
the calls that reach each wrapper with a frame open: if flax stops calling jax by those
names, the count is zero and the test fails (instead of the audit silently naming one row
per stack). The wrapping is process-wide and counted under a lock: captures in two threads
at once both see their stacks, and jax's own functions are back after.
"""

import threading
from collections import Counter

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from mc import _capture
from mc._model import as_model, trace_layout

WIDTH, DEPTH = 4, 3


class LinenScan(nn.Module):
    @nn.compact
    def __call__(self, x):
        class Step(nn.Module):
            @nn.compact
            def __call__(self, x, _):
                return nn.Dense(WIDTH)(x), None

        x, _ = nn.scan(Step, variable_axes={"params": 0}, split_rngs={"params": True}, length=DEPTH)()(x, None)
        return x


class LinenVmap(nn.Module):
    @nn.compact
    def __call__(self, x):
        dense = nn.vmap(nn.Dense, variable_axes={"params": 0}, split_rngs={"params": True}, in_axes=None, out_axes=0,
                        axis_size=DEPTH)  # fmt: skip
        return dense(WIDTH)(x).sum(0)


class LinenRemat(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.remat(nn.Dense)(WIDTH)(x)


@nnx.split_rngs(splits=DEPTH)
@nnx.vmap(in_axes=(0,), out_axes=0)
def _stacked_linears(rngs):
    return nnx.Linear(WIDTH, WIDTH, rngs=rngs)


class NnxScan(nnx.Module):
    def __init__(self, rngs):
        self.layers = _stacked_linears(rngs)

    def __call__(self, x):
        @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
        def forward(x, layer):
            return layer(x)

        return forward(x, self.layers)


class NnxVmap(nnx.Module):
    def __init__(self, rngs):
        self.layers = _stacked_linears(rngs)

    def __call__(self, x):
        return nnx.vmap(lambda layer, x: layer(x), in_axes=(0, None))(self.layers, x).sum(0)


class NnxRemat(nnx.Module):
    def __init__(self, rngs):
        self.layer = nnx.Linear(WIDTH, WIDTH, rngs=rngs)

    def __call__(self, x):
        return nnx.remat(lambda layer, x: layer(x))(self.layer, x)


#: (model, the wrapper its transform must reach, whether its layers are indexed per layer)
CASES = {
    "linen-scan": (LinenScan(), "scan", True),
    "linen-vmap": (LinenVmap(), "vmap", True),
    "linen-remat": (LinenRemat(), "checkpoint", False),
    "nnx-scan": (lambda rngs: NnxScan(rngs), "scan", True),
    "nnx-vmap": (lambda rngs: NnxVmap(rngs), "vmap", True),
    "nnx-remat": (lambda rngs: NnxRemat(rngs), "checkpoint", False),
}


@pytest.fixture
def reached(monkeypatch):
    """Counts, per wrapper, the calls made while a frame is open (the ones the capture acts on)."""
    counts = Counter()

    def counting(name, wrapper):
        def wrapped(*args, **kwargs):
            if _capture._current() is not None:
                counts[name] += 1
            return wrapper(*args, **kwargs)

        return wrapped

    for name in ("scan", "vmap", "checkpoint"):
        monkeypatch.setattr(_capture, f"_{name}", counting(name, getattr(_capture, f"_{name}")))
    return counts


@pytest.mark.parametrize("name", CASES)
def test_flax_lifted_transforms_go_through_the_capture(name, reached):
    model, wrapper, indexed = CASES[name]
    layout = trace_layout(as_model(model), jnp.ones((2, WIDTH)))
    assert reached[wrapper] > 0, f"{name}: flax's transform no longer calls jax.{wrapper} while a model is captured"
    paths = [p for p in layout.row_paths() if p != _capture.OUTPUT]
    if indexed:
        assert len(paths) == DEPTH and all(f"[{i}]" in p for i, p in enumerate(paths)), paths
    else:
        assert len(paths) == 1, paths


def test_jax_is_restored_after_a_capture():
    real = (jax.lax.scan, jax.vmap, jax.checkpoint, jax.remat)
    trace_layout(as_model(LinenScan()), jnp.ones((2, WIDTH)))
    assert (jax.lax.scan, jax.vmap, jax.checkpoint, jax.remat) == real


def test_captures_in_two_threads_at_once_each_see_their_stacks():
    # each thread traces a scanned model while the other may be inside its own capture; the
    # first one out must not unwrap jax under the other
    barrier, paths, errors = threading.Barrier(2), {}, []

    def run(name):
        try:
            barrier.wait()
            for _ in range(3):
                paths[name] = trace_layout(as_model(CASES[name][0]), jnp.ones((2, WIDTH))).row_paths()
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("linen-scan", "nnx-scan")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert all(sum("[" in p for p in paths[n]) == DEPTH for n in paths), paths
    assert (jax.lax.scan, jax.vmap) == (_capture._REAL["scan"], _capture._REAL["vmap"])
