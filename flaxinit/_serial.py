"""One serialization for every result dataclass: :class:`AsDict` writes a plain dict and
reads it back, from the fields' type hints; :func:`json_float` reads a number of strict JSON.

Strict JSON has no NaN or infinities (:func:`flaxinit.tooling.write_json` writes them as
``null``), so a ``null`` where a float belongs reads back as NaN, or as the value the class
names in :attr:`AsDict.NULLS` (a diverged run's loss is ``inf``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar


def json_float(value: Any, missing: float = math.nan) -> Any:
    """A number read back from strict JSON as a float, ``missing`` for ``null`` (strict JSON's
    NaN and infinities); nested lists become tuples of them.

    Examples:
      >>> json_float([1, None]), json_float(None, math.inf)
      ((1.0, nan), inf)
    """
    if isinstance(value, list | tuple):
        return tuple(json_float(v, missing) for v in value)
    return missing if value is None else float(value)


def _plain(value: Any) -> Any:
    if isinstance(value, AsDict):
        return value.to_dict()
    if isinstance(value, tuple):  # kept a tuple, as the field holds it: JSON writes it as an array
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _decode(hint: Any, value: Any, missing: float) -> Any:
    """``value`` (as JSON gives it) as the type ``hint`` says: floats with ``null`` as ``missing``,
    tuples (fixed or ``tuple[X, ...]``) element by element, :class:`AsDict` classes by their
    ``from_dict``, ``X | None`` as None or X; anything else as it is."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _decode(next(a for a in args if a is not type(None)), value, missing)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v, missing) for v in value)
        return tuple(_decode(a, v, missing) for a, v in zip(args, value, strict=True))
    if hint is float:
        return json_float(value, missing)
    if hint in (int, str, bool):
        return hint(value)
    if isinstance(hint, type) and issubclass(hint, AsDict):
        return hint.from_dict(value)
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


class AsDict:
    """``to_dict``/``from_dict`` for a result dataclass, from its fields and their type hints.

    ``to_dict()`` writes every field (nested results as dicts, tuples kept) and the
    :attr:`DERIVED` properties (recomputed on reading, so never read back); ``from_dict`` is its
    inverse for a dict read back from strict JSON. A field missing from ``data`` takes its
    default (files written before the field existed).

    Examples:
      >>> import dataclasses
      >>> @dataclasses.dataclass(frozen=True)
      ... class Run(AsDict):
      ...     sizes: tuple[int, ...]
      ...     loss: float
      >>> Run.from_dict({"sizes": [64, 128], "loss": None})
      Run(sizes=(64, 128), loss=nan)
      >>> Run((64,), 0.5).to_dict()
      {'sizes': (64,), 'loss': 0.5}
    """

    #: Properties (or methods without arguments) stored beside the fields.
    DERIVED: ClassVar[tuple[str, ...]] = ()
    #: Per field, what a float ``null`` reads back as (default: NaN).
    NULLS: ClassVar[Mapping[str, float]] = {}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of every field and :attr:`DERIVED` value (nested results as dicts)."""
        out = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        for name in self.DERIVED:
            value = getattr(self, name)
            out[name] = _plain(value() if callable(value) else value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        """The result whose ``to_dict()``, as read back from strict JSON, is ``data``."""
        hints = _hints(cls)
        values = {
            f.name: _decode(hints[f.name], data[f.name], cls.NULLS.get(f.name, math.nan))
            for f in dataclasses.fields(cls)
            if f.init and (f.name in data or f.default is dataclasses.MISSING)
        }
        return cls(**values)
