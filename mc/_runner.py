"""``python -m mc``'s runs: tables of rows, interruptible, resumable, and agreed across processes.

Every run is a list of tables, each a list of rows; a row is one engine task. Ctrl-C stops
after the current device call (the accumulators of the row in progress are kept, so
``--resume`` gives the bits of an uninterrupted run); with several processes every
process stops at the same call.

``coord-check`` is not made of engine tasks: :class:`CoordRunner` runs one
:func:`mc.coord_check` per parametrization, stops after the current width on Ctrl-C, and
resumes from the widths already measured, with the same settings check
(:func:`check_resumable`).
"""

from __future__ import annotations

import dataclasses
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from flaxinit import tooling
from mc._coord import CoordCheckResult, CoordRow
from mc._engine import Accumulator
from mc._protocols import Task
from mc._results import json_float


@dataclasses.dataclass
class Table:
    name: str  # "standard", "normalized" or "depth"
    rows: list[tuple[str, Task]]  # (scheme spec, task)


class _Stop(Exception):
    """Raised between chunks (or widths) after Ctrl-C."""


def check_resumable(data: dict[str, Any], settings: dict[str, Any]) -> None:
    """``--resume``'s check (:func:`flaxinit.tooling.check_resumable`) of a results file ``data``;
    a run from before the generator was recorded drew with threefry."""
    stored = data.get("settings")
    if isinstance(stored, dict):
        stored = {"prng": "threefry2x32", **stored}
        if stored["prng"] != settings.get("prng"):  # the one setting a flag of its own fixes: say which
            raise tooling.UsageError(
                f"--resume: the partial run in the JSON file was drawn with {stored['prng']}, this command "
                f"draws with {settings.get('prng')}: pass the matching --prng"
            )
    tooling.check_resumable(stored, settings, "the JSON file")


class _Interruptible:
    """Ctrl-C asks the run to stop at its next safe point (after the current ``unit``); a
    second Ctrl-C stops at once."""

    unit = "chunk"
    stop_requested = False

    def _on_sigint(self, signum, frame) -> None:
        if self.stop_requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.stop_requested = True
        print(f"\ninterrupted: finishing the current {self.unit}, then writing what was computed", file=sys.stderr)


class Runner(_Interruptible):
    """Runs tables row by row; keeps finished rows and the row in progress."""

    def __init__(self, settings: dict[str, Any], progress: bool, chunk_size: int | None):
        self.settings = settings
        self.progress = progress
        self.chunk_size = chunk_size
        self.results: dict[str, dict[str, Any]] = {}  # row id -> result dict
        self.pending: dict[str, dict[str, Any]] = {}  # row id -> accumulator state
        self.stop_requested = False

    @staticmethod
    def row_id(table: str, spec: str, task: Task) -> str:
        return f"{table} | {spec} | {task.label}"

    def load(self, data: dict[str, Any]) -> None:
        check_resumable(data, self.settings)
        self.results = {r["id"]: r for r in data.get("rows", [])}
        self.pending = dict(data.get("pending", {}))

    def run(self, tables: Sequence[Table]) -> bool:
        """Runs every unfinished row; returns False if interrupted."""
        from tqdm.auto import tqdm

        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            for table in tables:
                todo = [(s, t) for s, t in table.rows if self.row_id(table.name, s, t) not in self.results]
                total = sum(t.iterations for _, t in table.rows)
                done = total - sum(t.iterations for _, t in todo)
                bar = tqdm(total=total, initial=done, desc=table.name, unit="it", disable=not self.progress)
                try:
                    for spec, task in todo:
                        self._run_row(table.name, spec, task, bar)
                finally:
                    bar.close()
        except _Stop:
            return False
        finally:
            signal.signal(signal.SIGINT, previous)
        return True

    def _run_row(self, table: str, spec: str, task: Task, bar) -> None:
        rid = self.row_id(table, spec, task)
        state = self.pending.get(rid)
        acc = Accumulator.from_dict(state) if state else task.new_accumulator()
        bar.update(acc.iterations_done)
        bar.set_postfix_str(f"{spec} {task.label}")

        def on_chunk(a: Accumulator) -> None:
            bar.update(a.iterations_done - on_chunk.seen)
            on_chunk.seen = a.iterations_done
            self.pending[rid] = a.to_dict()
            if self.should_stop():
                raise _Stop

        on_chunk.seen = acc.iterations_done
        if self.should_stop():
            raise _Stop
        result = task.run(acc, self.chunk_size, on_chunk)
        self.pending.pop(rid, None)
        self.results[rid] = {"id": rid, "table": table, "spec": spec, **result.to_dict()}

    def should_stop(self) -> bool:
        """Whether to stop now. With several processes, all of them stop at the same device call
        (one tiny all-gather of the flag), so none is left waiting in a collective."""
        if jax.process_count() == 1:
            return self.stop_requested
        from jax.experimental import multihost_utils

        return bool(np.any(multihost_utils.process_allgather(np.int32(self.stop_requested))))

    def rows(self, table: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.results.values() if table is None or r["table"] == table]

    def document(self, partial: bool, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "partial": partial,
            "machine": tooling.machine(),
            "rows": list(self.results.values()),
            "pending": self.pending if partial else {},
            **(extra or {}),
        }


