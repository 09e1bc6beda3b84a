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
