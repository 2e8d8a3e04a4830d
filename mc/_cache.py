"""Compiled programs kept between calls: :data:`PROGRAMS`, one cache for every model tool.

A tool (the audit, the coordinate check, the LR sweep) builds a program from a model and its
options, traces it once and compiles it once; called again with the same model and options,
it should find that program, not build, trace and compile a new one. The key is everything
that determines the program, made hashable by :func:`freeze` (dicts and lists of options
become sorted tuples), so a ``fans=`` mapping or ``call_kwargs`` keep the cache on.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def freeze(value: Any) -> Any:
    """``value`` as a hashable key: mappings as sorted ``(key, value)`` tuples, lists and tuples
    as tuples, recursively; anything else as it is (a ``TypeError`` later if unhashable)."""
    if isinstance(value, Mapping):
        return ("mapping", tuple(sorted(((freeze(k), freeze(v)) for k, v in value.items()), key=repr)))
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(freeze(v) for v in value))
    return value


class ProgramCache(Generic[T]):
    """The ``size`` most recently used programs, by key.

    Examples:
      >>> cache = ProgramCache(2)
      >>> built = cache.get(("model", {"fans": [1, 2]}), lambda: object())
      >>> cache.get(("model", {"fans": [1, 2]}), lambda: object()) is built
      True
    """

    def __init__(self, size: int):
        self.size = size
        self._programs: collections.OrderedDict[Any, T] = collections.OrderedDict()

    def get(self, key: Any, build: Callable[[], T], valid: Callable[[T], bool] | None = None) -> T:
        """The program of ``key``, built by ``build()`` if not kept (always, for a key that
        cannot be hashed: a function among the options is hashed by identity, an array not),
        or if ``valid`` says the kept one is not (a compilation cancelled or failed)."""
        try:
            key = freeze(key)
            hash(key)
        except TypeError:
            return build()
        if key not in self._programs or (valid is not None and not valid(self._programs[key])):
            self._programs[key] = build()
            while len(self._programs) > self.size:
                self._programs.popitem(last=False)
        self._programs.move_to_end(key)
        return self._programs[key]

    def clear(self) -> None:
        self._programs.clear()


#: The one cache of every model tool (the audit, the coordinate check and the verdict, the LR
#: sweep); each key begins with the tool's name, and a program's key holds everything that
#: determines it (not the learning rate, the data's values or the keys, which are arguments).
PROGRAMS: ProgramCache[Any] = ProgramCache(64)


__all__ = ["PROGRAMS", "ProgramCache", "freeze"]
