"""The reference models of the width and depth sweeps (``python -m mc coord-check``,
``python -m experiments mutransfer``): an MLP and a pre-LN Transformer, each built at a
width (or a depth) by :func:`width_model`.

Both are plain Flax code; what makes one μP is only what SPEC §10 puts in the model
itself: attention logits ``q·k sqrt(base_d_head) / d_head`` (:func:`flaxinit.mup.dot_product_attention`)
and, with tied embeddings, the readout in Table 8's form (:class:`flaxinit.mup.Readout`).
The rest (the init's rescaling, the learning rates) is the caller's, through
:func:`flaxinit.mup.infshapes`. The same classes in standard parametrization (SP) use
Flax's attention and an ordinary readout, so an SP run is the model as a Flax user writes it.

Choices a researcher would make, stated: embeddings and positions are drawn ``N(0, 1)``
(input weights: their std must not depend on the width, SPEC §10's input row; Flax's
``Embed`` default shrinks as ``1/sqrt(width)``), every other kernel is Flax's default
(lecun normal, a fan-in draw), the number of heads is fixed (the head dimension grows
with the width, as in microsoft/mup's examples), and residual branches are multiplied by
``branch_multiplier`` (:func:`flaxinit.mup.depth_multiplier`, 1 without depth scaling).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

from flaxinit import mup

PARAMETRIZATIONS = ("mup", "sp")


class MLP(nn.Module):
    """``hidden_layers`` layers ``relu(Dense(width))``, then ``Dense(out_features)`` named ``readout``
    (microsoft/mup's coordinate-check MLP has two)."""

    width: int
    out_features: int = 10
    hidden_layers: int = 2

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for i in range(self.hidden_layers):
            x = nn.relu(nn.Dense(self.width, name=f"dense_{i}")(x))
        return nn.Dense(self.out_features, name="readout")(x)


class Block(nn.Module):
    """Pre-LN: ``x + m attention(LN(x))``, then ``x + m mlp(LN(x))``, causal."""

    width: int
    heads: int
    attention_fn: Callable | None
    branch_multiplier: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        mask = nn.make_causal_mask(jnp.ones(x.shape[:2], jnp.int32))
        h = nn.LayerNorm(name="attention_norm")(x)
        kwargs = {} if self.attention_fn is None else {"attention_fn": self.attention_fn}
        attention = nn.MultiHeadDotProductAttention(
            num_heads=self.heads, deterministic=True, name="attention", **kwargs
        )
        x = x + self.branch_multiplier * attention(h, h, mask=mask)
        h = nn.LayerNorm(name="mlp_norm")(x)
        h = nn.Dense(4 * self.width, name="mlp_in")(h)
        return x + self.branch_multiplier * nn.Dense(self.width, name="mlp_out")(nn.gelu(h))


class Transformer(nn.Module):
    """A pre-LN causal Transformer over tokens ``[batch, length]``, logits ``[batch, length, vocab]``.

    Attributes:
      width: the model dimension.
      vocab: vocabulary size.
      depth: blocks (``block_0`` ... ``block_{depth-1}``).
      heads: attention heads (fixed: the head dimension is ``width / heads``).
      max_length: positions of the learned position table.
      tied: read the logits out through the embedding table.
      parametrization: ``"mup"`` (μP attention; a tied readout in Table 8's form) or
        ``"sp"`` (Flax's attention, an ordinary readout).
      base_width: the base model's width (μP's attention scale and tied readout).
      branch_multiplier: every residual branch's multiplier.
    """

    width: int
    vocab: int
    depth: int = 2
    heads: int = 4
    max_length: int = 64
    tied: bool = False
    parametrization: str = "mup"
    base_width: int = 64
    branch_multiplier: float = 1.0

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        table = nn.initializers.normal(1.0)
        embed = nn.Embed(self.vocab, self.width, embedding_init=table, name="embed")
        positions = self.param("positions", table, (self.max_length, self.width))
        x = embed(tokens) + positions[: tokens.shape[-1]]
        is_mup = self.parametrization == "mup"
        attention_fn = mup.dot_product_attention(self.base_width // self.heads) if is_mup else None
        for i in range(self.depth):
            x = Block(self.width, self.heads, attention_fn, self.branch_multiplier, name=f"block_{i}")(x)
        x = nn.LayerNorm(name="final_norm")(x)
        if not self.tied:
            return nn.Dense(self.vocab, name="readout")(x)
        if is_mup:
            return mup.Readout(self.vocab, self.base_width, tied=True, name="readout")(x, embedding=embed.embedding)
        return embed.attend(x)


class NnxBlock(nnx.Module):
    """:class:`Block` in nnx: the same layers, names and arithmetic."""

    def __init__(self, width: int, heads: int, attention_fn: Callable | None, branch_multiplier: float, rngs):
        self.attention_norm = nnx.LayerNorm(width, rngs=rngs)
        kwargs = {} if attention_fn is None else {"attention_fn": attention_fn}
        self.attention = nnx.MultiHeadAttention(
            num_heads=heads, in_features=width, deterministic=True, decode=False, rngs=rngs, **kwargs
        )
        self.mlp_norm = nnx.LayerNorm(width, rngs=rngs)
        self.mlp_in = nnx.Linear(width, 4 * width, rngs=rngs)
        self.mlp_out = nnx.Linear(4 * width, width, rngs=rngs)
        self.branch_multiplier = branch_multiplier

    def __call__(self, x: jax.Array) -> jax.Array:
        mask = nnx.make_causal_mask(jnp.ones(x.shape[:2], jnp.int32))
        h = self.attention_norm(x)
        x = x + self.branch_multiplier * self.attention(h, h, mask=mask)
        h = self.mlp_in(self.mlp_norm(x))
        return x + self.branch_multiplier * self.mlp_out(nnx.gelu(h))


class NnxTransformer(nnx.Module):
    """:class:`Transformer` in nnx (the same attributes, layers and parameter names)."""

    def __init__(self, width: int, vocab: int, depth: int = 2, heads: int = 4, max_length: int = 64,
                 tied: bool = False, parametrization: str = "mup", base_width: int = 64,
                 branch_multiplier: float = 1.0, *, rngs: nnx.Rngs):  # fmt: skip
        table = nnx.initializers.normal(1.0)
        self.embed = nnx.Embed(vocab, width, embedding_init=table, rngs=rngs)
        self.positions = nnx.Param(table(rngs.params(), (max_length, width)))
        is_mup = parametrization == "mup"
        attention_fn = mup.dot_product_attention(base_width // heads) if is_mup else None
        self.depth = depth
        for i in range(depth):
            setattr(self, f"block_{i}", NnxBlock(width, heads, attention_fn, branch_multiplier, rngs))
        self.final_norm = nnx.LayerNorm(width, rngs=rngs)
        self.tied, self.is_mup = tied, is_mup
        if not tied:
            self.readout = nnx.Linear(width, vocab, rngs=rngs)
        elif is_mup:
            self.readout = mup.nnx.Readout(width, vocab, base_width, tied=True, rngs=rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        x = self.embed(tokens) + self.positions[: tokens.shape[-1]]
        for i in range(self.depth):
            x = getattr(self, f"block_{i}")(x)
        x = self.final_norm(x)
        if not self.tied:
            return self.readout(x)
        if self.is_mup:
            return self.readout(x, embedding=self.embed.embedding[...])
        return self.embed.attend(x)


def _nnx_factory(cls: type, **options: object) -> Callable[[nnx.Rngs], nnx.Module]:
    def factory(rngs: nnx.Rngs) -> nnx.Module:
        return cls(rngs=rngs, **options)

    factory.__name__ = cls.__name__
    return factory


@dataclasses.dataclass(frozen=True)
class WidthModel:
    """``size -> flax.linen Module``: a reference model at a width (or, with ``sweep="depth"``, a depth).

    Attributes:
      name: ``"mlp"`` or ``"transformer"``.
      parametrization: ``"mup"`` or ``"sp"``.
      sweep: ``"width"`` (the argument is the width) or ``"depth"`` (the number of blocks of
        a Transformer at ``width``).
      options: the model's other attributes (``vocab``, ``tied``, ``out_features``, ...).
    """

    name: str
    parametrization: str = "mup"
    sweep: str = "width"
    alpha: float | None = None
    base_depth: int = 2
    options: tuple[tuple[str, object], ...] = ()
    api: str = "linen"

    @property
    def draws(self) -> str | dict[str, str]:
        """How the model draws its parameters, for :func:`flaxinit.mup.rescale`: Flax's defaults
        (fan-in draws), but the Transformer's embedding table, drawn N(0, 1)."""
        return "fan_in" if self.name == "mlp" else {"embed/embedding": "fixed"}

    def __call__(self, size: int) -> Any:
        options = dict(self.options)
        if self.name == "mlp":
            return MLP(size, **options)
        options["parametrization"] = self.parametrization
        if self.sweep == "depth":
            options["depth"] = size
            options["branch_multiplier"] = (
                1.0 if self.alpha is None else mup.depth_multiplier(size, self.base_depth, self.alpha)
            )
        else:
            options["width"] = size
        if self.api == "nnx":
            return _nnx_factory(NnxTransformer, **options)
        return Transformer(**options)


def width_model(
    name: str,
    parametrization: str = "mup",
    *,
    sweep: str = "width",
    alpha: float | None = None,
    base_depth: int = 2,
    api: str = "linen",
    **options: object,
) -> WidthModel:
    """A reference model of the coordinate check and the LR-transfer sweeps, as ``size -> Module``.

    Args:
      name: ``"mlp"`` (:class:`MLP`) or ``"transformer"`` (:class:`Transformer`).
      parametrization: ``"mup"`` or ``"sp"``: what goes into the model itself (attention
        scale, tied readout); the init and the learning rates are set by the caller.
      sweep: ``"width"``, or ``"depth"`` (a Transformer at a fixed ``width=``, the argument
        its number of blocks).
      alpha: with ``sweep="depth"``, the branch multiplier's exponent ``(depth /
        base_depth) ** -alpha`` (1: CompleteP; ``None``: no depth scaling).
      base_depth: the depth where the multiplier is 1.
      api: ``"linen"`` (a Module per size) or, for the Transformer, ``"nnx"`` (a factory
        ``rngs -> NnxTransformer`` per size: the same layers, names and arithmetic).
      **options: the model's other attributes (``vocab=``, ``tied=``, ``base_width=``,
        ``out_features=``, ``hidden_layers=``, ``width=`` for depth sweeps).

    Examples:
      >>> import mc
      >>> model = mc.width_model("transformer", "mup", vocab=32, base_width=64)
      >>> m = model(256)
      >>> type(m).__name__, m.width, m.parametrization
      ('Transformer', 256, 'mup')
    """
    if name not in ("mlp", "transformer"):
        raise ValueError(f"name must be 'mlp' or 'transformer', got {name!r}")
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {', '.join(PARAMETRIZATIONS)}, got {parametrization!r}")
    if sweep not in ("width", "depth"):
        raise ValueError(f"sweep must be 'width' or 'depth', got {sweep!r}")
    if sweep == "depth" and name != "transformer":
        raise ValueError("sweep='depth' needs name='transformer' (the MLP has no residual blocks)")
    if sweep == "depth" and "width" not in options:
        raise ValueError("sweep='depth' needs the fixed width=")
    if name == "transformer" and "vocab" not in options:
        raise ValueError("the transformer needs vocab=")
    if api not in ("linen", "nnx") or (api == "nnx" and name != "transformer"):
        raise ValueError(f"api must be 'linen', or 'nnx' for the transformer, got {api!r} for {name!r}")
    return WidthModel(name, parametrization, sweep, alpha, base_depth, tuple(sorted(options.items())), api)
