"""Pyro programs as a Pyro user writes them, for the bridge tests: rws_ref's LinearGaussian(2, 3)
with DiagonalGaussianGuide, and a Gaussian mixture with a categorical guide — the same densities
as rws_ref's own models, so rws_ref's closed forms are the oracle."""
import numpy as np
import pyro
import pyro.distributions as dist
import torch

torch.set_default_dtype(torch.float64)
DZ, DX, C = 2, 3, 3


def lg_model(x):
    mu = pyro.param("mu", torch.zeros(DZ))
    W = pyro.param("W", torch.zeros(DX, DZ))
    b = pyro.param("b", torch.zeros(DX))
    log_sigma = pyro.param("log_sigma", torch.zeros(DX))
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(mu, 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z @ W.T + b, log_sigma.exp()).to_event(1), obs=x)


def lg_guide(x, observations=None):
    if observations is not None:                # Pyro's RWS sleep phase: q(z | the dreamt x)
        x = observations["x"]
    A = pyro.param("A", torch.zeros(DZ, DX))
    c = pyro.param("c", torch.zeros(DZ))
    log_s = pyro.param("log_s", torch.zeros(DZ))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(x @ A.T + c, log_s.exp()).to_event(1))


def mixture_model(x):
    logits = pyro.param("logits", torch.zeros(C))
    means = pyro.param("means", torch.tensor([-2.0, 0.0, 2.0]))
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Categorical(logits=logits))
        pyro.sample("x", dist.Normal(means[z], 1.5), obs=x)


def mixture_guide(x, observations=None):
    if observations is not None:                # Pyro's RWS sleep phase: q(z | the dreamt x)
        x = observations["x"]
    w = pyro.param("w", torch.zeros(C))
    b0 = pyro.param("b0", torch.zeros(C))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Categorical(logits=x[..., None] * w + b0))


def fresh(theta=None, phi=None):
    """A clean parameter store holding the given values (NumPy dicts)."""
    pyro.clear_param_store()
    for values in (theta or {}, phi or {}):
        for k, v in values.items():
            pyro.param(k, torch.tensor(np.asarray(v, dtype=np.float64)))


# -- several latent sites: a discrete hierarchy z1 → z2, and a discrete choice with a continuous value --
def hier_model(x):
    """z1 ~ Bernoulli(σ(a)), z2 | z1 ~ Categorical(softmax(L[z1])), x | z1, z2 ~ N(means[z2] + z1, 1)."""
    a = pyro.param("a", torch.tensor(0.2))
    L = pyro.param("L", torch.zeros(2, C))
    means = pyro.param("means", torch.tensor([-2.0, 0.0, 2.0]))
    with pyro.plate("data", x.shape[0]):
        z1 = pyro.sample("z1", dist.Bernoulli(logits=a))
        z2 = pyro.sample("z2", dist.Categorical(logits=L[z1.long()]))
        pyro.sample("x", dist.Normal(means[z2] + z1, 1.0), obs=x)


def hier_guide(x, observations=None):
    """q(z1 | x) = Bernoulli(σ(u·x)), q(z2 | z1, x) = Categorical(softmax(V[z1] + r·x))."""
    if observations is not None:
        x = observations["x"]
    u = pyro.param("u", torch.tensor(0.3))
    V = pyro.param("V", torch.zeros(2, C))
    r = pyro.param("r", torch.zeros(C))
    with pyro.plate("data", x.shape[0]):
        z1 = pyro.sample("z1", dist.Bernoulli(logits=u * x))
        pyro.sample("z2", dist.Categorical(logits=V[z1.long()] + r * x[..., None]))


def mixed_model(x):
    """c ~ Categorical(softmax(logits)), z | c ~ N(means[c], 1), x | z ~ N(z, 0.5²)."""
    logits = pyro.param("logits", torch.zeros(C))
    means = pyro.param("means", torch.tensor([-2.0, 0.0, 2.0]))
    with pyro.plate("data", x.shape[0]):
        c = pyro.sample("c", dist.Categorical(logits=logits))
        z = pyro.sample("z", dist.Normal(means[c], 1.0))
        pyro.sample("x", dist.Normal(z, 0.5), obs=x)


def mixed_guide(x, observations=None):
    """q(c | x) = Categorical(softmax(w·x + b0)), q(z | c, x) = N(k·x + m[c], exp(s)²)."""
    if observations is not None:
        x = observations["x"]
    w = pyro.param("w", torch.zeros(C))
    b0 = pyro.param("b0", torch.zeros(C))
    k = pyro.param("k", torch.tensor(0.8))
    m = pyro.param("m", torch.zeros(C))
    s = pyro.param("s", torch.tensor(-0.5))
    with pyro.plate("data", x.shape[0]):
        c = pyro.sample("c", dist.Categorical(logits=x[..., None] * w + b0))
        pyro.sample("z", dist.Normal(k * x + m[c], s.exp()))


def chain_model(x):
    """z1 ~ N(m, 1), z2 | z1 ~ N(z1 / 2, 1), x | z2 ~ N(z2, 0.5²): two continuous sites in a chain."""
    m = pyro.param("m", torch.tensor(0.3))
    with pyro.plate("data", x.shape[0]):
        z1 = pyro.sample("z1", dist.Normal(m, 1.0))
        z2 = pyro.sample("z2", dist.Normal(0.5 * z1, 1.0))
        pyro.sample("x", dist.Normal(z2, 0.5), obs=x)


def chain_guide(x, observations=None):
    """q(z1 | x) = N(a·x, exp(s1)²), q(z2 | z1, x) = N(b·z1 + x/2, exp(s2)²): reparameterized, z2's loc reads z1."""
    if observations is not None:
        x = observations["x"]
    a, b = pyro.param("a", torch.tensor(0.4)), pyro.param("b", torch.tensor(0.2))
    s1, s2 = pyro.param("s1", torch.tensor(-0.3)), pyro.param("s2", torch.tensor(-0.2))
    with pyro.plate("data", x.shape[0]):
        z1 = pyro.sample("z1", dist.Normal(a * x, s1.exp()))
        pyro.sample("z2", dist.Normal(b * z1 + 0.5 * x, s2.exp()))
