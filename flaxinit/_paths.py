"""Parameter paths as the ``/``-joined strings every tool prints and every ``layers=``,
``fans=`` or ``draws=`` glob matches: one spelling for linen dicts, nnx states and modules.

A path's names are its dict keys, attribute names and sequence indices, in order; the
attribute ``.value`` through which an ``nnx.Variable`` or a linen box (``nn.Partitioned``)
holds its array is left out (a module or dict entry *named* ``value``, attention's value
projection, is a name like any other).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax


def key_names(keys: Sequence[Any]) -> list[str]:
    """The names of a path: ``tree_flatten_with_path`` keys (or plain names, as
    ``flax.traverse_util.flatten_dict`` gives them), the boxes' ``.value`` left out.

    Examples:
      >>> import jax
      >>> [(keys, _)] = jax.tree_util.tree_flatten_with_path({"Dense_0": {"kernel": 1}})[0]
      >>> key_names(keys)
      ['Dense_0', 'kernel']
    """
    keys = [k for k in keys if not (isinstance(k, jax.tree_util.GetAttrKey) and k.name == "value")]
    return [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in keys]


def path_str(keys: Sequence[Any]) -> str:
    """The ``/``-joined path of :func:`key_names`.

    Examples:
      >>> path_str(("layers", 0, "kernel"))
      'layers/0/kernel'
    """
    return "/".join(key_names(keys))


def flat_paths(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list[tuple[str, Any]]:
    """``[(path, leaf)]`` of a pytree, in its flattening order, paths as :func:`path_str`.

    Examples:
      >>> flat_paths({"Dense_0": {"bias": 0, "kernel": 1}})
      [('Dense_0/bias', 0), ('Dense_0/kernel', 1)]
    """
    return [(path_str(keys), leaf) for keys, leaf in jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)[0]]
