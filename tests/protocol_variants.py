"""Pairs written to docs/protocol.md the ways users write them — every check of rws_ref must pass a correct
implementation on each (tests/checking/test_testing.py's matrix, benchmarks/false_failures.py under many seeds).

- ``undeclared domain``: a discrete model with ``support()`` and no ``z_domain`` anywhere (the latent then
  arrives as float64, and the guide declares no finite domain of its own);
- ``densities only``: adapters around the mixture's densities with no sampler (rws_ref.checking.adapters);
- ``no parameters``: Pyro's NormalNormal test model — a scalar latent, θ = {} — with a reparameterized guide;
- ``clusters``, ``two-layer``: tests/outside_models.py (learned means; a two-layer belief net);
- ``mixture, MLP guide``: the built-in mixture with a network guide.
"""
import numpy as np

import rws_ref
from rws_ref.checking import adapters

from outside_models import ClusterGuide, Clusters, ScalarNormal, ScalarNormalGuide, TwoLayerGuide, TwoLayerNet


class UndeclaredMix:
    """A user's discrete model written to docs/protocol.md: support() on the model, no z_domain anywhere
    (the latent is then handed over as float64, and the guide declares no finite domain of its own)."""
    theta_shapes, z_shape, x_shape = {"means": (3,)}, (), ()

    def init_theta(self, rng):
        return {"means": np.array([-2.0, 0.0, 2.0])}

    def sample(self, theta, n, rng):
        z = rng.integers(0, 3, n)
        return z, theta["means"][z] + rng.standard_normal(n)

    def log_joint(self, theta, z, x):
        z = np.asarray(z, dtype=int)
        return np.log(1 / 3) - 0.5 * (x - theta["means"][z]) ** 2 - 0.5 * np.log(2 * np.pi)

    def grad_log_joint(self, theta, z, x, weights):
        z = np.asarray(z, dtype=int)
        return {"means": np.bincount(z.ravel(), (weights * (x - theta["means"][z])).ravel(), 3)}

    def support(self):
        return np.arange(3)


class UndeclaredGuide:
    phi_shapes, z_shape, x_shape = {"w": (3,), "c": (3,)}, (), ()

    def init_phi(self, rng):
        return {"w": np.array([-1.0, 0.0, 1.0]), "c": np.zeros(3)}

    def _log_q(self, phi, x):
        a = phi["w"] * np.asarray(x)[:, None] + phi["c"]
        return a - np.logaddexp.reduce(a, axis=1, keepdims=True)

    def sample(self, phi, x, K, rng):
        p = np.exp(self._log_q(phi, x))
        return np.minimum((rng.random((K, len(x), 1)) > np.cumsum(p, axis=1)).sum(-1), 2)

    def log_prob(self, phi, z, x):
        z = np.asarray(z, dtype=int)                      # an index: only the declared states are valid
        return self._log_q(phi, x)[np.arange(len(x))[None, :], z]

    def grad_log_prob(self, phi, z, x, weights):
        z = np.asarray(z, dtype=int)
        p = np.exp(self._log_q(phi, x))
        G = -weights.sum(0)[:, None] * p
        np.add.at(G, (np.broadcast_to(np.arange(len(x)), z.shape), z), weights)
        return {"w": np.asarray(x) @ G, "c": G.sum(0)}


def densities_only():
    """The four-component mixture as densities only: adapters with log densities and weighted gradients, no
    sampler and no init (the dreams and the sampler checks are then not applicable)."""
    mix, cat = rws_ref.GaussianMixture(4, scale=6.0), rws_ref.SoftmaxLinearGuide(4, loc=15.0, scale=10.0)
    model = adapters.Model(mix.theta_shapes, (), (), mix.log_joint, mix.grad_log_joint, z_domain=4,
                           support=mix.support, sample=None, init_theta=mix.init_theta)
    guide = adapters.Guide(cat.phi_shapes, (), (), cat.log_prob, cat.grad_log_prob, z_domain=4,
                           init_phi=cat.init_phi)
    return model, guide


VARIANTS = {
    "undeclared domain": lambda: (UndeclaredMix(), UndeclaredGuide()),
    "densities only": densities_only,
    "no parameters": lambda: (ScalarNormal(), ScalarNormalGuide()),
    "clusters": lambda: (Clusters(3), ClusterGuide(3)),
    "two-layer": lambda: (TwoLayerNet(), TwoLayerGuide()),
    "mixture, MLP guide": lambda: (rws_ref.GaussianMixture(4, scale=6.0),
                                   rws_ref.MLPGuide(4, (5,), loc=15.0, scale=10.0)),
}


def own_densities(entry, model, guide):
    """rws_ref's function of ``entry`` in the form without model and guide (a user's code with densities of its
    own), or None for a signature without them."""
    if entry.signature.names[:2] != ("model", "guide") and entry.signature.name != "dreams":
        return None
    if entry.signature.name == "dreams":
        return lambda phi, dream_z, dream_x: entry.function(guide, phi, dream_z, dream_x)
    n = len(entry.signature.names) - 2
    fn = {4: lambda a, b, c, d: entry.function(model, guide, a, b, c, d),
          5: lambda a, b, c, d, e: entry.function(model, guide, a, b, c, d, e),
          7: lambda a, b, c, d, e, f, g: entry.function(model, guide, a, b, c, d, e, f, g)}[n]
    return fn

