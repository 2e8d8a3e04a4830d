"""python -m mc: happy paths, atomic outputs, interrupt and resume, bad arguments."""

import csv
import json
import os
import subprocess
import sys

import pytest

from mc import _cli, _engine


def _strip_timing(doc):
    return {k: v for k, v in doc.items() if k not in ("seconds", "machine")}


def test_standard_writes_json_csv_and_plot(tmp_path, capsys):
    out = tmp_path / "std.json"
    argv = ["standard", "--sizes", "1,5", "--iterations", "2048", "--scheme", "letkeman_standard:method=article"]
    argv += ["--json", str(out), "--csv", str(tmp_path / "std.csv"), "--plot", str(tmp_path / "std.png"), "--quiet"]
    assert _cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "letkeman_standard:method=article" in printed and "MC mean ± SE" in printed
    doc = json.loads(out.read_text())
    assert doc["partial"] is False and doc["pending"] == {}
    assert [r["size"] for r in doc["rows"]] == [1, 5]
    assert all(r["iterations"] == 2048 for r in doc["rows"])
    rows = list(csv.DictReader((tmp_path / "std.csv").open()))
    assert [int(r["size"]) for r in rows] == [1, 5]
    assert (tmp_path / "std.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # no leftovers


def test_reproduce_prints_tables_and_refits(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_cli, "ARTICLE_SIZES", (1, 5, 25))
    monkeypatch.setattr(_cli, "ARTICLE_SHAPES", ((1, 1), (5, 5), (15, 25)))
    out = tmp_path / "r.json"
    argv = ["reproduce", "--iterations", "2048", "--normalized-iterations", "1024", "--json", str(out), "--quiet"]
    assert _cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "refit standard from exact" in printed and "refit normalized from monte_carlo" in printed
    doc = json.loads(out.read_text())
    assert len([r for r in doc["rows"] if r["table"] == "standard"]) == 9
    assert len([r for r in doc["rows"] if r["table"] == "normalized"]) == 9
    assert {(f["form"], f["source"]) for f in doc["fits"]} == {
        ("standard", "exact"),
        ("normalized", "exact"),
        ("standard", "monte_carlo"),
        ("normalized", "monte_carlo"),
    }
    # fit --from the results file gives the same fits
    assert _cli.main(["fit", "--from", str(out), "--json", str(tmp_path / "fit.json")]) == 0
    assert json.loads((tmp_path / "fit.json").read_text())["fits"] == doc["fits"]


def test_depth_and_normalized_commands(capsys):
    assert _cli.main(["depth", "--widths", "8,8,8", "--activation", "tanh", "--iterations", "1024", "--quiet"]) == 0
    assert "mean |gradient|" in capsys.readouterr().out
    argv = ["normalized", "--shapes", "3x4", "--iterations", "1024", "--convention", "per_node", "--quiet"]
    assert _cli.main(argv) == 0
    assert "3x4" in capsys.readouterr().out


def test_interrupt_then_resume_gives_the_uninterrupted_result(tmp_path, monkeypatch, ctrl_c_at):
    # chunks of at most one block (a tiny memory budget) and --chunk-size 1024: one block
    # per device call, so the interrupt lands in the middle of a row
    monkeypatch.setattr(_engine, "CPU_CHUNK_BYTES", 1)
    argv = ["standard", "--sizes", "1,5,25", "--iterations", "5000", "--chunk-size", "1024", "--quiet"]
    full, part = tmp_path / "full.json", tmp_path / "part.json"
    assert _cli.main([*argv, "--json", str(full)]) == 0
    with ctrl_c_at(7):  # the 2nd block of the 2nd row
        assert _cli.main([*argv, "--json", str(part)]) == 130
    partial = json.loads(part.read_text())
    assert partial["partial"] is True
    assert [r["size"] for r in partial["rows"]] == [1]
    [(row_id, state)] = partial["pending"].items()
    assert "n=5" in row_id and state["blocks_done"] == 2
    assert _cli.main([*argv, "--json", str(part), "--resume"]) == 0
    assert _strip_timing(json.loads(part.read_text())) == _strip_timing(json.loads(full.read_text()))


@pytest.mark.parametrize(
    "argv,message",
    [
        (["standard", "--iterations", "0"], "must be a positive integer"),
        (["standard", "--iterations", "ten"], "must be a positive integer"),
        (["standard", "--sizes", "0,5"], "--sizes must be a comma-separated list of positive integers"),
        (["standard", "--sizes", "a"], "--sizes must be a comma-separated list"),
        (["standard", "--scheme", "glorot"], "unknown scheme 'glorot'"),
        (["standard", "--scheme", "letkeman_standard:method=bad"], "method must be one of"),
        (["standard", "--scheme", "letkeman_standard:fan_in"], "is not key=value"),
        (["normalized", "--shapes", "5x"], "--shapes must look like"),
        (["normalized", "--shapes", "0x3"], "--shapes must look like"),
        (["depth", "--widths", "5"], "widths must list"),
        (["reproduce", "--resume"], "--resume needs --json"),
        (["standard", "--coordinator", "localhost:1"], "--coordinator, --num-processes and --process-id go together"),
        (["standard", "--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"], "must be in 0..1"),
        (["fit", "--objective", "l1"], "invalid choice"),
        (["fit", "--from", "/nonexistent/r.json"], "not a results file"),
        (["fit", "--from", "MALFORMED"], "not a results file"),
        (["bogus"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys, tmp_path):
    malformed = tmp_path / "rows.json"
    malformed.write_text('{"rows": [{"x": 1}]}')
    assert _cli.main([str(malformed) if a == "MALFORMED" else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m mc: error:")
    assert message in err


def test_resume_refuses_different_settings(tmp_path):
    out = tmp_path / "r.json"
    assert _cli.main(["standard", "--sizes", "1", "--iterations", "1024", "--json", str(out), "--quiet"]) == 0
    assert _cli.main(["standard", "--sizes", "1", "--iterations", "2048", "--json", str(out), "--resume"]) == 2


def test_the_generator_is_recorded_and_resume_refuses_another(tmp_path, capsys):
    out = tmp_path / "s.json"
    argv = ["standard", "--sizes", "5", "--iterations", "1024", "--quiet"]
    assert _cli.main([*argv, "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["settings"]["prng"] == "philox4x32_10" and doc["rows"][0]["prng"] == "philox4x32_10"
    fry = tmp_path / "fry.json"
    assert _cli.main([*argv, "--prng", "threefry", "--json", str(fry)]) == 0
    fry_doc = json.loads(fry.read_text())
    assert fry_doc["rows"][0]["prng"] == "threefry2x32" and fry_doc["rows"][0]["mean"] != doc["rows"][0]["mean"]
    capsys.readouterr()
    assert _cli.main([*argv, "--prng", "threefry", "--json", str(out), "--resume"]) == 2
    assert "drawn with philox4x32_10, this command draws with threefry2x32" in capsys.readouterr().err
    # a results file from before the generator was recorded was drawn with threefry
    del fry_doc["settings"]["prng"]
    fry.write_text(json.dumps(fry_doc))
    assert _cli.main([*argv, "--json", str(fry), "--resume"]) == 2
    assert _cli.main([*argv, "--prng", "threefry", "--json", str(fry), "--resume"]) == 0


def test_the_compilation_cache_keeps_kernels_between_runs(tmp_path):
    argv = [sys.executable, "-m", "mc", "standard", "--sizes", "5", "--iterations", "1024", "--quiet"]
    env = {k: v for k, v in os.environ.items() if k != "FLAXINIT_COMPILATION_CACHE"}
    env.update(JAX_PLATFORMS="cpu", HOME=str(tmp_path / "home"))
    subprocess.run(argv, env=env, check=True, capture_output=True)
    default = tmp_path / "home" / ".cache" / "flaxinit" / "xla"
    assert any(default.iterdir())  # the kernels were written for the next run
    env["HOME"] = str(tmp_path / "other")
    subprocess.run([*argv, "--compilation-cache", "none"], env=env, check=True, capture_output=True)
    assert not (tmp_path / "other").exists()


def test_module_entry_point_runs():
    done = subprocess.run(
        [sys.executable, "-m", "mc", "standard", "--sizes", "3", "--iterations", "1024", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "xavier_standard" in done.stdout


def _strict(text: str):
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_json_is_strict_and_a_null_se_reads_back(tmp_path, capsys):
    """One iteration has no standard error: NaN in memory, null in the file, a dash when printed."""
    out = tmp_path / "one.json"
    assert _cli.main(["standard", "--sizes", "2", "--iterations", "1", "--json", str(out), "--quiet"]) == 0
    [row] = _strict(out.read_text())["rows"]
    assert row["se"] is None and row["ci95"] == [None, None]
    assert _cli.main(["standard", "--sizes", "2", "--iterations", "1", "--json", str(out), "--resume"]) == 0
    assert " ± —" in capsys.readouterr().out
