"""A one-layer sigmoid belief net and its factorized Bernoulli guide.

Model (``SigmoidBeliefNet(dz, dx)``), binary z ∈ {0,1}^dz and x ∈ {0,1}^dx::

    p_θ(z)   = Π_i Bernoulli(z_i; sigmoid(b_z,i))
    p_θ(x|z) = Π_j Bernoulli(x_j; sigmoid(a_j)),  a = W z + b_x

Guide (``BernoulliGuide(dz, dx)``)::

    q_φ(z|x) = Π_i Bernoulli(z_i; sigmoid(l_i)),  l = A x + c

With Bernoulli(y; sigmoid(l)) written as y·l + log(1 − sigmoid(l)), every
log density is stable for any logit, and ∂/∂l = y − sigmoid(l).
Both z (2^dz states) and x (2^dx values) are small enough to enumerate:
posterior tables, log p_θ(x) and the sleep target are exact sums.
"""
import numpy as np

from .._checks import (check_binary, check_count, check_dim, check_params, check_rng,
                       check_weights)
from ..numerics import log1m_sigmoid, logsumexp, sigmoid, softmax

__all__ = ["SigmoidBeliefNet", "BernoulliGuide", "binary_states"]


def binary_states(d):
    """All 2^d binary vectors, shape (2^d, d), in counting order (bit i of the index)."""
    return ((np.arange(2 ** d)[:, None] >> np.arange(d)) & 1).astype(np.float64)


def _log_bernoulli(y, logits):
    # log Bernoulli(y; sigmoid(l)) = y·l + log(1 − sigmoid(l)), summed over the last axis
    return (y * logits + log1m_sigmoid(logits)).sum(axis=-1)


