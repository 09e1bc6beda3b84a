"""The linear-Gaussian model and its diagonal-Gaussian guide.

Model (``LinearGaussian(dz, dx)``)::

    p_θ(z)   = N(z; mu, I)                           z ∈ R^dz
    p_θ(x|z) = N(x; W z + b, D),  D = diag(σ²),  σ = exp(log_sigma)

Guide (``DiagonalGaussianGuide(dz, dx)``)::

    q_φ(z|x) = N(z; A x + c, diag(s²)),  s = exp(log_s)

Each density is written once, in ``log_joint_vjp`` / ``log_prob_vjp``: the
forward pass returns the log density and its pullback (the weighted-sum
gradient), side by side.  The closed forms that judge these densities (the
posterior, KL divergences, ELBO_1 and its gradients, the φ targets) live in
:mod:`rws_ref.models.linear_gaussian_exact`, derived from the Gaussian moments
rather than from this code; their names are also reachable from this module.

Notation: r = x − W z − b (the residual), P = I + Wᵀ D⁻¹ W (posterior
precision), S = P⁻¹, m(x) = S (mu + Wᵀ D⁻¹ (x − b)), μ_q(x) = A x + c.
"""
import numpy as np

from .._checks import check_count, check_dim, check_draws, check_rng, renamed
from ..numerics import LOG_2PI, array_module
from ..protocol import Guide, Model, validate_x, validate_z
from . import linear_gaussian_exact as closed

# the closed forms keep their historical address rws_ref.models.linear_gaussian.<name>
from .linear_gaussian_exact import (  # noqa: F401
    elbo1,
    exclusive_optimal_phi,
    expected_kl,
    grad_elbo1,
    kl_grad_phi,
    kl_guide_posterior,
    kl_posterior_guide,
    moment_matched_phi,
    sleep_target,
)

__all__ = ["LinearGaussian", "DiagonalGaussianGuide"]


