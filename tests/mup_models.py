"""The three model families of the μP tests, in linen and nnx, written as Flax code is
(nothing μP-specific but the attention function and, for tied embeddings, the readout)."""

import flax.linen as nn
import jax.numpy as jnp
from flax import nnx

from flaxinit import mup

IN, OUT, VOCAB, HEADS, BASE = 12, 10, 40, 4, 32


class LinenMLP(nn.Module):
    width: int

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(self.width)(x))
        x = nn.relu(nn.Dense(self.width)(x))
        return nn.Dense(OUT)(x)


class LinenCNN(nn.Module):
    width: int

    @nn.compact
    def __call__(self, x):  # x: (batch, 8, 8, 3)
        x = nn.relu(nn.Conv(self.width, (3, 3))(x))
        x = nn.relu(nn.Conv(self.width, (3, 3))(x))
        x = nn.LayerNorm()(x.mean(axis=(1, 2)))
        return nn.Dense(OUT)(x)


class LinenTransformer(nn.Module):
    """Pre-LN, one block, tied embeddings read out by mup.Readout."""

    width: int

    @nn.compact
    def __call__(self, tokens):
        embed = nn.Embed(VOCAB, self.width)
        x = embed(tokens)
        h = nn.LayerNorm()(x)
        attention = nn.MultiHeadDotProductAttention(
            num_heads=HEADS, attention_fn=mup.dot_product_attention(BASE // HEADS), deterministic=True
        )
        x = x + attention(h, h)
        h = nn.LayerNorm()(x)
        x = x + nn.Dense(self.width)(nn.gelu(nn.Dense(4 * self.width)(h)))
        return mup.Readout(VOCAB, base_width=BASE, tied=True)(nn.LayerNorm()(x), embedding=embed.embedding)


class NnxMLP(nnx.Module):
    def __init__(self, width, rngs):
        self.l1, self.l2 = nnx.Linear(IN, width, rngs=rngs), nnx.Linear(width, width, rngs=rngs)
        self.out = nnx.Linear(width, OUT, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.l2(nnx.relu(self.l1(x)))))


class NnxCNN(nnx.Module):
    def __init__(self, width, rngs):
        self.c1 = nnx.Conv(3, width, (3, 3), rngs=rngs)
        self.c2 = nnx.Conv(width, width, (3, 3), rngs=rngs)
        self.norm = nnx.LayerNorm(width, rngs=rngs)
        self.out = nnx.Linear(width, OUT, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.c2(nnx.relu(self.c1(x))))
        return self.out(self.norm(x.mean(axis=(1, 2))))


class NnxTransformer(nnx.Module):
    def __init__(self, width, rngs):
        self.embed = nnx.Embed(VOCAB, width, rngs=rngs)
        self.ln1, self.ln2, self.ln3 = (nnx.LayerNorm(width, rngs=rngs) for _ in range(3))
        self.attention = nnx.MultiHeadAttention(
            num_heads=HEADS, in_features=width, attention_fn=mup.dot_product_attention(BASE // HEADS),
            deterministic=True, decode=False, rngs=rngs,
        )  # fmt: skip
        self.up, self.down = nnx.Linear(width, 4 * width, rngs=rngs), nnx.Linear(4 * width, width, rngs=rngs)
        self.readout = mup.nnx.Readout(width, VOCAB, BASE, tied=True, rngs=rngs)

    def __call__(self, tokens):
        x = self.embed(tokens)
        h = self.ln1(x)
        x = x + self.attention(h, h)
        x = x + self.down(nnx.gelu(self.up(self.ln2(x))))
        return self.readout(self.ln3(x), embedding=self.embed.embedding[...])


def inputs(family):
    if family == "mlp":
        return jnp.ones((2, IN))
    if family == "cnn":
        return jnp.ones((2, 8, 8, 3))
    return jnp.zeros((2, 5), jnp.int32)
