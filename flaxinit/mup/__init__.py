"""μP, depth-μP and CompleteP for any Flax model: how init and learning rate scale together
with width and depth, relative to a base model (SPEC §10; ``docs/mup.md``).

1. ``shapes = mup.infshapes(base_params, target_params)``: every parameter's infinite axes,
   fan multipliers and role (input, hidden, output, finite).
2. ``params = mup.rescale(params, shapes)``: the μP init from a standard draw.
3. ``tx = mup.adamw(lr, shapes=shapes)`` (or :func:`sgd`, :func:`muon`, or
   ``optax.chain(..., mup.scale_by_mup(shapes))``): the per-parameter learning rates.
4. In attention, ``attention_fn=mup.dot_product_attention(base_head_dim)``; with tied
   embeddings, a :class:`Readout` (Table 8's form); residual branches times
   :func:`depth_multiplier` with ``depth=`` in the optimizer.

Not loaded by ``import flaxinit``: ``from flaxinit import mup`` loads it (and flax, optax).
"""

from flaxinit.mup import linen, nnx
from flaxinit.mup._attention import attention_scale, dot_product_attention
from flaxinit.mup._muon import muon
from flaxinit.mup._optim import adamw, lr_multipliers, scale_by_mup, scale_updates, sgd
from flaxinit.mup._rescale import rescale
from flaxinit.mup._rules import OPTIMIZERS, batch_length_rule, depth_multiplier
from flaxinit.mup._shapes import READOUT_KERNEL, ROLES, InfShape, LayoutWarning, infshapes
from flaxinit.mup.linen import Readout

__all__ = [
    "OPTIMIZERS",
    "READOUT_KERNEL",
    "ROLES",
    "InfShape",
    "LayoutWarning",
    "Readout",
    "adamw",
    "attention_scale",
    "batch_length_rule",
    "depth_multiplier",
    "dot_product_attention",
    "infshapes",
    "linen",
    "lr_multipliers",
    "muon",
    "nnx",
    "rescale",
    "scale_by_mup",
    "scale_updates",
    "sgd",
]
