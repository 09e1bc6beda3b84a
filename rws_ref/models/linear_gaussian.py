"""The linear-Gaussian model, its diagonal-Gaussian guide, and their closed forms.

Model (``LinearGaussian(dz, dx)``)::

    p_θ(z)   = N(z; mu, I)                           z ∈ R^dz
    p_θ(x|z) = N(x; W z + b, D),  D = diag(σ²),  σ = exp(log_sigma)

Guide (``DiagonalGaussianGuide(dz, dx)``)::

    q_φ(z|x) = N(z; A x + c, diag(s²)),  s = exp(log_s)

Everything about this pair is Gaussian, so the posterior, the marginal
likelihood, both KL divergences, the K = 1 bound ELBO_1 with its gradients
and the sleep target have closed forms.  They live in this file, next to the
densities they are derived from, and are the oracle the tests hold the
estimators to.

Notation used in the docstrings: r = x − W z − b (the residual),
P = I + Wᵀ D⁻¹ W (posterior precision), S = P⁻¹ (posterior covariance),
m(x) = S (mu + Wᵀ D⁻¹ (x − b)) (posterior mean), μ_q(x) = A x + c.
"""
import autograd.numpy as anp
import numpy as np

from .._checks import (check_count, check_data, check_dim, check_params,
                       check_particles, check_rng, check_weights)
from ..numerics import LOG_2PI

__all__ = [
    "LinearGaussian",
    "DiagonalGaussianGuide",
    "kl_posterior_guide",
    "kl_guide_posterior",
    "elbo1",
    "grad_elbo1",
    "grad_kl_phi",
    "expected_kl",
    "sleep_target",
    "moment_matched_phi",
    "exclusive_optimal_phi",
]


