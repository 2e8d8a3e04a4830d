"""Refit the article's stand-in constants, in its functional forms (SPEC sections 2-3).

Both fits work on the relative error of the *magnitude* a stand-in produces, which is
what the article tuned by hand: with the article's standard bound ``1/(sqrt(n) M(n))``
the all-ones magnitude is ``y(n) / M(n)`` with ``y(n) = g(n)/sqrt(n)``; with its
normalized bound ``sqrt(6/(n+m)) / A(n, m)`` the two-pass average is ``A*(n, m) / A(n, m)``
with ``A*(n, m) = sqrt(6/(n+m)) (m g(n) + n g(m)) / (n + m)``.

Targets come either from exact ``g`` on a stated grid, or from Monte Carlo results, where
each target carries the standard error of its estimate and the residuals are that
relative error divided by its standard error (z-units).

**Objective.** The constants exist to guarantee a magnitude error, so the default is
``objective="minimax"``: minimize the *largest* |residual| over the grid (Chebyshev).
Every residual is nondecreasing in each constant (raising ``a`` or ``b`` shrinks ``M``
or ``A``), so for one constant the optimum is the root of ``max r + min r``, found by
bracketing to machine precision; for the normalized form's two constants, ``b`` is solved
that way for each ``a`` and ``a`` by a scan and a bounded refinement. The published
constants are one of the candidates, so from exact ``g`` the refit's worst error on the
grid is never above theirs. ``objective="least_squares"`` (``scipy.optimize.least_squares``)
minimizes the sum of squared residuals instead; its worst error can be larger than the
published constants' (it trades the worst point for the average).

**Uncertainty.** Exact targets carry no sampling error: ``se`` is 0. From Monte Carlo,
least squares takes ``se`` from the Jacobian; minimax from a parametric bootstrap (the
targets redrawn from their normal errors, refitted, ``BOOTSTRAP_RESAMPLES`` times with a
fixed seed). Either way ``chi2_dof`` is the *least-squares* minimum of the reduced
chi-square, the test of whether the form can describe the data at all; ``fits_data``
is False when its p-value is below ``FIT_P_VALUE``, and the CLI then says in one line that
the form does not fit instead of printing constants as if they did.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import optimize, stats

from flaxinit import magnitude
from flaxinit.tooling import check_choice
from mc._results import AsDict, NormalizedResult, StandardResult

OBJECTIVES = ("minimax", "least_squares")
#: Sizes of the standard fit and its report: every n in 1..1000, then 200 log-spaced to 10^6.
#: (n <= 3 are tabulated by the article: the constant does not change them.)
STANDARD_GRID = np.unique(np.concatenate([np.arange(1, 1001), np.round(np.geomspace(1000, 1e6, 200))])).astype(np.int64)
_NORMALIZED_SIDES = np.array([1, 2, 3, 5, 10, 25, 50, 100, 300, 1000, 3000, 10000])
#: (n, m) pairs of the normalized fit and its report: every pair of the sides above.
NORMALIZED_GRID = np.array([(n, m) for n in _NORMALIZED_SIDES for m in _NORMALIZED_SIDES], dtype=np.int64)
STANDARD_GRID_TEXT = "n = 1..1000, then 200 log-spaced to 10^6"
NORMALIZED_GRID_TEXT = "every (n, m) with n, m in 1, 2, 3, 5, 10, 25, 50, 100, 300, 1000, 3000, 10000"
#: A Monte Carlo fit whose least-squares chi-square has a p-value below this does not fit.
FIT_P_VALUE = 1e-3
BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_SEED = 0

# Where the forms stay positive on every grid: M(n) > 0 needs a < 0.5, Aa > 0 needs a < 0.866,
# Ab > 0 needs b < 1. The brackets stop short of those poles.
_STANDARD_A_BRACKET = (-1.0, 0.499)
_NORMALIZED_A_BRACKET = (-0.5, 0.8)
_NORMALIZED_B_BRACKET = (-5.0, 0.99)
_NORMALIZED_A_SCAN = 131  # a grid step of 0.01 before the bounded refinement

Residuals = Callable[[np.ndarray], np.ndarray]  # constants -> residual per target


@dataclasses.dataclass(frozen=True)
class FitResult(AsDict):
    """Refitted constants with their uncertainty and the error they leave.

    Attributes:
      form: ``"standard"`` or ``"normalized"``.
      source: ``"exact"`` (targets from exact g) or ``"monte_carlo"``.
      objective: ``"minimax"`` (smallest worst residual) or ``"least_squares"``.
      constants: the fitted constants, ready for ``constants=`` of the Letkeman factories.
      se: their standard errors: 0 for exact targets; from Monte Carlo, from the Jacobian
        (least squares, inflated by ``sqrt(chi2_dof)`` when that exceeds 1) or a
        parametric bootstrap (minimax).
      points: number of targets fitted.
      chi2_dof: least-squares reduced chi-square of the Monte Carlo targets (None for exact).
      fits_data: whether the form describes the Monte Carlo targets within their errors
        (chi-square p-value >= ``FIT_P_VALUE``); None for exact targets.
      grid: the sizes the errors below are evaluated on, in words.
      worst_rel_error: the largest |relative magnitude error| of the fitted constants
        over ``grid``, from exact g (signed).
      worst_at: the size (or shape) where it occurs.
      published_worst_rel_error: the same for the article's published constants.
      published_worst_at: where that occurs.
    """

    form: str
    source: str
    objective: str
    constants: dict[str, float]
    se: dict[str, float]
    points: int
    chi2_dof: float | None
    fits_data: bool | None
    grid: str
    worst_rel_error: float
    worst_at: Any
    published_worst_rel_error: float
    published_worst_at: Any

    def summary(self) -> str:
        """What the fit found, in a few lines (the form's misfit in one plain line)."""
        head = f"refit {self.form} from {self.source} ({self.objective}, {self.points} points)"
        if self.fits_data is False:
            return (
                f"{head}: the {self.form} form does not fit these Monte Carlo results "
                f"(chi2/dof {self.chi2_dof:.3g}, p < {FIT_P_VALUE:g}); no constants are worth reporting"
            )
        consts = ", ".join(f"{k} = {v:.6f} ± {self.se[k]:.6f}" for k, v in self.constants.items())
        fit = f", chi2/dof {self.chi2_dof:.3g}" if self.chi2_dof is not None else ""
        return (
            f"{head}{fit}: {consts}\n"
            f"  worst relative magnitude error on {self.grid}:\n"
            f"    refit     {self.worst_rel_error:+.3e} at {self.worst_at}\n"
            f"    published {self.published_worst_rel_error:+.3e} at {self.published_worst_at}"
        )


# --- solvers -------------------------------------------------------------------------------


def _least_squares(residuals: Residuals, x0: Sequence[float]) -> tuple[np.ndarray, np.ndarray, float]:
    """(constants, covariance, chi2) of the least-squares fit."""
    sol = optimize.least_squares(residuals, np.asarray(x0, dtype=np.float64), method="lm", xtol=1e-15, ftol=1e-15)
    if not sol.success:
        raise RuntimeError(f"the fit did not converge: {sol.message}")
    return sol.x, np.linalg.pinv(sol.jac.T @ sol.jac), float(sol.fun @ sol.fun)


def _balance(residuals: Callable[[float], np.ndarray], bracket: tuple[float, float]) -> float:
    """The ``x`` in ``bracket`` minimizing ``max |residuals(x)|``, for residuals nondecreasing in ``x``.

    Then ``max r`` rises and ``-min r`` falls with ``x``, so the worst |residual| is smallest
    where they meet: the root of the nondecreasing ``max r + min r``. Without a sign change
    in ``bracket``, the better end.
    """

    def tilt(x: float) -> float:
        r = residuals(x)
        return float(r.max() + r.min())

    lo, hi = bracket
    if tilt(lo) >= 0 or tilt(hi) <= 0:
        return min(bracket, key=lambda x: float(np.max(np.abs(residuals(x)))))
    return optimize.brentq(tilt, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)


def _worst_residual(residuals: Residuals, x: np.ndarray) -> float:
    return float(np.max(np.abs(residuals(x))))


def _minimax_standard(residuals: Residuals, start: np.ndarray, local: bool = False) -> np.ndarray:
    a = _balance(lambda a: residuals(np.array([a])), _STANDARD_A_BRACKET)
    return min([np.array([a]), start], key=lambda x: _worst_residual(residuals, x))


def _minimax_normalized(residuals: Residuals, start: np.ndarray, local: bool = False) -> np.ndarray:
    """``b`` balanced for each ``a``; ``a`` by a scan (``local``: near ``start``) and a bounded refinement."""

    def with_best_b(a: float) -> np.ndarray:
        return np.array([a, _balance(lambda b: residuals(np.array([a, b])), _NORMALIZED_B_BRACKET)])

    def worst(a: float) -> float:
        return _worst_residual(residuals, with_best_b(a))

    lo, hi = _NORMALIZED_A_BRACKET
    step = (hi - lo) / (_NORMALIZED_A_SCAN - 1)
    if local:
        centre = float(start[0])
    else:
        scan = np.linspace(lo, hi, _NORMALIZED_A_SCAN)
        centre = float(scan[int(np.argmin([worst(a) for a in scan]))])
    bounds = (max(lo, centre - step), min(hi, centre + step))
    refined = optimize.minimize_scalar(worst, bounds=bounds, method="bounded", options={"xatol": 1e-12})
    candidates = [with_best_b(float(refined.x)), with_best_b(float(start[0])), start]
    return min(candidates, key=lambda x: _worst_residual(residuals, x))


@dataclasses.dataclass(frozen=True)
class _Problem:
    """One fit: the residuals of constants for given targets, and the targets' errors."""

    names: tuple[str, ...]
    published: np.ndarray
    residuals_for: Callable[[np.ndarray], Residuals]  # targets -> (constants -> residuals)
    targets: np.ndarray
    sigma: np.ndarray | None  # None: exact targets
    minimax: Callable[..., np.ndarray]  # (residuals, start, local) -> constants


def _solve(problem: _Problem, objective: str) -> tuple[dict[str, float], dict[str, float], float | None, bool | None]:
    """(constants, se, chi2_dof, fits_data) of ``problem`` under ``objective``."""
    residuals = problem.residuals_for(problem.targets)
    ls_x, ls_cov, chi2 = _least_squares(residuals, problem.published)
    exact = problem.sigma is None
    dof = max(1, problem.targets.size - len(problem.names))
    chi2_dof = None if exact else chi2 / dof
    fits_data = None if exact else bool(stats.chi2.sf(chi2, dof) >= FIT_P_VALUE)
    if objective == "least_squares":
        x = ls_x
        # Monte Carlo: inflate by the reduced chi-square when the form misfits (Birge ratio)
        se = np.zeros(len(x)) if exact else np.sqrt(np.maximum(np.diag(ls_cov), 0.0) * max(1.0, chi2_dof))
    else:
        x = problem.minimax(residuals, problem.published)
        se = np.zeros(len(x)) if exact else _bootstrap_se(problem, x)
    return _named(problem.names, x), _named(problem.names, se), chi2_dof, fits_data


def _bootstrap_se(problem: _Problem, x: np.ndarray) -> np.ndarray:
    """Standard deviation of the minimax constants over targets redrawn from N(target, sigma)."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    refits = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        targets = problem.targets + problem.sigma * rng.standard_normal(problem.targets.shape)
        refits.append(problem.minimax(problem.residuals_for(targets), x, local=True))
    return np.std(np.asarray(refits), axis=0, ddof=1)


def _named(names: Sequence[str], values: np.ndarray) -> dict[str, float]:
    return {k: float(v) for k, v in zip(names, values, strict=True)}


def _result(form, source, objective, points, solved, grid, grid_text, errors) -> FitResult:
    """The :class:`FitResult` of ``solved`` (``_solve``'s tuple), with the worst errors on ``grid``
    of the fitted and the published constants (``errors(**constants)``, from exact g)."""
    constants, se, chi2_dof, fits_data = solved
    published = magnitude.ARTICLE_STANDARD_CONSTANTS if form == "standard" else magnitude.ARTICLE_NORMALIZED_CONSTANTS
    worst, at = _worst(errors(**constants), grid)
    pub, pub_at = _worst(errors(**published), grid)
    fit = (constants, se, points, chi2_dof, fits_data)
    return FitResult(form, source, objective, *fit, grid_text, worst, at, pub, pub_at)


def _worst(errors: np.ndarray, where: np.ndarray) -> tuple[float, Any]:
    i = int(np.argmax(np.abs(errors)))
    at = where[i]
    return float(errors[i]), (tuple(int(v) for v in at) if np.ndim(at) else int(at))


# --- the standard form -------------------------------------------------------------------------


def _standard_error(n: np.ndarray, a: float) -> np.ndarray:
    """Relative magnitude error of the article's standard bound with constant ``a``, from exact g."""
    y = magnitude.expected_abs_sum(n) / np.sqrt(n)
    return y / magnitude.article_standard(n, a=a) - 1.0


def fit_standard(results: Sequence[StandardResult] | None = None, *, objective: str = "minimax") -> FitResult:
    """Refits ``a`` of ``M(n) = (0.5 - a) + a / (2n - 1)`` (the standard stand-in).

    Args:
      results: standard-test results of any uniform scheme with all-ones inputs (sizes
        ``n >= 4`` are used; 1..3 are tabulated by the article). ``None`` fits exact g on
        ``STANDARD_GRID``.
      objective: ``"minimax"`` (the smallest worst error; default) or ``"least_squares"``.

    Returns:
      A :class:`FitResult`; errors are reported on ``STANDARD_GRID`` from exact g.

    Examples:
      >>> import mc
      >>> fit = mc.fit_standard()
      >>> fit.published_worst_at, f"{fit.published_worst_rel_error:.2e}"
      (1000000, '-7.40e-04')
      >>> abs(fit.worst_rel_error) <= abs(fit.published_worst_rel_error)
      True
    """
    check_choice(objective, "objective", OBJECTIVES)
    if results is None:
        n = STANDARD_GRID[STANDARD_GRID >= 4]
        y, sigma, source = magnitude.expected_abs_sum(n) / np.sqrt(n), None, "exact"
    else:
        rows = [r for r in results if r.size >= 4]
        _check_rows(rows, "fit_standard", "sizes >= 4 with all-ones inputs", lambda r: r.inputs == "ones")
        n = np.array([r.size for r in rows], dtype=np.int64)
        scale = np.array([r.bound for r in rows]) * np.sqrt(n)
        y = np.array([r.mean for r in rows]) / scale
        sigma, source = np.array([r.se for r in rows]) / scale, "monte_carlo"

    def residuals_for(targets: np.ndarray) -> Residuals:
        # the magnitude error targets/M - 1; from Monte Carlo in units of its standard error
        weight = 1.0 if sigma is None else targets / sigma
        return lambda x: (targets / magnitude.article_standard(n, a=x[0]) - 1.0) * weight

    published = magnitude.ARTICLE_STANDARD_CONSTANTS["a"]
    problem = _Problem(("a",), np.array([published]), residuals_for, y, sigma, _minimax_standard)
    errors = functools.partial(_standard_error, STANDARD_GRID)
    solved = _solve(problem, objective)
    return _result("standard", source, objective, int(n.size), solved, STANDARD_GRID, STANDARD_GRID_TEXT, errors)


# --- the normalized form -----------------------------------------------------------------------


def _normalized_target(n: np.ndarray, m: np.ndarray) -> np.ndarray:
    g = magnitude.expected_abs_sum
    return np.sqrt(6.0 / (n + m)) * (m * g(n) + n * g(m)) / (n + m)


def _normalized_error(n, m, a, b) -> np.ndarray:
    return _normalized_target(n, m) / magnitude.article_normalized(n, m, a=a, b=b) - 1.0


def fit_normalized(results: Sequence[NormalizedResult] | None = None, *, objective: str = "minimax") -> FitResult:
    """Refits ``(a, b)`` of the normalized stand-in ``A(n, m)``.

    Args:
      results: normalized-test results of any uniform scheme (the ``avg`` field is
        used, so either convention works). ``None`` fits exact g on ``NORMALIZED_GRID``.
      objective: ``"minimax"`` (the smallest worst error; default) or ``"least_squares"``.

    Returns:
      A :class:`FitResult`; errors are reported on ``NORMALIZED_GRID`` from exact g.

    Examples:
      >>> import mc
      >>> fit = mc.fit_normalized()
      >>> fit.published_worst_at, f"{fit.published_worst_rel_error:.3f}"  # the form is crude
      ((50, 300), '0.122')
      >>> abs(fit.worst_rel_error) <= abs(fit.published_worst_rel_error)
      True
    """
    check_choice(objective, "objective", OBJECTIVES)
    if results is None:
        n, m = NORMALIZED_GRID[:, 0], NORMALIZED_GRID[:, 1]
        target, sigma, source = _normalized_target(n, m), None, "exact"
    else:
        rows = list(results)
        _check_rows(rows, "fit_normalized", "shapes", lambda r: True)
        n = np.array([r.n_in for r in rows], dtype=np.int64)
        m = np.array([r.n_out for r in rows], dtype=np.int64)
        scale = np.sqrt(6.0 / (n + m)) / np.array([r.bound for r in rows])
        target = np.array([r.avg for r in rows]) * scale
        sigma, source = np.array([r.avg_se for r in rows]) * scale, "monte_carlo"

    def residuals_for(targets: np.ndarray) -> Residuals:
        weight = 1.0 if sigma is None else targets / sigma
        return lambda x: (targets / magnitude.article_normalized(n, m, a=x[0], b=x[1]) - 1.0) * weight

    published = magnitude.ARTICLE_NORMALIZED_CONSTANTS
    start = np.array([published["a"], published["b"]])
    problem = _Problem(("a", "b"), start, residuals_for, target, sigma, _minimax_normalized)
    errors = functools.partial(_normalized_error, NORMALIZED_GRID[:, 0], NORMALIZED_GRID[:, 1])
    solved = _solve(problem, objective)
    return _result("normalized", source, objective, int(n.size), solved, NORMALIZED_GRID, NORMALIZED_GRID_TEXT, errors)


def _check_rows(rows, fn: str, what: str, ok) -> None:
    if not rows:
        raise ValueError(f"{fn} needs at least one result ({what})")
    for r in rows:
        if r.bound is None:
            raise ValueError(f"{fn} needs results of a uniform scheme (with a bound), got scheme {r.scheme!r}")
        if not ok(r):
            raise ValueError(f"{fn} needs {what}, got {r!r}")
        se = r.se if isinstance(r, StandardResult) else r.avg_se
        if se is None or not (se > 0 and math.isfinite(se)):  # None: strict JSON's NaN
            raise ValueError(f"{fn} needs results with a positive, finite standard error, got {r!r}")
