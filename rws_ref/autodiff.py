"""The autograd route: every manual gradient again, by automatic differentiation.

Each function here has the signature of its manual twin and differentiates
a surrogate objective with ``autograd`` instead of using a hand-derived
formula.  On the same particles the two must agree to rounding; the tests
hold them to 1e-9 relative.

Surrogates (per batch, on fixed particles z):

- wake-θ: (1/N) Σ_n L̂_n(θ), with L̂_n = logsumexp_k(log w_kn) − log K.
  Its θ-gradient is the wake-θ estimator (the weights are differentiated).
- wake-φ: −(1/N) Σ_n Σ_k stop_gradient(w̄_kn) · log q_φ(z_kn | x_n).
- sleep-φ: −(1/M) Σ_m log q_φ(z_m | x_m).

This route differentiates the protocol's own ``log_joint`` and ``log_prob``
(docs/protocol.md), so it applies to any model whose densities autograd can
trace: the built-in models (written with autograd.numpy where they are
traced) and a user's model written with ``autograd.numpy``.
"""
import autograd.numpy as anp
import numpy as np
from autograd import grad
from autograd.tracer import getval

from . import estimators
from .family import DefensiveGuide, vimco_signals
from .family import insomnia as manual_insomnia
from .numerics import log_mean_exp, softmax

__all__ = ["grad_log_joint", "grad_log_prob", "wake_theta", "wake_phi", "sleep_phi",
           "insomnia", "defensive_wake_phi", "iwae_phi", "stl_phi", "iwae_dreg_phi", "rws_dreg_phi",
           "reinforce_phi", "vimco_phi"]


def grad_log_joint(model, theta, z, x, weights):
    """Autograd ∇_θ Σ_{k,n} weights[k,n] · log p_θ(z_kn, x_n)."""
    model.log_joint(theta, z, x)  # validate once, through the public method
    weights = np.asarray(weights, dtype=np.float64)
    return grad(lambda th: anp.sum(weights * model.log_joint(th, z, x)))(_floats(theta))


def grad_log_prob(guide, phi, z, x, weights):
    """Autograd ∇_φ Σ_{k,n} weights[k,n] · log q_φ(z_kn | x_n)."""
    guide.log_prob(phi, z, x)
    weights = np.asarray(weights, dtype=np.float64)
    return grad(lambda ph: anp.sum(weights * guide.log_prob(ph, z, x)))(_floats(phi))


def wake_theta(model, guide, theta, phi, x, z):
    """Autograd ∇_θ (1/N) Σ_n L̂_n on fixed particles.  Ascent direction."""
    estimators.log_weights(model, guide, theta, phi, x, z)  # validation
    log_q = guide.log_prob(_floats(phi), z, x)

    def mean_bound(th):
        return anp.mean(log_mean_exp(model.log_joint(th, z, x) - log_q, axis=0))

    return grad(mean_bound)(_floats(theta))


def wake_phi(model, guide, theta, phi, x, z):
    """Autograd ∇_φ of −(1/N) Σ_n Σ_k stop_gradient(w̄_kn) log q_φ(z_kn|x_n).  Descent."""
    estimators.log_weights(model, guide, theta, phi, x, z)
    log_p = model.log_joint(_floats(theta), z, x)
    n = np.shape(x)[0]

    def surrogate(ph):
        log_q = guide.log_prob(ph, z, x)
        w_bar = getval(softmax(log_p - log_q, axis=0))   # stop-gradient
        return -anp.sum(w_bar * log_q) / n

    return grad(surrogate)(_floats(phi))


def sleep_phi(guide, phi, z, x):
    """Autograd ∇_φ of −(1/M) Σ_m log q_φ(z_m | x_m).  Descent direction."""
    z, x = estimators.dream_particles(guide, z, x)
    return grad(lambda ph: -anp.mean(guide.log_prob(ph, z, x)))(_floats(phi))


def _floats(params):
    return {key: np.asarray(value, dtype=np.float64) for key, value in params.items()}


# -- the estimator family (rws_ref.family) ------------------------------------------------


def _stop(params):
    return {key: getval(value) for key, value in params.items()}


def insomnia(model, guide, theta, phi, x, z, dream_z, dream_x, iota):
    """Autograd ∇_φ of −ι (1/N) Σ stop(w̄) log q − (1 − ι)(1/M) Σ log q(dream).  Descent."""
    manual_insomnia(model, guide, theta, phi, x, z, dream_z, dream_x, iota)      # validation
    dream_z, dream_x = estimators.dream_particles(guide, dream_z, dream_x)
    log_p = model.log_joint(_floats(theta), z, x)

    def surrogate(ph):
        log_q = guide.log_prob(ph, z, x)
        w_bar = getval(softmax(log_p - log_q, axis=0))
        return (-iota * anp.sum(w_bar * log_q) / np.shape(x)[0]
                - (1.0 - iota) * anp.mean(guide.log_prob(ph, dream_z, dream_x)))

    return grad(surrogate)(_floats(phi))


