"""Seeing the outputs of a ``flax.nnx`` model's own layers while it runs: :func:`nnx_call_hook`."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

_MISSING = object()


@contextlib.contextmanager
def nnx_call_hook(
    model: Any, hook: Callable[[tuple[Any, ...], Any, Any], Any], select: type | tuple[type, ...] | None = None
) -> Iterator[None]:
    """Passes the output of every call of one of ``model``'s submodules through ``hook``.

    For the duration of the block, the ``__call__`` of each class among ``model``'s
    submodules (those that are instances of ``select``, if given) is wrapped, and restored
    after: special methods are looked up on the type, so an instance attribute would not
    do. Only ``model``'s own instances, matched by identity, are hooked:
    ``hook(path, module, output)`` returns what the call returns (``output``, or a
    replacement). ``nnx.capture`` would need each layer to ``sow`` its output; this works
    for any layer. Not thread-safe: another thread calling the same classes inside the block
    goes through the wrapper too (and, not being ``model``'s, is left alone).

    Args:
      model: a ``flax.nnx`` Module.
      hook: ``(path, module, output) -> output``; ``path`` is the tuple of
        ``nnx.iter_modules``.
      select: layer types to hook (default: every submodule, ``model`` included).
    """
    from flax import nnx

    found = [(p, m) for p, m in nnx.iter_modules(model) if select is None or isinstance(m, select)]
    paths = {id(m): tuple(p) for p, m in found}
    classes = {type(m) for _, m in found}
    saved = {cls: cls.__dict__.get("__call__", _MISSING) for cls in classes}
    inherited = {cls: cls.__call__ for cls in classes}  # resolved before any patch: no double wrapping

    def wrap(cls: type, call: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(call)
        def __call__(self, *args, **kwargs):
            out = call(self, *args, **kwargs)
            if type(self) is cls and id(self) in paths:
                out = hook(paths[id(self)], self, out)
            return out

        return __call__

    try:
        for cls in classes:
            type.__setattr__(cls, "__call__", wrap(cls, inherited[cls]))
        yield
    finally:
        for cls, original in saved.items():
            if original is _MISSING:
                type.__delattr__(cls, "__call__")
            else:
                type.__setattr__(cls, "__call__", original)
