"""Residual-network schemes: Fixup's and T-Fixup's depth scales, and initializers built on them.

The one source of each paper's formula (SPEC section 6):

* **Fixup** (Zhang, Dauphin & Ma, arXiv:1901.09321): with ``L`` residual branches of
  ``m`` weight layers each, every branch layer but the last starts at He init times
  ``L^(-1/(2m-2))``; the last layer of each branch and the classifier start at 0.
* **T-Fixup** (Huang, Pérez, Ba & Volkovs, ICML 2020): Xavier everywhere except the
  input embeddings, which are ``N(0, d^-1/2)`` (a standard deviation) times ``(9N)^(-1/4)``;
  the encoder's value/output projections and MLP weights times ``0.67 N^(-1/4)``, the
  decoder's times ``(9N)^(-1/4)``; queries and keys unscaled.

SkipInit and ReZero need no scale: their branches end in a learnable scalar that starts
at 0. The reference modules are in :mod:`flaxinit.blocks`.

Every initializer returned here is an ordinary flaxinit initializer (``kaiming_normal``,
``xavier_normalized``) with its ``gain`` set to the paper's factor, so its config
round-trips through ``get_config()`` and :func:`flaxinit.get`.
"""

from __future__ import annotations

from typing import Any, Literal

from flaxinit._base import FanScheme
from flaxinit._checks import check_int
from flaxinit._kaiming import kaiming_normal
from flaxinit._xavier import xavier_normalized

#: The constant of T-Fixup's encoder factor ``0.67 N^(-1/4)``, as the paper prints it.
TFIXUP_ENCODER_CONSTANT = 0.67


def check_branch_depth(branch_depth: Any) -> int:
    return check_int(
        branch_depth,
        "branch_depth",
        minimum=2,
        why=" (Fixup's scale L^(-1/(2m-2)) needs m >= 2 weight layers per branch; "
        "a one-layer branch is only zero-initialized, use flaxinit.zeros())",
    )


def fixup_scale(num_branches: int, branch_depth: int) -> float:
    r"""Fixup's depth factor ``L^(-1/(2m-2))`` for the non-final layers of each residual branch.

    With ``L`` branches of ``m`` weight layers whose last layer starts at 0, scaling the
    other ``m - 1`` layers' He init by this factor makes each branch's contribution to
    an SGD step ``Theta(eta / L)``, so the whole network's function moves by
    ``Theta(eta)`` (Zhang, Dauphin & Ma, arXiv:1901.09321, section 3).

    Args:
      num_branches: ``L``, the number of residual branches in the network (>= 1).
      branch_depth: ``m``, the number of weight layers in each branch (>= 2).

    Returns:
      ``L ** (-1 / (2m - 2))`` as a Python float (``L^(-1/2)`` for two-layer branches).

    Raises:
      ValueError: for ``num_branches < 1`` or ``branch_depth < 2``.
      TypeError: for non-integer arguments.

    Examples:
      >>> import flaxinit
      >>> flaxinit.fixup_scale(16, 2), flaxinit.fixup_scale(16, 3)
      (0.25, 0.5)
    """
    num_branches = check_int(num_branches, "num_branches")
    branch_depth = check_branch_depth(branch_depth)
    return float(num_branches) ** (-1.0 / (2 * branch_depth - 2))


def tfixup_encoder_scale(num_layers: int) -> float:
    r"""T-Fixup's encoder factor ``0.67 N^(-1/4)``.

    Multiplies the Xavier init of every encoder layer's value and output projections
    and its MLP weights. Its derivation assumes the input embeddings are scaled by
    :func:`tfixup_decoder_scale` (see :func:`tfixup_embedding_init`).

    Args:
      num_layers: ``N``, the number of encoder layers (>= 1).

    Returns:
      ``0.67 * N ** (-1/4)`` as a Python float.

    Examples:
      >>> import flaxinit
      >>> flaxinit.tfixup_encoder_scale(16)
      0.335
    """
    num_layers = check_int(num_layers, "num_layers")
    return TFIXUP_ENCODER_CONSTANT * float(num_layers) ** -0.25


def tfixup_decoder_scale(num_layers: int) -> float:
    r"""T-Fixup's decoder (and input-embedding) factor ``(9N)^(-1/4)``.

    Multiplies the Xavier init of every decoder layer's value and output projections
    (self- and cross-attention) and its MLP weights, and the ``N(0, d^-1/2)`` init of
    every input embedding.

    Args:
      num_layers: ``N``, the number of decoder layers (>= 1).

    Returns:
      ``(9 N) ** (-1/4)`` as a Python float.

    Examples:
      >>> import flaxinit
      >>> flaxinit.tfixup_decoder_scale(9)
      0.3333333333333333
    """
    num_layers = check_int(num_layers, "num_layers")
    return float(9 * num_layers) ** -0.25


