"""What ``pip install .`` installs: ``flaxinit`` and ``mc`` only, and ``python -m mc`` runs from them.

The wheel is built without build isolation (the dev extra brings setuptools) from a copy of
the sources, so the test needs no network and leaves no build folder in the repository.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "flaxinit", "mc", "experiments")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tree = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__", "results"))
        else:
            shutil.copy2(source, tree / name)
    dist = tmp_path_factory.mktemp("dist")
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(dist)]
    done = subprocess.run([*argv, str(tree)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (built,) = dist.glob("flaxinit-*.whl")
    return built


def test_the_wheel_holds_flaxinit_and_mc_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top_level == {"flaxinit", "mc"}
    assert "flaxinit/py.typed" in names


@pytest.mark.slow
def test_mc_reproduce_runs_from_the_installed_wheel_outside_the_repository(wheel, tmp_path):
    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)]
    done = subprocess.run(install, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # the wheel's copy comes first on the path; the working directory is outside the repository
    env = dict(os.environ, PYTHONPATH=str(site), JAX_PLATFORMS="cpu")
    probe = (
        "import importlib.util, json, mc, flaxinit\n"
        "print(json.dumps([mc.__file__, flaxinit.__file__, importlib.util.find_spec('experiments') is not None]))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    mc_file, flaxinit_file, experiments_importable = json.loads(done.stdout)
    assert Path(mc_file).is_relative_to(site) and Path(flaxinit_file).is_relative_to(site)
    assert not experiments_importable
    argv = [sys.executable, "-m", "mc", "reproduce", "--iterations", "1024", "--normalized-iterations", "32"]
    argv += ["--quiet", "--json", "mc.json"]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "mc.json").read_text())
    assert doc["partial"] is False and doc["rows"]
