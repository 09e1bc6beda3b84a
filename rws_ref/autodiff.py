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

Models and guides used with this route provide ``_log_joint(theta, z, x)``
and ``_log_prob(phi, z, x)``: the same densities as the public methods,
without input validation, written with ``autograd.numpy``.
"""
import autograd.numpy as anp
import numpy as np
from autograd import grad
from autograd.tracer import getval

from . import estimators
from .numerics import log_mean_exp, softmax

__all__ = ["grad_log_joint", "grad_log_prob", "wake_theta", "wake_phi", "sleep_phi"]


def grad_log_joint(model, theta, z, x, weights):
    """Autograd ∇_θ Σ_{k,n} weights[k,n] · log p_θ(z_kn, x_n)."""
    model.log_joint(theta, z, x)  # validate once, through the public method
    z, x, weights = np.asarray(z), np.asarray(x, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    return grad(lambda th: anp.sum(weights * model._log_joint(th, z, x)))(_floats(theta))


def grad_log_prob(guide, phi, z, x, weights):
    """Autograd ∇_φ Σ_{k,n} weights[k,n] · log q_φ(z_kn | x_n)."""
    guide.log_prob(phi, z, x)
    z, x, weights = np.asarray(z), np.asarray(x, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    return grad(lambda ph: anp.sum(weights * guide._log_prob(ph, z, x)))(_floats(phi))


def wake_theta(model, guide, theta, phi, x, z):
    """Autograd ∇_θ (1/N) Σ_n L̂_n on fixed particles.  Ascent direction."""
    estimators.log_weights(model, guide, theta, phi, x, z)  # validation
    z, x = np.asarray(z), np.asarray(x, dtype=np.float64)
    log_q = guide._log_prob(_floats(phi), z, x)

    def mean_bound(th):
        return anp.mean(log_mean_exp(model._log_joint(th, z, x) - log_q, axis=0))

    return grad(mean_bound)(_floats(theta))


def wake_phi(model, guide, theta, phi, x, z):
    """Autograd ∇_φ of −(1/N) Σ_n Σ_k stop_gradient(w̄_kn) log q_φ(z_kn|x_n).  Descent."""
    estimators.log_weights(model, guide, theta, phi, x, z)
    z, x = np.asarray(z), np.asarray(x, dtype=np.float64)
    log_p = model._log_joint(_floats(theta), z, x)
    n = x.shape[0]

    def surrogate(ph):
        log_q = guide._log_prob(ph, z, x)
        w_bar = getval(softmax(log_p - log_q, axis=0))   # stop-gradient
        return -anp.sum(w_bar * log_q) / n

    return grad(surrogate)(_floats(phi))


def sleep_phi(guide, phi, z, x):
    """Autograd ∇_φ of −(1/M) Σ_m log q_φ(z_m | x_m).  Descent direction."""
    z = np.asarray(z)
    if z.ndim == 1 + len(guide.z_shape):
        z = z[None]
    guide.log_prob(phi, z, x)
    x = np.asarray(x, dtype=np.float64)
    return grad(lambda ph: -anp.mean(guide._log_prob(ph, z, x)))(_floats(phi))


def _floats(params):
    return {key: np.asarray(value, dtype=np.float64) for key, value in params.items()}
