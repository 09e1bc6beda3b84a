"""A solution of rws-ref exercise wake_phi, written from the formula and the protocol methods only."""
import numpy as np


def softmax0(a):
    """Normalized over the particles (axis 0), after subtracting the largest."""
    e = np.exp(a - a.max(axis=0))
    return e / e.sum(axis=0)


def wake_phi(model, guide, theta, phi, x, z):
    w = softmax0(model.log_joint(theta, z, x) - guide.log_prob(phi, z, x))
    return {k: -v for k, v in guide.grad_log_prob(phi, z, x, w / x.shape[0]).items()}
