"""Reference residual blocks for ``flax.linen``: Fixup, SkipInit, ReZero and a T-Fixup encoder.

No module here normalizes. Parameter names and shapes match :mod:`flaxinit.blocks.nnx`
exactly, and both call the same forward functions, so a linen params tree loads into
the nnx model (``nnx.replace_by_pure_dict``) and computes the same outputs.

Residual stacks (``*ResNet``) scan one block over ``num_blocks`` (``nn.scan``): block
parameters carry a leading axis of length ``num_blocks``, and a 1,000-block network
compiles as fast as a one-block one.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from flaxinit.blocks import linen as blocks
  >>> net = blocks.FixupResNet(features=16, num_blocks=8, num_outputs=3)
  >>> params = net.init(jax.random.key(0), jnp.ones((2, 5)))
  >>> params["params"]["blocks"]["dense_0"]["kernel"].shape
  (8, 16, 16)
  >>> net.apply(params, jnp.ones((2, 5)))  # the classifier starts at 0
  Array([[0., 0., 0.],
         [0., 0., 0.]], dtype=float32)
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax

from flaxinit._base import Initializer
from flaxinit._constant import constant, ones, zeros
from flaxinit._kaiming import kaiming_normal
from flaxinit._residual import fixup_branch_init, tfixup_embedding_init, tfixup_encoder_init
from flaxinit._xavier import xavier_normalized
from flaxinit.blocks import _common
from flaxinit.blocks._common import HE_NORMAL, Activation, KernelInit

__all__ = [
    "FixupBlock",
    "FixupResNet",
    "ReZeroBlock",
    "ReZeroResNet",
    "SkipInitBlock",
    "SkipInitResNet",
    "TFixupEncoder",
    "TFixupEncoderLayer",
]


def _scan_blocks(block: nn.Module, x: jax.Array, num_blocks: int) -> jax.Array:
    """Applies ``block`` ``num_blocks`` times, each with its own parameters (stacked on axis 0)."""
    body = nn.scan(
        lambda module, carry, _: (module(carry), None),
        variable_axes={"params": 0},
        split_rngs={"params": True},
        length=num_blocks,
    )
    return body(block, x, None)[0]


class FixupBlock(nn.Module):
    """Fixup residual block (Zhang, Dauphin & Ma, arXiv:1901.09321), dense version.

    ``x + scale * branch(x) + bias_out``, where the branch has ``branch_depth`` (``m``)
    bias-free dense layers with a scalar bias before each layer and each activation
    (see :func:`flaxinit.blocks._common.fixup_branch`). At init: the last layer is 0, the
    others are He normal times ``L^(-1/(2m-2))`` (:func:`flaxinit.fixup_branch_init`),
    the scalar biases 0 and ``scale`` 1, so the block is exactly the identity.

    Attributes:
      features: the input and output width.
      num_branches: ``L``, the number of residual branches in the whole network.
      branch_depth: ``m`` >= 2, the number of dense layers in the branch.
      hidden_features: width of the inner layers (default ``features``).
      activation: the element-wise activation (default ReLU, which He init assumes).
      branch_multiplier: a constant multiplying the residual branch (default 1; with
        depth-muP/CompleteP, ``flaxinit.mup.depth_multiplier(num_blocks, base_blocks, alpha)``).
    """

    features: int
    num_branches: int
    branch_depth: int = 2
    hidden_features: int | None = None
    activation: Activation = jax.nn.relu
    branch_multiplier: float = 1.0

    def __post_init__(self) -> None:
        _common.check_mlp_block(self.features, self.hidden_features)
        _common.check_fixup_block(self.num_branches, self.branch_depth)
        _common.check_branch_multiplier(self.branch_multiplier)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        _common.check_width(x, self.features, "FixupBlock")
        m = self.branch_depth
        hidden = self.hidden_features or self.features
        branch_init = fixup_branch_init(self.num_branches, m)
        linears = [
            nn.Dense(hidden, use_bias=False, kernel_init=branch_init, name=f"dense_{i}") for i in range(m - 1)
        ] + [nn.Dense(self.features, use_bias=False, kernel_init=zeros(), name=f"dense_{m - 1}")]
        bias_in = self.param("bias_in", zeros(), (m,))
        bias_act = self.param("bias_act", zeros(), (m - 1,))
        scale = self.param("scale", ones(), ())
        bias_out = self.param("bias_out", zeros(), ())
        branch = _common.fixup_branch(x, linears, bias_in, bias_act, scale, bias_out, self.activation)
        return _common.residual(x, branch, self.branch_multiplier)


class FixupResNet(nn.Module):
    """A small Fixup residual network (dense): stem, ``num_blocks`` Fixup blocks, zero classifier.

    ``stem`` (He normal, no bias) then ``activation(. + stem_bias)``; ``num_blocks``
    :class:`FixupBlock` s with ``L = num_blocks``; then ``head(. + head_bias)`` with the
    classifier's kernel and bias at 0, so the logits start at exactly 0 (as in the
    authors' ResNet, whose stem is a standard-init conv followed by a scalar bias and ReLU).

    Attributes:
      features: the width of the residual stream.
      num_blocks: ``L``, the number of residual blocks.
      num_outputs: the number of logits.
      branch_depth: as in :class:`FixupBlock`.
      hidden_features: as in :class:`FixupBlock`.
      activation: as in :class:`FixupBlock`.
    """

    features: int
    num_blocks: int
    num_outputs: int
    branch_depth: int = 2
    hidden_features: int | None = None
    activation: Activation = jax.nn.relu

    def __post_init__(self) -> None:
        _common.check_network(self.num_blocks, self.num_outputs)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = nn.Dense(self.features, use_bias=False, kernel_init=kaiming_normal(), name="stem")(x)
        h = self.activation(h + self.param("stem_bias", zeros(), ()))
        block = FixupBlock(
            self.features, self.num_blocks, self.branch_depth, self.hidden_features, self.activation, name="blocks"
        )
        h = _scan_blocks(block, h, self.num_blocks)
        h = h + self.param("head_bias", zeros(), ())
        return nn.Dense(self.num_outputs, kernel_init=zeros(), bias_init=zeros(), name="head")(h)


class SkipInitBlock(nn.Module):
    """SkipInit residual block (De & Smith, arXiv:2002.10444): ``x + alpha * f(x)``.

    ``f(x) = dense_1(activation(dense_0(x)))``; ``alpha`` is a learnable scalar that starts
    at ``alpha_init`` (0, or a small value below ``1/sqrt(num_blocks)``), so with the
    default the block is exactly the identity at init.

    Attributes:
      features: the input and output width.
      hidden_features: the inner width (default ``features``).
      alpha_init: the initial ``alpha`` (a finite real; default 0).
      activation: the element-wise activation (default ReLU).
      kernel_init: the branch layers' kernel init (default He normal); biases start at 0.
      branch_multiplier: a constant multiplying the residual branch (default 1; with
        depth-muP/CompleteP, ``flaxinit.mup.depth_multiplier(num_blocks, base_blocks, alpha)``).
    """

    features: int
    hidden_features: int | None = None
    alpha_init: float = 0.0
    activation: Activation = jax.nn.relu
    kernel_init: KernelInit = HE_NORMAL
    branch_multiplier: float = 1.0

    def __post_init__(self) -> None:
        _common.check_mlp_block(self.features, self.hidden_features)
        _common.check_alpha(self.alpha_init)
        _common.check_branch_multiplier(self.branch_multiplier)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        _common.check_width(x, self.features, "SkipInitBlock")
        hidden = self.hidden_features or self.features
        first = nn.Dense(hidden, kernel_init=self.kernel_init, bias_init=zeros(), name="dense_0")
        second = nn.Dense(self.features, kernel_init=self.kernel_init, bias_init=zeros(), name="dense_1")
        alpha = self.param("alpha", constant(self.alpha_init), ())
        return _common.residual(x, alpha * _common.two_layer_branch(x, first, second, self.activation),
                                self.branch_multiplier)  # fmt: skip


class ReZeroBlock(nn.Module):
    """ReZero residual layer (Bachlechner et al., arXiv:2003.04887): ``x + alpha * activation(dense(x))``.

    One learnable scalar ``alpha`` per layer, initialized to 0 (the paper's rule), so the
    layer is exactly the identity at init.

    Attributes:
      features: the input and output width.
      activation: the element-wise activation (default ReLU).
      kernel_init: the dense layer's kernel init (default He normal); its bias starts at 0.
      branch_multiplier: a constant multiplying the residual branch (default 1; with
        depth-muP/CompleteP, ``flaxinit.mup.depth_multiplier(num_blocks, base_blocks, alpha)``).
    """

    features: int
    activation: Activation = jax.nn.relu
    kernel_init: KernelInit = HE_NORMAL
    branch_multiplier: float = 1.0

    def __post_init__(self) -> None:
        _common.check_mlp_block(self.features, None)
        _common.check_branch_multiplier(self.branch_multiplier)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        _common.check_width(x, self.features, "ReZeroBlock")
        dense = nn.Dense(self.features, kernel_init=self.kernel_init, bias_init=zeros(), name="dense_0")
        alpha = self.param("alpha", zeros(), ())
        return _common.residual(x, alpha * self.activation(dense(x)), self.branch_multiplier)


def _stem_and_head(module: nn.Module, x: jax.Array, block: nn.Module) -> jax.Array:
    """SkipInit/ReZero networks: He stem + activation, the scanned blocks, a Xavier classifier."""
    h = module.activation(nn.Dense(module.features, kernel_init=kaiming_normal(), bias_init=zeros(), name="stem")(x))
    h = _scan_blocks(block, h, module.num_blocks)
    return nn.Dense(module.num_outputs, kernel_init=xavier_normalized(), bias_init=zeros(), name="head")(h)


class SkipInitResNet(nn.Module):
    """A SkipInit residual MLP: He stem, ``num_blocks`` :class:`SkipInitBlock` s, Xavier classifier.

    Attributes:
      features: the width of the residual stream.
      num_blocks: the number of residual blocks.
      num_outputs: the number of outputs.
      hidden_features: as in :class:`SkipInitBlock`.
      alpha_init: as in :class:`SkipInitBlock`.
      activation: as in :class:`SkipInitBlock`.
      kernel_init: as in :class:`SkipInitBlock`.
    """

    features: int
    num_blocks: int
    num_outputs: int
    hidden_features: int | None = None
    alpha_init: float = 0.0
    activation: Activation = jax.nn.relu
    kernel_init: KernelInit = HE_NORMAL

    def __post_init__(self) -> None:
        _common.check_network(self.num_blocks, self.num_outputs)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        block = SkipInitBlock(
            self.features, self.hidden_features, self.alpha_init, self.activation, self.kernel_init, name="blocks"
        )
        return _stem_and_head(self, x, block)


class ReZeroResNet(nn.Module):
    """A ReZero residual MLP: He stem, ``num_blocks`` :class:`ReZeroBlock` s, Xavier classifier.

    Attributes:
      features: the width of the residual stream.
      num_blocks: the number of residual layers.
      num_outputs: the number of outputs.
      activation: as in :class:`ReZeroBlock`.
      kernel_init: as in :class:`ReZeroBlock`.
    """

    features: int
    num_blocks: int
    num_outputs: int
    activation: Activation = jax.nn.relu
    kernel_init: KernelInit = HE_NORMAL

    def __post_init__(self) -> None:
        _common.check_network(self.num_blocks, self.num_outputs)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        block = ReZeroBlock(self.features, self.activation, self.kernel_init, name="blocks")
        return _stem_and_head(self, x, block)


class TFixupEncoderLayer(nn.Module):
    """T-Fixup Transformer encoder layer (Huang, Pérez, Ba & Volkovs, ICML 2020): no LayerNorm.

    ``x + attention(x)``, then ``+ fc2(activation(fc1(.)))``. Every kernel is Xavier
    (:func:`flaxinit.xavier_normalized`), biases 0; with ``tfixup=True`` the value and
    output projections and both MLP kernels are scaled by ``0.67 N^(-1/4)``
    (:func:`flaxinit.tfixup_encoder_init`); queries and keys are not. ``tfixup=False`` is
    the same layer with plain Xavier (the comparison without T-Fixup).

    Attributes:
      d_model: the width (divisible by ``num_heads``).
      num_heads: the number of attention heads.
      d_ff: the MLP's inner width.
      num_layers: ``N``, the number of layers in the encoder.
      tfixup: apply T-Fixup's depth scaling (default True).
      activation: the MLP's activation (default ReLU).
    """

    d_model: int
    num_heads: int
    d_ff: int
    num_layers: int
    tfixup: bool = True
    activation: Activation = jax.nn.relu

    def __post_init__(self) -> None:
        _common.check_attention(self.d_model, self.num_heads, self.d_ff, self.num_layers)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """``x``: (batch, length, d_model); ``mask``: boolean, broadcastable to (batch, heads, length, length)."""
        _common.check_sequence(x, self.d_model, "TFixupEncoderLayer")
        xavier = xavier_normalized()
        scaled = tfixup_encoder_init(self.num_layers) if self.tfixup else xavier

        def dense(features: int, init: Initializer, name: str) -> nn.Dense:
            return nn.Dense(features, kernel_init=init, bias_init=zeros(), name=name)

        attention = functools.partial(
            _common.self_attention,
            query=dense(self.d_model, xavier, "query"),
            key=dense(self.d_model, xavier, "key"),
            value=dense(self.d_model, scaled, "value"),
            out=dense(self.d_model, scaled, "out"),
            num_heads=self.num_heads,
            mask=mask,
        )
        fc1, fc2 = dense(self.d_ff, scaled, "fc1"), dense(self.d_model, scaled, "fc2")
        return _common.tfixup_layer(x, attention, fc1, fc2, self.activation)


class TFixupEncoder(nn.Module):
    """A T-Fixup Transformer encoder without LayerNorm: embeddings, ``num_layers`` layers, a Xavier head.

    Token and learned positional embeddings start at ``N(0, d^-1/2)`` (a std) times
    ``(9N)^(-1/4)`` with ``tfixup=True`` (:func:`flaxinit.tfixup_embedding_init`), at
    ``N(0, d^-1/2)`` without. Then ``num_layers`` :class:`TFixupEncoderLayer` s and a
    per-position Xavier classifier ``head`` (``num_outputs``, default ``vocab_size``).

    Attributes:
      vocab_size: the number of input tokens.
      d_model: as in :class:`TFixupEncoderLayer`.
      num_heads: as in :class:`TFixupEncoderLayer`.
      d_ff: as in :class:`TFixupEncoderLayer`.
      num_layers: ``N``, the number of layers.
      max_len: the longest sequence (rows of the positional embedding).
      num_outputs: logits per position (default ``vocab_size``).
      tfixup: apply T-Fixup's scaling (default True).
      activation: the MLP's activation (default ReLU).
    """

    vocab_size: int
    d_model: int
    num_heads: int
    d_ff: int
    num_layers: int
    max_len: int
    num_outputs: int | None = None
    tfixup: bool = True
    activation: Activation = jax.nn.relu

    def __post_init__(self) -> None:
        _common.check_encoder(self.vocab_size, self.max_len, self.num_outputs)
        _common.check_attention(self.d_model, self.num_heads, self.d_ff, self.num_layers)
        super().__post_init__()

    @nn.compact
    def __call__(self, tokens: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """``tokens``: integers (batch, length <= max_len); returns logits (batch, length, num_outputs)."""
        _common.check_tokens(tokens, self.max_len, "TFixupEncoder")
        embedding_init = tfixup_embedding_init(self.d_model, self.num_layers if self.tfixup else None)
        x = nn.Embed(self.vocab_size, self.d_model, embedding_init=embedding_init, name="embed")(tokens)
        x = x + self.param("pos_embedding", embedding_init, (self.max_len, self.d_model))[: tokens.shape[1]]
        for i in range(self.num_layers):
            layer = TFixupEncoderLayer(
                self.d_model,
                self.num_heads,
                self.d_ff,
                self.num_layers,
                self.tfixup,
                self.activation,
                name=f"layers_{i}",
            )
            x = layer(x, mask)
        num_outputs = self.num_outputs or self.vocab_size
        return nn.Dense(num_outputs, kernel_init=xavier_normalized(), bias_init=zeros(), name="head")(x)
