"""Muon under μP (SPEC §11): optax's Muon on the matrices that grow in both fans, their update
scaled by the spectral condition relative to the base, and :func:`flaxinit.mup.adamw`'s rules
for everything else."""

from __future__ import annotations

import math
import warnings
from typing import Any

import optax
from optax.contrib import MuonDimensionNumbers, scale_by_muon

from flaxinit.mup._optim import adamw, per_parameter, scale_each
from flaxinit.mup._shapes import InfShape, flat_infshapes

#: The roles whose matrices Muon updates; the rest (embeddings, other input kernels, the
#: readout, biases and norm scales) follow Adam's μP rules, as Muon recipes use AdamW there.
#: A "finite" matrix (nothing grows) may be any of these, so it stays on Adam too.
MUON_ROLES = ("hidden",)


def on_muon(shape: InfShape) -> bool:
    """Whether :func:`muon` orthogonalizes this parameter: a hidden matrix (both fans grow), with
    at least one fan-in and one fan-out axis besides its stack and batch axes, not a readout."""
    kinds = shape.kinds
    return (shape.role in MUON_ROLES and not shape.readout and "out" in kinds
            and any(k in ("in", "both") for k in kinds))  # fmt: skip


def dimension_numbers(shape: InfShape) -> MuonDimensionNumbers:
    """The matrix Muon sees in a parameter: its fan-in (and receptive field) axes reduced, its
    fan-out axes the output; every other axis (a layer stack's, an einsum's batch axis) a
    batch axis, each index orthogonalized on its own."""
    reduction = tuple(i for i, k in enumerate(shape.kinds) if k in ("in", "both"))
    output = tuple(i for i, k in enumerate(shape.kinds) if k == "out")
    return MuonDimensionNumbers(reduction_axis=reduction, output_axis=output)


def spectral_multiplier(shape: InfShape) -> float:
    """The multiplier of a matrix's orthogonalized update: Muon's own shape factor
    ``sqrt(max(1, fan_out / fan_in))`` (Keller Jordan's, which ``optax.contrib.muon`` applies)
    times the spectral condition's ``sqrt((fan_out / fan_in) / (base_fan_out / base_fan_in))``
    (Yang, Simon & Bernstein 2023), so that at the base width the update is optax's Muon's.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flaxinit import mup
      >>> base = {"w": {"kernel": jnp.ones((4, 16))}, "readout": {"kernel": jnp.ones((16, 10))}}
      >>> target = {"w": {"kernel": jnp.ones((8, 64))}, "readout": {"kernel": jnp.ones((64, 10))}}
      >>> round(spectral_multiplier(mup.infshapes(base, target)["w"]["kernel"]), 9)  # sqrt(64 / 8) sqrt(4 / 2)
      4.0
    """
    return math.sqrt(max(1.0, shape.fan_out / shape.fan_in)) * math.sqrt(shape.fan_out_mult / shape.fan_in_mult)


