"""A solution of rws-ref exercise exact_mean, written from the formula and the protocol methods only."""
import itertools

import numpy as np


def exact_mean(estimator, model, guide, theta, phi, x, K):
    states = model.support()                                     # (S, *z_shape)
    total = None
    for n in range(x.shape[0]):                                  # datapoints are independent: one at a time
        xn = x[n:n + 1]
        log_q = guide.log_prob(phi, states[:, None], xn)[:, 0]   # log q_φ(s | x_n) for every state s
        for tup in itertools.product(range(len(states)), repeat=K):   # every ordered tuple of K particles
            z = states[list(tup)][:, None]                       # (K, 1, *z_shape)
            p = np.exp(np.sum(log_q[list(tup)]))                 # Π_k q_φ(s_k | x_n)
            out = estimator(model, guide, theta, phi, xn, z)
            total = {k: p * v for k, v in out.items()} if total is None else {k: total[k] + p * out[k] for k in out}
    return {k: v / x.shape[0] for k, v in total.items()}         # the batch mean over the datapoints
