"""One training step for every loop in the project: the study, the demos, ``proxy_init``, the benchmarks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax

Step = Callable[..., tuple[Any, Any, jax.Array]]


def train_step(loss_fn: Callable[..., jax.Array], optimizer: optax.GradientTransformation) -> Step:
    """``step(params, opt_state, *batch) -> (params, opt_state, loss)``: one optax update.

    ``loss_fn(params, *batch)`` returns a scalar; the loss returned is its value before the
    update. The step is a pure function, not jitted: call it under ``jax.jit``, as a
    ``lax.scan`` body or under ``vmap``, as the loop needs.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> from flaxinit.tooling import train_step
      >>> step = train_step(lambda w, x: jnp.sum((w * x - 1.0) ** 2), optax.sgd(0.1))
      >>> w, state, loss = step(jnp.zeros(2), optax.sgd(0.1).init(jnp.zeros(2)), jnp.ones(2))
      >>> float(loss), w.tolist()
      (2.0, [0.20000000298023224, 0.20000000298023224])
    """

    def step(params: Any, opt_state: Any, *batch: Any) -> tuple[Any, Any, jax.Array]:
        loss, grads = jax.value_and_grad(loss_fn)(params, *batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step