class LinearGaussian:
    """p_θ(z, x) = N(z; mu, I) · N(x; W z + b, diag(exp(2·log_sigma))).

    Parameters
    ----------
    dz, dx : int
        Latent and observed dimensions.

    Notes
    -----
    θ keys and shapes: ``mu`` (dz,), ``W`` (dx, dz), ``b`` (dx,),
    ``log_sigma`` (dx,).  With mu = 0 and a shared sigma this is
    probabilistic PCA.  Every method is a pure function of its arguments.
    """

    def __init__(self, dz, dx):
        self.dz = check_dim(dz, "dz")
        self.dx = check_dim(dx, "dx")
        self.z_shape = (self.dz,)
        self.x_shape = (self.dx,)
        self.theta_shapes = {"mu": (self.dz,), "W": (self.dx, self.dz),
                             "b": (self.dx,), "log_sigma": (self.dx,)}

    def __repr__(self):
        return f"LinearGaussian(dz={self.dz}, dx={self.dx})"

    # -- parameters and sampling -------------------------------------------------

    def init_theta(self, rng):
        """Random θ: mu, b ~ N(0, 1), W ~ N(0, 1/dz), log_sigma ~ N(0, 0.1²)."""
        check_rng(rng)
        return {"mu": rng.standard_normal(self.dz),
                "W": rng.standard_normal((self.dx, self.dz)) / np.sqrt(self.dz),
                "b": rng.standard_normal(self.dx),
                "log_sigma": 0.1 * rng.standard_normal(self.dx)}

    def check_theta(self, theta):
        """Validate θ (keys, shapes, finiteness); return float64 copies."""
        return check_params(theta, self.theta_shapes, "theta")

    def sample(self, theta, n, rng):
        """Draw (z, x) ~ p_θ(z, x): z of shape (n, dz), x of shape (n, dx)."""
        theta = self.check_theta(theta)
        n = check_count(n, "n")
        check_rng(rng)
        z = theta["mu"] + rng.standard_normal((n, self.dz))
        noise = rng.standard_normal((n, self.dx)) * np.exp(theta["log_sigma"])
        return z, z @ theta["W"].T + theta["b"] + noise

    # -- densities -----------------------------------------------------------------

    def check_batch(self, x, z):
        """Validate data x (N, dx) and particles z (K, N, dz); return float64 arrays."""
        x = check_data(x, self.x_shape)
        return x, check_particles(z, x.shape[0], self.z_shape)

    def log_joint(self, theta, z, x):
        """log p_θ(z_kn, x_n) for particles z (K, N, dz) and data x (N, dx).

        Returns
        -------
        ndarray (K, N)
            −½|z − mu|² − ½ Σ_j r_j² / σ_j² − Σ_j log σ_j − ½ (dz + dx) log 2π.
        """
        theta = self.check_theta(theta)
        x, z = self.check_batch(x, z)
        return self._log_joint(theta, z, x)

    def _log_joint(self, theta, z, x):
        # Unchecked and autograd-traceable: the autograd route differentiates this.
        r = x - anp.matmul(z, anp.transpose(theta["W"])) - theta["b"]
        prior = -0.5 * anp.sum((z - theta["mu"]) ** 2, axis=-1)
        lik = (-0.5 * anp.sum(r ** 2 * anp.exp(-2.0 * theta["log_sigma"]), axis=-1)
               - anp.sum(theta["log_sigma"]))
        return prior + lik - 0.5 * (self.dz + self.dx) * LOG_2PI

    def _forward(self, theta, z, x):
        # Unchecked, plain NumPy: log p and the residual r, kept for the gradient.
        # Products on 2-D views (faster than stacked 3-D matmul) and one scratch
        # buffer for the squares.
        inv_var = np.exp(-2.0 * theta["log_sigma"])
        k, n = z.shape[:2]
        z_flat = z.reshape(-1, self.dz)
        r = (z_flat @ theta["W"].T).reshape(k, n, self.dx)
        np.subtract(x, r, out=r)
        r -= theta["b"]
        d = z - theta["mu"]
        d *= d
        log_p = d.reshape(-1, self.dz).sum(axis=1).reshape(k, n)
        sq = np.multiply(r, r, out=d if self.dx == self.dz else None)
        log_p += (sq.reshape(-1, self.dx) @ inv_var).reshape(k, n)
        log_p *= -0.5
        log_p -= np.sum(theta["log_sigma"]) + 0.5 * (self.dz + self.dx) * LOG_2PI
        return log_p, (r, inv_var)

    def _backward(self, theta, z, x, weights, cache):
        # Unchecked: the weighted-sum gradient from the residual of _forward.
        r, inv_var = cache
        w_flat = weights.reshape(-1)
        z_flat, r_flat = z.reshape(-1, self.dz), r.reshape(-1, self.dx)
        u = r_flat * w_flat[:, None]                               # ω r, (K·N, dx)
        total = w_flat.sum()
        return {"mu": w_flat @ z_flat - total * theta["mu"],
                "W": inv_var[:, None] * (u.T @ z_flat),
                "b": inv_var * u.sum(axis=0),
                "log_sigma": inv_var * np.einsum("ij,ij->j", u, r_flat) - total}

    def grad_log_joint(self, theta, z, x, weights):
        """∇_θ Σ_{k,n} weights[k,n] · log p_θ(z_kn, x_n), as one weighted sum.

        With ω = weights, r = x − W z − b, σ² = exp(2·log_sigma)::

            d mu        = Σ ω (z − mu)
            d W         = Σ ω (r / σ²) zᵀ
            d b         = Σ ω  r / σ²
            d log_sigma = Σ ω (r² / σ² − 1)

        Returns
        -------
        dict with θ's keys and shapes.  It is the plain gradient of the
        weighted log joint (an ascent direction of that sum).
        """
        theta = self.check_theta(theta)
        x, z = self.check_batch(x, z)
        w = check_weights(weights, z.shape[:2])
        return self._backward(theta, z, x, w, self._forward(theta, z, x)[1])

    def grad_z_log_joint(self, theta, z, x):
        """∇_z log p_θ(z, x) per particle: −(z − mu) + Wᵀ (r / σ²).  Shape (K, N, dz).

        Used by the reparameterized estimators (path derivatives); a per-particle
        array of the size of z, not a per-particle parameter gradient.
        """
        theta = self.check_theta(theta)
        x = check_data(x, self.x_shape)
        z = check_particles(z, x.shape[0], self.z_shape)
        r = x - z @ theta["W"].T - theta["b"]
        return -(z - theta["mu"]) + (r * np.exp(-2.0 * theta["log_sigma"])) @ theta["W"]

    # -- closed forms ----------------------------------------------------------------

    def log_marginal(self, theta, x):
        """log p_θ(x_n) for x (N, dx): x ~ N(W mu + b, W Wᵀ + D).  Returns (N,)."""
        theta = self.check_theta(theta)
        x = check_data(x, self.x_shape)
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
        theta = self.check_theta(theta)
        x = check_data(x, self.x_shape)
        return _posterior(theta, x)


