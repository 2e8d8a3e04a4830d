"""mc under JAX's multi-controller runtime: two processes give the bits of one.

Two local processes join through ``jax.distributed`` (a localhost coordinator on a free
port, CPU collectives over gloo), each with one CPU device, so the engine's mesh spans a
device that the other process owns. Each runs ``python -m mc standard`` (the CLI's
``--coordinator/--num-processes/--process-id``) and then ``mc.standard_test`` and
``mc.normalized_test``. Their results must equal a one-process run bit for bit (JSON floats
are written with ``repr``, which round-trips exactly), in both processes; only process 0
writes the CLI's file.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

_WORKER = textwrap.dedent(
    """
    import json, sys
    from mc import _cli  # the CLI first: its flags start jax.distributed before any backend use
    cli_argv, out = sys.argv[1:-1], sys.argv[-1]
    status = _cli.main(cli_argv)
    import flaxinit, jax, mc
    std = mc.standard_test(7, [1, 5, 300], 3 * 1024 + 5, flaxinit.letkeman_standard())
    norm = mc.normalized_test(7, [(1, 1), (15, 25), (3, 100)], 2 * 1024 + 1, flaxinit.letkeman_normalized())
    with open(out, "w") as fh:
        json.dump({"status": status, "processes": jax.process_count(), "devices": jax.device_count(),
                   "results": [r.to_dict() for r in std + norm]}, fh)
    """
)
_CLI = ["standard", "--sizes", "5,25", "--iterations", "2100", "--scheme", "xavier_standard", "--quiet"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    return env


def _start(cli_argv: list[str], out) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, *cli_argv, str(out)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> None:
    try:
        _, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("a worker process did not finish in 240 s")
    assert proc.returncode == 0, err[-3000:]


def _rows(path) -> list[dict]:
    return json.loads(path.read_text())["rows"]


@pytest.mark.slow  # three fresh processes and a coordinator: CI's second tier
def test_two_processes_give_the_bits_of_one(tmp_path):
    single = _start([*_CLI, "--json", str(tmp_path / "cli-1.json")], tmp_path / "api-1.json")
    _finish(single)

    port = _free_port()
    distributed = ["--coordinator", f"localhost:{port}", "--num-processes", "2"]
    procs = [
        _start(
            [*_CLI, "--json", str(tmp_path / f"cli-2-{i}.json"), *distributed, "--process-id", str(i)],
            tmp_path / f"api-2-{i}.json",
        )
        for i in range(2)
    ]
    for proc in procs:
        _finish(proc)

    one = json.loads((tmp_path / "api-1.json").read_text())
    assert (one["processes"], one["devices"], one["status"]) == (1, 1, 0)
    for i in range(2):
        two = json.loads((tmp_path / f"api-2-{i}.json").read_text())
        assert (two["processes"], two["devices"], two["status"]) == (2, 2, 0)
        assert two["results"] == one["results"]  # every process ends with the same, single-process bits
    assert _rows(tmp_path / "cli-2-0.json") == _rows(tmp_path / "cli-1.json")
    assert not (tmp_path / "cli-2-1.json").exists()  # process 0 alone writes files
