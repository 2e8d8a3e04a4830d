"""Refit the article's stand-in constants, in its functional forms (SPEC sections 2-3).

Both fits minimize the relative error of the *magnitude* a stand-in produces, which is
what the article tuned by hand: with the article's standard bound ``1/(sqrt(n) M(n))``
the all-ones magnitude is ``y(n) / M(n)`` with ``y(n) = g(n)/sqrt(n)``; with its
normalized bound ``sqrt(6/(n+m)) / A(n, m)`` the two-pass average is ``A*(n, m) / A(n, m)``
with ``A*(n, m) = sqrt(6/(n+m)) (m g(n) + n g(m)) / (n + m)``.

Targets come either from exact ``g`` on a grid, or from Monte Carlo results, where each
target carries the standard error of its estimate and the residuals are weighted by it.

The solver is ``scipy.optimize.least_squares``: these are one- and two-parameter
nonlinear least-squares problems with cheap residuals, where a trust-region method
converges in a few steps to machine precision and its Jacobian gives the parameters'
covariance directly. optax's first-order optimizers are built for stochastic training
of large models; they would need a learning rate, a step count and a separate
covariance computation to do less well here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import optimize

from flaxinit import magnitude
from mc._results import NormalizedResult, StandardResult

#: Sizes the standard fit uses from exact g: n = 4 .. 10^6 (n <= 3 are tabulated, not fitted).
STANDARD_FIT_GRID = np.unique(np.round(np.geomspace(4, 1e6, 300)).astype(np.int64))
#: Sizes the standard errors are reported on: every n in 1..1000, then log-spaced to 10^6.
STANDARD_EVAL_GRID = np.unique(np.concatenate([np.arange(1, 1001), np.round(np.geomspace(1000, 1e6, 200))])).astype(
    np.int64
)
_NORMALIZED_SIDES = np.array([1, 2, 3, 5, 10, 25, 50, 100, 300, 1000, 3000, 10000])
#: (n, m) pairs for the normalized fit and its report: every pair of the sides above.
NORMALIZED_GRID = np.array([(n, m) for n in _NORMALIZED_SIDES for m in _NORMALIZED_SIDES], dtype=np.int64)


@dataclasses.dataclass(frozen=True)
class FitResult:
    """Refitted constants with their uncertainty and the error they leave.

    Attributes:
      form: ``"standard"`` or ``"normalized"``.
      source: ``"exact"`` (targets from exact g) or ``"monte_carlo"``.
      constants: the fitted constants, ready for ``constants=`` of the Letkeman factories.
      se: their standard errors. For Monte Carlo fits, from the targets' standard
        errors, inflated by ``sqrt(chi2_dof)`` when that exceeds 1 (the form misfits);
        for exact fits, from the residual scatter (the form's misfit).
      points: number of targets fitted.
      chi2_dof: reduced chi-square (Monte Carlo fits; for exact fits the mean squared
        relative residual).
      grid: the sizes the errors below are evaluated on, in words.
      worst_rel_error: the largest |relative magnitude error| of the fitted constants
        over ``grid`` (signed).
      worst_at: the size (or shape) where it occurs.
      published_worst_rel_error: the same for the article's published constants.
      published_worst_at: where that occurs.
    """

    form: str
    source: str
    constants: dict[str, float]
    se: dict[str, float]
    points: int
    chi2_dof: float
    grid: str
    worst_rel_error: float
    worst_at: Any
    published_worst_rel_error: float
    published_worst_at: Any

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _solve(residuals, x0: Sequence[float], names: Sequence[str], exact: bool):
    sol = optimize.least_squares(residuals, np.asarray(x0, dtype=np.float64), method="lm", xtol=1e-15, ftol=1e-15)
    if not sol.success:
        raise RuntimeError(f"the fit did not converge: {sol.message}")
    dof = max(1, sol.fun.size - len(x0))
    chi2_dof = float(sol.fun @ sol.fun) / dof
    cov = np.linalg.pinv(sol.jac.T @ sol.jac)
    # exact targets: the scatter is the form's misfit. Monte Carlo targets: inflate by the
    # reduced chi-square when the form cannot fit within the targets' errors (Birge ratio).
    if exact or chi2_dof > 1:
        cov = cov * chi2_dof
    constants = {k: float(v) for k, v in zip(names, sol.x, strict=True)}
    se = {k: float(math.sqrt(max(cov[i, i], 0.0))) for i, k in enumerate(names)}
    return constants, se, sol.fun.size, chi2_dof


def _standard_error(n: np.ndarray, a: float) -> np.ndarray:
    """Relative magnitude error of the article's standard bound with constant ``a``."""
    y = magnitude.expected_abs_sum(n) / np.sqrt(n)
    return y / magnitude.article_standard(n, a=a) - 1.0


def _worst(errors: np.ndarray, where: np.ndarray) -> tuple[float, Any]:
    i = int(np.argmax(np.abs(errors)))
    at = where[i]
    return float(errors[i]), (tuple(int(v) for v in at) if np.ndim(at) else int(at))


def fit_standard(results: Sequence[StandardResult] | None = None) -> FitResult:
    """Refits ``a`` of ``M(n) = (0.5 - a) + a / (2n - 1)`` (the standard stand-in).

    Args:
      results: standard-test results of any uniform scheme with all-ones inputs (sizes
        ``n >= 4`` are used; 1..3 are tabulated by the article). ``None`` fits exact g
        on ``STANDARD_FIT_GRID`` (n = 4 .. 10^6, 300 log-spaced sizes).

    Returns:
      A :class:`FitResult`; errors are reported on ``STANDARD_EVAL_GRID``.

    Examples:
      >>> import mc
      >>> fit = mc.fit_standard()
      >>> round(fit.constants["a"], 4), fit.published_worst_at, round(fit.published_worst_rel_error, 5)
      (0.0393, 1000000, -0.00074)
    """
    if results is None:
        n = STANDARD_FIT_GRID
        y = magnitude.expected_abs_sum(n) / np.sqrt(n)
        sigma = y  # relative residuals
        source = "exact"
    else:
        rows = [r for r in results if r.size >= 4]
        _check_rows(rows, "fit_standard", "sizes >= 4 with all-ones inputs", lambda r: r.inputs == "ones")
        n = np.array([r.size for r in rows], dtype=np.int64)
        scale = np.array([r.bound for r in rows]) * np.sqrt(n)
        y = np.array([r.mean for r in rows]) / scale
        sigma = np.array([r.se for r in rows]) / scale
        source = "monte_carlo"

    def residuals(x):
        # y/M - 1, the magnitude error, in units of its standard error
        return (y / magnitude.article_standard(n, a=x[0]) - 1.0) * y / sigma

    constants, se, points, chi2_dof = _solve(
        residuals, [magnitude.ARTICLE_STANDARD_CONSTANTS["a"]], ["a"], source == "exact"
    )
    grid = STANDARD_EVAL_GRID
    worst, at = _worst(_standard_error(grid, constants["a"]), grid)
    pub, pub_at = _worst(_standard_error(grid, magnitude.ARTICLE_STANDARD_CONSTANTS["a"]), grid)
    return FitResult(
        "standard",
        source,
        constants,
        se,
        points,
        chi2_dof,
        "n = 1..1000, then 200 log-spaced to 10^6",
        worst,
        at,
        pub,
        pub_at,
    )


def _normalized_target(n: np.ndarray, m: np.ndarray) -> np.ndarray:
    g = magnitude.expected_abs_sum
    return np.sqrt(6.0 / (n + m)) * (m * g(n) + n * g(m)) / (n + m)


def _normalized_error(n, m, a, b) -> np.ndarray:
    return _normalized_target(n, m) / magnitude.article_normalized(n, m, a=a, b=b) - 1.0


def fit_normalized(results: Sequence[NormalizedResult] | None = None) -> FitResult:
    """Refits ``(a, b)`` of the normalized stand-in ``A(n, m)``.

    Args:
      results: normalized-test results of any uniform scheme (the ``avg`` field is
        used, so either convention works). ``None`` fits exact g on ``NORMALIZED_GRID``
        (every pair of 1, 2, 3, 5, 10, 25, 50, 100, 300, 1000, 3000, 10000).

    Returns:
      A :class:`FitResult`; errors are reported on ``NORMALIZED_GRID``.

    Examples:
      >>> import mc
      >>> fit = mc.fit_normalized()
      >>> fit.published_worst_at, round(fit.published_worst_rel_error, 3)  # the form is crude
      ((50, 300), 0.122)
    """
    if results is None:
        n, m = NORMALIZED_GRID[:, 0], NORMALIZED_GRID[:, 1]
        target = _normalized_target(n, m)
        sigma = target
        source = "exact"
    else:
        rows = list(results)
        _check_rows(rows, "fit_normalized", "shapes", lambda r: True)
        n = np.array([r.n_in for r in rows], dtype=np.int64)
        m = np.array([r.n_out for r in rows], dtype=np.int64)
        scale = np.sqrt(6.0 / (n + m)) / np.array([r.bound for r in rows])
        target = np.array([r.avg for r in rows]) * scale
        sigma = np.array([r.avg_se for r in rows]) * scale
        source = "monte_carlo"

    def residuals(x):
        return (target / magnitude.article_normalized(n, m, a=x[0], b=x[1]) - 1.0) * target / sigma

    published = magnitude.ARTICLE_NORMALIZED_CONSTANTS
    constants, se, points, chi2_dof = _solve(residuals, [published["a"], published["b"]], ["a", "b"], source == "exact")
    gn, gm = NORMALIZED_GRID[:, 0], NORMALIZED_GRID[:, 1]
    worst, at = _worst(_normalized_error(gn, gm, constants["a"], constants["b"]), NORMALIZED_GRID)
    pub, pub_at = _worst(_normalized_error(gn, gm, published["a"], published["b"]), NORMALIZED_GRID)
    grid = "every (n, m) with n, m in 1, 2, 3, 5, 10, 25, 50, 100, 300, 1000, 3000, 10000"
    return FitResult("normalized", source, constants, se, points, chi2_dof, grid, worst, at, pub, pub_at)


def _check_rows(rows, fn: str, what: str, ok) -> None:
    if not rows:
        raise ValueError(f"{fn} needs at least one result ({what})")
    for r in rows:
        if r.bound is None:
            raise ValueError(f"{fn} needs results of a uniform scheme (with a bound), got scheme {r.scheme!r}")
        if not ok(r):
            raise ValueError(f"{fn} needs {what}, got {r!r}")
        se = r.se if isinstance(r, StandardResult) else r.avg_se
        if not (se > 0 and math.isfinite(se)):
            raise ValueError(f"{fn} needs results with a positive, finite standard error, got {r!r}")
