"""A solution of rws-ref exercise insomnia, written from the formula and the protocol methods only."""
import numpy as np


def softmax0(a):
    """Normalized over the particles (axis 0), after subtracting the largest."""
    e = np.exp(a - a.max(axis=0))
    return e / e.sum(axis=0)


def insomnia(model, guide, theta, phi, x, z, dream_z, dream_x, iota):
    w = softmax0(model.log_joint(theta, z, x) - guide.log_prob(phi, z, x))
    wake = guide.grad_log_prob(phi, z, x, w / x.shape[0])
    m = dream_x.shape[0]
    sleep = guide.grad_log_prob(phi, dream_z[None], dream_x, np.full((1, m), 1.0 / m))
    return {k: -(iota * wake[k] + (1 - iota) * sleep[k]) for k in wake}