def _check_z(z, n, dz, name="z"):
    arr = np.asarray(z)
    if arr.ndim != 3 or arr.shape[1] != n or arr.shape[2] != dz:
        raise ValueError(f"{name} must have shape (K, N, {dz}) with N = {n}; got {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError(f"{name} must hold K >= 1 particles; got shape {arr.shape}")
    return check_binary(arr, f"(K, N, {dz})", arr.shape, name)


def _check_x(x, dx, name="x"):
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.shape[1] != dx:
        raise ValueError(f"{name} must have shape (N, {dx}); got {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError(f"{name} must hold at least one datapoint (N >= 1); got shape {arr.shape}")
    return check_binary(arr, f"(N, {dx})", arr.shape, name)


class SigmoidBeliefNet:
    """p_θ(z, x) = Π Bernoulli(z; sigmoid(b_z)) · Π Bernoulli(x; sigmoid(W z + b_x)).

    Parameters
    ----------
    dz, dx : int
        Numbers of latent and observed bits.

    Notes
    -----
    θ keys: ``b_z`` (dz,), ``W`` (dx, dz), ``b_x`` (dx,).  ``support()``
    lists the 2^dz latent states, ``data_support()`` the 2^dx data values.
    """

    def __init__(self, dz, dx):
        self.dz = check_dim(dz, "dz")
        self.dx = check_dim(dx, "dx")
        self.z_shape = (self.dz,)
        self.x_shape = (self.dx,)
        self.theta_shapes = {"b_z": (self.dz,), "W": (self.dx, self.dz), "b_x": (self.dx,)}

    def __repr__(self):
        return f"SigmoidBeliefNet(dz={self.dz}, dx={self.dx})"

    def support(self):
        """Every latent state, shape (2^dz, dz)."""
        return binary_states(self.dz)

    def data_support(self):
        """Every data value, shape (2^dx, dx)."""
        return binary_states(self.dx)

    def init_theta(self, rng):
        """Random θ: every entry ~ N(0, 1)."""
        check_rng(rng)
        return {key: rng.standard_normal(shape) for key, shape in self.theta_shapes.items()}

    def check_theta(self, theta):
        """Validate θ (keys, shapes, finiteness); return float64 copies."""
        return check_params(theta, self.theta_shapes, "theta")

    def sample(self, theta, n, rng):
        """Draw (z, x) ~ p_θ: float 0/1 arrays z (n, dz), x (n, dx)."""
        theta = self.check_theta(theta)
        n = check_count(n, "n")
        check_rng(rng)
        z = (rng.random((n, self.dz)) < sigmoid(theta["b_z"])).astype(np.float64)
        x = (rng.random((n, self.dx)) < sigmoid(z @ theta["W"].T + theta["b_x"])).astype(np.float64)
        return z, x

    def check_batch(self, x, z):
        """Validate binary data x (N, dx) and particles z (K, N, dz); return float64 arrays."""
        x = _check_x(x, self.dx)
        return x, _check_z(z, x.shape[0], self.dz)

    def log_joint(self, theta, z, x):
        """log p_θ(z_kn, x_n) for z (K, N, dz), x (N, dx).  Returns (K, N)."""
        theta = self.check_theta(theta)
        x, z = self.check_batch(x, z)
        return self._log_joint(theta, z, x)

    def _log_joint(self, theta, z, x):
        # Unchecked and autograd-traceable.
        a = z @ theta["W"].T + theta["b_x"]
        return _log_bernoulli(z, theta["b_z"]) + _log_bernoulli(x, a)

    def _forward(self, theta, z, x):
        a = z @ theta["W"].T + theta["b_x"]
        return _log_bernoulli(z, theta["b_z"]) + _log_bernoulli(x, a), a

    def _backward(self, theta, z, x, weights, a):
        delta = (weights[..., None] * (x - sigmoid(a))).reshape(-1, self.dx)
        w_flat = weights.reshape(-1)
        z_flat = z.reshape(-1, self.dz)
        return {"b_z": w_flat @ z_flat - w_flat.sum() * sigmoid(theta["b_z"]),
                "W": delta.T @ z_flat,
                "b_x": delta.sum(axis=0)}

    def grad_log_joint(self, theta, z, x, weights):
        """∇_θ Σ_{k,n} ω_kn log p_θ(z_kn, x_n), as weighted sums::

            d b_z = Σ ω (z − sigmoid(b_z))
            d W   = Σ ω (x − sigmoid(W z + b_x)) zᵀ
            d b_x = Σ ω (x − sigmoid(W z + b_x))

        Returns
        -------
        dict with θ's keys: the plain gradient (ascent of the weighted sum).
        """
        theta = self.check_theta(theta)
        x, z = self.check_batch(x, z)
        w = check_weights(weights, z.shape[:2])
        return self._backward(theta, z, x, w, self._forward(theta, z, x)[1])

    def _joint_table(self, theta, x):
        states = self.support()
        z = np.repeat(states[:, None, :], x.shape[0], axis=1)           # (S, N, dz)
        return self._log_joint(theta, z, x)                             # (S, N)

    def log_marginal(self, theta, x):
        """log p_θ(x_n) by summing over the 2^dz latent states.  Returns (N,)."""
        theta = self.check_theta(theta)
        x = _check_x(x, self.dx)
        return logsumexp(self._joint_table(theta, x), axis=0)

    def posterior(self, theta, x):
        """Exact posterior table p_θ(z = support()[s] | x_n), shape (N, 2^dz)."""
        theta = self.check_theta(theta)
        x = _check_x(x, self.dx)
        return softmax(self._joint_table(theta, x), axis=0).T


class BernoulliGuide:
    """q_φ(z|x) = Π_i Bernoulli(z_i; sigmoid((A x + c)_i)).

    Parameters
    ----------
    dz, dx : int

    Notes
    -----
    φ keys: ``A`` (dz, dx), ``c`` (dz,).
    """

    def __init__(self, dz, dx):
        self.dz = check_dim(dz, "dz")
        self.dx = check_dim(dx, "dx")
        self.z_shape = (self.dz,)
        self.x_shape = (self.dx,)
        self.phi_shapes = {"A": (self.dz, self.dx), "c": (self.dz,)}

    def __repr__(self):
        return f"BernoulliGuide(dz={self.dz}, dx={self.dx})"

    def init_phi(self, rng):
        """Random φ: A ~ N(0, 0.1²), c = 0."""
        check_rng(rng)
        return {"A": 0.1 * rng.standard_normal((self.dz, self.dx)), "c": np.zeros(self.dz)}

    def check_phi(self, phi):
        """Validate φ (keys, shapes, finiteness); return float64 copies."""
        return check_params(phi, self.phi_shapes, "phi")

    def probs(self, phi, x):
        """q_φ(z_i = 1 | x_n), shape (N, dz)."""
        phi = self.check_phi(phi)
        x = _check_x(x, self.dx)
        return sigmoid(x @ phi["A"].T + phi["c"])

    def sample(self, phi, x, K, rng):
        """K independent particles per datapoint: float 0/1 array (K, N, dz)."""
        p = self.probs(phi, x)
        K = check_count(K, "K")
        check_rng(rng)
        return (rng.random((K,) + p.shape) < p).astype(np.float64)

    def log_prob(self, phi, z, x):
        """log q_φ(z_kn | x_n) for z (K, N, dz), x (N, dx).  Returns (K, N)."""
        phi = self.check_phi(phi)
        x = _check_x(x, self.dx)
        z = _check_z(z, x.shape[0], self.dz)
        return self._log_prob(phi, z, x)

    def _log_prob(self, phi, z, x):
        # Unchecked and autograd-traceable.
        return _log_bernoulli(z, x @ phi["A"].T + phi["c"])

    def _forward(self, phi, z, x):
        logits = x @ phi["A"].T + phi["c"]
        return _log_bernoulli(z, logits), sigmoid(logits)

    def _backward(self, phi, z, x, weights, probs):
        G = np.einsum("kn,kni->ni", weights, z) - weights.sum(axis=0)[:, None] * probs
        return {"A": G.T @ x, "c": G.sum(axis=0)}

    def grad_log_prob(self, phi, z, x, weights):
        """∇_φ Σ_{k,n} ω_kn log q_φ(z_kn | x_n)::

            G_n = Σ_k ω_kn (z_kn − sigmoid(A x_n + c)),  d A = Σ_n G_n x_nᵀ,  d c = Σ_n G_n

        Returns
        -------
        dict with φ's keys: the plain gradient (ascent of the weighted sum).
        """
        phi = self.check_phi(phi)
        x = _check_x(x, self.dx)
        z = _check_z(z, x.shape[0], self.dz)
        w = check_weights(weights, z.shape[:2])
        return self._backward(phi, z, x, w, self._forward(phi, z, x)[1])
