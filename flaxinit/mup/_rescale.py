"""§10's initialization: :func:`rescale` turns a draw of the target model into μP's."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from typing import Any

import jax

from flaxinit.mup import _rules
from flaxinit.mup._shapes import flat_infshapes, path_of

DRAWS = ("fan_in", "fixed")

Draws = str | Mapping[str, str] | Callable[[str], str | None]


def _draw_of(draws: Draws) -> Callable[[str], str]:
    """``path -> "fan_in" | "fixed"`` from ``rescale``'s ``draws`` (checked here, before any parameter)."""

    def check(value: Any, where: str) -> str:
        if value not in DRAWS:
            raise ValueError(f"draws{where} must be one of {', '.join(DRAWS)}, got {value!r}")
        return value

    if isinstance(draws, str):
        draw = check(draws, "")
        return lambda path: draw
    if isinstance(draws, Mapping):
        table = {glob: check(value, f"[{glob!r}]") for glob, value in draws.items()}
        return lambda path: next((v for glob, v in table.items() if fnmatch.fnmatchcase(path, glob)), "fan_in")
    if callable(draws):
        return lambda path: "fan_in" if (value := draws(path)) is None else check(value, f"({path!r})")
    raise TypeError(f"draws must be 'fan_in', 'fixed', a mapping of path globs to them, or a callable, got {draws!r}")


def rescale(
    params: Any, shapes: Any, *, draws: Draws = "fan_in", zero_output: bool = False, zero_query: bool = False
) -> Any:
    """The μP initialization from a standard draw of the target model (§10, Table 3).

    With ``draws="fan_in"`` (each parameter drawn by its layer's Flax default: a std of
    ``1/sqrt(fan_in)``, lecun or he) output weights are multiplied by ``1/sqrt(m_in)``,
    embedding tables (Flax's ``Embed`` draws ``1/sqrt(features)``, an input weight that μP
    wants Θ(1)) by ``sqrt(m_out)``, back to the base's std, and everything else kept;
    with ``draws="fixed"`` (a std that does not depend on the fans, such as ``normal(0.02)``)
    hidden weights by ``1/sqrt(m_in)`` and output weights by ``1/m_in``. At the base shapes
    nothing changes. :class:`~flaxinit.mup.Readout` kernels (Table 8's form) are kept. A
    model that draws some parameters each way (Gemma: ``normal(0.01)`` MLP kernels beside
    fan-in attention kernels; an embedding drawn ``normal(1.0)``) says which per path glob, as
    ``fans=`` does: ``draws={"*/embedding": "fixed"}``.

    Args:
      params: the target model's parameters, in any form :func:`infshapes` takes.
      shapes: what :func:`infshapes` returned for this model.
      draws: how ``params`` were drawn: ``"fan_in"`` or ``"fixed"`` for every parameter; a
        mapping of path globs to them (the first glob that matches a path wins, a path none
        matches is ``"fan_in"``: ``{"*/mlp/*": "fixed"}``); or a callable ``path -> "fan_in",
        "fixed" or None`` (None: ``"fan_in"``).
      zero_output: output weights start at zero (microsoft/mup's advice for readouts).
      zero_query: attention query kernels start at zero (likewise).

    Returns:
      New parameters of the same tree type (a linen variables dict keeps its other
      collections).

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from flaxinit import mup
      >>> mlp = lambda w: nn.Sequential([nn.Dense(w), nn.relu, nn.Dense(w, kernel_init=nn.initializers.normal(0.02)),
      ...                                nn.relu, nn.Dense(10)])
      >>> x = jnp.ones((1, 8))
      >>> params = mlp(256).init(jax.random.key(0), x)
      >>> shapes = mup.infshapes(jax.eval_shape(mlp(64).init, jax.random.key(0), x), params)
      >>> new = mup.rescale(params, shapes, draws={"layers_2/*": "fixed"})
      >>> ratio = lambda p: float(new["params"][p]["kernel"][0, 0] / params["params"][p]["kernel"][0, 0])
      >>> [round(ratio(p), 6) for p in ("layers_0", "layers_2", "layers_4")]  # input, hidden, output (m_in 4)
      [1.0, 0.5, 0.5]
    """
    draw_of = _draw_of(draws)
    table = flat_infshapes(shapes)

    def factor(path: str) -> float:
        s = table[path]
        if zero_query and path.endswith("query/kernel"):
            return 0.0
        return _rules.init_multiplier(s, draw_of(path), bool(zero_output))

    def one(keys, leaf):
        path = path_of(keys)
        if path not in table:
            raise ValueError(f"parameter {path!r} has no InfShape: compute shapes with mup.infshapes from this model")
        f = factor(path)
        return leaf if f == 1.0 else leaf * jax.numpy.asarray(f, leaf.dtype)

    if isinstance(params, Mapping) and "params" in params and isinstance(params["params"], Mapping):
        return type(params)({**params, "params": jax.tree_util.tree_map_with_path(one, params["params"])})
    return jax.tree_util.tree_map_with_path(one, params)
