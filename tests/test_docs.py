"""The documentation: every public symbol has a reference entry, links resolve, the site builds,
every quoted figure is rendered from a stored file, and no committed output names a local path."""

import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import flaxinit
import mc
from flaxinit import magnitude

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"


def directives(page: str) -> set[str]:
    return set(re.findall(r"^::: ([\w.]+)", (API / page).read_text(), flags=re.MULTILINE))


def test_every_flaxinit_symbol_is_in_the_reference():
    documented = directives("flaxinit.md")
    modules = directives("magnitude.md") | directives("blocks.md") | directives("mup.md")
    missing = [
        name
        for name in flaxinit.__all__
        if f"flaxinit.{name}" not in documented and f"flaxinit.{name}" not in modules and name != "__version__"
    ]
    assert not missing, f"add ::: flaxinit.NAME entries to docs/api/flaxinit.md for {missing}"
    assert "flaxinit.magnitude" in modules
    assert {"flaxinit.blocks.linen", "flaxinit.blocks.nnx", "flaxinit.mup"} <= modules


def test_every_mc_symbol_is_in_the_reference():
    documented = directives("mc.md")
    text = (API / "mc.md").read_text()
    missing = [name for name in mc.__all__ if f"mc.{name}" not in documented and f"`mc.{name}`" not in text]
    assert not missing


def test_every_prng_symbol_is_in_the_reference():
    from flaxinit import prng

    documented = directives("prng.md")
    assert not [name for name in prng.__all__ if f"flaxinit.prng.{name}" not in documented]


def test_magnitude_module_documents_its_public_names():
    for name in magnitude.__all__:
        assert getattr(magnitude, name).__doc__ or name.isupper() or name == "NormalizedMagnitudes"


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    text = path.read_text()
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"^[a-z]+://", target) or target.startswith("mailto:"):
            continue
        assert (path.parent / target).exists(), f"{path.name} links to {target}, which does not exist"


def test_site_builds_without_warnings(tmp_path):
    """The API reference (mkdocs + mkdocstrings, in the dev extra) builds with warnings as errors."""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]


# --- measured figures come from stored files --------------------------------------------------


def _render_module():
    spec = importlib.util.spec_from_file_location("render", ROOT / "benchmarks" / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_quoted_figure_matches_its_stored_source():
    """README, docs/ and the notebooks' markdown agree with benchmarks/results and experiments/results."""
    render = _render_module()
    assert not render.stale(), "run python benchmarks/render.py (or rerun the benchmark) and commit"
    assert render.BLOCK.search((ROOT / "README.md").read_text())  # the README's tables are rendered blocks


def test_render_reads_values_and_refuses_unknown_sources(tmp_path):
    render = _render_module()
    doc = {"rows": [{"name": "a", "x": 1.5}, {"name": "b", "x": 2.25}], "n": {"0.5": 7}}
    assert render.lookup(doc, "rows[name=b]/x") == 2.25
    assert render.lookup(doc, "rows/0/name") == "a"
    assert render.lookup(doc, "n/0.5") == 7
    text = "<!-- value benchmarks/results/bench_study.json results/0/network {}x -->?<!-- /value -->"
    assert "counting" in render.render_text(text)
    with pytest.raises(render.RenderError, match="no such file"):
        render.render_text("<!-- value nope.json a -->1<!-- /value -->")
    with pytest.raises(render.RenderError, match="unknown block"):
        render.render_text("<!-- render nope -->\n<!-- /render -->")


# Paths of a particular machine: home folders, temp dirs, installed packages, drive letters.
LOCAL_PATH = re.compile(r"(/home/|/root/|/work/|/tmp/|/Users/|site-packages|[A-Z]:\\\\)")


def committed_outputs() -> list[Path]:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    folders = ("benchmarks/results/", "experiments/results/", "docs/", "notebooks/")
    return [ROOT / f for f in tracked.split() if f.startswith(folders) or f == "README.md"]


def test_committed_outputs_name_no_local_paths():
    """Stored results, docs and notebooks name data by package and file, never by a local path."""
    offenders = {
        str(path.relative_to(ROOT)): match.group(0)
        for path in committed_outputs()
        if path.suffix in (".json", ".md", ".ipynb", ".csv") and (match := LOCAL_PATH.search(path.read_text()))
    }
    assert not offenders


def test_committed_json_is_strict():
    """NaN and infinities are stored as null (flaxinit.tooling.write_json), so any JSON reader takes every file."""

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    for path in committed_outputs():
        if path.suffix == ".json":
            json.loads(path.read_text(), parse_constant=refuse)


def test_readme_usage_example_runs():
    """The README's usage block is runnable code, not a sketch."""
    text = (ROOT / "README.md").read_text()
    usage = text[text.index("## Usage") :]
    code = re.search(r"```python\n(.*?)```", usage, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})


def test_readme_states_the_lowest_versions_ci_pins():
    """README's "Supported versions" names the lowest version of every runtime dependency, as
    .ci/lowest.py pins it from pyproject.toml (compared as versions: 0.10 is 0.10.0)."""
    from packaging.version import Version

    spec = importlib.util.spec_from_file_location("lowest", ROOT / ".ci" / "lowest.py")
    lowest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lowest)
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = dict(pin.split("==") for pin in lowest.lowest_pins(dependencies))
    stated = re.search(r"allows \(([^)]*)\)", " ".join((ROOT / "README.md").read_text().split()))
    assert stated, "README no longer lists the lowest versions"
    found = re.findall(r"([\w/]+) ([\d.]+)", stated.group(1))
    readme = {name.lower().split("/")[0]: version for name, version in found}  # "jax/jaxlib": jax pins its jaxlib
    assert {name: Version(v) for name, v in readme.items()} == {name: Version(v) for name, v in pins.items()}
