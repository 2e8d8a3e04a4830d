"""Schemes by name, and configs that round-trip through plain dicts and JSON."""

import json

import jax
import numpy as np
import pytest

import flaxinit

CONFIGURED = [
    flaxinit.zeros(),
    flaxinit.ones(),
    flaxinit.constant(0.25),
    flaxinit.xavier_standard(),
    flaxinit.xavier_standard(fan_in=1),
    flaxinit.xavier_normalized(in_axis=(0, 1), out_axis=-1, batch_axis=(), gain=2.0),
    flaxinit.kaiming_normal("fan_out", 0.01, batch_axis=0),
    flaxinit.kaiming_uniform(negative_slope=0.2, fan_out=7),
    flaxinit.letkeman_standard(),
    flaxinit.letkeman_standard("article", {"a": 0.041}),
    flaxinit.letkeman_normalized("article"),
    flaxinit.letkeman_normalized("article", {"a": 0.07, "b": -0.09}, fan_in=1),
]


def test_available_lists_every_scheme():
    assert set(flaxinit.available()) == {
        "zeros",
        "ones",
        "constant",
        "xavier_standard",
        "xavier_normalized",
        "kaiming_normal",
        "kaiming_uniform",
        "letkeman_standard",
        "letkeman_normalized",
    }


@pytest.mark.parametrize("init", CONFIGURED, ids=repr)
def test_config_round_trips_through_json(init):
    config = init.get_config()
    assert config["name"] == init.name
    restored = flaxinit.get(json.loads(json.dumps(config)))
    assert restored == init and hash(restored) == hash(init)
    key = jax.random.key(3)
    np.testing.assert_array_equal(restored(key, (2, 6, 5)), init(key, (2, 6, 5)))


def test_get_by_name_with_kwargs_equals_factory():
    assert flaxinit.get("kaiming_normal", mode="fan_out") == flaxinit.kaiming_normal("fan_out")
    assert flaxinit.get("letkeman_standard", method="article") == flaxinit.letkeman_standard("article")
    assert flaxinit.get({"name": "xavier_standard"}, fan_in=1) == flaxinit.xavier_standard(fan_in=1)


def test_get_returns_an_initializer_unchanged():
    init = flaxinit.letkeman_normalized()
    assert flaxinit.get(init) is init


def test_distinct_schemes_are_not_equal():
    assert flaxinit.xavier_standard() != flaxinit.xavier_normalized()
    assert flaxinit.zeros() != flaxinit.constant(0.0)


def test_public_namespace():
    for name in flaxinit.__all__:
        assert hasattr(flaxinit, name)
    assert isinstance(flaxinit.__version__, str)
    assert "_sampling" not in flaxinit.__all__
