"""The Gaussian mixture (softmax-linear and MLP guides) and the sigmoid belief net.

Oracles: scipy.stats densities, brute-force sums, autograd, central
differences, and sampling frequencies with stated false-failure rates.
"""
import numpy as np
import pytest
from hypothesis import given
from scipy import stats

from rws_ref import (
    BernoulliGuide,
    GaussianMixture,
    MLPGuide,
    SigmoidBeliefNet,
    SoftmaxLinearGuide,
    autodiff,
    sleep_phi,
    wake_phi,
    wake_theta,
)

from _util import assert_tree_close, belief_net_settings, central_difference, mc_rng, mixture_settings

RTOL = 1e-9
SETTINGS = [mixture_settings(), mixture_settings(mlp=True), belief_net_settings()]
IDS = ["mixture-softmax", "mixture-mlp", "belief-net"]


@pytest.mark.parametrize("strategy", SETTINGS, ids=IDS)
def test_manual_gradients_equal_autograd_and_central_differences(strategy):
    @given(strategy)
    def check(s):
        model, guide, theta, phi, x, z = s
        w = np.linspace(0.3, 1.0, z.shape[0] * z.shape[1]).reshape(z.shape[:2])
        for manual, auto, f, params in [
            (model.grad_log_joint(theta, z, x, w), autodiff.grad_log_joint(model, theta, z, x, w),
             lambda t: np.sum(w * model.log_joint(t, z, x)), theta),
            (guide.grad_log_prob(phi, z, x, w), autodiff.grad_log_prob(guide, phi, z, x, w),
             lambda p: np.sum(w * guide.log_prob(p, z, x)), phi),
        ]:
            assert_tree_close(manual, auto, RTOL)
            assert_tree_close(manual, central_difference(f, params), RTOL, floor=1.0)
        for est in (wake_theta, wake_phi):
            assert_tree_close(est(model, guide, theta, phi, x, z),
                              getattr(autodiff, est.__name__)(model, guide, theta, phi, x, z), RTOL)
        assert_tree_close(sleep_phi(guide, phi, z[:1], x), autodiff.sleep_phi(guide, phi, z[:1], x), RTOL)
    check()


def test_mixture_densities_match_scipy_and_posterior_is_bayes_rule():
    model = GaussianMixture(5, means=[0.0, 3.0, -2.0, 7.0, 1.0], scale=1.5)
    theta = {"logits": np.array([0.1, -0.5, 1.0, 0.0, 0.3])}
    pi = np.exp(theta["logits"]) / np.exp(theta["logits"]).sum()
    x = np.array([0.4, 2.5, 9.0])
    z = np.array([[0, 3, 4], [2, 2, 1]])
    want = np.log(pi[z]) + stats.norm(model.means[z], 1.5).logpdf(x)
    np.testing.assert_allclose(model.log_joint(theta, z, x), want, rtol=1e-13)
    joint = pi[None, :] * stats.norm(model.means[None, :], 1.5).pdf(x[:, None])     # (N, C)
    np.testing.assert_allclose(model.log_marginal(theta, x), np.log(joint.sum(1)), rtol=1e-13)
    np.testing.assert_allclose(model.posterior(theta, x), joint / joint.sum(1, keepdims=True), rtol=1e-12)


@pytest.mark.statistical
def test_mixture_true_theta_is_the_benchmark_and_samples_follow_it():
    model = GaussianMixture()
    pi = np.exp(model.true_theta()["logits"])
    np.testing.assert_allclose(pi, (np.arange(20) + 5) / np.sum(np.arange(20) + 5), rtol=1e-14)
    np.testing.assert_allclose(model.means, 10.0 * np.arange(20))
    z, x = model.sample(model.true_theta(), 200_000, mc_rng(5))
    # Frequencies within 6 binomial SE: false failure ≈ 20 × 2e-9 = 4e-8.
    freq = np.bincount(z, minlength=20) / len(z)
    assert np.all(np.abs(freq - pi) < 6 * np.sqrt(pi * (1 - pi) / len(z)))
    resid = (x - model.means[z]) / 5.0                       # standard normal residuals
    assert abs(resid.mean()) < 6 / np.sqrt(len(z))


def test_softmax_linear_guide_holds_the_exact_posterior():
    model = GaussianMixture()
    guide = SoftmaxLinearGuide(20, loc=95.0, scale=60.0)
    theta = model.true_theta()
    phi = guide.exact_posterior_phi(model, theta)
    x = np.linspace(-30.0, 230.0, 27)
    np.testing.assert_allclose(guide.probs(phi, x), model.posterior(theta, x), rtol=1e-9, atol=1e-300)


@pytest.mark.statistical
def test_categorical_guides_sample_their_probabilities():
    # 100,000 particles; 6 binomial SE per class: false failure < 2e-8 per guide.
    rng = mc_rng(6)
    x = np.array([37.0])
    for guide in (SoftmaxLinearGuide(5, loc=20.0, scale=10.0), MLPGuide(5, hidden=(4,), loc=20.0, scale=10.0)):
        phi = guide.init_phi(rng)
        p = guide.probs(phi, x)[0]
        freq = np.bincount(guide.sample(phi, x, 100_000, rng)[:, 0], minlength=5) / 100_000
        assert np.all(np.abs(freq - p) < 6 * np.sqrt(p * (1 - p) / 100_000))


