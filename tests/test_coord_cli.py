"""python -m mc coord-check: files, the same numbers as mc.coord_check, Ctrl-C and --resume,
bad arguments, a user's model, and the issue's acceptance bounds on a small run."""

import csv
import functools
import json
import os
import shutil
import signal

import pytest
from mup_models import NnxMLP

import mc
from flaxinit.tooling import to_json
from mc import _cli, _coord, _sweep
from mc._cache import ProgramCache
from mc._models import import_factory

# every run is tiny: two widths, two steps, two seeds
TINY = ["--sizes", "16,32", "--steps", "2", "--seeds", "2", "--quiet"]


def nnx_mlp(width):
    """A user's factory of a flax.nnx model: ``width -> (rngs -> Module)`` (``--model test_coord_cli:nnx_mlp``)."""
    return functools.partial(NnxMLP, width)


def _strip_timing(doc):
    return {k: v for k, v in doc.items() if k not in ("seconds", "machine")}


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    """One uninterrupted run of both parametrizations, with every output file."""
    out = tmp_path_factory.mktemp("coord")
    argv = ["coord-check", *TINY, "--json", str(out / "c.json"), "--csv", str(out / "c.csv")]
    assert _cli.main([*argv, "--plot", str(out / "c.png")]) == 0
    return out, json.loads((out / "c.json").read_text())


def test_writes_json_csv_and_plot(mlp_run):
    out, doc = mlp_run
    assert doc["partial"] is False and doc["pending"] == {}
    assert doc["settings"] == {
        "command": "coord-check", "model": "mlp", "parametrizations": ["sp", "mup"], "widths": [16, 32],
        "base_width": 16, "optimizer": "adam", "lr": 0.01, "steps": 2, "seeds": 2, "key": 0,
        "prng": "philox4x32_10", "zero_query": False, "tied": False, "input_shape": [64, 32], "classes": 10,
        "loss": "xent",
    }  # fmt: skip
    assert list(doc["results"]) == ["sp", "mup"]
    assert {"machine", "seconds"} <= set(doc)
    paths = ["dense_0", "dense_1", "readout", "(output)"]
    for parametrization, result in doc["results"].items():
        assert result["parametrization"] == parametrization and result["model"] == "MLP"
        assert [(s["step"], s["path"]) for s in result["slopes"]] == [(t, p) for t in (1, 2) for p in paths]
    rows = list(csv.DictReader((out / "c.csv").open()))
    assert list(rows[0]) == ["parametrization", "width", "step", "path", "mean_abs", "mean_abs_se"]
    assert len(rows) == 2 * 2 * 2 * len(paths)  # parametrizations x widths x steps x layers
    assert [float(r["mean_abs"]) for r in rows if r["parametrization"] == "mup"] == [
        r["mean_abs"] for r in doc["results"]["mup"]["rows"]
    ]
    assert (out / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]  # no leftovers


def test_prints_a_slope_table(capsys):
    assert _cli.main(["coord-check", *TINY, "--param", "mup"]) == 0
    printed = capsys.readouterr().out
    assert "MLP μP, adam lr 0.01, widths 16,32 (base 16), 2 seeds" in printed
    assert "t = 1" in printed and "t = 2" in printed
    [line] = [x for x in printed.splitlines() if x.startswith("readout")]
    assert line.count("±") == 2  # one column per step


def test_the_json_holds_what_coord_check_gives(mlp_run):
    """The command is mc.coord_check on the documented batch: the same program, the same floats."""
    _, doc = mlp_run
    inputs, targets = _cli.coord_batch("mlp", mc.philox_key(0))
    assert inputs.shape == _cli.COORD_MLP_BATCH and targets.shape == _cli.COORD_MLP_BATCH[:1]
    assert int(targets.min()) >= 0 and int(targets.max()) < _cli.COORD_CLASSES
    for parametrization in ("sp", "mup"):
        direct = mc.coord_check(
            mc.width_model("mlp", parametrization), [16, 32], inputs, targets, base=16,
            parametrization=parametrization, optimizer="adam", lr=0.01, steps=2, seeds=2, key=0,
        )  # fmt: skip
        assert doc["results"][parametrization] == to_json(direct.to_dict())


