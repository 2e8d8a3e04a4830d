"""The optimizer side of §10: per-parameter learning-rate multipliers and complete optax
optimizers (:func:`adamw`, :func:`sgd`) whose updates are microsoft/mup's ``MuAdamW`` and
``MuSGD`` for the same multipliers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from flaxinit.mup import _rules
from flaxinit.mup._shapes import InfShape, flat_infshapes, path_of

DECAY_SCALINGS = ("independent", "coupled")


def per_parameter(shapes: Any, rule: Callable[[InfShape], float]) -> Callable[[Any], Any]:
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


def scale_each(like: Callable[[Any], Any]) -> optax.GradientTransformation:
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


def scale_by_mup(
    shapes: Any, optimizer: str = "adam", *, depth: Sequence[float] | None = None, mask: Any = None
) -> optax.GradientTransformation:
    """An optax transformation multiplying each parameter's update by its
    :func:`lr_multipliers`: put it last in a chain (``optax.chain(optax.adam(lr),
    mup.scale_by_mup(shapes))``). Weight decay inside the chain is then *coupled* (scaled
    with the LR); :func:`adamw` and :func:`sgd` give the independent form. ``mask`` (optax's:
    a tree of booleans or ``params -> tree``) limits the multipliers to where it is ``True``;
    the default ``None`` scales every parameter. ``scale_updates`` is the same function.

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, optax
      >>> from flaxinit import mup
      >>> shapes_of = lambda w: jax.eval_shape(nn.Dense(w).init, jax.random.key(0), jnp.ones((1, w)))
      >>> tx = optax.chain(optax.sgd(1.0), mup.scale_by_mup(mup.infshapes(shapes_of(8), shapes_of(32)), "sgd"))
      >>> params = {"params": {"kernel": jnp.ones((32, 32)), "bias": jnp.ones(32)}}
      >>> updates, _ = tx.update(params, tx.init(params))
      >>> float(updates["params"]["kernel"][0, 0]), float(updates["params"]["bias"][0])
      (-1.0, -4.0)
    """
    optimizer, depth = _rules.check_optimizer(optimizer), _rules.check_depth(depth)
    return _masked(scale_each(per_parameter(shapes, lambda s: _rules.lr_multiplier(s, optimizer, depth))), mask)


#: :func:`scale_by_mup`'s earlier name.
scale_updates = scale_by_mup


def _decay(shapes, optimizer, weight_decay, scaling, depth):
    if scaling not in DECAY_SCALINGS:
        raise ValueError(f"weight_decay_scaling must be one of {', '.join(DECAY_SCALINGS)}, got {scaling!r}")
    if scaling == "coupled":
        return per_parameter(shapes, lambda s: weight_decay)
    # independent: LR x decay the same at every width
    return per_parameter(shapes, lambda s: weight_decay / _rules.lr_multiplier(s, optimizer, depth))


def _scale_by_adam(b1: float, b2: float, eps: Callable[[Any], Any]) -> optax.GradientTransformation:
    """optax's ``scale_by_adam`` with ``eps(tree)`` giving each parameter its own ε: the same
    moments, bias correction and state (``optax.ScaleByAdamState``), so the state's structure
    is the parameters' whatever the widths (the ε are floats of the transformation, not state)."""

    def init(params):
        zeros = optax.tree.zeros_like(params)
        return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=zeros, nu=optax.tree.zeros_like(params))

    def update(updates, state, params=None):
        del params
        mu = optax.tree.update_moment(updates, state.mu, b1, 1)
        nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
        count = optax.safe_increment(state.count)
        mu_hat, nu_hat = optax.tree.bias_correction(mu, b1, count), optax.tree.bias_correction(nu, b2, count)
        new = jax.tree.map(lambda m, v, e: m / (jnp.sqrt(v) + e), mu_hat, nu_hat, eps(updates))
        return new, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init, update)