def test_belief_net_densities_and_enumeration_match_brute_force():
    rng = np.random.default_rng(2)
    model, guide = SigmoidBeliefNet(3, 4), BernoulliGuide(3, 4)
    theta, phi = model.init_theta(rng), guide.init_phi(rng)
    z, x = model.sample(theta, 5, rng)
    sig = lambda a: 1 / (1 + np.exp(-a))
    want = np.array([stats.bernoulli(sig(theta["b_z"])).logpmf(z[n]).sum()
                     + stats.bernoulli(sig(theta["W"] @ z[n] + theta["b_x"])).logpmf(x[n]).sum()
                     for n in range(5)])
    np.testing.assert_allclose(model.log_joint(theta, z[None], x)[0], want, rtol=1e-13)
    # log p(x) and the posterior by explicit loops over the 8 latent states
    joint = np.array([[np.exp(model.log_joint(theta, s[None, None], x[n:n + 1])[0, 0]) for s in model.support()]
                      for n in range(5)])
    np.testing.assert_allclose(model.log_marginal(theta, x), np.log(joint.sum(1)), rtol=1e-13)
    np.testing.assert_allclose(model.posterior(theta, x), joint / joint.sum(1, keepdims=True), rtol=1e-12)
    # p(x) sums to one over all 16 data values
    assert np.exp(model.log_marginal(theta, model.data_support())).sum() == pytest.approx(1.0, abs=1e-14)
    want_q = np.array([stats.bernoulli(sig(phi["A"] @ x[n] + phi["c"])).logpmf(z[n]).sum() for n in range(5)])
    np.testing.assert_allclose(guide.log_prob(phi, z[None], x)[0], want_q, rtol=1e-13)


def test_belief_net_log_densities_stay_finite_for_saturated_logits():
    model, guide = SigmoidBeliefNet(1, 1), BernoulliGuide(1, 1)
    theta = {"b_z": np.array([800.0]), "W": np.array([[-900.0]]), "b_x": np.array([0.0])}
    z, x = np.array([[[0.0]], [[1.0]]]), np.array([[1.0]])
    # log σ(800) ≈ 0, log(1 − σ(800)) = −800; log σ(−900) = −900
    np.testing.assert_allclose(model.log_joint(theta, z, x)[:, 0], [-800.0 - np.log(2.0), -900.0],
                               rtol=1e-12)
    phi = {"A": np.array([[1e4]]), "c": np.array([0.0])}
    assert np.all(np.isfinite(guide.log_prob(phi, z, x)))


@pytest.mark.parametrize("call, kind, words", [
    (lambda: GaussianMixture(1), ValueError, "n_components"),
    (lambda: GaussianMixture(3, means=[0.0, 1.0]), ValueError, "means"),
    (lambda: GaussianMixture(3, scale=0.0), ValueError, "scale"),
    (lambda: GaussianMixture(3).log_joint({"logits": np.zeros(3)}, np.array([[3]]), np.zeros(1)),
     ValueError, "z"),
    (lambda: GaussianMixture(3).log_joint({"logits": np.zeros(3)}, np.array([[0.5]]), np.zeros(1)),
     ValueError, "z"),
    (lambda: GaussianMixture(3).log_joint({"logits": np.zeros(3)}, np.array([["a"]]), np.zeros(1)),
     TypeError, "z"),
    (lambda: GaussianMixture(3).log_joint({"logits": np.zeros(3)}, np.array([[0]]), np.zeros((1, 1))),
     ValueError, "x"),
    (lambda: GaussianMixture(3).sample({"logits": np.zeros(2)}, 3, np.random.default_rng()),
     ValueError, "theta['logits']"),
    (lambda: SoftmaxLinearGuide(3).sample({"w": np.zeros(3), "b": np.zeros(3)}, np.zeros(2), 0,
                                          np.random.default_rng()), ValueError, "K"),
    (lambda: MLPGuide(3, hidden=(4, 0)), ValueError, "hidden"),
    (lambda: SoftmaxLinearGuide(3, scale=-1.0), ValueError, "scale"),
    (lambda: SigmoidBeliefNet(2, 2).log_joint(SigmoidBeliefNet(2, 2).init_theta(np.random.default_rng()),
                                              np.full((1, 1, 2), 0.5), np.zeros((1, 2))), ValueError, "z"),
    (lambda: SigmoidBeliefNet(2, 2).log_joint(SigmoidBeliefNet(2, 2).init_theta(np.random.default_rng()),
                                              np.zeros((1, 1, 2)), np.full((1, 2), 2.0)), ValueError, "x"),
    (lambda: BernoulliGuide(2, 2).probs({"A": np.zeros((2, 2))}, np.zeros((1, 2))), ValueError, "phi"),
    (lambda: BernoulliGuide(2, 2).sample({"A": np.zeros((2, 2)), "c": np.zeros(2)}, np.zeros((1, 2)), 2,
                                         np.random.RandomState(0)), TypeError, "rng"),
])
def test_discrete_models_reject_bad_input_by_name(call, kind, words):
    with pytest.raises(kind) as info:
        call()
    assert words in str(info.value)
