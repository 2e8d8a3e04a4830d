"""μP's readout in ``flax.linen``: :class:`Readout` (Table 8's form)."""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from flaxinit.mup._shapes import READOUT_KERNEL


class Readout(nn.Module):
    """The output layer in Table 8's form: ``(output_mult * x / m_in) @ kernel + bias``,
    ``m_in = x.shape[-1] / base_width`` (microsoft/mup's ``MuReadout``).

    Its kernel (the parameter ``readout_kernel``, which :func:`~flaxinit.mup.infshapes`
    recognizes) is drawn with the base model's std (``kernel_init`` at the target, times
    ``sqrt(m_in)``), so the function at init is Table 3's; with it, the readout's
    multipliers are Table 8's (Adam LR 1, SGD LR ``m_in``) and training equals Table 3's
    form. ``tied=True`` reads an embedding table instead of a kernel of its own:
    ``Readout(vocab, base_width, tied=True)(x, embedding=table)`` with ``table`` of shape
    ``(vocab, width)``.

    Attributes:
      features: output size (ignored when tied: the table's rows).
      base_width: the base model's input width of this layer.
      output_mult: a tunable constant multiplier.
      zero_init: kernel and bias start at zero.
      use_bias: add a bias (zero at init).
      tied: read ``embedding=`` instead of a kernel.
      kernel_init: the draw at the target width (default: lecun normal).
    """

    features: int
    base_width: int
    output_mult: float = 1.0
    zero_init: bool = False
    use_bias: bool = True
    tied: bool = False
    kernel_init: Any = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array, embedding: jax.Array | None = None) -> jax.Array:
        width = x.shape[-1]
        m_in = width / self.base_width
        if self.tied:
            if embedding is None:
                raise ValueError("a tied Readout reads the embedding table: call it with embedding=table")
            kernel = jnp.asarray(embedding).T
        else:

            def init(key, shape, dtype=jnp.float32):
                if self.zero_init:
                    return jnp.zeros(shape, dtype)
                return (self.kernel_init(key, shape, dtype) * math.sqrt(m_in)).astype(dtype)

            kernel = self.param(READOUT_KERNEL, init, (width, self.features))
        y = (x * (self.output_mult / m_in)) @ kernel
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (kernel.shape[-1],))
        return y