def _posterior(theta, x):
    W, inv_var = theta["W"], np.exp(-2.0 * theta["log_sigma"])
    precision = np.eye(W.shape[1]) + W.T @ (inv_var[:, None] * W)
    S = np.linalg.inv(precision)
    S = 0.5 * (S + S.T)
    m = (theta["mu"] + (x - theta["b"]) @ (inv_var[:, None] * W)) @ S
    return m, S



class DiagonalGaussianGuide:
    """q_φ(z|x) = N(z; A x + c, diag(exp(2·log_s))).

    Parameters
    ----------
    dz, dx : int
        Latent and observed dimensions.

    Notes
    -----
    φ keys and shapes: ``A`` (dz, dx), ``c`` (dz,), ``log_s`` (dz,).
    """

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

    def check_phi(self, phi):
        """Validate φ (keys, shapes, finiteness); return float64 copies."""
        return check_params(phi, self.phi_shapes, "phi")

    def mean(self, phi, x):
        """μ_q(x) = A x + c for x (N, dx); returns (N, dz)."""
        phi = self.check_phi(phi)
        x = check_data(x, self.x_shape)
        return x @ phi["A"].T + phi["c"]

    def sample(self, phi, x, K, rng):
        """K independent particles per datapoint, z ~ q_φ(·|x): shape (K, N, dz)."""
        phi = self.check_phi(phi)
        x = check_data(x, self.x_shape)
        K = check_count(K, "K")
        check_rng(rng)
        eps = rng.standard_normal((K, x.shape[0], self.dz))
        return x @ phi["A"].T + phi["c"] + np.exp(phi["log_s"]) * eps

    def reparameterize(self, phi, x, eps):
        """z = A x + c + s ⊙ ε for base noise ε (K, N, dz) ~ N(0, I): shape (K, N, dz)."""
        phi = self.check_phi(phi)
        x = check_data(x, self.x_shape)
        eps = check_particles(eps, x.shape[0], self.z_shape, name="eps")
        return self._reparameterize(phi, x, eps)

    def _reparameterize(self, phi, x, eps):
        # Unchecked and autograd-traceable.
        return anp.matmul(x, anp.transpose(phi["A"])) + phi["c"] + anp.exp(phi["log_s"]) * eps

    def grad_z_log_prob(self, phi, z, x):
        """∇_z log q_φ(z|x) per particle at fixed φ: −(z − A x − c) / s².  Shape (K, N, dz)."""
        phi = self.check_phi(phi)
        x = check_data(x, self.x_shape)
        z = check_particles(z, x.shape[0], self.z_shape)
        return -(z - x @ phi["A"].T - phi["c"]) * np.exp(-2.0 * phi["log_s"])

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
        phi = self.check_phi(phi)
        x = check_data(x, self.x_shape)
        eps = check_particles(eps, x.shape[0], self.z_shape, name="eps")
        v = check_particles(v, x.shape[0], self.z_shape, name="v")
        if v.shape != eps.shape:
            raise ValueError(f"v must have the shape of eps {eps.shape}; got {v.shape}")
        v_sum = v.sum(axis=0)                                       # (N, dz)
        return {"A": v_sum.T @ x, "c": v_sum.sum(axis=0),
                "log_s": np.exp(phi["log_s"]) * np.einsum("knd,knd->d", v, eps)}

    def log_prob(self, phi, z, x):
        """log q_φ(z_kn | x_n) for z (K, N, dz), x (N, dx); returns (K, N)."""
        phi = self.check_phi(phi)
        x = check_data(x, self.x_shape)
        z = check_particles(z, x.shape[0], self.z_shape)
        return self._log_prob(phi, z, x)

    def _log_prob(self, phi, z, x):
        # Unchecked and autograd-traceable: the autograd route differentiates this.
        e = z - anp.matmul(x, anp.transpose(phi["A"])) - phi["c"]
        return (-0.5 * anp.sum(e ** 2 * anp.exp(-2.0 * phi["log_s"]), axis=-1)
                - anp.sum(phi["log_s"]) - 0.5 * self.dz * LOG_2PI)

    def _forward(self, phi, z, x):
        # Unchecked, plain NumPy: log q and the residual e = z − A x − c for the gradient.
        inv_var = np.exp(-2.0 * phi["log_s"])
        k, n = z.shape[:2]
        e = z - (x @ phi["A"].T + phi["c"])
        log_q = ((e * e).reshape(-1, self.dz) @ inv_var).reshape(k, n)
        log_q *= -0.5
        log_q -= np.sum(phi["log_s"]) + 0.5 * self.dz * LOG_2PI
        return log_q, (e, inv_var)

    def _backward(self, phi, z, x, weights, cache):
        e, inv_var = cache
        we = np.einsum("kn,knd->nd", weights, e)                 # Σ_k ω e, (N, dz)
        return {"A": inv_var[:, None] * (we.T @ x),
                "c": inv_var * we.sum(axis=0),
                "log_s": inv_var * np.einsum("kn,knd,knd->d", weights, e, e) - weights.sum()}

    def grad_log_prob(self, phi, z, x, weights):
        """∇_φ Σ_{k,n} weights[k,n] · log q_φ(z_kn | x_n), as one weighted sum.

        With ω = weights, e = z − A x − c, s² = exp(2·log_s)::

            d A     = Σ ω (e / s²) xᵀ
            d c     = Σ ω  e / s²
            d log_s = Σ ω (e² / s² − 1)

        Returns
        -------
        dict with φ's keys and shapes: the plain gradient of the weighted
        log density (its ascent direction; the φ estimators negate it).
        """
        phi = self.check_phi(phi)
        x = check_data(x, self.x_shape)
        z = check_particles(z, x.shape[0], self.z_shape)
        w = check_weights(weights, z.shape[:2])
        return self._backward(phi, z, x, w, self._forward(phi, z, x)[1])


