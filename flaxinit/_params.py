"""One way to read and write a model's parameters, for every model-level tool.

:func:`lsuv`, :func:`net2wider` and :func:`weight_selection` accept the parameters of a
``flax.linen`` model (the ``params`` collection, or the whole variables dict, plain or
frozen) or a ``flax.nnx`` model (a ``Module``, or an ``nnx.State``). :func:`read` turns
any of them into a flat ``{path: array}`` dict of the parameters; the tool works on that;
:meth:`ParamTree.write` gives the result back in the caller's form:

* linen: a new tree of the same form (pure; a frozen input gives a frozen result; the
  other collections of a variables dict, such as ``batch_stats``, are kept as they were);
* ``nnx.State``: a new ``nnx.State`` of the same structure;
* ``nnx.Module``: the module is updated in place (``nnx.update``), and its new
  ``nnx.State`` of ``nnx.Param`` is returned.

Paths are tuples of names (nnx list indices as ints), without the ``"params"`` collection
name; :func:`flaxinit._paths.path_str` joins them with ``/``, as the tools' ``layers=`` arguments do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
from flax import nnx, traverse_util
from flax.core import frozen_dict

Path = tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class ParamTree:
    """A model's parameters, flat, and how to give new values back in the caller's form.

    Attributes:
      flat: ``{path: array}`` of every parameter.
      collections: for a linen variables dict, its other collections (``batch_stats``, ...),
        which a forward pass needs; else empty.
      write: ``write(flat) -> result``: the new parameters in the caller's form (an nnx
        module is updated in place and its new parameter state returned).
    """

    flat: dict[Path, Any]
    collections: Mapping[str, Any]
    write: Callable[[dict[Path, Any]], Any]

    def variables(self, flat: dict[Path, Any]) -> dict[str, Any]:
        """linen: the variables dict that ``module.apply`` takes, with ``flat`` as its params."""
        return {"params": traverse_util.unflatten_dict(flat), **self.collections}


def read(obj: Any, role: str) -> ParamTree:
    """The parameters of ``obj`` (see the module docstring) as a :class:`ParamTree`.

    Raises:
      TypeError: naming ``role`` (the argument's name), for anything else.
    """
    if isinstance(obj, nnx.Module):
        state = nnx.state(obj, nnx.Param)

        def write_module(flat: dict[Path, Any]) -> nnx.State:
            nnx.replace_by_pure_dict(state, traverse_util.unflatten_dict(flat))
            nnx.update(obj, state)
            return nnx.state(obj, nnx.Param)

        return ParamTree(traverse_util.flatten_dict(nnx.to_pure_dict(state)), {}, write_module)
    if isinstance(obj, nnx.State):

        def write_state(flat: dict[Path, Any]) -> nnx.State:
            new = jax.tree.map(lambda leaf: leaf, obj)  # a copy: the caller's state is left as it was
            nnx.replace_by_pure_dict(new, traverse_util.unflatten_dict(flat))
            return new

        return ParamTree(traverse_util.flatten_dict(nnx.to_pure_dict(obj)), {}, write_state)
    if isinstance(obj, Mapping):
        frozen = isinstance(obj, frozen_dict.FrozenDict)
        plain = frozen_dict.unfreeze(obj)
        wrapped = "params" in plain and isinstance(plain["params"], Mapping)
        params = plain["params"] if wrapped else plain
        collections = {k: v for k, v in plain.items() if k not in ("params", "intermediates")} if wrapped else {}

        def write_tree(flat: dict[Path, Any]) -> Any:
            tree = traverse_util.unflatten_dict(flat)
            tree = {**plain, "params": tree} if wrapped else tree
            return frozen_dict.freeze(tree) if frozen else tree

        return ParamTree(traverse_util.flatten_dict(params), collections, write_tree)
    raise TypeError(
        f"{role} must be a flax.linen params (or variables) mapping, a flax.nnx.Module or an nnx.State, "
        f"got {type(obj).__name__}"
    )
