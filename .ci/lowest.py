"""Prints a pip constraints file pinning every runtime dependency at the lowest version pyproject.toml allows.

    python .ci/lowest.py > lowest.txt && pip install -c lowest.txt -e '.[dev]'

CI installs with it to test the bottom of every declared range. A dependency without a
``>=`` lower bound is an error: a range we do not test is a range we cannot claim.
"""

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$")
LOWER_BOUND = re.compile(r">=\s*([0-9][0-9A-Za-z.]*)")


def lowest_pins(dependencies: list[str]) -> list[str]:
    pins = []
    for requirement in dependencies:
        name, specifiers = REQUIREMENT.match(requirement).groups()
        bound = LOWER_BOUND.search(specifiers)
        if bound is None:
            raise SystemExit(f"pyproject.toml: dependency {requirement!r} has no '>=' lower bound to test")
        pins.append(f"{name}=={bound.group(1)}")
    return pins


if __name__ == "__main__":
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    sys.stdout.write("".join(pin + "\n" for pin in lowest_pins(project["dependencies"])))