# -- closed forms that involve the guide ---------------------------------------------


def _check_pair(model, guide, theta, phi, x=None):
    if not isinstance(model, LinearGaussian):
        raise TypeError(f"model must be a LinearGaussian; got {type(model).__name__}")
    if not isinstance(guide, DiagonalGaussianGuide):
        raise TypeError(f"guide must be a DiagonalGaussianGuide; got {type(guide).__name__}")
    if (guide.dz, guide.dx) != (model.dz, model.dx):
        raise ValueError(f"guide dimensions (dz, dx) = {(guide.dz, guide.dx)} must match "
                         f"the model's {(model.dz, model.dx)}")
    theta, phi = model.check_theta(theta), guide.check_phi(phi)
    if x is None:
        return theta, phi
    return theta, phi, check_data(x, model.x_shape)


def kl_posterior_guide(model, guide, theta, phi, x):
    """KL(p_θ(z|x_n) ‖ q_φ(z|x_n)) per datapoint, the inclusive KL.  Returns (N,).

    ½ [ Σ_i (S_ii + (m_i − μ_q,i)²) / s_i² − dz + Σ_i log s_i² − log det S ].
    """
    theta, phi, x = _check_pair(model, guide, theta, phi, x)
    m, S = _posterior(theta, x)
    inv_var = np.exp(-2.0 * phi["log_s"])
    diff = m - (x @ phi["A"].T + phi["c"])
    _, log_det_S = np.linalg.slogdet(S)
    return 0.5 * (np.sum((np.diag(S) + diff ** 2) * inv_var, axis=1) - model.dz
                  + 2.0 * np.sum(phi["log_s"]) - log_det_S)


def kl_guide_posterior(model, guide, theta, phi, x):
    """KL(q_φ(z|x_n) ‖ p_θ(z|x_n)) per datapoint, the exclusive KL.  Returns (N,).

    ½ [ tr(P diag s²) + (μ_q − m)ᵀ P (μ_q − m) − dz + log det S − Σ_i log s_i² ].
    """
    theta, phi, x = _check_pair(model, guide, theta, phi, x)
    m, S = _posterior(theta, x)
    P = np.linalg.inv(S)
    s2 = np.exp(2.0 * phi["log_s"])
    diff = x @ phi["A"].T + phi["c"] - m
    _, log_det_S = np.linalg.slogdet(S)
    return 0.5 * (np.diag(P) @ s2 + np.einsum("ni,ij,nj->n", diff, P, diff) - model.dz
                  + log_det_S - 2.0 * np.sum(phi["log_s"]))


