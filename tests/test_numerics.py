"""Stable primitives: checked against math.fsum, closed cases and extreme inputs."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rws_ref.numerics import (
    check_log_weights,
    log1m_sigmoid,
    log_mean_exp,
    log_sigmoid,
    log_softmax,
    logsumexp,
    sigmoid,
    softmax,
)


def reference_logsumexp(values):
    """Python's math.fsum on shifted exponentials: an independent route."""
    top = max(values)
    return top + math.log(math.fsum(math.exp(v - top) for v in values))


@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 4)),
                  elements=st.floats(-1e5, 1e5)))
def test_logsumexp_matches_fsum_reference_for_any_spread(a):
    got = logsumexp(a, axis=0)
    want = [reference_logsumexp(list(a[:, j])) for j in range(a.shape[1])]
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-12)


def test_logsumexp_over_huge_spread_is_finite_and_exact():
    a = np.array([[1e5], [-1e5], [1e5 - np.log(3.0)]])
    # exp(1e5)·(1 + 1/3) + exp(−1e5): the tiny weight vanishes below rounding
    np.testing.assert_allclose(logsumexp(a), [1e5 + np.log(4.0 / 3.0)], rtol=1e-15)
    np.testing.assert_allclose(log_mean_exp(a), [1e5 + np.log(4.0 / 9.0)], rtol=1e-15)
    w = softmax(a)
    np.testing.assert_allclose(w[:, 0], [0.75, 0.0, 0.25], atol=1e-15)


def test_minus_inf_entries_get_weight_zero():
    a = np.array([[0.0, -np.inf], [-np.inf, 2.0], [np.log(3.0), 2.0]])
    np.testing.assert_allclose(logsumexp(a), [np.log(4.0), 2.0 + np.log(2.0)], rtol=1e-15)
    np.testing.assert_allclose(softmax(a), [[0.25, 0.0], [0.0, 0.5], [0.75, 0.5]], atol=1e-16)
    assert np.all(np.isfinite(log_softmax(a)[[0, 2], 0]))


def test_all_minus_inf_slice_gives_log_zero_without_warning():
    with np.errstate(all="raise"):
        assert logsumexp(np.array([[-np.inf], [-np.inf]]))[0] == -np.inf


@given(st.floats(-1e4, 1e4))
def test_log_sigmoid_family_exact_in_both_tails(x):
    # log σ(x) − log(1 − σ(x)) = x exactly, and σ(x) + σ(−x) = 1.
    assert np.isfinite(log_sigmoid(x)) and np.isfinite(log1m_sigmoid(x))
    np.testing.assert_allclose(log_sigmoid(x) - log1m_sigmoid(x), x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sigmoid(x) + sigmoid(-x), 1.0, rtol=1e-15)


def test_the_log_sigmoid_familys_autograd_derivatives_are_the_sigmoid_also_at_zero():
    import autograd
    for x in (-30.0, -2.5, 0.0, 1e-300, 3.0, 40.0):
        assert autograd.grad(log_sigmoid)(x) == pytest.approx(1.0 / (1.0 + math.exp(x)), rel=1e-12)
        assert autograd.grad(log1m_sigmoid)(x) == pytest.approx(-1.0 / (1.0 + math.exp(-x)), rel=1e-12)


def test_log_sigmoid_tails_against_series():
    # log σ(−40) = −40 − log1p(e^−40); log σ(40) = −log1p(e^−40) ≈ −e^−40
    np.testing.assert_allclose(log_sigmoid(-40.0), -40.0 - math.log1p(math.exp(-40)), rtol=1e-15)
    np.testing.assert_allclose(log_sigmoid(40.0), -math.log1p(math.exp(-40)), rtol=1e-15)
    assert log_sigmoid(-1e5) == -1e5


@pytest.mark.parametrize("bad, kind, words", [
    (np.zeros(3), ValueError, "shape (K, N)"),
    (np.zeros((0, 2)), ValueError, "K >= 1"),
    (np.array([[0.0, np.nan]]), ValueError, "NaN"),
    (np.array([[0.0, np.inf]]), ValueError, "+inf"),
    (np.array([[0.0, -np.inf], [1.0, -np.inf]]), ValueError, "datapoint 1"),
    (np.array([["a"]]), TypeError, "float"),
])
def test_check_log_weights_rejects_bad_input_by_name(bad, kind, words):
    with pytest.raises(kind, match="log_w") as info:
        check_log_weights(bad)
    assert words in str(info.value)
