"""The code's layout: no package reaches into another's private modules or names.

flaxinit, mc and experiments are separate packages, and the benchmarks and notebooks are
their users: each may import its own private modules, but from another package only
public names (``flaxinit.tooling`` is the public support layer they share). Checked on
the source, statically, for every import statement of every module, benchmark, notebook
script and notebook code cell. The installed packages (``flaxinit``, ``mc``) never import
``experiments``, which runs from a clone and is not in the wheel. Inside a package, a
module imports the private *modules* of its own package but no other module's underscore
*names*: what modules share is named without an underscore.
"""

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flaxinit", "mc", "experiments")


def sources() -> list[tuple[str, str, str | None]]:
    """(label, Python source, owning package or None) of everything that imports the packages."""
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            out.append((str(path.relative_to(ROOT)), path.read_text(), package))
    for folder in ("benchmarks", "notebooks"):
        for path in sorted((ROOT / folder).glob("*.py")):
            out.append((str(path.relative_to(ROOT)), path.read_text(), None))
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        lines = [line for line in code.splitlines() if not line.lstrip().startswith(("%", "!"))]
        out.append((str(path.relative_to(ROOT)), "\n".join(lines), None))
    return out


#: The packages the wheel installs; ``experiments`` is not one of them.
INSTALLED = ("flaxinit", "mc")


def imported_names(source: str) -> list[str]:
    """Every absolute module or ``module.name`` an import statement of ``source`` names."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend([node.module] + [f"{node.module}.{alias.name}" for alias in node.names])
    return found


def foreign_private_imports(source: str, owner: str | None) -> list[str]:
    found = []
    for name in imported_names(source):
        parts = name.split(".")
        if parts[0] in PACKAGES and parts[0] != owner and any(p.startswith("_") for p in parts[1:]):
            found.append(name)
    return found


@pytest.mark.parametrize("label,source,owner", sources(), ids=[s[0] for s in sources()])
def test_no_private_imports_across_packages(label, source, owner):
    assert not foreign_private_imports(source, owner), f"{label} imports another package's private names"


INSTALLED_SOURCES = [s for s in sources() if s[2] in INSTALLED]


@pytest.mark.parametrize("label,source,owner", INSTALLED_SOURCES, ids=[s[0] for s in INSTALLED_SOURCES])
def test_installed_packages_do_not_import_experiments(label, source, owner):
    assert not [name for name in imported_names(source) if name.split(".")[0] == "experiments"], label


def test_the_check_finds_what_it_looks_for():
    assert foreign_private_imports("from mc._cli import main", "experiments") == ["mc._cli", "mc._cli.main"]
    assert foreign_private_imports("from flaxinit import _checks", "mc") == ["flaxinit._checks"]
    assert foreign_private_imports("import experiments._cli", None) == ["experiments._cli"]
    assert not foreign_private_imports("from mc._engine import BLOCK", "mc")  # its own
    assert not foreign_private_imports("from flaxinit.tooling import write_json", "mc")
    assert imported_names("from experiments.networks import CharRNN") == [
        "experiments.networks",
        "experiments.networks.CharRNN",
    ]


def private_names_imported(source: str) -> list[str]:
    """``module.name`` of every ``from module import _name`` where ``_name`` is not a module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            folder = ROOT.joinpath(*node.module.split("."))
            for alias in node.names:
                is_module = (folder / f"{alias.name}.py").exists() or (folder / alias.name).is_dir()
                if alias.name.startswith("_") and not alias.name.startswith("__") and not is_module:
                    found.append(f"{node.module}.{alias.name}")
    return found


@pytest.mark.parametrize("label,source,owner", INSTALLED_SOURCES, ids=[s[0] for s in INSTALLED_SOURCES])
def test_no_module_imports_another_modules_private_names(label, source, owner):
    assert not private_names_imported(source), label


def test_the_private_name_check_finds_what_it_looks_for():
    assert private_names_imported("from mc._coord import _float") == ["mc._coord._float"]
    assert not private_names_imported("from mc import _fit")  # a private module of its package
    assert not private_names_imported("from mc._results import AsDict")


#: mc's rooms (docs/architecture.md): the μP checks train models through the model tools and
#: never reach the Monte Carlo engine or the article's protocols.
MUP_CHECKS = ("_training", "_sweep", "_coord", "_verify", "_transfer", "_transfer_result", "_width_models")
ENGINE_ROOM = {"mc._engine", "mc._protocols", "mc._results", "mc._fit"}


def mc_modules_imported(source: str) -> set[str]:
    """``mc.<module>`` of every import of an mc module, in any form."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "mc":
            found |= {f"mc.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mc."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("mc.")}
    return found


@pytest.mark.parametrize("module", MUP_CHECKS)
def test_the_mup_checks_do_not_reach_into_the_engine_room(module):
    imported = mc_modules_imported((ROOT / "mc" / f"{module}.py").read_text())
    assert not imported & ENGINE_ROOM, f"mc/{module}.py imports {sorted(imported & ENGINE_ROOM)}"


def test_the_room_check_finds_what_it_looks_for():
    assert mc_modules_imported("from mc._protocols import as_key\nfrom mc import _engine, _model") == {
        "mc._protocols", "mc._engine", "mc._model"}  # fmt: skip


#: The longest function and module of the installed packages. A function's length is its
#: lines without its docstring: the public checks document some 30 arguments one by one (as
#: the API reference needs), and that documentation is not what makes a function long to read.
MAX_FUNCTION_LINES, MAX_MODULE_LINES = 100, 600


def function_lengths(source: str) -> list[tuple[str, int]]:
    """``(name, lines without the docstring)`` of every function of ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = node.end_lineno - node.lineno + 1
            if ast.get_docstring(node) is not None:
                lines -= node.body[0].end_lineno - node.body[0].lineno + 1
            found.append((node.name, lines))
    return found


@pytest.mark.parametrize("label,source,owner", INSTALLED_SOURCES, ids=[s[0] for s in INSTALLED_SOURCES])
def test_functions_and_modules_stay_short(label, source, owner):
    assert len(source.splitlines()) <= MAX_MODULE_LINES, label
    long = [(name, lines) for name, lines in function_lengths(source) if lines > MAX_FUNCTION_LINES]
    assert not long, (label, long)


def test_function_lengths_leave_the_docstring_out():
    source = 'def f(x):\n    """Doc.\n\n    More.\n    """\n    return x\n'
    assert function_lengths(source) == [("f", 2)]
