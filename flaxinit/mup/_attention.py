"""μP attention: logits ``q . k / d_head`` (written relative to the base head size)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from flaxinit._checks import check_int


def attention_scale(head_dim: int, base_head_dim: int) -> float:
    """``sqrt(base_head_dim) / head_dim``: the logits' multiplier, ``1/sqrt(head_dim)`` at the
    base head size and ``1/head_dim``-like as heads widen.

    Examples:
      >>> from flaxinit import mup
      >>> mup.attention_scale(64, 64) == 1 / 8, mup.attention_scale(256, 64)
      (True, 0.03125)
    """
    head_dim, base_head_dim = check_int(head_dim, "head_dim"), check_int(base_head_dim, "base_head_dim")
    return math.sqrt(base_head_dim) / head_dim


def dot_product_attention(base_head_dim: int, attention_fn: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """An ``attention_fn`` for linen's ``MultiHeadDotProductAttention`` and nnx's
    ``MultiHeadAttention`` with μP's logits: ``attention_fn`` (default: flax's
    ``dot_product_attention``, linen's or nnx's by the keywords the layer passes; both divide
    by ``sqrt(head_dim)``) on the query
    times ``sqrt(base_head_dim / head_dim)``, so the logits are
    ``q . k * attention_scale(head_dim, base_head_dim)``.

    Examples:
      >>> import flax.linen as nn
      >>> from flaxinit import mup
      >>> layer = nn.MultiHeadDotProductAttention(num_heads=4, attention_fn=mup.dot_product_attention(16))
    """
    base_head_dim = check_int(base_head_dim, "base_head_dim")

    def attention(query, key, value, *args, **kwargs):
        fn = attention_fn if attention_fn is not None else _flax_attention(kwargs)
        head_dim = query.shape[-1]
        return fn(query * math.sqrt(base_head_dim / head_dim), key, value, *args, **kwargs)

    # linen's MultiHeadDotProductAttention passes only the keywords its attention_fn's
    # signature names (mask, dropout, deterministic, dtype, ...): without this, a bare
    # ``**kwargs`` would name none of them and the causal or padding mask would be dropped
    import inspect

    import flax.linen as nn

    attention.__signature__ = inspect.signature(attention_fn if attention_fn is not None else nn.dot_product_attention)
    attention.base_head_dim = base_head_dim  # read by mc's checks: the base they see must be this one
    return attention


def _flax_attention(kwargs: dict[str, Any]) -> Callable[..., Any]:
    """linen's ``dot_product_attention``, or nnx's when the caller passes keywords only it takes
    (nnx's ``MultiHeadAttention`` passes ``is_causal``)."""
    import inspect

    import flax.linen as nn
    from flax import nnx

    linen = inspect.signature(nn.dot_product_attention).parameters
    return nn.dot_product_attention if set(kwargs) <= set(linen) else nnx.dot_product_attention
