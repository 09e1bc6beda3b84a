"""A solution of rws-ref exercise vimco_phi, written from the formula and the protocol methods only."""
import numpy as np


def softmax0(a):
    """Normalized over the particles (axis 0), after subtracting the largest."""
    e = np.exp(a - a.max(axis=0))
    return e / e.sum(axis=0)


def vimco_phi(model, guide, theta, phi, x, z):
    log_w = model.log_joint(theta, z, x) - guide.log_prob(phi, z, x)
    K = log_w.shape[0]
    def lme(a):
        m = a.max(axis=0)
        return m + np.log(np.mean(np.exp(a - m), axis=0))
    L = lme(log_w)
    signal = np.empty_like(log_w)
    for k in range(K):
        others = np.delete(log_w, k, axis=0)
        swapped = log_w.copy()
        swapped[k] = others.mean(axis=0)
        signal[k] = L - lme(swapped)
    weights = (signal - softmax0(log_w)) / x.shape[0]
    return guide.grad_log_prob(phi, z, x, weights)
