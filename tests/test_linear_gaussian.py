"""The linear-Gaussian model and guide: densities, manual gradients, closed forms.

Oracles: scipy.stats densities, the joint Gaussian conditioned by its Schur
complement, the general full-covariance Gaussian KL, autograd, and
five-point central differences of the closed-form values.
"""
import numpy as np
import pytest
from hypothesis import given
from scipy import stats

from rws_ref import autodiff
from rws_ref.models import linear_gaussian as lg

from _util import assert_tree_close, central_difference, linear_gaussian_problem, linear_gaussian_settings, mc_rng

RTOL = 1e-9


def make(seed=0, dz=3, dx=4, n=5):
    return linear_gaussian_problem(seed, dz, dx, n, log_s_scale=0.3)


def gaussian_kl(m0, S0, m1, S1):
    """KL(N(m0, S0) ‖ N(m1, S1)) with full matrices: the textbook formula."""
    S1_inv = np.linalg.inv(S1)
    d = m1 - m0
    return 0.5 * (np.trace(S1_inv @ S0) + d @ S1_inv @ d - len(m0)
                  + np.linalg.slogdet(S1)[1] - np.linalg.slogdet(S0)[1])


# -- densities ---------------------------------------------------------------------


def test_log_joint_and_log_prob_match_scipy():
    model, guide, theta, phi, x, rng = make()
    z = guide.sample(phi, x, 3, rng)
    sigma, s = np.exp(theta["log_sigma"]), np.exp(phi["log_s"])
    for k in range(3):
        for n in range(x.shape[0]):
            want_p = (stats.multivariate_normal(theta["mu"], np.eye(3)).logpdf(z[k, n])
                      + stats.norm(theta["W"] @ z[k, n] + theta["b"], sigma).logpdf(x[n]).sum())
            want_q = stats.norm(phi["A"] @ x[n] + phi["c"], s).logpdf(z[k, n]).sum()
            assert model.log_joint(theta, z, x)[k, n] == pytest.approx(want_p, rel=1e-13)
            assert guide.log_prob(phi, z, x)[k, n] == pytest.approx(want_q, rel=1e-13)


@pytest.mark.statistical
def test_guide_samples_have_the_guide_moments():
    # 40,000 draws per coordinate; |mean error| < 6 SE fails with probability
    # about 2e-9 per coordinate (normal tail), 6 coordinates: < 2e-8.
    model, guide, theta, phi, x, rng = make(n=2)
    z = guide.sample(phi, x, 40_000, mc_rng(1))
    s = np.exp(phi["log_s"])
    se = s / np.sqrt(z.shape[0])
    assert np.all(np.abs(z.mean(axis=0) - guide.mean(phi, x)) < 6 * se)
    # variance: SE of the sample variance of a Gaussian is s²·sqrt(2/(M−1))
    assert np.all(np.abs(z.var(axis=0, ddof=1) - s ** 2) < 6 * s ** 2 * np.sqrt(2 / 39_999))


def test_log_marginal_matches_scipy_and_the_joint_samples():
    model, guide, theta, phi, x, rng = make()
    mean = theta["W"] @ theta["mu"] + theta["b"]
    cov = theta["W"] @ theta["W"].T + np.diag(np.exp(2 * theta["log_sigma"]))
    np.testing.assert_allclose(model.log_marginal(theta, x),
                               stats.multivariate_normal(mean, cov).logpdf(x), rtol=1e-13)


