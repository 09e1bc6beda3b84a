"""PyTorch: check your own wake-θ, on your own model, against rws_ref (docs/checking.md)."""
import numpy as np
import torch

from rws_ref.checking import adapters, testing

torch.set_default_dtype(torch.float64)
C, SCALE = 3, 1.5


def log_joint(theta, z, x):                      # your model: softmax(logits)_z · N(x; means_z, SCALE²)
    resid = (x - theta["means"][z]) / SCALE
    return torch.log_softmax(theta["logits"], 0)[z] - 0.5 * resid ** 2 - np.log(SCALE * np.sqrt(2 * np.pi))


def log_prob(phi, z, x):                         # your guide: q(z|x) = softmax(w·x + b)
    return torch.log_softmax(phi["w"] * x[:, None] + phi["b"], -1)[torch.arange(len(x)), z]


def my_wake_theta(theta, phi, x, z):             # the RWS code under test
    t = {k: torch.tensor(v, requires_grad=True) for k, v in theta.items()}
    z, x = torch.as_tensor(z), torch.as_tensor(x)
    log_w = log_joint(t, z, x) - log_prob({k: torch.tensor(v) for k, v in phi.items()}, z, x)
    (torch.softmax(log_w.detach(), 0) * log_joint(t, z, x)).sum(0).mean().backward()
    return {k: v.grad.numpy() for k, v in t.items()}


# -- the glue: NumPy in, NumPy out (15 lines) -----------------------------------------------------
def as_numpy(f):
    return lambda p, z, x: f({k: torch.tensor(v) for k, v in p.items()}, torch.as_tensor(z),
                             torch.as_tensor(x)).numpy()


def weighted_grad(f):                            # ∇ Σ weights · log density, by torch's autograd
    def grad(p, z, x, w):
        t = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
        (torch.as_tensor(w) * f(t, torch.as_tensor(z), torch.as_tensor(x))).sum().backward()
        return {k: v.grad.numpy() for k, v in t.items()}
    return grad


def sample(theta, n, rng):
    z = rng.choice(C, size=n, p=np.exp(theta["logits"]) / np.exp(theta["logits"]).sum())
    return z, theta["means"][z] + SCALE * rng.standard_normal(n)


model = adapters.Model({"logits": (C,), "means": (C,)}, (), (), as_numpy(log_joint), weighted_grad(log_joint),
                       sample=sample, z_domain=C, support=lambda: np.arange(C))
guide = adapters.Guide({"w": (C,), "b": (C,)}, (), (), as_numpy(log_prob), weighted_grad(log_prob), z_domain=C)
# -------------------------------------------------------------------------------------------------

if __name__ == "__main__":
    report = testing.check_estimator(my_wake_theta, "wake_theta", model, guide)
    print(report)