# --- python -m mc coord-check ------------------------------------------------------------------


#: per width: its rows and its per-step losses, as ``mc.coord_check``'s ``done=`` takes them
Measured = dict[int, tuple[list[CoordRow], list[float]]]


class CoordRunner(_Interruptible):
    """``python -m mc coord-check``'s run: one :func:`mc.coord_check` per parametrization.

    Every finished width is kept (``coord_check``'s ``on_size``); Ctrl-C stops after the
    current width, and ``--resume`` passes the widths already measured as ``done=``, so they
    are not run again (each width's bits depend only on the key and that width: the resumed
    run's are the uninterrupted run's).
    """

    unit = "width"

    def __init__(
        self, settings: dict[str, Any], parametrizations: Sequence[str], widths: Sequence[int], progress: bool
    ):
        self.settings = settings
        self.parametrizations = tuple(parametrizations)
        self.widths = tuple(sorted(widths))
        self.progress = progress
        self.results: dict[str, CoordCheckResult] = {}  # parametrization -> its finished check
        self.pending: dict[str, Measured] = {}  # parametrization in progress -> widths measured
        self.stop_requested = False

    def load(self, data: dict[str, Any]) -> None:
        check_resumable(data, self.settings)
        try:
            self.results = {p: CoordCheckResult.from_dict(r) for p, r in (data.get("results") or {}).items()}
            self.pending = {
                p: {
                    int(w): ([CoordRow.from_dict(r) for r in d["rows"] if r["width"] == w], list(json_float(losses)))
                    for w, losses in zip(d["widths"], d["losses"], strict=True)
                }
                for p, d in (data.get("pending") or {}).items()
            }
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise tooling.UsageError(f"--resume: not a results file of python -m mc coord-check ({err!r})") from None

    def run(self, checks: dict[str, Callable[..., CoordCheckResult]]) -> bool:
        """Runs the unfinished parametrizations; returns False if interrupted.

        ``checks``: parametrization -> ``check(on_size=..., done=...)``, a ``mc.coord_check``
        with every other argument bound."""
        from tqdm.auto import tqdm

        todo = [p for p in self.parametrizations if p not in self.results]
        total = len(self.parametrizations) * len(self.widths)
        remaining = sum(len(self.widths) - len(self.pending.get(p, {})) for p in todo)
        bar = tqdm(total=total, initial=total - remaining, desc="coord-check", unit="width", disable=not self.progress)
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            for parametrization in todo:
                if self.stop_requested:
                    raise _Stop
                measured = self.pending.setdefault(parametrization, {})
                done = dict(measured)
                bar.set_postfix_str(parametrization)

                def on_size(width: int, rows: list[CoordRow], losses: list[float], measured=measured, done=done):
                    if width not in done:
                        measured[width] = (list(rows), list(losses))
                        bar.update()
                    if self.stop_requested and width != self.widths[-1]:
                        raise _Stop

                self.results[parametrization] = checks[parametrization](on_size=on_size, done=done)
                del self.pending[parametrization]
        except _Stop:
            return False
        finally:
            bar.close()
            signal.signal(signal.SIGINT, previous)
        return True

    def finished(self) -> list[CoordCheckResult]:
        """The finished checks, in the command's order of parametrizations."""
        return [self.results[p] for p in self.parametrizations if p in self.results]

    def rows(self) -> list[dict[str, Any]]:
        """Every measured row (finished parametrizations and the one in progress), with its parametrization."""
        out = []
        for p in self.parametrizations:
            if p in self.results:
                rows = list(self.results[p].rows)
            else:
                rows = [r for w in sorted(self.pending.get(p, {})) for r in self.pending[p][w][0]]
            out += [{"parametrization": p, **r.to_dict()} for r in rows]
        return out

    def widths_done(self) -> int:
        return sum(
            len(self.widths) if p in self.results else len(self.pending.get(p, {})) for p in self.parametrizations
        )

    def document(self, partial: bool, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        pending = {
            p: {
                "widths": sorted(measured),
                "rows": [r.to_dict() for w in sorted(measured) for r in measured[w][0]],
                "losses": [measured[w][1] for w in sorted(measured)],
            }
            for p, measured in self.pending.items()
            if measured
        }
        return {
            "settings": self.settings,
            "partial": partial,
            "machine": tooling.machine(),
            "results": {r.parametrization: r.to_dict() for r in self.finished()},
            "pending": pending if partial else {},
            **(extra or {}),
        }
