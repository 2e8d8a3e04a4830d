"""Every result class writes a plain dict and reads it back through the one mixin
(flaxinit.tooling.AsDict): after a strict-JSON round trip (NaN and infinities as null) each
comes back equal, with null read as NaN or as the value the class names (a diverged loss)."""

import dataclasses
import json
import math

import pytest

import mc
from flaxinit._lsuv import LSUVLayer, LSUVReport
from flaxinit.tooling import AsDict, json_float, to_json
from mc._audit import LayerAudit, ParamAudit


def _strict_json(d):
    return json.loads(json.dumps(to_json(d), allow_nan=False))


NAN = math.nan
CASES = {
    "coord": mc.CoordCheckResult(
        "MLP", "mup", "adam", 0.01, (32, 64), 32, 1, 2,
        (mc.CoordRow(32, 1, "Dense_0", 1.0, 0.1), mc.CoordRow(64, 1, "Dense_0", 1.1, 0.1)), ((2.3,), (2.4,)), "x",
    ),
    "transfer": mc.TransferResult(
        "MLP", "mup", "adam", "width", (64, 128), 64, None, (-4.0, -3.0), 10, 16, 2, 3, "xent",
        (((1.0, math.inf), (0.5, 0.6)), ((1.1, 1.2), (0.4, 0.5))), ((math.inf, 0.55), (1.15, 0.45)),
        ((NAN, 0.05), (0.05, 0.05)), (-3.0, -3.0), (True, True), "x",
    ),
    "verdict": mc.Verdict(
        False, (mc.Failure("Dense_1", "update", 2, 0.5, NAN, 0.0, "lr not scaled"),),
        (mc.Check("Dense_1", "update", 2, 0.5, NAN, 0.0, False, 0.3, False),),
        "MLP", "width", (64, 128), 64, None, 0.01, "adam", 4, 8, "x",
    ),
    "audit": mc.AuditResult(
        "Dense", "linen", "ones", 64, (LayerAudit("Dense_0", (4, 8), 1.0, 1.2, 0.0, 0.5, 0.1, 0.1, 0.0, 0.1),),
        (ParamAudit("kernel", (8, 8), 0.3, 0.1, 0.01, 0.01, None),), "x",
    ),
    "correlation": mc.CorrelationResult(0.5, 64, 0.49, 0.01, (("Dense_0", 0.6, 0.02),), "x"),
    "lsuv": LSUVReport((LSUVLayer("Dense_0", 2.0, 1.0, 1, True),), 1.0, 0.1, "variance", 10, 3),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_results_survive_a_strict_json_round_trip(name):
    result = CASES[name]
    back = type(result).from_dict(_strict_json(result.to_dict()))
    # NaN != NaN: compare the strict-JSON forms, and the types of every field
    assert _strict_json(back.to_dict()) == _strict_json(result.to_dict())
    for f in dataclasses.fields(result):
        assert type(getattr(back, f.name)) is type(getattr(result, f.name)), f.name


def test_derived_values_are_written_and_recomputed():
    d = CASES["transfer"].to_dict()
    assert d["spread"] == 0.0
    assert CASES["coord"].to_dict()["slopes"] == CASES["coord"].slopes()


def test_null_reads_as_the_value_the_class_names():
    back = mc.TransferResult.from_dict(_strict_json(CASES["transfer"].to_dict()))
    assert back.loss_seeds[0][0][1] == math.inf and back.loss_mean[0][0] == math.inf  # diverged
    assert math.isnan(back.loss_se[0][0])  # a standard error over a diverged seed
    assert back.alpha is None


def test_a_field_absent_from_an_older_file_takes_its_default():
    @dataclasses.dataclass(frozen=True)
    class Run(AsDict):
        loss: float
        prng: str = "threefry2x32"

    assert Run.from_dict({"loss": 1}) == Run(1.0)
    with pytest.raises(KeyError):  # a field without a default must be there
        Run.from_dict({"prng": "x"})


def test_json_float_reads_null_as_missing():
    first, second = json_float([None, 2], math.inf)
    assert (first, second) == (math.inf, 2.0)
    assert math.isnan(json_float(None))


def test_nested_results_become_plain_dicts():
    d = CASES["lsuv"].to_dict()
    assert d["layers"] == ({"path": "Dense_0", "variance_before": 2.0, "variance_after": 1.0, "iterations": 1,
                            "converged": True},)  # fmt: skip