class LinearGaussian(Model):
    """p_θ(z, x) = N(z; mu, I) · N(x; W z + b, diag(exp(2·log_sigma))).

    Parameters
    ----------
    dz, dx : int
        Latent and observed dimensions.

    Notes
    -----
    θ keys and shapes: ``mu`` (dz,), ``W`` (dx, dz), ``b`` (dx,),
    ``log_sigma`` (dx,).  With mu = 0 and a shared sigma this is
    probabilistic PCA.  Capabilities: ``log_marginal``, ``posterior``,
    ``kl_grad_phi`` and ``sleep_target`` (closed forms with
    :class:`DiagonalGaussianGuide`), ``grad_z_log_joint`` (reparameterization).
    """

    closed_forms = closed.MODEL_FAMILY       # the closed forms of linear_gaussian_exact hold for it

    def __init__(self, dz, dx):
        self.dz = check_dim(dz, "dz")
        self.dx = check_dim(dx, "dx")
        self.z_shape = (self.dz,)
        self.x_shape = (self.dx,)
        self.theta_shapes = {"mu": (self.dz,), "W": (self.dx, self.dz),
                             "b": (self.dx,), "log_sigma": (self.dx,)}

    def __repr__(self):
        return f"LinearGaussian(dz={self.dz}, dx={self.dx})"

    def init_theta(self, rng):
        """Random θ: mu, b ~ N(0, 1), W ~ N(0, 1/dz), log_sigma ~ N(0, 0.1²)."""
        check_rng(rng)
        return {"mu": rng.standard_normal(self.dz),
                "W": rng.standard_normal((self.dx, self.dz)) / np.sqrt(self.dz),
                "b": rng.standard_normal(self.dx),
                "log_sigma": 0.1 * rng.standard_normal(self.dx)}

    def sample(self, theta, n, rng):
        """Draw (z, x) ~ p_θ(z, x): z of shape (n, dz), x of shape (n, dx)."""
        theta = self.check_theta(theta)
        n = check_count(n, "n")
        check_draws(n, (self.dz + self.dx,), f"sampling n = {n} pairs (z, x)")
        check_rng(rng)
        z = theta["mu"] + rng.standard_normal((n, self.dz))
        noise = rng.standard_normal((n, self.dx)) * np.exp(theta["log_sigma"])
        return z, z @ theta["W"].T + theta["b"] + noise

    def log_joint_vjp(self, theta, z, x):
        """log p_θ(z_kn, x_n) (K, N) and its pullback ω ↦ ∇_θ Σ ω log p.  Trusts its input.

        log p = −½|z − mu|² − ½ Σ_j r_j² / σ_j² − Σ_j log σ_j − ½ (dz + dx) log 2π,
        and with ω the weights::

            d mu        = Σ ω (z − mu)
            d W         = Σ ω (r / σ²) zᵀ
            d b         = Σ ω  r / σ²
            d log_sigma = Σ ω (r² / σ² − 1)
        """
        xp = array_module(z, *theta.values())                   # autograd.numpy while traced, else NumPy
        k, n = z.shape[:2]
        z2 = z.reshape(k * n, self.dz)                  # 2-D views; einsum for the squares: no temporaries
        r2 = ((x - theta["b"]) - (z2 @ theta["W"].T).reshape(k, n, self.dx)).reshape(k * n, self.dx)
        inv_var = xp.exp(-2.0 * theta["log_sigma"])
        d = z2 - theta["mu"]
        log_p = (-0.5 * (xp.einsum("ij,ij->i", d, d) + xp.einsum("ij,ij,j->i", r2, r2, inv_var))
                 - theta["log_sigma"].sum() - 0.5 * (self.dz + self.dx) * LOG_2PI)

        def pullback(weights):
            w = weights.reshape(-1)
            u = r2 * w[:, None]                                          # ω r, (K·N, dx)
            return {"mu": w @ d,
                    "W": inv_var[:, None] * (u.T @ z2),
                    "b": inv_var * u.sum(axis=0),
                    "log_sigma": inv_var * np.einsum("ij,ij->j", u, r2) - w.sum()}
        return log_p.reshape(k, n), pullback

    def grad_z_log_joint(self, theta, z, x):
        """∇_z log p_θ(z, x) per particle: −(z − mu) + Wᵀ (r / σ²).  Shape (K, N, dz).

        Used by the reparameterized estimators (path derivatives).
        """
        theta, z, x = self._inputs(theta, z, x)
        r = x - z @ theta["W"].T - theta["b"]
        return -(z - theta["mu"]) + (r * np.exp(-2.0 * theta["log_sigma"])) @ theta["W"]

    # -- exact capabilities -----------------------------------------------------------

    def log_marginal(self, theta, x):
        """log p_θ(x_n) for x (N, dx): x ~ N(W mu + b, W Wᵀ + D).  Returns (N,)."""
        theta, x = self.check_theta(theta), validate_x(self, x)
        mean, cov = self.marginal(theta)
        chol = np.linalg.cholesky(cov)
        white = np.linalg.solve(chol, (x - mean).T)              # (dx, N)
        log_det = 2.0 * np.sum(np.log(np.diag(chol)))
        return -0.5 * (np.sum(white ** 2, axis=0) + log_det + self.dx * LOG_2PI)

    def marginal(self, theta):
        """Mean (dx,) and covariance (dx, dx) of p_θ(x): W mu + b and W Wᵀ + D."""
        theta = self.check_theta(theta)
        W = theta["W"]
        return W @ theta["mu"] + theta["b"], W @ W.T + np.diag(np.exp(2.0 * theta["log_sigma"]))

    def posterior(self, theta, x):
        """Exact posterior p_θ(z|x_n) = N(m(x_n), S).

        Returns
        -------
        m : ndarray (N, dz)
            S (mu + Wᵀ D⁻¹ (x − b)).
        S : ndarray (dz, dz)
            (I + Wᵀ D⁻¹ W)⁻¹, the same for every x.
        """
        return closed.posterior(self.check_theta(theta), validate_x(self, x))

    def kl_grad_phi(self, guide, theta, phi, x):
        """∇_φ (1/N) Σ_n KL(p_θ(z|x_n) ‖ q_φ(z|x_n)) in closed form (descent of the KL)."""
        return closed.kl_grad_phi(self, guide, theta, phi, x)

    def sleep_target(self, guide, theta, phi):
        """∇_φ E_{p_θ(x)} KL(p_θ(z|x) ‖ q_φ(z|x)) in closed form (descent of the KL)."""
        return closed.sleep_target(self, guide, theta, phi)


