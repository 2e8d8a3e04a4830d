"""Execute the exploration notebooks with nbclient, optionally small and optionally saved.

    python notebooks/run_notebooks.py [--small] [--write] [-p NAME=VALUE ...] [NOTEBOOK ...]

Each notebook holds its sizes in one code cell tagged ``parameters``. Overrides are
injected papermill-style: a new code cell (tagged ``injected-parameters``) right after
that cell assigns the new values, so every later cell sees them. ``--small`` applies the
notebook's entry of ``SMALL`` (sizes that run in well under a minute); ``-p`` adds or
replaces single values (``ast.literal_eval`` syntax, e.g. ``-p 'standard_sizes=[1, 10]'``).
Without ``--write`` nothing is written; with it, each executed notebook, outputs
included, replaces its file.

The kernel is ``python3`` from the environment this script runs in (``sys.executable``);
the script checks that the kernelspec resolves to it and registers nothing. Cells run
with the notebook's folder as working directory and a limit of 600 s each. If a cell
fails, the script stops with a non-zero exit status naming the notebook and the cell.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from flaxinit.tooling import write_text

NOTEBOOK_DIR = Path(__file__).resolve().parent
NOTEBOOKS = ("01_magnitude.ipynb", "02_flax_usage.ipynb", "03_study.ipynb", "04_audit.ipynb", "05_mup.ipynb")
KERNEL_NAME = "python3"
CELL_TIMEOUT = 600  # seconds per cell
STARTUP_TIMEOUT = 300  # seconds for the kernel to start (a loaded machine can take minutes)
REPO_ROOT = NOTEBOOK_DIR.parent  # on the kernel's path: ``experiments`` runs from the clone, uninstalled
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"

#: Per notebook, the overrides of ``--small``: each notebook in well under a minute.
SMALL: dict[str, dict[str, Any]] = {
    "01_magnitude.ipynb": {
        "curve_points": 60,
        "table_sizes": [1, 2, 3, 10, 1000],
        "standard_sizes": [2, 300],
        "standard_iterations": 4096,
        "normalized_shapes": [(3, 5)],
        "normalized_iterations": 128,
        "depth_width": 16,
        "depth_layers": 3,
        "depth_iterations": 128,
        "save_readme_figure": False,
    },
    "02_flax_usage.ipynb": {
        "fan_in": 32,
        "width": 16,
        "batch_size": 8,
        "conv_channels": 4,
        "conv_features": 8,
        "image_size": 5,
        "anm_sizes": [50],
        "anm_iterations": 4096,
        "vocab_size": 20,
        "lsuv_depth": 4,
        "lsuv_width": 16,
        "lsuv_batch": 64,
        "resnet_features": 8,
        "resnet_blocks": 3,
        "train_steps": 5,
    },
    "03_study.ipynb": {
        # the committed results are read as in the full run; only the fallback gets smaller
        "fallback_args": ["counting", "--quick", "--epochs", "3", "--seeds", "1,2"],
    },
    "04_audit.ipynb": {
        "mlp_depth": 4,
        "mlp_width": 16,
        "mlp_iterations": 32,
        "resnet_depth": 3,
        "resnet_width": 16,
        "resnet_iterations": 32,
        "transformer_depth": 2,
        "transformer_width": 16,
        "transformer_iterations": 16,
        "batch": 4,
    },
    "05_mup.ipynb": {
        "mlp_widths": [16, 32],
        "transformer_widths": [16, 32],
        "transformer_depth": 1,
        "seeds": 2,
        "steps": 2,
        "batch": 8,
        "features": 16,
        "sequences": 2,
        "length": 8,
        "verify_widths": [32, 64, 128],
        "verify_seeds": 4,
    },
}


class NotebookError(RuntimeError):
    """A notebook could not be executed: a cell raised, timed out or the kernel died."""


def check_kernel(name: str = KERNEL_NAME) -> str:
    """Returns the kernel's Python, after checking that ``name`` runs ``sys.executable``.

    ipykernel's ``python3`` kernelspec says ``python``, which jupyter_client replaces by
    ``sys.executable``; a spec with another absolute interpreter (a kernel registered
    globally for some other environment) is refused.
    """
    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise NotebookError(
            f"no {name!r} kernelspec: install ipykernel in this environment ({sys.executable} -m pip install ipykernel)"
        ) from None
    exe = spec.argv[0] if spec.argv else ""
    version = sys.version_info
    if exe in ("python", f"python{version[0]}", f"python{version[0]}.{version[1]}"):
        return sys.executable  # jupyter_client substitutes sys.executable for these
    found = shutil.which(exe)
    if found and os.path.realpath(found) == os.path.realpath(sys.executable):
        return sys.executable
    raise NotebookError(
        f"the {name!r} kernelspec in {spec.resource_dir} runs {exe!r}, not this environment's Python "
        f"({sys.executable}); remove that kernelspec or run from an environment whose ipykernel provides {name!r}"
    )


def parameter_names(nb: nbformat.NotebookNode) -> tuple[int, set[str]]:
    """The index of the ``parameters`` cell and the names it assigns."""
    tagged = [i for i, c in enumerate(nb.cells) if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise NotebookError(f"expected exactly one cell tagged {PARAMETERS_TAG!r}, found {len(tagged)}")
    index = tagged[0]
    names = set()
    for node in ast.parse(nb.cells[index].source).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return index, names


def inject_parameters(nb: nbformat.NotebookNode, overrides: Mapping[str, Any]) -> nbformat.NotebookNode:
    """A copy of ``nb`` with a cell assigning ``overrides`` right after the parameters cell.

    Every override must name a parameter of the notebook, and its ``repr`` must be a
    Python literal. Without overrides the copy is unchanged.
    """
    nb = copy.deepcopy(nb)
    # a notebook saved by an earlier --write carries its overrides: drop them first
    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    index, names = parameter_names(nb)
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise NotebookError(f"unknown parameter(s) {', '.join(unknown)}; the notebook's are {', '.join(sorted(names))}")
    if not overrides:
        return nb
    lines = ["# Parameters injected by notebooks/run_notebooks.py"]
    for name, value in overrides.items():
        text = repr(value)
        if ast.literal_eval(text) != value:
            raise NotebookError(f"parameter {name}: {value!r} is not a Python literal")
        lines.append(f"{name} = {text}")
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": [INJECTED_TAG]})
    nb.cells.insert(index + 1, cell)
    return nb


def _describe(nb: nbformat.NotebookNode, index: int) -> str:
    """``cell N`` in the notebook's own numbering (injected cell not counted), with its first line."""
    injected = [i for i, c in enumerate(nb.cells) if INJECTED_TAG in c.get("metadata", {}).get("tags", [])]
    cell = nb.cells[index]
    if index in injected:
        where = "the injected parameters cell"
    else:
        where = f"cell {index - sum(i < index for i in injected)}"
    first = next((line for line in cell.source.splitlines() if line.strip()), "")
    return f"{where} (`{first[:80]}`)"