def elbo1(model, guide, theta, phi, x):
    """ELBO_1(θ, φ, x_n) = E_q[log p_θ(z, x_n)] + H(q_φ(·|x_n)), the K = 1 bound.  (N,).

    Computed directly from the Gaussian moments (not as log p − KL, so the
    identity ELBO_1 = log p_θ(x) − KL(q ‖ p) is a test, not a tautology)::

        −½ (|μ_q − mu|² + Σ s²) − ½ Σ_j (r̄_j² + Σ_i W_ji² s_i²) / σ_j²
        − Σ log σ + Σ log s + ½ dz − ½ dx log 2π,      r̄ = x − W μ_q − b.
    """
    theta, phi, x = _check_pair(model, guide, theta, phi, x)
    W, s2 = theta["W"], np.exp(2.0 * phi["log_s"])
    inv_var = np.exp(-2.0 * theta["log_sigma"])
    mu_q = x @ phi["A"].T + phi["c"]
    r_bar = x - mu_q @ W.T - theta["b"]
    lik = -0.5 * ((r_bar ** 2 + (W ** 2) @ s2) @ inv_var) - np.sum(theta["log_sigma"])
    prior = -0.5 * (np.sum((mu_q - theta["mu"]) ** 2, axis=1) + np.sum(s2))
    return prior + lik + np.sum(phi["log_s"]) + 0.5 * model.dz - 0.5 * model.dx * LOG_2PI


def grad_elbo1(model, guide, theta, phi, x):
    """Exact gradients of the batch mean (1/N) Σ_n ELBO_1(θ, φ, x_n).

    θ (ascent of the bound), with r̄ = x − W μ_q − b::

        d mu        = μ_q − mu
        d W         = (r̄ μ_qᵀ − W diag s²) / σ²        (row j divided by σ_j²)
        d b         = r̄ / σ²
        d log_sigma = (r̄² + W² s²) / σ² − 1

    φ (also the plain gradient of the bound, i.e. its ascent direction —
    the bound is maximized in φ too), through μ_q = A x + c::

        d μ_q   = P (m − μ_q),  d A = d μ_q xᵀ,  d c = d μ_q
        d log_s = 1 − s² diag P

    each averaged over the batch.

    Returns
    -------
    (dtheta, dphi) : dicts with θ's and φ's keys and shapes.
    """
    theta, phi, x = _check_pair(model, guide, theta, phi, x)
    n = x.shape[0]
    W, s2 = theta["W"], np.exp(2.0 * phi["log_s"])
    inv_var = np.exp(-2.0 * theta["log_sigma"])
    mu_q = x @ phi["A"].T + phi["c"]
    r_bar = x - mu_q @ W.T - theta["b"]
    dtheta = {"mu": np.mean(mu_q, axis=0) - theta["mu"],
              "W": inv_var[:, None] * (r_bar.T @ mu_q / n - W * s2),
              "b": inv_var * np.mean(r_bar, axis=0),
              "log_sigma": inv_var * (np.mean(r_bar ** 2, axis=0) + (W ** 2) @ s2) - 1.0}
    m, S = _posterior(theta, x)
    P = np.eye(model.dz) + W.T @ (inv_var[:, None] * W)
    d_mu_q = (m - mu_q) @ P                                     # rows P (m − μ_q), P symmetric
    dphi = {"A": d_mu_q.T @ x / n, "c": np.mean(d_mu_q, axis=0),
            "log_s": 1.0 - s2 * np.diag(P)}
    return dtheta, dphi


def grad_kl_phi(model, guide, theta, phi, x):
    """∇_φ (1/N) Σ_n KL(p_θ(z|x_n) ‖ q_φ(z|x_n)) — the wake-φ target (descent of the KL).

    Per datapoint, with m, S the exact posterior::

        d μ_q   = (μ_q − m) / s²,  d A = d μ_q xᵀ,  d c = d μ_q
        d log_s = 1 − (S_ii + (m_i − μ_q,i)²) / s_i²

    Returns
    -------
    dict with φ's keys and shapes.
    """
    theta, phi, x = _check_pair(model, guide, theta, phi, x)
    n = x.shape[0]
    m, S = _posterior(theta, x)
    inv_var = np.exp(-2.0 * phi["log_s"])
    diff = x @ phi["A"].T + phi["c"] - m                         # μ_q − m, (N, dz)
    d_mu_q = diff * inv_var
    return {"A": d_mu_q.T @ x / n, "c": np.mean(d_mu_q, axis=0),
            "log_s": 1.0 - inv_var * (np.diag(S) + np.mean(diff ** 2, axis=0))}