def _masked(transform: optax.GradientTransformation, mask: Any) -> optax.GradientTransformation:
    return transform if mask is None else optax.masked(transform, mask)


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
    mask: Any = None,
    batch: Sequence[int] | None = None,
    steps: Sequence[int] | None = None,
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

    ``mask`` is ``optax.adamw``'s: a tree of booleans like the parameters, or a function
    ``params -> tree``, ``True`` where weight decay applies. The default ``None`` decays every
    parameter, as ``optax.adamw`` and ``MuAdamW`` do; to spare biases and norm scales pass e.g.
    ``mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p)``.

    ``batch=(B, base_B)`` and ``steps=(T, base_T)`` move the learning rate and the weight decay
    from the batch size and training length they were tuned at (:func:`batch_length_rule`:
    ``lr × sqrt(B / base_B)``; ``weight_decay × sqrt(B / base_B) × base_T / T``); ``None``
    (the default) changes nothing.

    The optimizer state is ``optax.scale_by_adam``'s (the moments and the count); the per-parameter
    ε are constants of the transformation, so the state has the parameters' structure at
    every width.

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from flaxinit import mup
      >>> shapes_of = lambda w: jax.eval_shape(nn.Dense(w).init, jax.random.key(0), jnp.ones((1, w)))
      >>> shapes = mup.infshapes(shapes_of(8), shapes_of(8))
      >>> params = {"params": {"kernel": jnp.ones((8, 8)), "bias": jnp.ones(8)}}
      >>> tx = mup.adamw(0.01, shapes=shapes, batch=(256, 64))  # the LR of batch 64, at batch 256
      >>> updates, _ = tx.update(params, tx.init(params), params)
      >>> round(float(updates["params"]["bias"][0]), 6)  # Adam's first step is -lr: -0.01 x sqrt(4)
      -0.02
    """
    optimizer, depth = "adam", _rules.check_depth(depth)
    lr_factor, decay_factor = _rules.batch_length_rule(batch=batch, steps=steps)
    weight_decay = weight_decay * decay_factor
    eps_rule = (lambda s: eps * _rules.eps_multiplier(s, depth)) if eps_scaling else (lambda s: eps)
    return optax.chain(
        _scale_by_adam(b1, b2, per_parameter(shapes, eps_rule)),
        _masked(_decay_each(_decay(shapes, optimizer, weight_decay, weight_decay_scaling, depth)), mask),
        scale_by_mup(shapes, optimizer, depth=depth),
        optax.scale_by_learning_rate(_scaled(learning_rate, lr_factor)),
    )


def _scaled(learning_rate: float | optax.Schedule, factor: float) -> float | optax.Schedule:
    """``learning_rate × factor`` (a schedule stays a schedule)."""
    if factor == 1.0:
        return learning_rate
    if callable(learning_rate):
        return lambda count: learning_rate(count) * factor
    return learning_rate * factor


def sgd(
    learning_rate: float | optax.Schedule,
    *,
    shapes: Any,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    weight_decay_scaling: str = "independent",
    mask: Any = None,
) -> optax.GradientTransformation:
    """SGD under μP, in torch's order (microsoft/mup's ``MuSGD``): per parameter
    ``d = g + wd_eff * p``, momentum ``b = momentum * b + d``, update ``-lr * mu * b``, with
    ``mu`` its LR multiplier and ``wd_eff = weight_decay / mu`` (``"independent"``: LR x decay
    the same at every width) or ``weight_decay`` (``"coupled"``); ``mask`` as :func:`adamw`'s."""
    decay = _decay(shapes, "sgd", weight_decay, weight_decay_scaling, None)
    return optax.chain(
        _masked(_decay_each(decay), mask),
        optax.trace(decay=momentum, nesterov=nesterov) if momentum else optax.identity(),
        scale_by_mup(shapes, "sgd"),
        optax.scale_by_learning_rate(learning_rate),
    )
