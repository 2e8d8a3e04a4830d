"""flaxinit.magnitude against exact rational arithmetic and a high-precision integral.

References are computed here, independently of the package's own evaluation paths:
exact rationals by the n-th finite difference of |x|'s n-fold antiderivative (and, for
tiny n, by convolving the uniform density piecewise), and mpmath quadrature of the
characteristic-function integral ``g(n) = (2/pi) int_0^inf (1 - (sin t/t)^n) / t^2 dt``.
"""

from fractions import Fraction
from math import comb, factorial

import mpmath
import numpy as np
import pytest

from flaxinit import magnitude
from flaxinit.magnitude import (
    article_normalized,
    article_standard,
    expected_abs_sum,
    expected_normalized,
    expected_standard,
)


def g_rational(n: int) -> Fraction:
    """E|S_n| = 2 E|X - n/2|, X Irwin-Hall(n): a forward n-th difference of sign(t) t^(n+1)/(n+1)!."""
    half = Fraction(n, 2)
    total = Fraction(0)
    for k in range(n + 1):
        t = k - half
        total += (-1) ** (n - k) * comb(n, k) * (1 if t > 0 else -1) * t ** (n + 1)
    return 2 * total / factorial(n + 1)


def g_by_convolution(n: int) -> Fraction:
    """E|S_n| from the piecewise-polynomial density of S_n, built by repeated convolution."""
    # density on unit intervals [j, j+1) of the Irwin-Hall variable X (support [0, n]),
    # each piece a polynomial in x as a list of Fraction coefficients.
    pieces = [[Fraction(1)]]  # X_1 ~ U(0, 1)
    for _ in range(n - 1):
        new = []
        for j in range(len(pieces) + 1):
            # f_new(x) = int_{x-1}^{x} f(y) dy on [j, j+1): contributions from pieces j-1 and j
            poly = [Fraction(0)] * (len(pieces[0]) + 1)

            def add_integral(piece, lo_shift, sign, poly=poly, j=j):
                # sign * int of piece from a to b, where (a, b) = (j, x) or (x - 1, j)
                anti = [Fraction(0)] + [c / (i + 1) for i, c in enumerate(piece)]
                # evaluate antiderivative at x (as polynomial) and at constant j
                const = sum(c * Fraction(j) ** i for i, c in enumerate(anti))
                if lo_shift == 0:  # int_j^x
                    for i, c in enumerate(anti):
                        poly[i] += sign * c
                    poly[0] -= sign * const
                else:  # int_{x-1}^j = A(j) - A(x - 1)
                    poly[0] += sign * const
                    for i, c in enumerate(anti):
                        for r in range(i + 1):  # (x - 1)^i binomial expansion
                            poly[r] -= sign * c * comb(i, r) * (-1) ** (i - r)

            if j < len(pieces):
                add_integral(pieces[j], 0, 1)
            if j >= 1:
                add_integral(pieces[j - 1], 1, 1)
            new.append(poly)
        pieces = new

    # E|2X - n| = sum_j int_j^{j+1} |2x - n| f_j(x) dx, splitting the piece that holds n/2
    def moment(poly, lo, hi):  # int_lo^hi (2x - n) poly(x) dx
        return sum(
            c * (2 * (hi ** (i + 2) - lo ** (i + 2)) / (i + 2) - n * (hi ** (i + 1) - lo ** (i + 1)) / (i + 1))
            for i, c in enumerate(poly)
        )

    half = Fraction(n, 2)
    total = Fraction(0)
    for j, poly in enumerate(pieces):
        lo, hi = Fraction(j), Fraction(j + 1)
        total -= moment(poly, lo, min(hi, max(lo, half)))
        total += moment(poly, max(lo, min(hi, half)), hi)
    return total


def g_mpmath(n: int) -> mpmath.mpf:
    """(2/pi) sqrt(n) int_0^inf (1 - sinc(s/sqrt n)^n) / s^2 ds, with the tail past S in closed form."""
    with mpmath.workdps(50):
        rn = mpmath.sqrt(n)

        def integrand(s):
            x = s / rn
            return (1 - (mpmath.sin(x) / x) ** n) / s**2

        cut = 40  # beyond s = 40 the Gaussian-like factor is below exp(-40^2/6) = 1e-116
        value = mpmath.quad(integrand, [mpmath.mpf(10) ** -30, 1, 2, 4, 8, 16, cut]) + 1 / mpmath.mpf(cut)
        return 2 / mpmath.pi * rn * value


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_two_exact_references_agree(n):
    assert g_rational(n) == g_by_convolution(n)


def test_known_small_values():
    assert g_rational(1) == Fraction(1, 2)
    assert g_rational(2) == Fraction(2, 3)
    assert g_rational(3) == Fraction(13, 16)
    assert (expected_abs_sum(1), expected_abs_sum(2), expected_abs_sum(3)) == (0.5, 2 / 3, 0.8125)


