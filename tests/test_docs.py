"""The documentation: every public symbol has a reference entry, links resolve, the site builds."""

import re
import subprocess
import sys
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
    modules = directives("magnitude.md") | directives("blocks.md")
    missing = [
        name
        for name in flaxinit.__all__
        if f"flaxinit.{name}" not in documented and f"flaxinit.{name}" not in modules and name != "__version__"
    ]
    assert not missing, f"add ::: flaxinit.NAME entries to docs/api/flaxinit.md for {missing}"
    assert "flaxinit.magnitude" in modules
    assert {"flaxinit.blocks.linen", "flaxinit.blocks.nnx"} <= modules


def test_every_mc_symbol_is_in_the_reference():
    documented = directives("mc.md")
    text = (API / "mc.md").read_text()
    missing = [name for name in mc.__all__ if f"mc.{name}" not in documented and f"`mc.{name}`" not in text]
    assert not missing


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
