"""A solution of rws-ref exercise iwae_phi, written from the formula and the protocol methods only."""
import numpy as np


def softmax0(a):
    """Normalized over the particles (axis 0), after subtracting the largest."""
    e = np.exp(a - a.max(axis=0))
    return e / e.sum(axis=0)


def iwae_phi(model, guide, theta, phi, x, eps):
    z = guide.reparameterize(phi, x, eps)
    w = softmax0(model.log_joint(theta, z, x) - guide.log_prob(phi, z, x)) / x.shape[0]
    v = w[..., None] * (model.grad_z_log_joint(theta, z, x) - guide.grad_z_log_prob(phi, z, x))
    path, score = guide.pull_back(phi, x, eps, v), guide.grad_log_prob(phi, z, x, w)
    return {k: path[k] - score[k] for k in path}
