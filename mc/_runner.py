"""``python -m mc``'s runs: tables of rows, interruptible, resumable, and agreed across processes.

Every run is a list of tables, each a list of rows; a row is one engine task. Ctrl-C stops
after the current device call (the accumulators of the row in progress are kept, so
``--resume`` gives the bits of an uninterrupted run); with several processes every
process stops at the same call.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from flaxinit import tooling
from mc._engine import Accumulator
from mc._protocols import Task


@dataclasses.dataclass
class Table:
    name: str  # "standard", "normalized" or "depth"
    rows: list[tuple[str, Task]]  # (scheme spec, task)


class _Stop(Exception):
    """Raised between chunks after Ctrl-C."""


class Runner:
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
        stored = dict(data.get("settings") or {})
        stored.setdefault("prng", "threefry2x32")  # runs from before the generator was recorded
        if stored["prng"] != self.settings.get("prng"):
            raise tooling.UsageError(
                f"--resume: the partial run in the JSON file was drawn with {stored['prng']}, this command "
                f"draws with {self.settings.get('prng')}: pass the matching --prng"
            )
        if stored != self.settings:
            raise tooling.UsageError(
                "--resume: the settings in the JSON file differ from this command's "
                f"({data.get('settings')} vs {self.settings})"
            )
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

    def _on_sigint(self, signum, frame) -> None:
        if self.stop_requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.stop_requested = True
        print("\ninterrupted: finishing the current chunk, then writing what was computed", file=sys.stderr)

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
