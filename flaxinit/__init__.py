"""flaxinit: weight initializers for JAX and Flax, Letkeman's magnitude-preserving schemes included.

Every scheme factory returns ``init(key, shape, dtype=jnp.float32) -> jax.Array`` (the
``jax.nn.initializers.Initializer`` contract), ready for ``kernel_init=`` of
``flax.linen`` and ``flax.nnx`` layers: the article's schemes, everything
``jax.nn.initializers`` has (same names, arguments and values), PyTorch's and Keras'
structured ones, and exact activation gains. The model-level schemes that need a model or
data (``lsuv``, ``net2wider``, ``weight_selection``, ``proxy_init``) transform a model's
parameters instead; reference residual blocks live in ``flaxinit.blocks``, and a faster
generator for any of them, Philox4x32-10 as a JAX key type, in ``flaxinit.prng``.

``import flaxinit`` imports jax and NumPy only; the model-level tools load flax and optax
on first use.

Examples:
  >>> import jax, flaxinit
  >>> init = flaxinit.letkeman_standard()
  >>> init(jax.random.key(0), (784, 128)).shape
  (784, 128)
"""

import importlib
from typing import TYPE_CHECKING, Any

from flaxinit import magnitude
from flaxinit._base import FanOptions, FanScheme, Initializer
from flaxinit._constant import constant, ones, zeros
from flaxinit._fans import compute_fans
from flaxinit._fixed import normal, truncated_normal, uniform
from flaxinit._gain import gain
from flaxinit._kaiming import kaiming_normal, kaiming_uniform
from flaxinit._letkeman import letkeman_normalized, letkeman_standard
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
from flaxinit._structured import delta_orthogonal, dirac, eye, identity, orthogonal, sparse
from flaxinit._variance import (
    glorot_normal,
    glorot_uniform,
    he_normal,
    he_uniform,
    lecun_normal,
    lecun_uniform,
    variance_scaling,
)
from flaxinit._xavier import xavier_normalized, xavier_standard

__version__ = "0.2.0"

if TYPE_CHECKING:  # for type checkers and the API reference; at run time they load on first use
    from flaxinit._lsuv import LSUVLayer, LSUVReport, LSUVResult, lsuv
    from flaxinit._net2net import ProxyInitResult, net2wider, proxy_init, weight_selection

# The model-level tools need flax and optax: loaded on first use (PEP 562).
_LAZY = {
    "LSUVLayer": "flaxinit._lsuv",
    "LSUVReport": "flaxinit._lsuv",
    "LSUVResult": "flaxinit._lsuv",
    "lsuv": "flaxinit._lsuv",
    "ProxyInitResult": "flaxinit._net2net",
    "net2wider": "flaxinit._net2net",
    "proxy_init": "flaxinit._net2net",
    "weight_selection": "flaxinit._net2net",
    "blocks": "flaxinit.blocks",
    "mup": "flaxinit.mup",
    "prng": "flaxinit.prng",
    "tooling": "flaxinit.tooling",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'flaxinit' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    value = module if _LAZY[name] == f"flaxinit.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "FanOptions",
    "FanScheme",
    "Initializer",
    "LSUVLayer",
    "LSUVReport",
    "LSUVResult",
    "ProxyInitResult",
    "__version__",
    "available",
    "compute_fans",
    "constant",
    "delta_orthogonal",
    "dirac",
    "eye",
    "fixup_branch_init",
    "fixup_scale",
    "gain",
    "get",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "identity",
    "kaiming_normal",
    "kaiming_uniform",
    "lecun_normal",
    "lecun_uniform",
    "letkeman_normalized",
    "letkeman_standard",
    "lsuv",
    "magnitude",
    "mup",
    "net2wider",
    "normal",
    "ones",
    "orthogonal",
    "proxy_init",
    "sparse",
    "tfixup_decoder_init",
    "tfixup_decoder_scale",
    "tfixup_embedding_init",
    "tfixup_embedding_std",
    "tfixup_encoder_init",
    "tfixup_encoder_scale",
    "truncated_normal",
    "uniform",
    "variance_scaling",
    "weight_selection",
    "xavier_normalized",
    "xavier_standard",
    "zeros",
]
