"""Reference residual blocks without normalization: Fixup, SkipInit, ReZero and T-Fixup.

Two modules with the same blocks, the same parameter names and shapes and the same
forward math: :mod:`flaxinit.blocks.linen` for ``flax.linen`` and
:mod:`flaxinit.blocks.nnx` for ``flax.nnx``. The scales come from
:mod:`flaxinit`'s ``fixup_scale``, ``tfixup_encoder_scale`` and friends; see
``docs/residual.md`` for each method's rule and paper.

Examples:
  >>> from flaxinit.blocks import linen, nnx
  >>> sorted(linen.__all__) == sorted(nnx.__all__)
  True
"""

from flaxinit.blocks import linen, nnx

__all__ = ["linen", "nnx"]