EXACT_NS = [1, 2, 3, 4, 5, 7, 10, 16, 25, 31, 32, 33, 34, 40, 50, 64, 100, 128, 300, 500, 999, 1000, 1500, 2000]


@pytest.mark.parametrize("n", EXACT_NS)
def test_matches_exact_rational(n):
    exact = g_rational(n)
    assert abs(Fraction(expected_abs_sum(n)) / exact - 1) <= Fraction(1, 10**12)


@pytest.mark.parametrize("n", [200, 2001, 10**4, 123_457, 10**6, 10**9, 10**12])
def test_matches_high_precision_integral(n):
    ref = g_mpmath(n)
    assert abs(mpmath.mpf(expected_abs_sum(n)) / ref - 1) <= 1e-12


def test_finite_up_to_1e15_and_asymptote():
    for n in (10**13, 10**14, 10**15):
        g = expected_abs_sum(n)
        assert np.isfinite(g)
        assert g / np.sqrt(2 * n / (3 * np.pi)) == pytest.approx(1.0, abs=1e-12)


def test_array_input_matches_scalar_calls():
    ns = np.array([[1, 2, 32], [33, 1000, 10**15]])
    out = expected_abs_sum(ns)
    assert out.shape == ns.shape
    np.testing.assert_array_equal(out, [[expected_abs_sum(int(n)) for n in row] for row in ns])


def test_strictly_increasing():
    ns = np.arange(1, 5000)
    assert np.all(np.diff(expected_abs_sum(ns)) > 0)


@pytest.mark.parametrize("bad", [0, -3, 2**53 + 1])
def test_rejects_out_of_range(bad):
    with pytest.raises(ValueError, match="n must be an integer"):
        expected_abs_sum(bad)


@pytest.mark.parametrize("bad", [2.5, "10", True, 1 + 2j])
def test_rejects_non_integers(bad):
    with pytest.raises(TypeError, match="n must be a positive integer"):
        expected_abs_sum(bad)


def test_article_standard_published_values():
    assert article_standard(1) == 0.5
    assert article_standard(2) == 0.471404520791
    assert article_standard(3) == 0.469097093716
    # the three tabulated values are g(n)/sqrt(n) to the 12 decimals printed (truncated)
    for n in (1, 2, 3):
        assert article_standard(n) == pytest.approx(expected_abs_sum(n) / np.sqrt(n), abs=1e-12)
    assert article_standard(4) == pytest.approx(0.461 + 0.039 / 7, rel=1e-15)
    assert article_standard(4, a=0.05) == pytest.approx(0.45 + 0.05 / 7, rel=1e-15)


def test_article_normalized_formula():
    n, m = 15, 25
    aa = 0.793 + 0.073 / np.sqrt(6 * 15 - 5)
    ab = 1.08 - 0.08 / np.sqrt(6 * 11 - 5)
    ac = 1 / np.sqrt(0.5 * 25 / 15 + 0.5)
    assert article_normalized(n, m) == pytest.approx(aa * ab * ac, rel=1e-15)
    assert article_normalized(m, n) == article_normalized(n, m)
    np.testing.assert_allclose(article_normalized(np.array([15, 25]), np.array([25, 15])), aa * ab * ac, rtol=1e-15)


@pytest.mark.parametrize("n_in,n_out", [(1, 1), (5, 5), (100, 1), (15, 25), (1, 10000)])
def test_expected_normalized_conventions(n_in, n_out):
    b = 0.37
    g = expected_abs_sum
    art = expected_normalized(n_in, n_out, b)
    per = expected_normalized(n_in, n_out, b, convention="per_node")
    assert art.forward == pytest.approx(n_in * b * g(n_out) / n_out, rel=1e-15)
    assert art.backward == pytest.approx(n_out * b * g(n_in) / n_in, rel=1e-15)
    assert per.forward == pytest.approx(b * g(n_in), rel=1e-15)
    assert per.backward == pytest.approx(b * g(n_out), rel=1e-15)
    assert art.avg == per.avg == pytest.approx(b * (n_in * g(n_out) + n_out * g(n_in)) / (n_in + n_out), rel=1e-15)
    with pytest.raises(ValueError, match="convention"):
        expected_normalized(n_in, n_out, b, convention="rows")


def test_expected_standard_is_bound_times_g():
    assert expected_standard(25, 0.2) == pytest.approx(0.2 * expected_abs_sum(25), rel=1e-15)


def test_series_coefficients_are_the_known_ones():
    # c_1 = 1/20 and c_2 = 11/1120 follow by hand from log(sin t/t) = -t^2/6 - t^4/180 - t^6/2835 - ...
    c = magnitude._series_coefficients()
    assert c[0] == 1 / 20
    assert c[1] == 11 / 1120