class DiagonalGaussianGuide(Guide):
    """q_φ(z|x) = N(z; A x + c, diag(exp(2·log_s))).

    Parameters
    ----------
    dz, dx : int
        Latent and observed dimensions.

    Notes
    -----
    φ keys and shapes: ``A`` (dz, dx), ``c`` (dz,), ``log_s`` (dz,).
    Reparameterizable: ``reparameterize``, ``grad_z_log_prob``, ``pull_back``.
    """

    closed_forms = closed.GUIDE_FAMILY

    def __init__(self, dz, dx):
        self.dz = check_dim(dz, "dz")
        self.dx = check_dim(dx, "dx")
        self.z_shape = (self.dz,)
        self.x_shape = (self.dx,)
        self.phi_shapes = {"A": (self.dz, self.dx), "c": (self.dz,), "log_s": (self.dz,)}

    def __repr__(self):
        return f"DiagonalGaussianGuide(dz={self.dz}, dx={self.dx})"

    def init_phi(self, rng):
        """Random φ: A ~ N(0, 0.1²/dx), c = 0, log_s = 0."""
        check_rng(rng)
        return {"A": 0.1 * rng.standard_normal((self.dz, self.dx)) / np.sqrt(self.dx),
                "c": np.zeros(self.dz), "log_s": np.zeros(self.dz)}

    def mean(self, phi, x):
        """μ_q(x) = A x + c for x (N, dx); returns (N, dz)."""
        return closed.guide_mean(self.check_phi(phi), validate_x(self, x))

    def sample(self, phi, x, K, rng):
        """K independent particles per datapoint, z ~ q_φ(·|x): shape (K, N, dz)."""
        phi, x = self.check_phi(phi), validate_x(self, x)
        K = check_count(K, "K")
        check_draws(K * x.shape[0], (self.dz,), f"K = {K} particles for N = {x.shape[0]} datapoints")
        check_rng(rng)
        z = rng.standard_normal((K, x.shape[0], self.dz))
        z *= np.exp(phi["log_s"])                  # in place: one (K, N, dz) array, no temporaries
        z += closed.guide_mean(phi, x)
        return z

    def log_prob_vjp(self, phi, z, x):
        """log q_φ(z_kn | x_n) (K, N) and its pullback ω ↦ ∇_φ Σ ω log q.  Trusts its input.

        log q = −½ Σ_i e_i² / s_i² − Σ log s − ½ dz log 2π with e = z − A x − c, and::

            d A     = Σ ω (e / s²) xᵀ
            d c     = Σ ω  e / s²
            d log_s = Σ ω (e² / s² − 1)
        """
        xp = array_module(z, *phi.values())
        k, n = z.shape[:2]
        e = z - closed.guide_mean(phi, x)
        inv_var = xp.exp(-2.0 * phi["log_s"])
        e2 = e.reshape(k * n, self.dz)
        log_q = -0.5 * xp.einsum("ij,ij,j->i", e2, e2, inv_var) - phi["log_s"].sum() - 0.5 * self.dz * LOG_2PI

        def pullback(weights):
            we = np.einsum("kn,knd->nd", weights, e)                     # Σ_k ω e, (N, dz)
            return {"A": inv_var[:, None] * (we.T @ x),
                    "c": inv_var * we.sum(axis=0),
                    "log_s": inv_var * np.einsum("i,ij,ij->j", weights.reshape(-1), e2, e2) - weights.sum()}
        return log_q.reshape(k, n), pullback

    # -- reparameterization -------------------------------------------------------------

    def reparameterize(self, phi, x, eps):
        """z = A x + c + s ⊙ ε for base noise ε (K, N, dz) ~ N(0, I): shape (K, N, dz)."""
        phi, x = self.check_phi(phi), validate_x(self, x)
        eps = validate_z(self, eps, x.shape[0], name="eps")
        return closed.guide_mean(phi, x) + array_module(*phi.values()).exp(phi["log_s"]) * eps

    def grad_z_log_prob(self, phi, z, x):
        """∇_z log q_φ(z|x) per particle at fixed φ: −(z − A x − c) / s².  Shape (K, N, dz)."""
        phi, z, x = self._inputs(phi, z, x)
        return -(z - closed.guide_mean(phi, x)) * np.exp(-2.0 * phi["log_s"])

    def pull_back(self, phi, x, eps, v):
        """Σ_{k,n} (∂z_kn/∂φ)ᵀ v_kn for z = A x + c + s ε: the chain rule through the particles.

        With z_i = (A x + c)_i + s_i ε_i::

            d A     = Σ_{k,n} v_kn x_nᵀ
            d c     = Σ_{k,n} v_kn
            d log_s = Σ_{k,n} v_kn ⊙ s ε_kn

        Parameters
        ----------
        v : ndarray (K, N, dz), e.g. weighted ∂ log w / ∂z.

        Returns
        -------
        dict with φ's keys.
        """
        phi, x = self.check_phi(phi), validate_x(self, x)
        eps = validate_z(self, eps, x.shape[0], name="eps")
        v = validate_z(self, v, x.shape[0], name="v")
        if v.shape != eps.shape:
            raise ValueError(f"v must have the shape of eps {eps.shape}; got {v.shape}")
        v_sum = v.sum(axis=0)                                       # (N, dz)
        return {"A": v_sum.T @ x, "c": v_sum.sum(axis=0),
                "log_s": np.exp(phi["log_s"]) * np.einsum("knd,knd->d", v, eps)}


#: grad_kl_phi, the former name of kl_grad_phi
__getattr__ = renamed(__name__, {"grad_kl_phi": "kl_grad_phi"})
