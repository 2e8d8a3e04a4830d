"""Reference residual blocks for ``flax.nnx``: Fixup, SkipInit, ReZero and a T-Fixup encoder.

The same blocks as :mod:`flaxinit.blocks.linen`, with the same parameter names and
shapes (``nnx.to_pure_dict(nnx.state(model, nnx.Param))`` has the structure of the
linen ``params``) and the same forward functions. nnx layers need their input width at
construction, so networks take ``in_features`` first and every module takes ``rngs``.

Residual stacks (``*ResNet``) create their blocks with ``nnx.vmap`` (parameters stacked
on a leading axis of length ``num_blocks``) and apply them with ``nnx.scan``.

Examples:
  >>> import jax.numpy as jnp
  >>> from flax import nnx
  >>> from flaxinit.blocks import nnx as blocks
  >>> block = blocks.ReZeroBlock(4, rngs=nnx.Rngs(0))
  >>> x = jnp.arange(8.0).reshape(2, 4)
  >>> bool((block(x) == x).all())  # alpha starts at 0: the identity
  True
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from flaxinit._checks import check_int
from flaxinit._constant import zeros
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

_ZEROS = zeros()


def _linear(in_features: int, out_features: int, init: KernelInit, rngs: nnx.Rngs, use_bias: bool = True) -> nnx.Linear:
    return nnx.Linear(in_features, out_features, use_bias=use_bias, kernel_init=init, bias_init=_ZEROS, rngs=rngs)


def _stack(make: Callable[[nnx.Rngs], nnx.Module], num_blocks: int, rngs: nnx.Rngs) -> nnx.Module:
    """``num_blocks`` independently initialized blocks, parameters stacked on axis 0."""

    @nnx.split_rngs(splits=num_blocks)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def create(rngs: nnx.Rngs) -> nnx.Module:
        return make(rngs)

    return create(rngs)


def _scan_blocks(blocks: nnx.Module, x: jax.Array) -> jax.Array:
    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def forward(h: jax.Array, block: nnx.Module) -> jax.Array:
        return block(h)

    return forward(x, blocks)


class FixupBlock(nnx.Module):
    """Fixup residual block (Zhang, Dauphin & Ma, arXiv:1901.09321), dense version.

    ``x + scale * branch(x) + bias_out`` with ``branch_depth`` bias-free layers
    ``dense_0 .. dense_{m-1}`` and scalar biases before each layer and activation. At
    init the last layer is 0 and the others He normal times ``L^(-1/(2m-2))``, so the
    block is exactly the identity. See :class:`flaxinit.blocks.linen.FixupBlock`.

    Args:
      features: the input and output width.
      num_branches: ``L``, the number of residual branches in the whole network.
      branch_depth: ``m`` >= 2, the number of dense layers in the branch.
      hidden_features: width of the inner layers (default ``features``).
      activation: the element-wise activation (default ReLU).
      branch_multiplier: a constant multiplying the residual branch (default 1; see
        :func:`flaxinit.mup.depth_multiplier`).
      rngs: the random streams (``params`` is used).
    """

    def __init__(
        self,
        features: int,
        num_branches: int,
        branch_depth: int = 2,
        hidden_features: int | None = None,
        activation: Activation = jax.nn.relu,
        *,
        branch_multiplier: float = 1.0,
        rngs: nnx.Rngs,
    ) -> None:
        self.branch_multiplier = _common.check_branch_multiplier(branch_multiplier)
        self.features, hidden = _common.check_mlp_block(features, hidden_features)
        _, m = _common.check_fixup_block(num_branches, branch_depth)
        self.branch_depth = m
        self.activation = activation
        branch_init = fixup_branch_init(num_branches, m)
        widths = [self.features] + [hidden] * (m - 1) + [self.features]
        for i in range(m):
            init = branch_init if i < m - 1 else _ZEROS
            setattr(self, f"dense_{i}", _linear(widths[i], widths[i + 1], init, rngs, use_bias=False))
        self.bias_in = nnx.Param(jnp.zeros((m,)))
        self.bias_act = nnx.Param(jnp.zeros((m - 1,)))
        self.scale = nnx.Param(jnp.ones(()))
        self.bias_out = nnx.Param(jnp.zeros(()))

    def __call__(self, x: jax.Array) -> jax.Array:
        _common.check_width(x, self.features, "FixupBlock")
        linears = [getattr(self, f"dense_{i}") for i in range(self.branch_depth)]
        branch = _common.fixup_branch(
            x, linears, self.bias_in[...], self.bias_act[...], self.scale[...], self.bias_out[...], self.activation
        )
        return _common.residual(x, branch, self.branch_multiplier)


class FixupResNet(nnx.Module):
    """A small Fixup residual network (dense): stem, ``num_blocks`` Fixup blocks, zero classifier.

    See :class:`flaxinit.blocks.linen.FixupResNet`; the logits start at exactly 0.

    Args:
      in_features: the input width.
      features: the width of the residual stream.
      num_blocks: ``L``, the number of residual blocks.
      num_outputs: the number of logits.
      branch_depth: as in :class:`FixupBlock`.
      hidden_features: as in :class:`FixupBlock`.
      activation: as in :class:`FixupBlock`.
      rngs: the random streams.
    """

    def __init__(
        self,
        in_features: int,
        features: int,
        num_blocks: int,
        num_outputs: int,
        branch_depth: int = 2,
        hidden_features: int | None = None,
        activation: Activation = jax.nn.relu,
        *,
        rngs: nnx.Rngs,
    ) -> None:
        self.in_features = check_int(in_features, "in_features")
        num_blocks, num_outputs = _common.check_network(num_blocks, num_outputs)
        _common.check_mlp_block(features, hidden_features)
        self.activation = activation
        self.stem = _linear(self.in_features, features, kaiming_normal(), rngs, use_bias=False)
        self.stem_bias = nnx.Param(jnp.zeros(()))
        self.blocks = _stack(
            lambda r: FixupBlock(features, num_blocks, branch_depth, hidden_features, activation, rngs=r),
            num_blocks,
            rngs,
        )
        self.head_bias = nnx.Param(jnp.zeros(()))
        self.head = _linear(features, num_outputs, _ZEROS, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        _common.check_width(x, self.in_features, "FixupResNet", "in_features")
        h = self.activation(self.stem(x) + self.stem_bias[...])
        h = _scan_blocks(self.blocks, h)
        return self.head(h + self.head_bias[...])


class SkipInitBlock(nnx.Module):
    """SkipInit residual block (De & Smith, arXiv:2002.10444): ``x + alpha * dense_1(act(dense_0(x)))``.

    See :class:`flaxinit.blocks.linen.SkipInitBlock`.

    Args:
      features: the input and output width.
      hidden_features: the inner width (default ``features``).
      alpha_init: the initial ``alpha`` (default 0; else small, below ``1/sqrt(num_blocks)``).
      activation: the element-wise activation (default ReLU).
      kernel_init: the branch layers' kernel init (default He normal); biases start at 0.
      branch_multiplier: a constant multiplying the residual branch (default 1; see
        :func:`flaxinit.mup.depth_multiplier`).
      rngs: the random streams.
    """

    def __init__(
        self,
        features: int,
        hidden_features: int | None = None,
        alpha_init: float = 0.0,
        activation: Activation = jax.nn.relu,
        kernel_init: KernelInit = HE_NORMAL,
        *,
        branch_multiplier: float = 1.0,
        rngs: nnx.Rngs,
    ) -> None:
        self.branch_multiplier = _common.check_branch_multiplier(branch_multiplier)
        self.features, hidden = _common.check_mlp_block(features, hidden_features)
        alpha_init = _common.check_alpha(alpha_init)
        self.activation = activation
        self.dense_0 = _linear(self.features, hidden, kernel_init, rngs)
        self.dense_1 = _linear(hidden, self.features, kernel_init, rngs)
        self.alpha = nnx.Param(jnp.full((), alpha_init))

    def __call__(self, x: jax.Array) -> jax.Array:
        _common.check_width(x, self.features, "SkipInitBlock")
        branch = self.alpha[...] * _common.two_layer_branch(x, self.dense_0, self.dense_1, self.activation)
        return _common.residual(x, branch, self.branch_multiplier)


class ReZeroBlock(nnx.Module):
    """ReZero residual layer (Bachlechner et al., arXiv:2003.04887): ``x + alpha * act(dense_0(x))``, alpha = 0.

    See :class:`flaxinit.blocks.linen.ReZeroBlock`.

    Args:
      features: the input and output width.
      activation: the element-wise activation (default ReLU).
      kernel_init: the dense layer's kernel init (default He normal); its bias starts at 0.
      branch_multiplier: a constant multiplying the residual branch (default 1; see
        :func:`flaxinit.mup.depth_multiplier`).
      rngs: the random streams.
    """

    def __init__(
        self,
        features: int,
        activation: Activation = jax.nn.relu,
        kernel_init: KernelInit = HE_NORMAL,
        *,
        branch_multiplier: float = 1.0,
        rngs: nnx.Rngs,
    ) -> None:
        self.branch_multiplier = _common.check_branch_multiplier(branch_multiplier)
        self.features = _common.check_mlp_block(features, None)[0]
        self.activation = activation
        self.dense_0 = _linear(self.features, self.features, kernel_init, rngs)
        self.alpha = nnx.Param(jnp.zeros(()))

    def __call__(self, x: jax.Array) -> jax.Array:
        _common.check_width(x, self.features, "ReZeroBlock")
        return _common.residual(x, self.alpha[...] * self.activation(self.dense_0(x)), self.branch_multiplier)


class _StemAndHead(nnx.Module):
    """SkipInit/ReZero networks: He stem + activation, the stacked blocks, a Xavier classifier."""

    def _build(self, in_features: int, features: int, num_outputs: int, activation: Activation, rngs: nnx.Rngs) -> None:
        self.in_features = check_int(in_features, "in_features")
        self.activation = activation
        self.stem = _linear(self.in_features, features, kaiming_normal(), rngs)
        self.head = _linear(features, num_outputs, xavier_normalized(), rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        _common.check_width(x, self.in_features, type(self).__name__, "in_features")
        h = _scan_blocks(self.blocks, self.activation(self.stem(x)))
        return self.head(h)


class SkipInitResNet(_StemAndHead):
    """A SkipInit residual MLP: He stem, ``num_blocks`` :class:`SkipInitBlock` s, Xavier classifier.

    Args:
      in_features: the input width.
      features: the width of the residual stream.
      num_blocks: the number of residual blocks.
      num_outputs: the number of outputs.
      hidden_features: as in :class:`SkipInitBlock`.
      alpha_init: as in :class:`SkipInitBlock`.
      activation: as in :class:`SkipInitBlock`.
      kernel_init: as in :class:`SkipInitBlock`.
      rngs: the random streams.
    """

    def __init__(
        self,
        in_features: int,
        features: int,
        num_blocks: int,
        num_outputs: int,
        hidden_features: int | None = None,
        alpha_init: float = 0.0,
        activation: Activation = jax.nn.relu,
        kernel_init: KernelInit = HE_NORMAL,
        *,
        rngs: nnx.Rngs,
    ) -> None:
        num_blocks, num_outputs = _common.check_network(num_blocks, num_outputs)
        _common.check_mlp_block(features, hidden_features)
        _common.check_alpha(alpha_init)
        self._build(in_features, features, num_outputs, activation, rngs)
        self.blocks = _stack(
            lambda r: SkipInitBlock(features, hidden_features, alpha_init, activation, kernel_init, rngs=r),
            num_blocks,
            rngs,
        )


class ReZeroResNet(_StemAndHead):
    """A ReZero residual MLP: He stem, ``num_blocks`` :class:`ReZeroBlock` s, Xavier classifier.

    Args:
      in_features: the input width.
      features: the width of the residual stream.
      num_blocks: the number of residual layers.
      num_outputs: the number of outputs.
      activation: as in :class:`ReZeroBlock`.
      kernel_init: as in :class:`ReZeroBlock`.
      rngs: the random streams.
    """

    def __init__(
        self,
        in_features: int,
        features: int,
        num_blocks: int,
        num_outputs: int,
        activation: Activation = jax.nn.relu,
        kernel_init: KernelInit = HE_NORMAL,
        *,
        rngs: nnx.Rngs,
    ) -> None:
        num_blocks, num_outputs = _common.check_network(num_blocks, num_outputs)
        _common.check_mlp_block(features, None)
        self._build(in_features, features, num_outputs, activation, rngs)
        self.blocks = _stack(lambda r: ReZeroBlock(features, activation, kernel_init, rngs=r), num_blocks, rngs)


class TFixupEncoderLayer(nnx.Module):
    """T-Fixup Transformer encoder layer (Huang, Pérez, Ba & Volkovs, ICML 2020): no LayerNorm.

    See :class:`flaxinit.blocks.linen.TFixupEncoderLayer`: Xavier everywhere, value/output
    projections and MLP kernels times ``0.67 N^(-1/4)`` when ``tfixup=True``.

    Args:
      d_model: the width (divisible by ``num_heads``).
      num_heads: the number of attention heads.
      d_ff: the MLP's inner width.
      num_layers: ``N``, the number of layers in the encoder.
      tfixup: apply T-Fixup's depth scaling (default True).
      activation: the MLP's activation (default ReLU).
      rngs: the random streams.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        num_layers: int,
        tfixup: bool = True,
        activation: Activation = jax.nn.relu,
        *,
        rngs: nnx.Rngs,
    ) -> None:
        _common.check_attention(d_model, num_heads, d_ff, num_layers)
        self.d_model, self.num_heads, self.activation = d_model, num_heads, activation
        xavier = xavier_normalized()
        scaled = tfixup_encoder_init(num_layers) if tfixup else xavier
        self.query = _linear(d_model, d_model, xavier, rngs)
        self.key = _linear(d_model, d_model, xavier, rngs)
        self.value = _linear(d_model, d_model, scaled, rngs)
        self.out = _linear(d_model, d_model, scaled, rngs)
        self.fc1 = _linear(d_model, d_ff, scaled, rngs)
        self.fc2 = _linear(d_ff, d_model, scaled, rngs)

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """``x``: (batch, length, d_model); ``mask``: boolean, broadcastable to (batch, heads, length, length)."""
        _common.check_sequence(x, self.d_model, "TFixupEncoderLayer")
        attention = functools.partial(
            _common.self_attention,
            query=self.query,
            key=self.key,
            value=self.value,
            out=self.out,
            num_heads=self.num_heads,
            mask=mask,
        )
        return _common.tfixup_layer(x, attention, self.fc1, self.fc2, self.activation)


