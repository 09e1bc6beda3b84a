"""A solution of rws-ref exercise reinforce_phi, written from the formula and the protocol methods only."""
import numpy as np


def softmax0(a):
    """Normalized over the particles (axis 0), after subtracting the largest."""
    e = np.exp(a - a.max(axis=0))
    return e / e.sum(axis=0)


def reinforce_phi(model, guide, theta, phi, x, z):
    log_w = model.log_joint(theta, z, x) - guide.log_prob(phi, z, x)
    m = log_w.max(axis=0)
    L = m + np.log(np.mean(np.exp(log_w - m), axis=0))
    return guide.grad_log_prob(phi, z, x, (L - softmax0(log_w)) / x.shape[0])
