"""Shared fixtures: every random test uses a fixed key so its outcome is reproducible."""

import jax
import pytest


@pytest.fixture
def key():
    return jax.random.key(20260101)
