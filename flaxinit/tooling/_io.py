"""Output files: written atomically (beside the target, then renamed over it), JSON strictly.

Every JSON file the project writes goes through :func:`write_json`, which writes *strict*
JSON: NaN and infinities become ``null`` (so any JSON reader accepts the file; readers of
the project's results treat ``null`` in a float field as "no value": a diverged run, an
undefined standard error), and NumPy scalars and arrays become plain numbers and lists.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path in ``path``'s folder; renames it over ``path`` on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def to_json(value: Any) -> Any:
    """``value`` with NaN/inf as None and NumPy values as Python ones: what :func:`write_json` writes.

    Examples:
      >>> import numpy as np
      >>> from flaxinit.tooling import to_json
      >>> to_json({"a": [1.5, float("nan")], "b": np.float32(2), "c": np.arange(2), "d": (np.inf,)})
      {'a': [1.5, None], 'b': 2.0, 'c': [0, 1], 'd': [None]}
    """
    if isinstance(value, Mapping):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Writes ``data`` as strict JSON (see :func:`to_json`), atomically."""
    write_text(path, json.dumps(to_json(data), indent=2, allow_nan=False) + "\n")


def write_csv(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> None:
    """Writes dict rows; the header is the union of their keys, in first-seen order."""
    fields: dict[str, None] = {}
    for row in rows:
        fields.update(dict.fromkeys(row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())