def _why(err: CellTimeoutError | DeadKernelError, timeout: int) -> str:
    """Why a cell stopped without an error of its own: a time-out or a dead kernel, said plainly."""
    if isinstance(err, CellTimeoutError):
        return f"timed out: still running after the limit of {timeout} s per cell (CellTimeoutError)"
    return f"the kernel died while running it (killed, or out of memory; DeadKernelError: {err})"


def kernel_environment() -> dict[str, str]:
    """This process's environment with the repository root first on ``PYTHONPATH``."""
    paths = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def _error_of(cell: nbformat.NotebookNode) -> str | None:
    """``ename: evalue`` of the cell's error output, if it has one."""
    for o in cell.get("outputs", []):
        if o.get("output_type") == "error":
            return f"{o.get('ename', 'Error')}: {o.get('evalue', '')}"
    return None


def execute(
    path: Path | str,
    overrides: Mapping[str, Any] | None = None,
    *,
    write: bool = False,
    timeout: int = CELL_TIMEOUT,
) -> nbformat.NotebookNode:
    """Executes the notebook at ``path`` (with ``overrides`` injected) and returns it with outputs.

    Raises:
      NotebookError: naming the notebook and the cell, if a cell raised or timed out or
        the kernel died. With ``write=True`` the executed notebook replaces the file
        (only when every cell succeeded).
    """
    path = Path(path).resolve()
    check_kernel()
    try:
        nb = inject_parameters(nbformat.read(path, as_version=4), overrides or {})
    except NotebookError as err:
        raise NotebookError(f"{path.name}: {err}") from None
    started: list[int] = []  # indices of the cells the kernel was asked to run, in order
    client = NotebookClient(
        nb,
        timeout=timeout,
        startup_timeout=STARTUP_TIMEOUT,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
        on_cell_start=lambda cell, cell_index: started.append(cell_index),
    )
    try:
        client.execute(env=kernel_environment())
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
        # the cell that stopped the run is the last one started, whatever the kernel managed
        # to report about it before it died or was interrupted
        index = started[-1] if started else None
        if isinstance(err, CellTimeoutError | DeadKernelError):
            summary = _why(err, timeout)  # a timed-out cell shows only its interruption's KeyboardInterrupt
        else:
            error = _error_of(nb.cells[index]) if index is not None else None
            summary = error or f"{type(err).__name__}: {err}".strip()
        where = _describe(nb, index) if index is not None else "an unknown cell"
        raise NotebookError(f"{path.name}: {where} failed: {summary}") from err
    except RuntimeError as err:  # jupyter_client: the kernel did not answer within startup_timeout
        raise NotebookError(f"{path.name}: the kernel did not start within {STARTUP_TIMEOUT} s ({err})") from err
    if write:
        write_text(path, nbformat.writes(nb))  # atomic: a committed notebook is never left half-written
    return nb


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python notebooks/run_notebooks.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help=f"default: all of {', '.join(NOTEBOOKS)}")
    parser.add_argument("--small", action="store_true", help="use the small sizes of SMALL (under a minute each)")
    parser.add_argument("--write", action="store_true", help="save each executed notebook with its outputs in place")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                        help="override one parameter (a Python literal); repeatable")  # fmt: skip
    args = parser.parse_args(argv)

    extra = {}
    for item in args.parameter:
        name, sep, text = item.partition("=")
        try:
            if not sep:
                raise ValueError
            extra[name.strip()] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            parser.error(f"-p needs NAME=VALUE with a Python literal VALUE, got {item!r}")

    paths = [Path(p) for p in args.notebooks] or [NOTEBOOK_DIR / n for n in NOTEBOOKS]
    for p in paths:
        if not p.is_file():
            parser.error(f"no such notebook: {p}")
    try:
        print(f"kernel {KERNEL_NAME!r}: {check_kernel()}")
    except NotebookError as err:
        print(f"run_notebooks: error: {err}", file=sys.stderr)
        return 1
    for p in paths:
        overrides = {**(SMALL.get(p.name, {}) if args.small else {}), **extra}
        start = time.perf_counter()
        try:
            execute(p, overrides, write=args.write)
        except NotebookError as err:
            print(f"run_notebooks: error: {err}", file=sys.stderr)
            return 1
        status = "executed and written" if args.write else "executed (not written)"
        print(f"{p.name}: {status} in {time.perf_counter() - start:.0f} s" + (" (small)" if args.small else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
