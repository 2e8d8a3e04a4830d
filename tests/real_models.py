"""Small models in the patterns of Flax code people run, each a function of its width.

Written the way their originals are, μP-ready where μP asks the model itself to change (the
attention scale, a tied readout): nothing wraps them for the audit or the checks.

* ``ResNet``: flax's ``examples/imagenet`` (a ResNet block: Conv, BatchNorm in training mode
  with batch statistics, a projected shortcut), called with ``train=True``;
* ``Decoder``: ``examples/lm1b``'s ``TransformerLM`` (token and position embeddings,
  causal attention with dropout and a ``decode`` cache, a Dense readout), ``train=True``;
* ``TiedEncoderDecoder``: ``examples/wmt`` (shared embedding, an encoder and a decoder
  block with cross-attention, two inputs: ``model(inputs, targets=...)``), read out through
  the embedding by ``mup.Readout(tied=True)``; ``read_out="attend"`` is wmt's own
  ``Embed.attend``, which μP cannot rescale;
* ``BiLSTMClassifier``: ``examples/sst2`` (embedding, a bidirectional LSTM over padded
  sequences with their lengths, ``model(tokens, lengths=...)``);
* ``ViT``: big_vision's ViT (patch embedding, ``nn.scan(nn.remat(Encoder1DBlock))``, a
  head), returning ``(logits, {"pre_logits": ...})``;
* ``NnxFusedTied``: flax's nnx Gemma (an ``nnx.Einsum`` fused ``qkv`` kernel ``(3, N, D,
  H)``, ``normal(0.01)`` MLP kernels, RMS norms, a readout tied to the embedding).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from flaxinit import mup

BASE, VOCAB, HEADS, CLASSES, LENGTH, DEPTH = 16, 32, 2, 5, 6, 2


def _attention_fn():
    return mup.dot_product_attention(BASE // HEADS)


# --- imagenet: a ResNet block with BatchNorm ---------------------------------------------------------


class ResNetBlock(nn.Module):
    filters: int

    @nn.compact
    def __call__(self, x, train: bool):
        norm = lambda **kw: nn.BatchNorm(use_running_average=not train, momentum=0.9, **kw)  # noqa: E731
        y = nn.relu(norm()(nn.Conv(self.filters, (3, 3), use_bias=False)(x)))
        y = norm(scale_init=nn.initializers.zeros)(nn.Conv(self.filters, (3, 3), use_bias=False)(y))
        if x.shape[-1] != self.filters:
            x = norm(name="norm_proj")(nn.Conv(self.filters, (1, 1), use_bias=False, name="conv_proj")(x))
        return nn.relu(x + y)


class ResNet(nn.Module):
    width: int

    @nn.compact
    def __call__(self, x, train: bool = True):
        x = nn.Conv(self.width, (3, 3), use_bias=False, name="conv_init")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, name="bn_init")(x))
        x = ResNetBlock(self.width)(x, train)
        x = ResNetBlock(2 * self.width)(x, train)
        return nn.Dense(CLASSES)(jnp.mean(x, axis=(1, 2)))


# --- lm1b: a decoder with dropout and a decode cache -------------------------------------------------


class DecoderBlock(nn.Module):
    width: int
    decode: bool = False

    @nn.compact
    def __call__(self, x, train: bool):
        h = nn.LayerNorm()(x)
        mask = None if self.decode else nn.make_causal_mask(h[..., 0])
        attention = nn.MultiHeadDotProductAttention(
            num_heads=HEADS, dropout_rate=0.1, deterministic=not train, decode=self.decode, attention_fn=_attention_fn()
        )
        x = x + nn.Dropout(0.1, deterministic=not train)(attention(h, mask=mask))
        h = nn.gelu(nn.Dense(4 * self.width)(nn.LayerNorm()(x)))
        return x + nn.Dropout(0.1, deterministic=not train)(nn.Dense(self.width)(h))


class Decoder(nn.Module):
    width: int
    decode: bool = False

    @nn.compact
    def __call__(self, tokens, train: bool = False):
        x = nn.Embed(VOCAB, self.width, embedding_init=nn.initializers.normal(1.0))(tokens)
        x = x + self.param("pos_embedding", nn.initializers.normal(1.0), (1, LENGTH, self.width))[:, : x.shape[1]]
        x = nn.Dropout(0.1, deterministic=not train)(x)
        for _ in range(DEPTH):
            x = DecoderBlock(self.width, self.decode)(x, train)
        return nn.Dense(VOCAB, name="logits")(nn.LayerNorm()(x))


# --- wmt: a tied encoder-decoder with two inputs ---------------------------------------------------


class TiedEncoderDecoder(nn.Module):
    width: int
    read_out: str = "readout"  # "readout": mup.Readout(tied=True); "attend": wmt's Embed.attend

    @nn.compact
    def __call__(self, inputs, targets):
        embed = nn.Embed(VOCAB, self.width, embedding_init=nn.initializers.normal(1.0), name="shared_embedding")
        attention = lambda name: nn.MultiHeadDotProductAttention(  # noqa: E731
            num_heads=HEADS, deterministic=True, attention_fn=_attention_fn(), name=name
        )
        encoded = embed(inputs)
        h = nn.LayerNorm()(encoded)
        encoded = nn.LayerNorm()(encoded + attention("encoder_attention")(h, h))
        y = embed(targets)
        h = nn.LayerNorm()(y)
        y = y + attention("decoder_attention")(h, h, mask=nn.make_causal_mask(targets))
        y = y + attention("cross_attention")(nn.LayerNorm()(y), encoded)
        y = y + nn.Dense(self.width)(nn.relu(nn.Dense(4 * self.width)(nn.LayerNorm()(y))))
        y = nn.LayerNorm()(y)
        if self.read_out == "attend":
            return embed.attend(y)
        return mup.Readout(VOCAB, base_width=BASE, tied=True)(y, embedding=embed.embedding)


# --- sst2: a bidirectional LSTM classifier over padded sequences --------------------------------------


class BiLSTMClassifier(nn.Module):
    width: int

    @nn.compact
    def __call__(self, tokens, lengths):
        x = nn.Embed(VOCAB, self.width, embedding_init=nn.initializers.normal(1.0))(tokens)
        x = nn.Bidirectional(nn.RNN(nn.LSTMCell(self.width)), nn.RNN(nn.LSTMCell(self.width)))(x, seq_lengths=lengths)
        mask = (jnp.arange(tokens.shape[1])[None, :] < lengths[:, None])[..., None]
        pooled = jnp.sum(x * mask, axis=1) / lengths[:, None]
        return nn.Dense(CLASSES)(pooled)


# --- big_vision: a ViT with nn.scan(nn.remat(...)) and a tuple output --------------------------------


class Encoder1DBlock(nn.Module):
    width: int

    @nn.compact
    def __call__(self, x, _=None):
        h = nn.LayerNorm()(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=HEADS, attention_fn=_attention_fn())(h, h)
        h = nn.LayerNorm()(x)
        x = x + nn.Dense(self.width)(nn.gelu(nn.Dense(4 * self.width)(h)))
        return x, None


class ViT(nn.Module):
    width: int

    @nn.compact
    def __call__(self, images):
        x = nn.Conv(self.width, (2, 2), strides=(2, 2), padding="VALID", name="embedding")(images)
        x = x.reshape(x.shape[0], -1, self.width)
        x = x + self.param("pos_embedding", nn.initializers.normal(1.0), (1, x.shape[1], self.width))
        block = nn.remat(Encoder1DBlock, prevent_cse=False)
        x, _ = nn.scan(block, variable_axes={"params": 0}, split_rngs={"params": True}, length=DEPTH)(
            self.width, name="encoderblock"
        )(x, None)
        pre_logits = nn.LayerNorm(name="encoder_norm")(x).mean(axis=1)
        return nn.Dense(CLASSES, name="head")(pre_logits), {"pre_logits": pre_logits}


# --- nnx Gemma: a fused qkv einsum, fixed-std MLP draws, a tied readout --------------------------------


class RMSNorm(nnx.Module):
    def __init__(self, width: int, rngs: nnx.Rngs):
        self.scale = nnx.Param(jnp.zeros((width,)))

    def __call__(self, x):
        return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + 1e-6) * (1 + self.scale[...])


class GemmaBlock(nnx.Module):
    def __init__(self, width: int, rngs: nnx.Rngs):
        head_dim = width // HEADS
        self.pre_attention_norm = RMSNorm(width, rngs)
        self.qkv_einsum = nnx.Einsum("BTD,SNDH->SBTNH", (3, HEADS, width, head_dim), rngs=rngs)
        self.attn_vec_einsum = nnx.Einsum("BTNH,NHD->BTD", (HEADS, head_dim, width), rngs=rngs)
        self.pre_ffw_norm = RMSNorm(width, rngs)
        fixed = nnx.initializers.normal(0.01)
        self.mlp_up = nnx.Linear(width, 4 * width, use_bias=False, kernel_init=fixed, rngs=rngs)
        self.mlp_down = nnx.Linear(4 * width, width, use_bias=False, kernel_init=fixed, rngs=rngs)

    def __call__(self, x):
        q, k, v = self.qkv_einsum(self.pre_attention_norm(x))
        attended = mup.dot_product_attention(BASE // HEADS)(q, k, v, mask=nnx.make_causal_mask(x[..., 0]))
        x = x + self.attn_vec_einsum(attended)
        return x + self.mlp_down(nnx.gelu(self.mlp_up(self.pre_ffw_norm(x))))


class NnxFusedTied(nnx.Module):
    def __init__(self, width: int, rngs: nnx.Rngs):
        self.embedder = nnx.Embed(VOCAB, width, embedding_init=nnx.initializers.normal(1.0), rngs=rngs)
        self.block = GemmaBlock(width, rngs)
        self.final_norm = RMSNorm(width, rngs)
        self.readout = mup.nnx.Readout(width, VOCAB, BASE, tied=True, use_bias=False, rngs=rngs)

    def __call__(self, tokens):
        x = self.block(self.embedder(tokens))
        return self.readout(self.final_norm(x), embedding=self.embedder.embedding[...])


def nnx_fused_tied(width: int):
    """``width -> nnx factory``, as the checks take an nnx model."""

    def factory(rngs: nnx.Rngs) -> NnxFusedTied:
        return NnxFusedTied(width, rngs)

    factory.__name__ = "NnxFusedTied"
    return factory


# --- inputs ------------------------------------------------------------------------------------------


def tokens(batch: int = 4, seed: int = 0) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).integers(0, VOCAB, (batch, LENGTH)), jnp.int32)


def images(batch: int = 4) -> jax.Array:
    return jnp.asarray(np.random.default_rng(2).standard_normal((batch, 8, 8, 3)), jnp.float32)


def lengths(batch: int = 4) -> jax.Array:
    return jnp.asarray(np.random.default_rng(3).integers(2, LENGTH + 1, (batch,)), jnp.int32)


def labels(batch: int = 4, classes: int = CLASSES) -> jax.Array:
    return jnp.asarray(np.random.default_rng(4).integers(0, classes, (batch,)), jnp.int32)


def cases():
    """``{name: (width -> model, inputs, call options, targets, fans/draws for the bare path)}``:
    every pattern with how it is called (``call_kwargs``, ``output``) and what it is trained on
    (class labels, or next tokens: the same token batch shifted)."""
    x = tokens()
    next_tokens = jnp.roll(x, -1, axis=1)
    return {
        "resnet-batchnorm": (ResNet, images(), {"call_kwargs": {"train": True}}, labels()),
        "decoder-dropout": (Decoder, x, {"call_kwargs": {"train": True}}, next_tokens),
        "tied-encoder-decoder": (TiedEncoderDecoder, x, {"call_kwargs": {"targets": tokens(seed=5)}}, tokens(seed=6)),
        "bilstm-lengths": (BiLSTMClassifier, x, {"call_kwargs": {"lengths": lengths()}}, labels()),
        "vit-scan-remat": (ViT, images(), {"output": 0}, labels()),
        "nnx-fused-tied": (nnx_fused_tied, x, {}, next_tokens),
    }
