"""rws_ref.checking.losses: a loss written the way Pyro and NumPyro write theirs (a sum over the data, minimized) is
checked and its convention reported; a loss with a mistake is not called consistent."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from autograd.tracer import getval

import rws_ref
from rws_ref.checking import testing
from rws_ref.numerics import log_mean_exp, softmax

LG = rws_ref.LinearGaussian(2, 3), rws_ref.DiagonalGaussianGuide(2, 3)
MIX = rws_ref.GaussianMixture(5, scale=6.0), rws_ref.SoftmaxLinearGuide(5, loc=20.0, scale=10.0)


def rws_losses(model, guide, whole_run=False, phi_sign=1.0):
    """A hand-written RWS step: the wake-θ loss −Σ_n L̂_n and the wake-φ loss −Σ_n Σ_k stop(w̄) log q,
    both summed over the data and minimized, differentiated by autograd (as a framework would)."""
    def loss(theta, phi, x, z):
        log_q = guide.log_prob(phi, z, x)

        def theta_loss(th):
            log_w = model.log_joint(th, z, x) - log_q
            if whole_run:                               # Pyro's ReweightedWakeSleep: one weight per program run
                return -log_mean_exp(anp.sum(log_w, axis=1), axis=0)
            return -anp.sum(log_mean_exp(log_w, axis=0))

        def phi_loss(ph):
            lq = guide.log_prob(ph, z, x)
            w_bar = getval(softmax(model.log_joint(theta, z, x) - lq, axis=0))
            return -phi_sign * anp.sum(w_bar * lq)
        return float(theta_loss(theta)), grad(theta_loss)(theta), grad(phi_loss)(phi)
    return loss


def test_an_rws_loss_summed_over_the_data_is_consistent_and_its_convention_reported():
    report = testing.check_loss(rws_losses(*MIX), "wake_phi", *MIX)
    text = str(report)
    assert report.ok, text
    assert "value = −N × mean ELBO_IS" in text
    assert "θ-gradient = −N × wake-θ: consistent with minimizing" in text
    assert "φ-gradient = N × wake-φ: consistent with minimizing" in text


def test_a_sign_flipped_phi_loss_is_not_consistent():
    report = testing.check_loss(rws_losses(*MIX, phi_sign=-1.0), "wake_phi", *MIX)
    assert not report.ok and "φ-gradient = −N × wake-φ: its sign makes minimizing the loss move the wrong way" \
        in str(report)


def test_whole_run_weights_are_named_as_pyros_convention():
    report = testing.check_loss(rws_losses(*MIX, whole_run=True), "wake_phi", *MIX)
    text = str(report)
    assert report.ok and "known mistake" not in text, text            # Pyro's documented convention, not a bug
    assert "θ-gradient = −1 × wake-θ, Pyro's ReweightedWakeSleep convention: one weight per run of the program" \
        in text and "consistent with minimizing the loss" in text, text


def _score_only_reinforce(K_fixed_term, ordinary=False):
    """A hand-written REINFORCE loss of a discrete guide: surrogate = −Σ_n Σ_k signal_kn log q(z_kn) (the
    signal detached) [− Σ_n L̂_n at fixed particles]; ``ordinary``: the K-particle ordinary ELBO's signal."""
    model, guide = MIX

    def loss(theta, phi, x, z):
        log_w = rws_ref.log_weights(model, guide, theta, phi, x, z)
        K = log_w.shape[0]
        signal = log_w / K if ordinary else np.broadcast_to(rws_ref.elbo_is(log_w), log_w.shape)
        g = guide.grad_log_prob(phi, z, x, -signal)
        if K_fixed_term:                                    # the gradient at fixed particles: −Σ w̄ ∇ log q
            w = rws_ref.normalized_weights(log_w) if not ordinary else np.full(log_w.shape, 1.0 / K)
            extra = guide.grad_log_prob(phi, z, x, w)
            g = {k: g[k] + extra[k] for k in g}
        return None, None, g
    return loss


def test_the_score_only_reinforce_is_an_unbiased_variant_at_one_particle_and_a_mistake_above():
    one = testing.check_loss(_score_only_reinforce(False), "reinforce_phi", *MIX, K=1)
    assert one.ok and "unbiased, higher variance: the score-only REINFORCE" in str(one), str(one)
    four = testing.check_loss(_score_only_reinforce(False), "reinforce_phi", *MIX, K=4)
    assert not four.ok and "with a known mistake: gradient at fixed particles missing" in str(four), str(four)


@pytest.mark.parametrize("fixed_term", [False, True])
def test_the_ordinary_k_particle_elbo_is_named_as_another_objective(fixed_term):
    report = testing.check_loss(_score_only_reinforce(fixed_term, ordinary=True), "reinforce_phi", *MIX, K=4)
    text = str(report)
    assert not report.ok and "the ordinary ELBO with K particles" in text and "known mistake" not in text, text


def test_the_iwae_bound_as_renyi_elbo_alpha_0_writes_it():
    model, guide = LG

    def renyi(theta, phi, x, eps):              # −Σ_n L̂_n with z = z(ε, φ): θ and φ both differentiated
        def bound(th, ph):
            z = guide.reparameterize(ph, x, eps)
            return -anp.sum(log_mean_exp(model.log_joint(th, z, x) - guide.log_prob(ph, z, x), axis=0))
        return float(bound(theta, phi)), grad(bound, 0)(theta, phi), grad(bound, 1)(theta, phi)
    report = testing.check_loss(renyi, "iwae_phi", model, guide)
    assert report.ok and "φ-gradient = −N × iwae-φ: consistent" in str(report), str(report)
    assert "θ-gradient = −N × wake-θ" in str(report)


def test_a_discrete_renyi_loss_without_its_score_function_term_is_named():
    model, guide = MIX

    def renyi_discrete(theta, phi, x, z):       # z held fixed: the score-function term silently missing
        def bound(th, ph):
            return -anp.sum(log_mean_exp(model.log_joint(th, z, x) - guide.log_prob(ph, z, x), axis=0))
        return float(bound(theta, phi)), grad(bound, 0)(theta, phi), grad(bound, 1)(theta, phi)
    report = testing.check_loss(renyi_discrete, "reinforce_phi", model, guide)
    assert not report.ok
    assert ("φ-gradient = −N × reinforce-φ with a known mistake: score-function term missing" in str(report)), \
        str(report)


def test_misuse_is_refused():
    with pytest.raises(ValueError, match="φ estimator"):
        testing.check_loss(rws_losses(*MIX), "wake_theta", *MIX)
    with pytest.raises(TypeError, match="must return"):
        testing.check_loss(lambda th, ph, x, z: 1.0, "wake_phi", *MIX)
    with pytest.raises(TypeError, match="loss value"):
        testing.check_loss(lambda th, ph, x, z: (np.nan, None, None), "wake_phi", *MIX)


def test_a_gradient_that_is_exactly_zero_is_said_so():
    model, guide = MIX
    loss = lambda theta, phi, x, z: (None, None, {k: np.zeros(np.shape(v)) for k, v in phi.items()})
    report = testing.check_loss(loss, "reinforce_phi", model, guide)
    assert not report.ok and "φ-gradient is exactly zero" in str(report)