class TFixupEncoder(nnx.Module):
    """A T-Fixup Transformer encoder without LayerNorm: embeddings, ``num_layers`` layers, a Xavier head.

    See :class:`flaxinit.blocks.linen.TFixupEncoder`.

    Args:
      vocab_size: the number of input tokens.
      d_model: as in :class:`TFixupEncoderLayer`.
      num_heads: as in :class:`TFixupEncoderLayer`.
      d_ff: as in :class:`TFixupEncoderLayer`.
      num_layers: ``N``, the number of layers.
      max_len: the longest sequence (rows of the positional embedding).
      num_outputs: logits per position (default ``vocab_size``).
      tfixup: apply T-Fixup's scaling (default True).
      activation: the MLP's activation (default ReLU).
      rngs: the random streams.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        num_heads: int,
        d_ff: int,
        num_layers: int,
        max_len: int,
        num_outputs: int | None = None,
        tfixup: bool = True,
        activation: Activation = jax.nn.relu,
        *,
        rngs: nnx.Rngs,
    ) -> None:
        num_outputs = _common.check_encoder(vocab_size, max_len, num_outputs)
        _common.check_attention(d_model, num_heads, d_ff, num_layers)
        self.max_len, self.num_layers = max_len, num_layers
        embedding_init = tfixup_embedding_init(d_model, num_layers if tfixup else None)
        self.embed = nnx.Embed(vocab_size, d_model, embedding_init=embedding_init, rngs=rngs)
        self.pos_embedding = nnx.Param(embedding_init(rngs.params(), (max_len, d_model)))
        for i in range(num_layers):
            layer = TFixupEncoderLayer(d_model, num_heads, d_ff, num_layers, tfixup, activation, rngs=rngs)
            setattr(self, f"layers_{i}", layer)
        self.head = _linear(d_model, num_outputs, xavier_normalized(), rngs)

    def __call__(self, tokens: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """``tokens``: integers (batch, length <= max_len); returns logits (batch, length, num_outputs)."""
        _common.check_tokens(tokens, self.max_len, "TFixupEncoder")
        x = self.embed(tokens) + self.pos_embedding[...][: tokens.shape[1]]
        for i in range(self.num_layers):
            x = getattr(self, f"layers_{i}")(x, mask)
        return self.head(x)
