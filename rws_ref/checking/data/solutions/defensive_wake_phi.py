"""A solution of rws-ref exercise defensive_wake_phi, written from the formula and the protocol methods only."""
import numpy as np


def softmax0(a):
    """Normalized over the particles (axis 0), after subtracting the largest."""
    e = np.exp(a - a.max(axis=0))
    return e / e.sum(axis=0)


def defensive_wake_phi(model, guide, theta, phi, x, z, delta):
    log_q = guide.log_prob(phi, z, x)
    log_r = -np.log(len(model.support()))            # r: uniform over the model's states
    with np.errstate(divide="ignore"):                 # δ = 0 or 1: one component is log 0 = −inf
        log_mix = np.logaddexp(np.log1p(-delta) + log_q, np.log(delta) + log_r)
    w = softmax0(model.log_joint(theta, z, x) - log_mix)
    return {k: -v for k, v in guide.grad_log_prob(phi, z, x, w / x.shape[0]).items()}
