"""The optimizer side of §10: per-parameter learning-rate multipliers and complete optax
optimizers (:func:`adamw`, :func:`sgd`) whose updates are microsoft/mup's ``MuAdamW`` and
``MuSGD`` for the same multipliers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import optax

from flaxinit.mup import _rules
from flaxinit.mup._shapes import InfShape, flat_infshapes, path_of

DECAY_SCALINGS = ("independent", "coupled")


def _like(shapes: Any, rule: Callable[[InfShape], float]) -> Callable[[Any], Any]:
    """``tree -> the same tree with rule(InfShape) at every parameter``, matched by path (so
    the tree may be a linen ``params`` dict, its variables dict, an nnx ``State``, ...)."""
    table = {path: rule(s) for path, s in flat_infshapes(shapes).items()}

    def like(tree: Any) -> Any:
        flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
        values = []
        for keys, _ in flat:
            path = path_of(keys)
            if path not in table:
                raise ValueError(f"parameter {path!r} has no InfShape (shapes hold {sorted(table)[:6]}...): compute "
                                 "shapes with mup.infshapes from the same model")  # fmt: skip
            values.append(table[path])
        return jax.tree_util.tree_unflatten(treedef, values)

    return like


def _scale_each(like: Callable[[Any], Any]) -> optax.GradientTransformation:
    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda u, m: u * m, updates, like(updates)), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _decay_each(like: Callable[[Any], Any]) -> optax.GradientTransformation:
    """``updates + c * params`` with a coefficient ``c`` per parameter."""

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("weight decay needs the parameters: call update(grads, state, params)")
        return jax.tree.map(lambda u, p, c: u + c * p, updates, params, like(updates)), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def lr_multipliers(shapes: Any, optimizer: str = "adam", *, depth: Sequence[float] | None = None) -> Any:
    """The learning-rate multiplier of every parameter (§10, Table 3; Table 8 for
    :class:`~flaxinit.mup.Readout` kernels), as a tree like ``shapes`` of floats.

    Args:
      shapes: what :func:`infshapes` returned.
      optimizer: ``"adam"`` (Adam-like: entrywise normalized updates) or ``"sgd"``.
      depth: ``(layers, base_layers, alpha)`` for the depth rules of parameters inside
        residual blocks (``infshapes(..., blocks=...)``; Adam only).

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from flaxinit import mup
      >>> mlp = lambda w: nn.Sequential([nn.Dense(w), nn.relu, nn.Dense(w), nn.relu, nn.Dense(10)])
      >>> shapes_of = lambda w: jax.eval_shape(mlp(w).init, jax.random.key(0), jnp.ones((1, 784)))
      >>> m = mup.lr_multipliers(mup.infshapes(shapes_of(64), shapes_of(256)), "sgd")
      >>> m["layers_0"]["kernel"], m["layers_2"]["kernel"], m["layers_4"]["kernel"], m["layers_4"]["bias"]
      (4.0, 1.0, 0.25, 1.0)
    """
    optimizer, depth = _rules.check_optimizer(optimizer), _rules.check_depth(depth)
    flat_infshapes(shapes)
    return jax.tree.map(lambda s: _rules.lr_multiplier(s, optimizer, depth), shapes)


def scale_updates(shapes: Any, optimizer: str = "adam", *, depth: Sequence[float] | None = None):
    """An optax transformation multiplying each parameter's update by its
    :func:`lr_multipliers`: put it last in a chain (``optax.chain(optax.adam(lr),
    mup.scale_updates(shapes))``). Weight decay inside the chain is then *coupled* (scaled
    with the LR); :func:`adamw` and :func:`sgd` give the independent form."""
    optimizer, depth = _rules.check_optimizer(optimizer), _rules.check_depth(depth)
    return _scale_each(_like(shapes, lambda s: _rules.lr_multiplier(s, optimizer, depth)))


def _decay(shapes, optimizer, weight_decay, scaling, depth):
    if scaling not in DECAY_SCALINGS:
        raise ValueError(f"weight_decay_scaling must be one of {', '.join(DECAY_SCALINGS)}, got {scaling!r}")
    if scaling == "coupled":
        return _like(shapes, lambda s: weight_decay)
    # independent: LR x decay the same at every width
    return _like(shapes, lambda s: weight_decay / _rules.lr_multiplier(s, optimizer, depth))


def adamw(
    learning_rate: float | optax.Schedule,
    *,
    shapes: Any,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    weight_decay_scaling: str = "independent",
    eps_scaling: bool = True,
    depth: Sequence[float] | None = None,
) -> optax.GradientTransformation:
    """Adam(W) under μP: optax's Adam moments and bias correction, then per parameter the
    decay, the LR multiplier and the learning rate (a float or an optax schedule).

    The update of a parameter with LR multiplier ``mu`` is
    ``-lr * (mu * adam(g; eps * eps_mult) + wd_eff * p)``: ``weight_decay_scaling=
    "independent"`` (microsoft/mup's ``MuAdamW`` with its default, and CompleteP's) keeps
    ``wd_eff = weight_decay``, the same LR x decay at every width; ``"coupled"`` makes it
    ``mu * weight_decay`` (as ``optax.chain(optax.adamw(...), mup.scale_updates(...))``).
    ``eps_scaling`` multiplies hidden parameters' ε by ``1/m_in`` (and by ``m_L^-alpha``
    inside residual blocks with ``depth``); ``eps_scaling=False`` is ``MuAdamW``'s ε.
    """
    optimizer, depth = "adam", _rules.check_depth(depth)
    flat = flat_infshapes(shapes)
    eps_rule = (lambda s: _rules.eps_multiplier(s, depth)) if eps_scaling else (lambda s: 1.0)
    groups = sorted({eps_rule(s) for s in flat.values()})
    labels = _like(shapes, lambda s: str(groups.index(eps_rule(s))))
    moments = optax.multi_transform(
        {str(i): optax.scale_by_adam(b1, b2, eps * g) for i, g in enumerate(groups)}, labels
    )
    return optax.chain(
        moments,
        _decay_each(_decay(shapes, optimizer, weight_decay, weight_decay_scaling, depth)),
        _scale_each(_like(shapes, lambda s: _rules.lr_multiplier(s, optimizer, depth))),
        optax.scale_by_learning_rate(learning_rate),
    )


def sgd(
    learning_rate: float | optax.Schedule,
    *,
    shapes: Any,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    weight_decay_scaling: str = "independent",
) -> optax.GradientTransformation:
    """SGD under μP, in torch's order (microsoft/mup's ``MuSGD``): per parameter
    ``d = g + wd_eff * p``, momentum ``b = momentum * b + d``, update ``-lr * mu * b``, with
    ``mu`` its LR multiplier and ``wd_eff = weight_decay / mu`` (``"independent"``: LR x decay
    the same at every width) or ``weight_decay`` (``"coupled"``)."""
    decay = _decay(shapes, "sgd", weight_decay, weight_decay_scaling, None)
    return optax.chain(
        _decay_each(decay),
        optax.trace(decay=momentum, nesterov=nesterov) if momentum else optax.identity(),
        _scale_each(_like(shapes, lambda s: _rules.lr_multiplier(s, "sgd"))),
        optax.scale_by_learning_rate(learning_rate),
    )
