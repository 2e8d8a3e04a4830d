"""Shared fixtures: every random test uses a fixed key so its outcome is reproducible."""

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import jax
import pytest

# python -m mc keeps compiled kernels in ~/.cache by default; the tests leave it alone (one
# test turns the cache on in a directory of its own)
os.environ.setdefault("FLAXINIT_COMPILATION_CACHE", "none")


@pytest.fixture
def key():
    return jax.random.key(20260101)


@pytest.fixture
def ctrl_c_at(monkeypatch) -> Callable[[int], object]:
    """``with ctrl_c_at(n):`` the n-th block-sum addition of ``mc``'s engine in the block is
    followed by a SIGINT to this process, as a Ctrl-C at that moment would be."""
    from mc import _engine

    real_add = _engine.Accumulator.add

    @contextmanager
    def armed(n: int) -> Iterator[None]:
        calls = {"n": 0}

        def add_then_ctrl_c(self, *args):
            real_add(self, *args)
            calls["n"] += 1
            if calls["n"] == n:
                os.kill(os.getpid(), signal.SIGINT)

        monkeypatch.setattr(_engine.Accumulator, "add", add_then_ctrl_c)
        try:
            yield
        finally:
            monkeypatch.setattr(_engine.Accumulator, "add", real_add)

    return armed
