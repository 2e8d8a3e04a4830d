"""Reading a capture's records back (:mod:`mc._capture`): the arrays a traced model
recorded, in call order, with one row per layer of every layer stack.

A record's *template* is its layer's path with one :data:`SLOT` per stack around the layer
(outer first), filled by the layer's index (:func:`indexed`); a stack's layers are listed
index by index (:func:`call_order`); a parameter's stack axes are those of the stack its
module was called in (:func:`stacked_params`).
"""

from __future__ import annotations

import itertools
from typing import Any

import jax
import numpy as np

from mc._capture import SLOT, Layout


def entries(layout: Layout, out: Any) -> list[tuple[str, jax.Array, int]]:
    """``[(template, array, group)]`` in call order: a template is the path with one
    :data:`SLOT` per stack around the layer (outer first), the array has one leading axis
    per slot, and ``group`` numbers the model's own calls and stacks (the layers of one stack
    share it: :func:`call_order` interleaves their indices)."""
    found: list[tuple[str, jax.Array, int]] = []
    stacks = iter(out["stacks"])
    for group, event in enumerate(layout.order):
        if event[0] == "record":
            found.append((event[1], out["records"][event[1]], group))
            continue
        _, kind, sub = event
        for template, array, _ in entries(sub, next(stacks)):
            found.append((template if kind == "remat" else _slot(template, sub.root), array, group))
    names: dict[str, int] = {}
    unique = []
    for template, array, group in found:  # the same template from two stacks of one frame
        names[template] = names.get(template, 0) + 1
        unique.append((template if names[template] == 1 else f"{template}#{names[template]}", array, group))
    return unique


def call_order(layers: list[tuple[str, tuple[int, ...], int]]) -> list[tuple[int, tuple[int, ...]]]:
    """The rows of ``layers`` (``(template, stack dims, group)`` per entry) in call order:
    ``(entry, index)``, a stack's layers index by index (``[0]/a, [0]/b, [1]/a, ...``)."""
    rows = [(e, index) for e, (_, dims, _) in enumerate(layers) for index in np.ndindex(dims)]
    return sorted(rows, key=lambda row: (layers[row[0]][2], row[1][:1], row[0], row[1][1:]))


def _slot(template: str, root: str | None) -> str:
    if root is not None and (template == root or template.startswith((root + "/", root + "#"))):
        return root + SLOT + template[len(root) :]
    return template + SLOT


def stacked_params(layout: Layout, params: list[tuple[str, tuple[int, ...]]]) -> dict[str, int]:
    """``{path: stacked axes}`` for the parameters that stacks hold stacked: a stack's body
    sees them with one leading axis fewer (nested stacks: one per level)."""
    axes = {path: 0 for path, _ in params}
    shapes = dict(params)

    def visit(lay: Layout, seen: dict[str, tuple[int, ...]]):
        for event in lay.order:
            if event[0] != "stack":
                continue
            _, kind, sub = event
            inner = dict(sub.params)
            if kind == "remat":
                visit(sub, seen)
                continue
            deeper = {}
            for path, shape in inner.items():
                if path in seen and seen[path][1:] == shape and len(seen[path]) == len(shape) + 1:
                    axes[path] += 1
                    deeper[path] = shape
            visit(sub, deeper)

    visit(layout, shapes)
    return {p: a for p, a in axes.items() if a}


def indexed(template: str, index: tuple[int, ...]) -> str:
    """``template`` with its slots filled by ``index``: ``ScanBlock_0[3]/Dense_0``."""
    parts = template.split(SLOT)
    return "".join(itertools.chain.from_iterable(zip(parts, [f"[{i}]" for i in index] + [""], strict=True)))
