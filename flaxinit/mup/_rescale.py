"""§10's initialization: :func:`rescale` turns a draw of the target model into μP's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax

from flaxinit.mup import _rules
from flaxinit.mup._shapes import flat_infshapes, path_of

DRAWS = ("fan_in", "fixed")


def rescale(
    params: Any, shapes: Any, *, draws: str = "fan_in", zero_output: bool = False, zero_query: bool = False
) -> Any:
    """The μP initialization from a standard draw of the target model (§10, Table 3).

    With ``draws="fan_in"`` (the draw's std scales as ``1/sqrt(fan_in)``: lecun, he, Flax's
    defaults) output weights are multiplied by ``1/sqrt(m_in)`` and everything else kept;
    with ``draws="fixed"`` (a std that does not depend on the fans, such as ``normal(0.02)``)
    hidden weights by ``1/sqrt(m_in)`` and output weights by ``1/m_in``. At the base shapes
    nothing changes. :class:`~flaxinit.mup.Readout` kernels (Table 8's form) are kept.

    Args:
      params: the target model's parameters, in any form :func:`infshapes` takes.
      shapes: what :func:`infshapes` returned for this model.
      draws: ``"fan_in"`` or ``"fixed"``, how ``params`` were drawn.
      zero_output: output weights start at zero (microsoft/mup's advice for readouts).
      zero_query: attention query kernels start at zero (likewise).

    Returns:
      New parameters of the same tree type (a linen variables dict keeps its other
      collections).
    """
    if draws not in DRAWS:
        raise ValueError(f"draws must be one of {', '.join(DRAWS)}, got {draws!r}")
    table = flat_infshapes(shapes)

    def factor(path: str) -> float:
        s = table[path]
        if zero_query and path.endswith("query/kernel"):
            return 0.0
        return _rules.init_multiplier(s, draws, bool(zero_output))

    def one(keys, leaf):
        path = path_of(keys)
        if path not in table:
            raise ValueError(f"parameter {path!r} has no InfShape: compute shapes with mup.infshapes from this model")
        f = factor(path)
        return leaf if f == 1.0 else leaf * jax.numpy.asarray(f, leaf.dtype)

    if isinstance(params, Mapping) and "params" in params and isinstance(params["params"], Mapping):
        return type(params)({**params, "params": jax.tree_util.tree_map_with_path(one, params["params"])})
    return jax.tree_util.tree_map_with_path(one, params)