def test_posterior_is_the_conditioned_joint_gaussian():
    model, guide, theta, phi, x, rng = make()
    W = theta["W"]
    cov_x = W @ W.T + np.diag(np.exp(2 * theta["log_sigma"]))
    gain = W.T @ np.linalg.inv(cov_x)                 # Cov(z, x) Cov(x)⁻¹
    want_S = np.eye(3) - gain @ W
    want_m = theta["mu"] + (x - W @ theta["mu"] - theta["b"]) @ gain.T
    m, S = model.posterior(theta, x)
    np.testing.assert_allclose(S, want_S, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(m, want_m, rtol=1e-12, atol=1e-13)


# -- manual gradients: autograd and central differences ----------------------------


@given(linear_gaussian_settings())
def test_grad_log_joint_equals_autograd_and_central_differences(setting):
    model, guide, theta, phi, x, z = setting
    weights = np.linspace(0.2, 1.0, z.shape[0] * z.shape[1]).reshape(z.shape[:2])
    manual = model.grad_log_joint(theta, z, x, weights)
    assert_tree_close(manual, autodiff.grad_log_joint(model, theta, z, x, weights), RTOL)
    fd = central_difference(lambda t: np.sum(weights * model.log_joint(t, z, x)), theta)
    assert_tree_close(manual, fd, RTOL, floor=1.0)


@given(linear_gaussian_settings())
def test_grad_log_prob_equals_autograd_and_central_differences(setting):
    model, guide, theta, phi, x, z = setting
    weights = np.linspace(1.0, 0.1, z.shape[0] * z.shape[1]).reshape(z.shape[:2])
    manual = guide.grad_log_prob(phi, z, x, weights)
    assert_tree_close(manual, autodiff.grad_log_prob(guide, phi, z, x, weights), RTOL)
    fd = central_difference(lambda p: np.sum(weights * guide.log_prob(p, z, x)), phi)
    assert_tree_close(manual, fd, RTOL, floor=1.0)


# -- closed forms ------------------------------------------------------------------


def test_kls_match_the_full_matrix_formula():
    model, guide, theta, phi, x, rng = make()
    m, S = model.posterior(theta, x)
    mu_q, Sq = guide.mean(phi, x), np.diag(np.exp(2 * phi["log_s"]))
    want_pq = [gaussian_kl(m[n], S, mu_q[n], Sq) for n in range(len(x))]
    want_qp = [gaussian_kl(mu_q[n], Sq, m[n], S) for n in range(len(x))]
    np.testing.assert_allclose(lg.kl_posterior_guide(model, guide, theta, phi, x), want_pq, rtol=1e-12)
    np.testing.assert_allclose(lg.kl_guide_posterior(model, guide, theta, phi, x), want_qp, rtol=1e-12)


def test_elbo1_is_log_marginal_minus_exclusive_kl():
    model, guide, theta, phi, x, rng = make()
    np.testing.assert_allclose(
        lg.elbo1(model, guide, theta, phi, x),
        model.log_marginal(theta, x) - lg.kl_guide_posterior(model, guide, theta, phi, x),
        rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_closed_form_gradients_equal_central_differences_of_the_values(seed):
    model, guide, theta, phi, x, rng = make(seed)
    dtheta, dphi = lg.grad_elbo1(model, guide, theta, phi, x)
    assert_tree_close(dtheta, central_difference(
        lambda t: lg.elbo1(model, guide, t, phi, x).mean(), theta), RTOL, floor=1.0)
    assert_tree_close(dphi, central_difference(
        lambda p: lg.elbo1(model, guide, theta, p, x).mean(), phi), RTOL, floor=1.0)
    assert_tree_close(lg.kl_grad_phi(model, guide, theta, phi, x), central_difference(
        lambda p: lg.kl_posterior_guide(model, guide, theta, p, x).mean(), phi), RTOL, floor=1.0)
    assert_tree_close(lg.sleep_target(model, guide, theta, phi), central_difference(
        lambda p: lg.expected_kl(model, guide, theta, p), phi), RTOL, floor=1.0)


@pytest.mark.statistical
def test_expected_kl_agrees_with_monte_carlo_over_x():
    # 100,000 draws of x; |error| < 6 SE fails with probability about 2e-9.
    model, guide, theta, phi, x, rng = make()
    _, xs = model.sample(theta, 100_000, mc_rng(2))
    kls = lg.kl_posterior_guide(model, guide, theta, phi, xs)
    se = kls.std(ddof=1) / np.sqrt(len(kls))
    assert abs(kls.mean() - lg.expected_kl(model, guide, theta, phi)) < 6 * se


def test_moment_matched_guide_zeroes_both_inclusive_targets():
    model, guide, theta, phi, x, rng = make()
    matched = lg.moment_matched_phi(model, theta)
    m, S = model.posterior(theta, x)
    np.testing.assert_allclose(guide.mean(matched, x), m, rtol=1e-12, atol=1e-12)
    assert lg.expected_kl(model, guide, theta, matched) > 0  # diagonal q cannot hold S
    for grad in (lg.sleep_target(model, guide, theta, matched),
                 lg.kl_grad_phi(model, guide, theta, matched, x)):
        for value in grad.values():
            np.testing.assert_allclose(value, 0.0, atol=1e-13)


def test_exclusive_optimum_zeroes_the_elbo1_phi_gradient_but_not_the_sleep_target():
    model, guide, theta, phi, x, rng = make()
    exclusive = lg.exclusive_optimal_phi(model, theta)
    for value in lg.grad_elbo1(model, guide, theta, exclusive, x)[1].values():
        np.testing.assert_allclose(value, 0.0, atol=1e-13)
    target = lg.sleep_target(model, guide, theta, exclusive)
    np.testing.assert_allclose(target["A"], 0.0, atol=1e-13)
    np.testing.assert_allclose(target["c"], 0.0, atol=1e-13)
    # s² = 1/diag P < diag S: too narrow, so the inclusive KL wants log_s larger
    # (its descent direction −d log_s is positive).
    _, S = model.posterior(theta, x)
    np.testing.assert_allclose(target["log_s"], 1.0 - np.diag(S) / np.exp(2 * exclusive["log_s"]),
                               rtol=1e-12)
    assert np.all(target["log_s"] < -1e-3)