def defensive_wake_phi(model, guide, theta, phi, x, z, delta, defensive=None):
    """Autograd ∇_φ of −(1/N) Σ stop(w̄_mix) log q_φ, w̄_mix ∝ p / q_mix.  Descent."""
    mix = DefensiveGuide(guide, delta, defensive, model)
    estimators.log_weights(model, mix, theta, phi, x, z)
    log_p = model.log_joint(_floats(theta), z, x)

    def surrogate(ph):
        w_bar = getval(softmax(log_p - mix.log_prob(ph, z, x), axis=0))
        return -anp.sum(w_bar * guide.log_prob(ph, z, x)) / np.shape(x)[0]

    return grad(surrogate)(_floats(phi))


def _reparameterized(model, guide, theta, phi, x, eps, objective):
    guide.reparameterize(phi, x, eps)                                     # validation
    estimators.log_weights(model, guide, theta, phi, x, guide.reparameterize(phi, x, eps))
    x, eps, theta = np.asarray(x, dtype=np.float64), np.asarray(eps, dtype=np.float64), _floats(theta)

    def surrogate(ph):
        z = guide.reparameterize(ph, x, eps)
        log_w_path = model.log_joint(theta, z, x) - guide.log_prob(_stop(ph), z, x)   # through z only
        log_w_full = model.log_joint(theta, z, x) - guide.log_prob(ph, z, x)
        return objective(log_w_full, log_w_path) / x.shape[0]

    return grad(surrogate)(_floats(phi))


def iwae_phi(model, guide, theta, phi, x, eps):
    """Autograd ∇_φ (1/N) Σ_n L̂_n with z = z(ε, φ).  Ascent of the bound."""
    return _reparameterized(model, guide, theta, phi, x, eps,
                            lambda full, path: anp.sum(log_mean_exp(full, axis=0)))


def stl_phi(model, guide, theta, phi, x, eps):
    """Autograd: the bound with q's parameters stopped in log q (gradient through z only)."""
    return _reparameterized(model, guide, theta, phi, x, eps,
                            lambda full, path: anp.sum(log_mean_exp(path, axis=0)))


def iwae_dreg_phi(model, guide, theta, phi, x, eps):
    """Autograd ∇_φ (1/N) Σ stop(w̃²) log w(z(φ)) with q's parameters stopped.  Ascent."""
    return _reparameterized(model, guide, theta, phi, x, eps,
                            lambda full, path: anp.sum(getval(softmax(path, axis=0)) ** 2 * path))


def rws_dreg_phi(model, guide, theta, phi, x, eps):
    """Autograd −∇_φ (1/N) Σ stop(w̃ − w̃²) log w(z(φ)) with q's parameters stopped.  Descent."""
    def objective(full, path):
        w_bar = getval(softmax(path, axis=0))
        return -anp.sum((w_bar - w_bar ** 2) * path)
    return _reparameterized(model, guide, theta, phi, x, eps, objective)


def _score_function(model, guide, theta, phi, x, z, signals):
    log_w = estimators.log_weights(model, guide, theta, phi, x, z)
    learning = signals(log_w)                                             # (K, N), held constant
    log_p = model.log_joint(_floats(theta), z, x)

    def surrogate(ph):
        log_q = guide.log_prob(ph, z, x)
        return (anp.sum(learning * log_q) + anp.sum(log_mean_exp(log_p - log_q, axis=0))) / np.shape(x)[0]

    return grad(surrogate)(_floats(phi))


def reinforce_phi(model, guide, theta, phi, x, z):
    """Autograd ∇_φ (1/N) Σ_n [stop(L̂_n) Σ_k log q(z_k) + L̂_n(φ)].  Ascent of the bound."""
    return _score_function(model, guide, theta, phi, x, z,
                           lambda log_w: np.broadcast_to(estimators.elbo_is(log_w), log_w.shape))


def vimco_phi(model, guide, theta, phi, x, z):
    """Autograd ∇_φ (1/N) Σ_n [Σ_k stop(L̂ − L̂_{−k}) log q(z_k) + L̂_n(φ)].  Ascent."""
    return _score_function(model, guide, theta, phi, x, z, vimco_signals)
