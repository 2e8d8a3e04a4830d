"""Seeing the calls of a ``flax.nnx`` model's layers while it runs: :func:`nnx_intercept_calls`
(every instance of some classes, around the call) and :func:`nnx_call_hook` (one model's own
layers, their outputs)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_MISSING = object()


@contextlib.contextmanager
def nnx_intercept_calls(
    classes: Iterable[type], interceptor: Callable[[Callable[..., Any], Any, tuple, dict], Any]
) -> Iterator[None]:
    """Routes every ``__call__`` of the given classes through ``interceptor``, as linen's
    ``nn.intercept_methods`` does for linen modules.

    For the duration of the block, each class's ``__call__`` is replaced by a wrapper, and
    restored after: special methods are looked up on the type, so an instance attribute would
    not do. A call ``module(*args, **kwargs)`` of an instance whose type is one of
    ``classes`` becomes ``interceptor(call, module, args, kwargs)``, where ``call(*args,
    **kwargs)`` runs the original method; a subclass's ``super().__call__`` goes straight to
    the original. Not thread-safe: another thread calling these classes inside the block goes
    through the interceptor too.

    Args:
      classes: module classes to intercept.
      interceptor: ``(call, module, args, kwargs) -> output``.
    """
    classes = set(classes)
    saved = {cls: cls.__dict__.get("__call__", _MISSING) for cls in classes}
    inherited = {cls: cls.__call__ for cls in classes}  # resolved before any patch: no double wrapping

    def wrap(cls: type, call: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(call)
        def __call__(self, *args, **kwargs):
            if type(self) is not cls:  # a subclass's super() call
                return call(self, *args, **kwargs)
            return interceptor(functools.partial(call, self), self, args, kwargs)

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


@contextlib.contextmanager
def nnx_call_hook(
    model: Any, hook: Callable[[tuple[Any, ...], Any, Any], Any], select: type | tuple[type, ...] | None = None
) -> Iterator[None]:
    """Passes the output of every call of one of ``model``'s submodules through ``hook``.

    Only ``model``'s own instances, matched by identity, are hooked (the classes are
    intercepted with :func:`nnx_intercept_calls`): ``hook(path, module, output)`` returns
    what the call returns (``output``, or a replacement). ``nnx.capture`` would need each
    layer to ``sow`` its output; this works for any layer.

    Args:
      model: a ``flax.nnx`` Module.
      hook: ``(path, module, output) -> output``; ``path`` is the tuple of
        ``nnx.iter_modules``.
      select: layer types to hook (default: every submodule, ``model`` included).
    """
    from flax import nnx

    found = [(p, m) for p, m in nnx.iter_modules(model) if select is None or isinstance(m, select)]
    paths = {id(m): tuple(p) for p, m in found}

    def interceptor(call, module, args, kwargs):
        out = call(*args, **kwargs)
        return hook(paths[id(module)], module, out) if id(module) in paths else out

    with nnx_intercept_calls({type(m) for _, m in found}, interceptor):
        yield
