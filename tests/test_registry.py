"""Schemes by name, and configs that round-trip through plain dicts and JSON."""

import json
from pathlib import Path

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
    flaxinit.variance_scaling(0.5, "fan_geo_avg", "truncated_normal", dtype="bfloat16"),
    flaxinit.he_uniform(einsum="btd,dnh->btnh"),
    flaxinit.normal(0.2, gain=flaxinit.gain("gelu")),
    flaxinit.uniform(3.0),
    flaxinit.truncated_normal(0.1, lower=-1.0, upper=3.0),
    flaxinit.orthogonal(2.0, column_axis=0),
    flaxinit.delta_orthogonal(0.5),
    flaxinit.identity(1.5),
    flaxinit.dirac(groups=2),
    flaxinit.sparse(0.3, 0.05),
]
SHAPES = {"delta_orthogonal": (3, 6, 6), "dirac": (3, 6, 6), "identity": (6, 5), "sparse": (6, 5)}


def test_available_lists_every_scheme():
    assert set(flaxinit.available()) == {
        *("zeros", "ones", "constant", "xavier_standard", "xavier_normalized", "kaiming_normal", "kaiming_uniform"),
        *("letkeman_standard", "letkeman_normalized", "variance_scaling", "glorot_uniform", "glorot_normal"),
        *("he_uniform", "he_normal", "lecun_uniform", "lecun_normal", "normal", "uniform", "truncated_normal"),
        *("orthogonal", "delta_orthogonal", "identity", "eye", "dirac", "sparse"),
    }


def test_aliases_build_the_scheme_they_stand_for():
    assert flaxinit.glorot_uniform() == flaxinit.variance_scaling(1.0, "fan_avg", "uniform")
    assert flaxinit.he_normal(gain=2.0) == flaxinit.variance_scaling(2.0, "fan_in", "truncated_normal", gain=2.0)
    assert flaxinit.get("lecun_normal").get_config()["name"] == "variance_scaling"
    assert flaxinit.eye(3.0) == flaxinit.identity(3.0)


STORED = sorted((Path(__file__).resolve().parents[1] / "experiments" / "results").rglob("metrics.json"))


@pytest.mark.parametrize("path", STORED, ids=lambda p: p.parent.name)
def test_configs_recorded_by_earlier_runs_still_load(path):
    """The study stores every arm's configs; they rebuild the same schemes with today's code."""
    arms = json.loads(path.read_text())["settings"]["schemes"]
    for arm, roles in arms.items():
        for role, config in roles.items():
            init = flaxinit.get(config)
            assert init == flaxinit.get(config["name"], **{k: v for k, v in config.items() if k != "name"})
            assert init.get_config()["name"] == config["name"], (arm, role)


@pytest.mark.parametrize("init", CONFIGURED, ids=repr)
def test_config_round_trips_through_json(init):
    config = init.get_config()
    assert config["name"] == init.name
    restored = flaxinit.get(json.loads(json.dumps(config)))
    assert restored == init and hash(restored) == hash(init)
    key, shape = jax.random.key(3), SHAPES.get(init.name, (2, 6, 5))
    np.testing.assert_array_equal(restored(key, shape), init(key, shape))


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
