"""flaxinit: weight initializers for JAX and Flax, Letkeman's magnitude-preserving schemes included.

Every scheme factory returns ``init(key, shape, dtype=jnp.float32) -> jax.Array`` (the
``jax.nn.initializers.Initializer`` contract), ready for ``kernel_init=`` of
``flax.linen`` and ``flax.nnx`` layers. The model-level schemes that need a model or
data (``lsuv``, ``net2wider``, ``weight_selection``, ``proxy_init``) transform a model's
parameters instead; reference residual blocks live in ``flaxinit.blocks``.

Examples:
  >>> import jax, flaxinit
  >>> init = flaxinit.letkeman_standard()
  >>> init(jax.random.key(0), (784, 128)).shape
  (784, 128)
"""

from flaxinit import magnitude
from flaxinit._base import FanScheme, Initializer, UniformScheme
from flaxinit._constant import constant, ones, zeros
from flaxinit._fans import compute_fans
from flaxinit._kaiming import kaiming_normal, kaiming_uniform
from flaxinit._letkeman import letkeman_normalized, letkeman_standard
from flaxinit._lsuv import LSUVLayer, LSUVReport, LSUVResult, lsuv
from flaxinit._net2net import ProxyInitResult, net2wider, proxy_init, weight_selection
from flaxinit._registry import available, get
from flaxinit._residual import (
    fixup_branch_init,
    fixup_scale,
    tfixup_decoder_init,
    tfixup_decoder_scale,
    tfixup_embedding_init,
    tfixup_embedding_std,
    tfixup_encoder_init,
    tfixup_encoder_scale,
)
from flaxinit._xavier import xavier_normalized, xavier_standard

__version__ = "0.1.0"

__all__ = [
    "FanScheme",
    "Initializer",
    "LSUVLayer",
    "LSUVReport",
    "LSUVResult",
    "ProxyInitResult",
    "UniformScheme",
    "__version__",
    "available",
    "compute_fans",
    "constant",
    "fixup_branch_init",
    "fixup_scale",
    "get",
    "kaiming_normal",
    "kaiming_uniform",
    "letkeman_normalized",
    "letkeman_standard",
    "lsuv",
    "magnitude",
    "net2wider",
    "ones",
    "proxy_init",
    "tfixup_decoder_init",
    "tfixup_decoder_scale",
    "tfixup_embedding_init",
    "tfixup_embedding_std",
    "tfixup_encoder_init",
    "tfixup_encoder_scale",
    "weight_selection",
    "xavier_normalized",
    "xavier_standard",
    "zeros",
]
