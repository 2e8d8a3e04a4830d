"""Shared fixtures: every random test uses a fixed key so its outcome is reproducible."""

import atexit
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import jax
import pytest

#: tests/slow_tier.txt: node ids (or ``file::test``) that run in the slow tier, by measurement.
SLOW_TIER = frozenset(
    line.strip()
    for line in (Path(__file__).with_name("slow_tier.txt")).read_text().splitlines()
    if line.strip() and not line.startswith("#")
)


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by mark
def pytest_collection_modifyitems(config, items):
    """Marks the tests of :data:`SLOW_TIER` slow, as if their source said so."""
    for item in items:
        test = item.nodeid.split("[")[0]
        if item.nodeid in SLOW_TIER or test in SLOW_TIER:
            item.add_marker(pytest.mark.slow)


# run by hand beside torch and microsoft/mup (the project does not depend on torch): not a test module
collect_ignore = ["mup_against_microsoft.py"]

# python -m mc keeps compiled kernels in ~/.cache by default; the tests leave it alone (one
# test turns the cache on in a directory of its own)
os.environ.setdefault("FLAXINIT_COMPILATION_CACHE", "none")

# One JAX persistent compilation cache for the whole session, in a temporary directory: the
# subprocesses the tests start (device counts, several processes, notebook kernels, the CLI)
# inherit these variables, so a program compiled once is loaded, not compiled again, by the
# next fresh process that needs it. jax reads the variables when it is imported, so this
# process, which imported it above, sets the same options through jax.config (before its
# first compilation, which is when jax opens the cache).
# The session's first process (pytest, or pytest-xdist's controller) makes the directory
# and removes it at exit; the workers it starts inherit the variable and share it.
_XLA_CACHE = os.environ.get("FLAXINIT_TESTS_XLA_CACHE")
if _XLA_CACHE is None:
    _XLA_CACHE = os.environ["FLAXINIT_TESTS_XLA_CACHE"] = tempfile.mkdtemp(prefix="flaxinit-tests-xla-")
    atexit.register(shutil.rmtree, _XLA_CACHE, ignore_errors=True)
for _option, _value in [
    ("jax_compilation_cache_dir", _XLA_CACHE),
    ("jax_persistent_cache_min_compile_time_secs", 0.0),
    ("jax_persistent_cache_min_entry_size_bytes", 0),
]:
    os.environ[_option.upper()] = str(_value)
    jax.config.update(_option, _value)


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
