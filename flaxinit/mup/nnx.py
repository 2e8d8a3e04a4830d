"""μP's readout in ``flax.nnx``: :class:`Readout` (Table 8's form), as :class:`flaxinit.mup.linen.Readout`."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from flaxinit.mup._shapes import READOUT_KERNEL


class Readout(nnx.Module):
    """``(output_mult * x / m_in) @ readout_kernel + bias``, ``m_in = in_features / base_width``
    (see :class:`flaxinit.mup.linen.Readout`; ``tied=True``: call with ``embedding=table``)."""

    def __init__(
        self,
        in_features: int,
        features: int,
        base_width: int,
        *,
        output_mult: float = 1.0,
        zero_init: bool = False,
        use_bias: bool = True,
        tied: bool = False,
        kernel_init: Any = None,
        rngs: nnx.Rngs,
    ):
        self.base_width = base_width
        self.m_in = in_features / base_width
        self.output_mult, self.tied = output_mult, tied
        if not tied:
            kernel_init = nnx.initializers.lecun_normal() if kernel_init is None else kernel_init
            kernel = jnp.zeros((in_features, features)) if zero_init else kernel_init(
                rngs.params(), (in_features, features)
            ) * math.sqrt(self.m_in)  # fmt: skip
            setattr(self, READOUT_KERNEL, nnx.Param(kernel))
        self.bias = nnx.Param(jnp.zeros((features,))) if use_bias else None

    def __call__(self, x: jax.Array, embedding: jax.Array | None = None) -> jax.Array:
        if self.tied:
            if embedding is None:
                raise ValueError("a tied Readout reads the embedding table: call it with embedding=table")
            kernel = jnp.asarray(embedding).T
        else:
            kernel = getattr(self, READOUT_KERNEL)[...]
        y = (x * (self.output_mult / self.m_in)) @ kernel
        return y if self.bias is None else y + self.bias[...]
