"""What the linen and nnx blocks share: argument checks and the forward math.

Each framework module only declares its parameters and layers; the computation they
feed is one function here, so the two versions compute the same thing by construction.
The scales come from :mod:`flaxinit._residual`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from flaxinit import _checks
from flaxinit._checks import check_int
from flaxinit._kaiming import kaiming_normal
from flaxinit._residual import check_branch_depth

Activation = Callable[[jax.Array], jax.Array]
Layer = Callable[[jax.Array], jax.Array]
#: Any ``init(key, shape, dtype) -> jax.Array``: a flaxinit initializer or a ``jax.nn.initializers`` one.
KernelInit = Callable[..., jax.Array]

#: The default kernel init of SkipInit and ReZero branches (He normal, fan-in).
HE_NORMAL = kaiming_normal()


# --- argument checks (raised when a block is built) -------------------------------------


def check_mlp_block(features: Any, hidden_features: Any) -> tuple[int, int]:
    """Returns ``(features, hidden)`` with ``hidden_features=None`` meaning ``features``."""
    features = check_int(features, "features")
    hidden = features if hidden_features is None else check_int(hidden_features, "hidden_features")
    return features, hidden


def check_fixup_block(num_branches: Any, branch_depth: Any) -> tuple[int, int]:
    return check_int(num_branches, "num_branches"), check_branch_depth(branch_depth)


def check_alpha(alpha_init: Any) -> float:
    return _checks.check_real(alpha_init, "alpha_init")


def check_branch_multiplier(branch_multiplier: Any) -> float:
    return _checks.check_real(branch_multiplier, "branch_multiplier")


def residual(x: jax.Array, branch: jax.Array, branch_multiplier: float) -> jax.Array:
    """``x + branch_multiplier * branch`` (depth-muP / CompleteP: ``flaxinit.mup.depth_multiplier``);
    a multiplier of 1 adds the branch as it is."""
    return x + branch if branch_multiplier == 1.0 else x + branch_multiplier * branch


def check_network(num_blocks: Any, num_outputs: Any) -> tuple[int, int]:
    return check_int(num_blocks, "num_blocks"), check_int(num_outputs, "num_outputs")


def check_attention(d_model: Any, num_heads: Any, d_ff: Any, num_layers: Any) -> None:
    d_model = check_int(d_model, "d_model")
    num_heads = check_int(num_heads, "num_heads")
    check_int(d_ff, "d_ff")
    check_int(num_layers, "num_layers")
    if d_model % num_heads:
        raise ValueError(f"d_model must be divisible by num_heads, got d_model={d_model}, num_heads={num_heads}")


def check_encoder(vocab_size: Any, max_len: Any, num_outputs: Any) -> int:
    """Returns the number of logits per position (``num_outputs=None`` means ``vocab_size``)."""
    vocab_size = check_int(vocab_size, "vocab_size")
    check_int(max_len, "max_len")
    return vocab_size if num_outputs is None else check_int(num_outputs, "num_outputs")


# --- input checks (raised at the first call) --------------------------------------------


def check_width(x: jax.Array, features: int, block: str, argument: str = "features") -> None:
    """A residual block adds its branch (width ``features``) to its input: the widths must agree."""
    if x.ndim < 1 or x.shape[-1] != features:
        got = "a scalar" if x.ndim < 1 else f"last axis of size {x.shape[-1]} (shape {tuple(x.shape)})"
        raise ValueError(
            f"{block}: the input has {got}, but the block was built with {argument}={features}; "
            f"the input's last axis must equal {argument}"
        )


def check_sequence(x: jax.Array, d_model: int, block: str) -> None:
    if x.ndim != 3:
        raise ValueError(f"{block}: the input must have shape (batch, length, d_model), got shape {tuple(x.shape)}")
    check_width(x, d_model, block, "d_model")


def check_tokens(tokens: jax.Array, max_len: int, block: str) -> None:
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(
            f"{block}: tokens must be an integer array of shape (batch, length), "
            f"got {tokens.dtype} of shape {tuple(tokens.shape)}"
        )
    if tokens.shape[1] > max_len:
        raise ValueError(f"{block}: the sequence has length {tokens.shape[1]}, but max_len={max_len}")


# --- forward math -------------------------------------------------------------------------


def fixup_branch(
    x: jax.Array,
    linears: Sequence[Layer],
    bias_in: jax.Array,
    bias_act: jax.Array,
    scale: jax.Array,
    bias_out: jax.Array,
    activation: Activation,
) -> jax.Array:
    """Fixup's residual branch: a scalar bias before each linear layer and each activation.

    ``h = linears[0](x + bias_in[0])``, then for each further layer ``i``
    ``h = linears[i](activation(h + bias_act[i-1]) + bias_in[i])``, and the branch
    returns ``scale * h + bias_out`` (the authors' code: ``out * scale + bias2b``).
    """
    h = x
    for i, linear in enumerate(linears):
        if i:
            h = activation(h + bias_act[i - 1])
        h = linear(h + bias_in[i])
    return h * scale + bias_out


def two_layer_branch(x: jax.Array, first: Layer, second: Layer, activation: Activation) -> jax.Array:
    """``second(activation(first(x)))``: the SkipInit branch."""
    return second(activation(first(x)))


def self_attention(
    x: jax.Array,
    query: Layer,
    key: Layer,
    value: Layer,
    out: Layer,
    num_heads: int,
    mask: jax.Array | None = None,
) -> jax.Array:
    """Multi-head scaled dot-product self-attention of ``x`` (batch, length, d_model).

    The four projections are ``d_model -> d_model`` dense layers; heads split the width.
    ``mask`` (boolean, broadcastable to ``(batch, num_heads, length, length)``) marks the
    keys each query may attend to.
    """
    batch, length, d_model = x.shape

    def heads(h: jax.Array) -> jax.Array:
        return h.reshape(batch, length, num_heads, d_model // num_heads)

    y = jax.nn.dot_product_attention(heads(query(x)), heads(key(x)), heads(value(x)), mask=mask)
    return out(y.reshape(batch, length, d_model))


def tfixup_layer(
    x: jax.Array,
    attention: Callable[[jax.Array], jax.Array],
    fc1: Layer,
    fc2: Layer,
    activation: Activation,
) -> jax.Array:
    """A Transformer encoder layer without LayerNorm: ``x + attn(x)``, then ``+ fc2(act(fc1(.)))``."""
    x = x + attention(x)
    return x + fc2(activation(fc1(x)))