def _residual_moments(model, theta, phi):
    # e = z − A x − c under (z, x) ~ p_θ: its mean ē, E[e xᵀ], the mean x̄ of x,
    # and E[e²] (diagonal of E[e eᵀ]).
    W, mu, A, c = theta["W"], theta["mu"], phi["A"], phi["c"]
    x_bar, C = model.marginal(theta)
    e_bar = mu - A @ x_bar - c
    e_x = W.T - A @ C + np.outer(e_bar, x_bar)
    cov_e = np.eye(model.dz) - A @ W - W.T @ A.T + A @ C @ A.T
    return e_bar, e_x, np.diag(cov_e) + e_bar ** 2


def expected_kl(model, guide, theta, phi):
    """E_{x ~ p_θ(x)} KL(p_θ(z|x) ‖ q_φ(z|x)), in closed form.  A float.

    Equals E_{p_θ(z,x)}[−log q_φ(z|x)] − E_x H(p_θ(z|x))
    = ½ Σ_i E[e_i²] / s_i² + Σ log s − ½ dz − ½ log det S, with e = z − A x − c.
    """
    theta, phi = _check_pair(model, guide, theta, phi)
    _, _, e2 = _residual_moments(model, theta, phi)
    _, S = _posterior(theta, np.zeros((1, model.dx)))
    _, log_det_S = np.linalg.slogdet(S)
    return float(0.5 * np.sum(e2 * np.exp(-2.0 * phi["log_s"])) + np.sum(phi["log_s"])
                 - 0.5 * model.dz - 0.5 * log_det_S)


def sleep_target(model, guide, theta, phi):
    """∇_φ E_{p_θ(x)} KL(p_θ(z|x) ‖ q_φ(z|x)) — the sleep-φ target (descent of the KL).

    The expectation over x is exact: with e = z − A x − c under the joint
    Gaussian p_θ(z, x), ē = mu − A x̄ − c, x̄ = W mu + b, C = W Wᵀ + D::

        E[e xᵀ] = Wᵀ − A C + ē x̄ᵀ
        E[e²]   = diag(I − A W − Wᵀ Aᵀ + A C Aᵀ) + ē²
        d A     = −E[e xᵀ] / s²   (row i divided by s_i²)
        d c     = −ē / s²
        d log_s = 1 − E[e²] / s²

    Returns
    -------
    dict with φ's keys and shapes.
    """
    theta, phi = _check_pair(model, guide, theta, phi)
    e_bar, e_x, e2 = _residual_moments(model, theta, phi)
    inv_var = np.exp(-2.0 * phi["log_s"])
    return {"A": -inv_var[:, None] * e_x, "c": -inv_var * e_bar, "log_s": 1.0 - inv_var * e2}


def moment_matched_phi(model, theta):
    """The φ minimizing E_{p_θ(x)} KL(p ‖ q): μ_q(x) = m(x) and s² = diag S.

    Because m(x) = S WᵀD⁻¹ x + S (mu − WᵀD⁻¹ b) is affine in x, the guide
    family holds it exactly: A = S Wᵀ D⁻¹, c = S (mu − Wᵀ D⁻¹ b),
    log_s = ½ log diag S.  It is also the minimizer of the inclusive KL
    for every single x.
    """
    theta = model.check_theta(theta)
    W, inv_var = theta["W"], np.exp(-2.0 * theta["log_sigma"])
    _, S = _posterior(theta, np.zeros((1, model.dx)))
    A = S @ W.T * inv_var
    return {"A": A, "c": S @ theta["mu"] - A @ theta["b"], "log_s": 0.5 * np.log(np.diag(S))}


def exclusive_optimal_phi(model, theta):
    """The φ maximizing ELBO_1 (minimizing KL(q ‖ p)): the same mean map as
    :func:`moment_matched_phi`, but s² = 1 / diag P, P = S⁻¹ the posterior precision.
    """
    theta = model.check_theta(theta)
    phi = moment_matched_phi(model, theta)
    W, inv_var = theta["W"], np.exp(-2.0 * theta["log_sigma"])
    P = np.eye(model.dz) + W.T @ (inv_var[:, None] * W)
    phi["log_s"] = -0.5 * np.log(np.diag(P))
    return phi