@pytest.fixture
def ctrl_c_after_width(monkeypatch):
    """``ctrl_c_after_width(n)``: a SIGINT to this process right after the n-th width's
    program has run, as a Ctrl-C at that moment would be."""

    def arm(n):
        real = _sweep.SizeRun  # made right after a width's program has run
        calls = {"n": 0}
        monkeypatch.setattr(_sweep, "PROGRAMS", ProgramCache(32))  # none compiled before: every width runs

        def run_then_ctrl_c(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == n:
                os.kill(os.getpid(), signal.SIGINT)
            return real(*args, **kwargs)

        monkeypatch.setattr(_sweep, "SizeRun", run_then_ctrl_c)

    return arm


@pytest.mark.parametrize(
    "interrupt_after,finished,pending",
    [
        (1, [], {"sp": [16]}),  # in the middle of a parametrization
        (2, ["sp"], {}),  # between parametrizations
        (3, ["sp"], {"mup": [16]}),
    ],
)
def test_interrupt_then_resume_gives_the_uninterrupted_result(
    interrupt_after, finished, pending, mlp_run, tmp_path, ctrl_c_after_width, capsys
):
    _, full = mlp_run
    part = tmp_path / "part.json"
    argv = ["coord-check", *TINY, "--json", str(part), "--csv", str(tmp_path / "part.csv")]
    ctrl_c_after_width(interrupt_after)
    assert _cli.main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted: finishing the current width" in err
    assert f"partial: {interrupt_after} of 4 widths finished in {part}; continue with --resume" in err
    doc = json.loads(part.read_text())
    assert doc["partial"] is True
    assert list(doc["results"]) == finished
    assert {p: d["widths"] for p, d in doc["pending"].items()} == pending
    rows = list(csv.DictReader((tmp_path / "part.csv").open()))
    assert len(rows) == interrupt_after * 2 * 4  # every finished width's rows: steps x layers
    assert _cli.main([*argv, "--resume"]) == 0
    assert _strip_timing(json.loads(part.read_text())) == _strip_timing(full)


def test_resume_runs_only_the_missing_widths(mlp_run, tmp_path, ctrl_c_after_width, monkeypatch):
    part = tmp_path / "part.json"
    argv = ["coord-check", *TINY, "--json", str(part)]
    ctrl_c_after_width(3)
    assert _cli.main(argv) == 130
    widths_run = []
    monkeypatch.setattr(_sweep, "PROGRAMS", ProgramCache(32))  # counted: a program built is a width run
    real = _coord.size_program
    monkeypatch.setattr(_coord, "size_program", lambda t, *a: widths_run.append(t) or real(t, *a))
    assert _cli.main([*argv, "--resume"]) == 0
    assert len(widths_run) == 1  # mup at width 32: the only width not measured before
    assert _cli.main([*argv, "--resume"]) == 0  # a finished run: nothing to do
    assert len(widths_run) == 1


def test_resume_refuses_different_settings(mlp_run, tmp_path, capsys):
    out = tmp_path / "c.json"
    shutil.copy(mlp_run[0] / "c.json", out)
    assert _cli.main(["coord-check", *TINY, "--lr", "0.02", "--json", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume: the settings in the JSON file differ from this command's" in err
    out.write_text("[1, 2]")
    assert _cli.main(["coord-check", *TINY, "--json", str(out), "--resume"]) == 2
    assert "not a results file of python -m mc coord-check" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--sizes", "64"], "--sizes must list at least two distinct sizes"),
        (["--sizes", "64,64"], "--sizes must list at least two distinct sizes"),
        (["--sizes", "64,big"], "--sizes must be a comma-separated list of positive integers"),
        (["--widths", "0,16"], "--sizes must be a comma-separated list of positive integers"),  # its earlier name
        (["--model", "nope"], "model must be one of mlp, transformer or package.module:factory, got 'nope'"),
        (["--model", "no_such_module_xyz:factory"], "model 'no_such_module_xyz:factory': cannot load it"),
        (["--model", "mup_models:OUT"], "int is not callable"),
        (["--model", "mup_models:LinenMLP"], "--model mup_models:LinenMLP needs --data, or --input-shape"),
        (["--model", "mup_models:LinenMLP", "--input-shape", "4,x"], "--input-shape must be a comma-separated"),
        (["--model", "mup_models:LinenCNN", "--input-shape", "4,12"], "factory(16) does not give a model that runs"),
        (["--model", "mup_models:LinenMLP", "--input-shape", "4,12", "--classes", "11"], "only 10 logits"),
        (["--model", "transformer", "--sizes", "18,36"], "must be multiples of 4 for --model transformer"),
        (["--model", "transformer", "--base", "10"], "must be multiples of 4 for --model transformer"),
        (["--param", "ntk"], "argument --param: invalid choice: 'ntk'"),
        (["--param", "mup", "--param", "mup"], "--param mup is given twice"),
        (["--optimizer", "lion"], "argument --optimizer: invalid choice: 'lion'"),
        (["--lr", "0"], "argument --lr: must be a positive number, got '0'"),
        (["--lr", "-0.1"], "argument --lr: must be a positive number"),
        (["--lr", "nan"], "argument --lr: must be a positive number"),
        (["--lr", "fast"], "argument --lr: must be a positive number"),
        (["--steps", "0"], "argument --steps: must be a positive integer"),
        (["--seeds", "1"], "argument --seeds: must be an integer of at least 2"),
        (["--base", "0"], "argument --base/--base-width: must be a positive integer"),
        (["--sweep", "depth"], "--sweep depth needs --alpha"),
        (["--alpha", "1"], "--alpha is for --sweep depth"),
        (["--sweep", "depth", "--alpha", "1"], "--sweep depth needs residual blocks"),
        (["--key", "k"], "argument --key: invalid int value"),
        (["--tied"], "--tied is for --model transformer"),
        (["--input-shape", "4,32"], "--input-shape is for package.module:factory models"),
        (["--classes", "3"], "--classes is for package.module:factory models"),
        (["--resume"], "--resume needs --json"),
        (["--resume", "--json", "/nonexistent/c.json"], "/nonexistent/c.json does not exist"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    assert _cli.main(["coord-check", "--sizes", "16,32", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m mc: error:")
    assert message in err


@pytest.mark.parametrize(
    "factory,paths,compare",
    [
        ("mup_models:LinenMLP", ["Dense_0", "Dense_1", "Dense_2", "(output)"], True),
        ("test_coord_cli:nnx_mlp", ["l1", "l2", "out", "(output)"], False),  # the same code path from here on
    ],
)
def test_a_users_factory(factory, paths, compare, tmp_path):
    """``package.module:factory``: ``factory(width)`` is fed ``--input-shape`` standard-normal
    inputs and labels in ``[0, classes)`` (the output's last axis by default)."""
    out = tmp_path / "u.json"
    argv = ["coord-check", "--model", factory, "--input-shape", "16,12", "--param", "mup", *TINY, "--json", str(out)]
    assert _cli.main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["settings"]["input_shape"] == [16, 12] and doc["settings"]["classes"] == 10
    result = doc["results"]["mup"]
    assert [s["path"] for s in result["slopes"] if s["step"] == 1] == paths
    if not compare:
        return
    key = mc.philox_key(0)
    inputs, targets = _cli.coord_batch(factory, key, (16, 12), (16,), 10)
    model = import_factory(factory)
    direct = mc.coord_check(model, [16, 32], inputs, targets, base=16, lr=0.01, steps=2, seeds=2, key=key)
    assert result == to_json(direct.to_dict())


@pytest.mark.slow
def test_transformer_command_is_coord_check(tmp_path):
    out = tmp_path / "t.json"
    argv = ["coord-check", "--model", "transformer", "--param", "mup", "--zero-query", "--tied", *TINY]
    assert _cli.main([*argv, "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["settings"]["input_shape"] == [8, 32] and doc["settings"]["classes"] == _cli.COORD_VOCAB
    inputs, targets = _cli.coord_batch("transformer", mc.philox_key(0))
    assert (inputs[:, 1:] == targets[:, :-1]).all()  # next-token targets
    model = mc.width_model("transformer", "mup", vocab=_cli.COORD_VOCAB, base_width=16, tied=True)
    direct = mc.coord_check(
        model, [16, 32], inputs, targets, base=16, lr=0.01, steps=2, seeds=2, key=0, zero_query=True
    )
    assert doc["results"]["mup"] == to_json(direct.to_dict())


# --- the issue's acceptance bounds, on a smaller run than the stored figure's ---------------------

# lr 0.03, the stored figure's: at lr 0.01 the μP readout's init (scale 1/sqrt(m_in), Table 3) is
# still comparable to the first Adam update at step 2, so the output's scale there still falls
# with width (docs/mup.md shows both stored runs).
ACCEPTANCE = ["--widths", "64,128,256", "--seeds", "4", "--steps", "3", "--lr", "0.03", "--optimizer", "adam"]
BOUND = 0.15  # μP: |slope| at most this (the issue's bound)
SP_OUTPUT_GROWTH = 0.5  # SP: the output's slope at step 2 at least this


@pytest.fixture(scope="module")
def acceptance_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("acceptance") / "mlp.json"
    assert _cli.main(["coord-check", "--model", "mlp", *ACCEPTANCE, "--quiet", "--json", str(out)]) == 0
    return json.loads(out.read_text())["results"]


def _slope(results, parametrization, path, step):
    [s] = [s for s in results[parametrization]["slopes"] if s["path"] == path and s["step"] == step]
    return s["slope"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "parametrization,path,step",
    [
        *[("mup", path, step) for path in ("dense_0", "dense_1") for step in (1, 2, 3)],
        ("mup", "readout", 2),
        ("mup", "readout", 3),
        ("sp", "readout", 2),
    ],
)
def test_mlp_meets_the_issues_bounds(acceptance_run, parametrization, path, step):
    slope = _slope(acceptance_run, parametrization, path, step)
    if parametrization == "mup":
        assert abs(slope) <= BOUND
    else:
        assert slope >= SP_OUTPUT_GROWTH