def muon(
    learning_rate: float | optax.Schedule,
    *,
    shapes: Any,
    beta: float = 0.95,
    ns_steps: int = 5,
    nesterov: bool = True,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    adam_learning_rate: float | optax.Schedule | None = None,
    adam_b1: float = 0.9,
    adam_b2: float = 0.999,
    adam_eps: float = 1e-8,
    adam_weight_decay: float = 0.0,
) -> optax.GradientTransformation:
    r"""Muon under μP: the update of a matrix Muon handles is

    .. math::
        -\text{lr}\,\Big(\sqrt{\max\big(1, \tfrac{\text{fan\_out}}{\text{fan\_in}}\big)}
        \sqrt{\tfrac{\text{fan\_out}/\text{fan\_in}}{\text{base\_fan\_out}/\text{base\_fan\_in}}}
        \; O + \lambda W\Big),

    with ``O`` the Newton–Schulz orthogonalization of the (Nesterov) momentum that
    ``optax.contrib.scale_by_muon`` computes, and the first factor Muon's own shape factor (as
    ``optax.contrib.muon`` applies it). So at the base width this is ``optax.contrib.muon``'s
    Muon part exactly, and at any width each matrix's update has the spectral norm the
    spectral condition asks for, ``∝ sqrt(fan_out/fan_in)``. For a hidden matrix, whose fans
    grow together, the second factor is 1: Muon's orthogonalized update already transfers.
    The input kernels, embeddings and the readout, where it would not, follow Adam's μP
    rules, as Muon recipes keep them on AdamW. Which axes form the matrix comes from
    ``shapes`` (Flax's layouts, ``fans=``, an einsum's equation): a layer stack's kernels are
    orthogonalized layer by layer, a convolution's over its receptive field and input
    channels.

    Every other parameter (embeddings and input kernels, the readout, biases, norm scales)
    follows :func:`adamw` with ``adam_*`` settings and ``adam_learning_rate`` (default
    ``learning_rate``). Weight decay ``weight_decay`` on Muon's matrices is decoupled and
    multiplied by the learning rate, as in ``optax.contrib.muon``.

    Args:
      learning_rate: Muon's learning rate (a float or an optax schedule).
      shapes: :func:`infshapes` of the model.
      beta: the momentum's decay.
      ns_steps: Newton–Schulz iterations.
      nesterov: Nesterov momentum.
      eps: added to the Frobenius norm before the iterations.
      weight_decay: decoupled weight decay of Muon's matrices.
      adam_learning_rate: the learning rate of the rest (default ``learning_rate``).
      adam_b1: :func:`adamw`'s ``b1`` for the rest.
      adam_b2: :func:`adamw`'s ``b2`` for the rest.
      adam_eps: :func:`adamw`'s ``eps`` for the rest.
      adam_weight_decay: :func:`adamw`'s ``weight_decay`` for the rest.

    Returns:
      An ``optax.GradientTransformation`` (an ``optax.multi_transform`` of the two parts; call
      ``update(grads, state, params)``).

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp
      >>> from flaxinit import mup
      >>> class MLP(nn.Module):
      ...     width: int
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return nn.Dense(10)(nn.relu(nn.Dense(self.width)(nn.relu(nn.Dense(self.width)(x)))))
      >>> x = jnp.ones((2, 8))
      >>> params = MLP(64).init(jax.random.key(0), x)["params"]
      >>> shapes = mup.infshapes(MLP(16).init(jax.random.key(0), x)["params"], params)
      >>> tx = mup.muon(0.02, shapes=shapes)
      >>> grads = jax.tree.map(jnp.ones_like, params)
      >>> updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
      >>> jax.tree.map(jnp.shape, updates) == jax.tree.map(jnp.shape, params)
      True
    """
    if not any(on_muon(s) for s in flat_infshapes(shapes).values()):
        warnings.warn(
            "mup.muon found no hidden matrix in shapes (none grows in both fans), so every parameter follows "
            "Adam: at the base width, compute shapes with a wider delta model, mup.infshapes(base, base, wider)",
            stacklevel=2,
        )
    label = per_parameter(shapes, lambda s: "muon" if on_muon(s) else "adam")
    matrix = optax.chain(
        scale_by_muon(
            ns_steps=ns_steps,
            beta=beta,
            eps=eps,
            nesterov=nesterov,
            weight_dimension_numbers=per_parameter(shapes, dimension_numbers),
        ),
        scale_each(per_parameter(shapes, spectral_multiplier)),
        optax.add_decayed_weights(weight_decay) if weight_decay else optax.identity(),
        optax.scale_by_learning_rate(learning_rate),
    )
    rest = adamw(
        learning_rate if adam_learning_rate is None else adam_learning_rate,
        shapes=shapes, b1=adam_b1, b2=adam_b2, eps=adam_eps, weight_decay=adam_weight_decay,
    )  # fmt: skip
    return optax.multi_transform({"muon": matrix, "adam": rest}, label)