def tfixup_embedding_std(d_model: int) -> float:
    r"""T-Fixup's input-embedding standard deviation before the depth factor: ``d^(-1/2)``.

    Args:
      d_model: ``d``, the embedding width (>= 1).

    Returns:
      ``d ** (-1/2)`` as a Python float.

    Examples:
      >>> import flaxinit
      >>> flaxinit.tfixup_embedding_std(64)
      0.125
    """
    d_model = check_int(d_model, "d_model")
    return float(d_model) ** -0.5


def fixup_branch_init(
    num_branches: int,
    branch_depth: int,
    mode: Literal["fan_in", "fan_out"] = "fan_in",
    negative_slope: float = 0.0,
) -> FanScheme:
    r"""Fixup's init for the non-final layers of a residual branch: He normal times :func:`fixup_scale`.

    ``N(0, s^2)`` with ``s = L^(-1/(2m-2)) * sqrt(2 / ((1 + slope^2) fan))``. The last
    layer of each branch and the classifier start at 0: use :func:`flaxinit.zeros`.

    Args:
      num_branches: ``L``, the number of residual branches in the network (>= 1).
      branch_depth: ``m``, the number of weight layers in each branch (>= 2).
      mode: ``"fan_in"`` (He's forward rule; the default) or ``"fan_out"`` (the rule
        the authors' CIFAR code uses).
      negative_slope: the leaky-ReLU slope of the branch's activation (>= 0).

    Returns:
      ``flaxinit.kaiming_normal(mode, negative_slope, gain=fixup_scale(L, m))``.

    Examples:
      >>> import flaxinit
      >>> init = flaxinit.fixup_branch_init(num_branches=4, branch_depth=2)
      >>> init.gain, init.stddev((8, 8))
      (0.5, 0.25)
      >>> flaxinit.get(init.get_config()) == init
      True
    """
    return kaiming_normal(mode, negative_slope, gain=fixup_scale(num_branches, branch_depth))


def tfixup_encoder_init(num_layers: int) -> FanScheme:
    r"""T-Fixup's init for encoder value/output projections and MLP weights: Xavier times ``0.67 N^(-1/4)``.

    Queries and keys keep plain Xavier (:func:`flaxinit.xavier_normalized`).

    Args:
      num_layers: ``N``, the number of encoder layers (>= 1).

    Returns:
      ``flaxinit.xavier_normalized(gain=tfixup_encoder_scale(N))``: ``U(-b, b)`` with
      ``b = 0.67 N^(-1/4) sqrt(6 / (fan_in + fan_out))``.

    Examples:
      >>> import flaxinit
      >>> flaxinit.tfixup_encoder_init(1).bound((3, 3))
      0.67
    """
    return xavier_normalized(gain=tfixup_encoder_scale(num_layers))


def tfixup_decoder_init(num_layers: int) -> FanScheme:
    r"""T-Fixup's init for decoder value/output projections and MLP weights: Xavier times ``(9N)^(-1/4)``.

    Args:
      num_layers: ``N``, the number of decoder layers (>= 1).

    Returns:
      ``flaxinit.xavier_normalized(gain=tfixup_decoder_scale(N))``.

    Examples:
      >>> import flaxinit
      >>> flaxinit.tfixup_decoder_init(9).bound((3, 3))
      0.3333333333333333
    """
    return xavier_normalized(gain=tfixup_decoder_scale(num_layers))


def tfixup_embedding_init(d_model: int, num_layers: int | None) -> FanScheme:
    r"""T-Fixup's input-embedding init: ``N(0, s^2)`` with ``s = d^(-1/2) (9N)^(-1/4)``.

    The paper draws input embeddings from ``N(0, d^-1/2)`` (a standard deviation) and
    scales all of them, in the encoder and the decoder, by ``(9N)^(-1/4)``; for an
    encoder-only model ``N`` is its number of layers (the encoder factor 0.67 was
    derived with the embeddings at this scale). ``num_layers=None`` leaves out the depth
    factor: the unscaled ``N(0, d^-1/2)`` of a model without T-Fixup.

    The result is ``kaiming_normal(fan_in=2 d, gain=...)``, whose standard deviation
    ``gain * sqrt(2 / (2 d))`` is exactly ``gain / sqrt(d)`` whatever the table's shape
    (the fan is fixed, so any vocabulary size works).

    Args:
      d_model: ``d``, the embedding width (>= 1).
      num_layers: ``N`` (>= 1; the decoder's in an encoder-decoder model), or None.

    Returns:
      An initializer for embedding tables of any shape.

    Examples:
      >>> import flaxinit
      >>> flaxinit.tfixup_embedding_init(64, num_layers=None).stddev((1000, 64))
      0.125
      >>> flaxinit.tfixup_embedding_init(64, num_layers=9).stddev((1000, 64))
      0.041666666666666664
    """
    d_model = check_int(d_model, "d_model")
    gain = 1.0 if num_layers is None else tfixup_decoder_scale(num_layers)
    return kaiming_normal(fan_in=2 * d_model, gain=gain)
