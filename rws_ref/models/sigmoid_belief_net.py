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

from .._checks import check_count, check_dim, check_draws, check_memory, check_rng
from ..numerics import array_module, log1m_sigmoid, logsumexp, sigmoid, softmax
from ..protocol import Guide, Model, validate_x

__all__ = ["SigmoidBeliefNet", "BernoulliGuide", "binary_states"]


def binary_states(d):
    """All 2^d binary vectors, shape (2^d, d), in counting order (bit i of the index)."""
    check_memory(8 * 2.0 ** d * d * 3, f"enumerating the 2^{d} binary states")
    return ((np.arange(2 ** d)[:, None] >> np.arange(d)) & 1).astype(np.float64)


def _log_bernoulli(y, logits):
    # log Bernoulli(y; sigmoid(l)) = y·l + log(1 − sigmoid(l)), summed over the last axis
    return (y * logits + log1m_sigmoid(logits)).sum(axis=-1)


class SigmoidBeliefNet(Model):
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
        self.z_domain = self.x_domain = "binary"
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

    def sample(self, theta, n, rng):
        """Draw (z, x) ~ p_θ: float 0/1 arrays z (n, dz), x (n, dx)."""
        theta = self.check_theta(theta)
        n = check_count(n, "n")
        check_draws(n, (self.dz + self.dx,), f"sampling n = {n} pairs (z, x)")
        check_rng(rng)
        z = (rng.random((n, self.dz)) < sigmoid(theta["b_z"])).astype(np.float64)
        x = (rng.random((n, self.dx)) < sigmoid(z @ theta["W"].T + theta["b_x"])).astype(np.float64)
        return z, x

    def log_joint_vjp(self, theta, z, x):
        """log p_θ(z_kn, x_n) (K, N) and its pullback ω ↦ ∇_θ Σ ω log p.  Trusts its input.

        With a = W z + b_x::

            d b_z = Σ ω (z − sigmoid(b_z))
            d W   = Σ ω (x − sigmoid(a)) zᵀ
            d b_x = Σ ω (x − sigmoid(a))
        """
        xp = array_module(*theta.values())
        a = xp.dot(z, xp.transpose(theta["W"])) + theta["b_x"]
        log_p = _log_bernoulli(z, theta["b_z"]) + _log_bernoulli(x, a)

        def pullback(weights):
            delta = (weights[..., None] * (x - sigmoid(a))).reshape(-1, self.dx)
            w_flat, z_flat = weights.reshape(-1), z.reshape(-1, self.dz)
            return {"b_z": w_flat @ z_flat - w_flat.sum() * sigmoid(theta["b_z"]),
                    "W": delta.T @ z_flat,
                    "b_x": delta.sum(axis=0)}
        return log_p, pullback

    def _table(self, theta, x):
        """log p_θ(s, x_n) for every state s, (S, N), as one product: with A = S Wᵀ + b_x (S, dx),
        log p(x | s) = x · A_s + Σ_d log(1 − sigmoid(A_sd)) — no (S, N, dx) array."""
        theta, x = self.check_theta(theta), validate_x(self, x)
        states = self.support()
        a = states @ theta["W"].T + theta["b_x"]                                  # (S, dx)
        return (_log_bernoulli(states, theta["b_z"]) + log1m_sigmoid(a).sum(axis=-1))[:, None] + a @ x.T

    def log_marginal(self, theta, x):
        """log p_θ(x_n) by summing over the 2^dz latent states.  Returns (N,)."""
        return logsumexp(self._table(theta, x), axis=0)

    def posterior(self, theta, x):
        """Exact posterior table p_θ(z = support()[s] | x_n), shape (N, 2^dz)."""
        return softmax(self._table(theta, x), axis=0).T


class BernoulliGuide(Guide):
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
        self.z_domain = self.x_domain = "binary"
        self.phi_shapes = {"A": (self.dz, self.dx), "c": (self.dz,)}

    def __repr__(self):
        return f"BernoulliGuide(dz={self.dz}, dx={self.dx})"

    def init_phi(self, rng):
        """Random φ: A ~ N(0, 0.1²), c = 0."""
        check_rng(rng)
        return {"A": 0.1 * rng.standard_normal((self.dz, self.dx)), "c": np.zeros(self.dz)}

    def probs(self, phi, x):
        """q_φ(z_i = 1 | x_n), shape (N, dz)."""
        phi, x = self.check_phi(phi), validate_x(self, x)
        return sigmoid(x @ phi["A"].T + phi["c"])

    def sample(self, phi, x, K, rng):
        """K independent particles per datapoint: float 0/1 array (K, N, dz)."""
        p = self.probs(phi, x)
        K = check_count(K, "K")
        check_draws(K * p.shape[0], (self.dz,), f"K = {K} particles for N = {p.shape[0]} datapoints")
        check_rng(rng)
        return (rng.random((K,) + p.shape) < p).astype(np.float64)

    def log_prob_vjp(self, phi, z, x):
        """log q_φ(z_kn | x_n) (K, N) and its pullback ω ↦ ∇_φ Σ ω log q.  Trusts its input.

        G_n = Σ_k ω_kn (z_kn − sigmoid(A x_n + c)),  d A = Σ_n G_n x_nᵀ,  d c = Σ_n G_n.
        """
        xp = array_module(*phi.values())
        logits = xp.dot(x, xp.transpose(phi["A"])) + phi["c"]

        def pullback(weights):
            G = np.einsum("kn,kni->ni", weights, z) - weights.sum(axis=0)[:, None] * sigmoid(logits)
            return {"A": G.T @ x, "c": G.sum(axis=0)}
        return _log_bernoulli(z, logits), pullback
