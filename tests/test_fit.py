"""Refits of the article's constants: minimax beats the published constants; Monte Carlo misfits are named.

Exact-g fits are deterministic float64 computations: their assertions are inequalities
between worst errors on the stated grid, and the minimax optimality conditions (for one
constant, the largest positive and negative errors balance; any other constant does worse).
The Monte Carlo fits use synthetic results whose errors are known: exact targets plus
noise of the stated standard error from a fixed generator.
"""

import math

import numpy as np
import pytest

import mc
from flaxinit import magnitude
from mc import _fit
from mc._results import NormalizedResult, StandardResult


@pytest.mark.parametrize("fit", [mc.fit_standard, mc.fit_normalized], ids=["standard", "normalized"])
def test_minimax_from_exact_g_is_never_worse_than_the_published_constants(fit):
    minimax, least_squares = fit(), fit(objective="least_squares")
    assert (minimax.objective, minimax.source, least_squares.objective) == ("minimax", "exact", "least_squares")
    assert abs(minimax.worst_rel_error) < abs(minimax.published_worst_rel_error)
    assert abs(minimax.worst_rel_error) <= abs(least_squares.worst_rel_error)
    assert minimax.se == {k: 0.0 for k in minimax.constants}  # exact targets: no sampling error
    assert minimax.chi2_dof is None and minimax.fits_data is None


def test_standard_minimax_balances_the_extreme_errors():
    fit = mc.fit_standard()
    a = fit.constants["a"]
    errors = _fit._standard_error(_fit.STANDARD_GRID, a)
    assert errors.max() == pytest.approx(-errors.min(), rel=1e-9)  # equioscillation: the optimum of one constant
    for nudge in (1e-6, -1e-6):  # either way, the worst error grows
        assert np.abs(_fit._standard_error(_fit.STANDARD_GRID, a + nudge)).max() > abs(fit.worst_rel_error)


def test_normalized_minimax_is_a_local_optimum():
    fit = mc.fit_normalized()
    a, b = fit.constants["a"], fit.constants["b"]
    grid = _fit.NORMALIZED_GRID
    worst = np.abs(_fit._normalized_error(grid[:, 0], grid[:, 1], a, b)).max()
    assert worst == pytest.approx(abs(fit.worst_rel_error), rel=1e-12)
    for da, db in [(1e-4, 0), (-1e-4, 0), (0, 1e-4), (0, -1e-4), (1e-4, 1e-4), (-1e-4, -1e-4)]:
        assert np.abs(_fit._normalized_error(grid[:, 0], grid[:, 1], a + da, b + db)).max() >= worst


def _standard_rows(relative_noise: np.ndarray, se: float) -> list[StandardResult]:
    """Standard-test results of exact Letkeman: mean 1 + noise, each with standard error ``se``."""
    rows = []
    for n, noise in zip((5, 25, 100, 300, 1000, 3000), relative_noise, strict=True):
        bound = 1 / magnitude.expected_abs_sum(n)
        mean = 1.0 + noise
        rows.append(StandardResult(n, "letkeman_standard", "ones", 10**6, mean, se, (mean, mean), 1.0, bound))
    return rows


def test_monte_carlo_fit_weights_by_standard_errors_and_accepts_a_good_fit():
    noise = 1e-3 * np.random.default_rng(0).standard_normal(6)
    fit = mc.fit_standard(_standard_rows(noise, 1e-3))
    assert fit.source == "monte_carlo" and fit.points == 6 and fit.fits_data
    # targets are exact g plus noise of SE 1e-3: the constant lands within a few bootstrap SEs of the exact fit
    assert 0 < fit.se["a"] < 0.01
    assert abs(fit.constants["a"] - mc.fit_standard().constants["a"]) < 5 * fit.se["a"]
    assert "does not fit" not in fit.summary()


def test_monte_carlo_fit_says_when_the_form_cannot_fit():
    noise = np.zeros(6)
    noise[2] = 0.05  # 50 standard errors off at n = 100: no value of a explains it
    fit = mc.fit_standard(_standard_rows(noise, 1e-3))
    assert fit.fits_data is False and fit.chi2_dof > 100
    summary = fit.summary()
    assert summary.count("\n") == 0 and "does not fit these Monte Carlo results" in summary


def test_normalized_monte_carlo_fit_uses_the_average():
    rows = []
    for n, m in [(5, 5), (15, 25), (100, 50), (10, 100), (1000, 10)]:
        bound = magnitude.article_normalized(n, m)
        exact = magnitude.expected_normalized(n, m, math.sqrt(6 / (n + m)) / bound).avg
        fields = dict(forward=exact, backward=exact, avg=exact, forward_se=1e-3, backward_se=1e-3, avg_se=1e-3)
        fields.update(forward_ci95=(0, 0), backward_ci95=(0, 0), avg_ci95=(0, 0))
        rows.append(NormalizedResult(n, m, "letkeman_normalized", "article", 5000, **fields,
                                     expected_forward=exact, expected_backward=exact, expected_avg=exact,
                                     bound=math.sqrt(6 / (n + m)) / bound))  # fmt: skip
    fit = mc.fit_normalized(rows)
    assert fit.source == "monte_carlo" and fit.points == 5 and set(fit.constants) == {"a", "b"}
    assert fit.fits_data is False  # the form misses exact g by percents, 10+ times these 1e-3 errors


@pytest.mark.parametrize("fit", [mc.fit_standard, mc.fit_normalized])
def test_bad_objective(fit):
    with pytest.raises(ValueError, match="objective must be one of 'minimax', 'least_squares'"):
        fit(objective="l1")
