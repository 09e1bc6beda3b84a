"""autograd.numpy: check your own wake-θ, on your own model, against rws_ref (docs/checking.md).

Densities written with autograd.numpy need the least glue: rws_ref calls them with
NumPy arrays, and the exact oracle's autograd route can differentiate them too.
"""
import autograd.numpy as anp
import numpy as np
from autograd import grad

from rws_ref.checking import adapters, testing

C, SCALE = 3, 1.5


def _log_softmax(a, axis):
    return a - anp.log(anp.sum(anp.exp(a - anp.max(a, axis, keepdims=True)), axis, keepdims=True)) \
        - anp.max(a, axis, keepdims=True)


def log_joint(theta, z, x):                      # your model: softmax(logits)_z · N(x; means_z, SCALE²)
    resid = (x - theta["means"][z]) / SCALE
    return _log_softmax(theta["logits"], 0)[z] - 0.5 * resid ** 2 - np.log(SCALE * np.sqrt(2 * np.pi))


def log_prob(phi, z, x):                         # your guide: q(z|x) = softmax(w·x + b)
    return _log_softmax(phi["w"] * x[:, None] + phi["b"], -1)[np.arange(len(x)), z]


def my_wake_theta(theta, phi, x, z):             # the RWS code under test
    log_w = log_joint(theta, z, x) - log_prob(phi, z, x)
    w = np.exp(log_w - log_w.max(0)) / np.exp(log_w - log_w.max(0)).sum(0)
    return grad(lambda t: anp.mean(anp.sum(w * log_joint(t, z, x), 0)))(theta)


# -- the glue (8 lines) ---------------------------------------------------------------------------
def weighted_grad(f):                            # ∇ Σ weights · log density, by autograd
    return grad(lambda p, z, x, w: anp.sum(w * f(p, z, x)))


def sample(theta, n, rng):
    z = rng.choice(C, size=n, p=np.exp(theta["logits"]) / np.exp(theta["logits"]).sum())
    return z, theta["means"][z] + SCALE * rng.standard_normal(n)


model = adapters.Model({"logits": (C,), "means": (C,)}, (), (), log_joint, weighted_grad(log_joint),
                       sample=sample, z_domain=C, support=lambda: np.arange(C))
guide = adapters.Guide({"w": (C,), "b": (C,)}, (), (), log_prob, weighted_grad(log_prob), z_domain=C)
# -------------------------------------------------------------------------------------------------

if __name__ == "__main__":
    report = testing.check_estimator(my_wake_theta, "wake_theta", model, guide)
    print(report)
