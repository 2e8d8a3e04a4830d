"""Typed results of the Monte Carlo tests; each converts to a plain dict."""

from __future__ import annotations

import dataclasses

from flaxinit.tooling import AsDict, json_float

__all__ = ["AsDict", "DepthResult", "NormalizedResult", "StandardResult", "ci95", "json_float"]

#: Two-sided 95 % normal quantile.
Z95 = 1.959963984540054


def ci95(mean: float, se: float) -> tuple[float, float]:
    return (mean - Z95 * se, mean + Z95 * se)


@dataclasses.dataclass(frozen=True)
class StandardResult(AsDict):
    """One size of the standard test: mean |pre-activation| of one output node.

    Attributes:
      size: the number of inputs ``n`` summed into the node (the kernel is ``(n, 1)``).
      scheme: the initializer's name.
      inputs: ``"ones"``, ``"gaussian"``, ``"one_hot"`` or ``"softmax"``.
      iterations: iterations run.
      mean: the Monte Carlo mean.
      se: its standard error.
      ci95: the 95 % interval ``mean ± 1.96 se``.
      expected: the exact expectation, where the scheme and inputs have one, else None.
      bound: the uniform bound used (None for non-uniform schemes).
      prng: the generator that drew the weights (``"philox4x32_10"``, ``"threefry2x32"``).
    """

    size: int
    scheme: str
    inputs: str
    iterations: int
    mean: float
    se: float
    ci95: tuple[float, float]
    expected: float | None
    bound: float | None
    prng: str = "threefry2x32"


@dataclasses.dataclass(frozen=True)
class NormalizedResult(AsDict):
    """One shape of the normalized test (SPEC section 3).

    ``forward``, ``backward`` and ``avg`` follow ``convention``: ``"article"`` divides
    ``T_row`` by ``n_out`` and ``T_col`` by ``n_in`` as the article's tables do;
    ``"per_node"`` gives the mean |pre-activation| (``T_col / n_out``) and the mean
    |back-propagated error| (``T_row / n_in``). ``avg = (T_row + T_col) / (n_in + n_out)``.
    ``prng`` names the generator that drew the weights.
    """

    n_in: int
    n_out: int
    scheme: str
    convention: str
    iterations: int
    forward: float
    backward: float
    avg: float
    forward_se: float
    backward_se: float
    avg_se: float
    forward_ci95: tuple[float, float]
    backward_ci95: tuple[float, float]
    avg_ci95: tuple[float, float]
    expected_forward: float | None
    expected_backward: float | None
    expected_avg: float | None
    bound: float | None
    prng: str = "threefry2x32"


@dataclasses.dataclass(frozen=True)
class DepthResult(AsDict):
    """Per-layer magnitudes through a stack of layers.

    ``forward[l]`` is the mean |activation| of layer ``l`` (after its nonlinearity),
    ``backward[l]`` the mean |gradient| with respect to its pre-activations, when an
    all-ones error enters at the output, and ``preactivation_ms[l]`` the mean square of its
    pre-activations; each averaged over nodes and iterations, with its ``_se``. ``prng``
    names the generator that drew the weights.
    """

    widths: tuple[int, ...]
    activation: str
    scheme: str
    inputs: str
    iterations: int
    forward: tuple[float, ...]
    backward: tuple[float, ...]
    forward_se: tuple[float, ...]
    backward_se: tuple[float, ...]
    preactivation_ms: tuple[float, ...] = ()
    preactivation_ms_se: tuple[float, ...] = ()
    prng: str = "threefry2x32"
