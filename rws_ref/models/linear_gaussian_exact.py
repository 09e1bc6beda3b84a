"""Closed forms for the linear-Gaussian pair: the oracle that judges its estimators.

``LinearGaussian`` with ``DiagonalGaussianGuide`` (rws_ref.models.linear_gaussian)
is Gaussian throughout, so the posterior, both KL divergences, the K = 1
bound ELBO_1 with its gradients and the φ targets have closed forms.  They are
derived here from the moments, not from the densities' code, so a test that
compares the two is a test of both.

Notation: P = I + Wᵀ D⁻¹ W (posterior precision), S = P⁻¹, m(x) the
posterior mean, μ_q(x) = A x + c, s = exp(log_s), σ = exp(log_sigma).
"""
import numpy as np

from .._checks import renamed
from ..numerics import LOG_2PI
from ..protocol import validate_params, validate_x

__all__ = ["ppca_max_log_likelihood", "ppca_max_likelihood_theta", "kl_posterior_guide", "kl_guide_posterior",
           "elbo1", "grad_elbo1", "kl_grad_phi", "expected_kl", "sleep_target",
           "moment_matched_phi", "exclusive_optimal_phi", "check_closed_form_pair",
           "guide_mean", "posterior_precision", "posterior"]

#: the declarations (``closed_forms = …``) by which a model and a guide say their densities are
#: exactly those these closed forms are derived for (docs/protocol.md)
MODEL_FAMILY, GUIDE_FAMILY = "linear-gaussian", "diagonal-gaussian"


def guide_mean(phi, x):
    """μ_q(x) = A x + c for x (N, dx): (N, dz).  Traceable by autograd."""
    return x @ phi["A"].T + phi["c"]


def posterior_precision(theta):
    """P = I + Wᵀ D⁻¹ W, D = diag(σ²): the precision of p_θ(z|x), the same for every x."""
    W = theta["W"]
    return np.eye(W.shape[1]) + W.T @ (np.exp(-2.0 * theta["log_sigma"])[:, None] * W)


def posterior(theta, x):
    """p_θ(z|x_n) = N(m(x_n), S): m (N, dz) = S (mu + Wᵀ D⁻¹ (x − b)) and S = P⁻¹ (dz, dz)."""
    W, inv_var = theta["W"], np.exp(-2.0 * theta["log_sigma"])
    S = np.linalg.inv(posterior_precision(theta))
    S = 0.5 * (S + S.T)
    m = (theta["mu"] + (x - theta["b"]) @ (inv_var[:, None] * W)) @ S
    return m, S



def check_closed_form_pair(model, guide, theta, phi, x=None):
    """The closed forms hold for this pair: both declare the family (``closed_forms``), their
    dimensions agree, and θ, φ (and x) are valid.  Returns the validated (θ, φ[, x])."""
    if getattr(model, "closed_forms", None) != MODEL_FAMILY:
        raise TypeError(f"model must be a linear-Gaussian model (declaring closed_forms = {MODEL_FAMILY!r}, "
                        f"e.g. LinearGaussian); got {type(model).__name__}")
    if getattr(guide, "closed_forms", None) != GUIDE_FAMILY:
        raise TypeError(f"guide must be a diagonal-Gaussian guide (declaring closed_forms = {GUIDE_FAMILY!r}, "
                        f"e.g. DiagonalGaussianGuide); got {type(guide).__name__}")
    if (guide.dz, guide.dx) != (model.dz, model.dx):
        raise ValueError(f"guide dimensions (dz, dx) = {(guide.dz, guide.dx)} must match "
                         f"the model's {(model.dz, model.dx)}")
    theta = validate_params(theta, model.theta_shapes, "theta")
    phi = validate_params(phi, guide.phi_shapes, "phi")
    if x is None:
        return theta, phi
    return theta, phi, validate_x(model, x)



def kl_posterior_guide(model, guide, theta, phi, x):
    """KL(p_θ(z|x_n) ‖ q_φ(z|x_n)) per datapoint, the inclusive KL.  Returns (N,).

    ½ [ Σ_i (S_ii + (m_i − μ_q,i)²) / s_i² − dz + Σ_i log s_i² − log det S ].
    """
    theta, phi, x = check_closed_form_pair(model, guide, theta, phi, x)
    m, S = posterior(theta, x)
    inv_var = np.exp(-2.0 * phi["log_s"])
    diff = m - (guide_mean(phi, x))
    _, log_det_S = np.linalg.slogdet(S)
    return 0.5 * (np.sum((np.diag(S) + diff ** 2) * inv_var, axis=1) - model.dz
                  + 2.0 * np.sum(phi["log_s"]) - log_det_S)


def kl_guide_posterior(model, guide, theta, phi, x):
    """KL(q_φ(z|x_n) ‖ p_θ(z|x_n)) per datapoint, the exclusive KL.  Returns (N,).

    ½ [ tr(P diag s²) + (μ_q − m)ᵀ P (μ_q − m) − dz + log det S − Σ_i log s_i² ].
    """
    theta, phi, x = check_closed_form_pair(model, guide, theta, phi, x)
    m, S = posterior(theta, x)
    P = np.linalg.inv(S)
    s2 = np.exp(2.0 * phi["log_s"])
    diff = guide_mean(phi, x) - m
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
    theta, phi, x = check_closed_form_pair(model, guide, theta, phi, x)
    W, s2 = theta["W"], np.exp(2.0 * phi["log_s"])
    inv_var = np.exp(-2.0 * theta["log_sigma"])
    mu_q = guide_mean(phi, x)
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
    theta, phi, x = check_closed_form_pair(model, guide, theta, phi, x)
    n = x.shape[0]
    W, s2 = theta["W"], np.exp(2.0 * phi["log_s"])
    inv_var = np.exp(-2.0 * theta["log_sigma"])
    mu_q = guide_mean(phi, x)
    r_bar = x - mu_q @ W.T - theta["b"]
    dtheta = {"mu": np.mean(mu_q, axis=0) - theta["mu"],
              "W": inv_var[:, None] * (r_bar.T @ mu_q / n - W * s2),
              "b": inv_var * np.mean(r_bar, axis=0),
              "log_sigma": inv_var * (np.mean(r_bar ** 2, axis=0) + (W ** 2) @ s2) - 1.0}
    m, S = posterior(theta, x)
    P = posterior_precision(theta)
    d_mu_q = (m - mu_q) @ P                                     # rows P (m − μ_q), P symmetric
    dphi = {"A": d_mu_q.T @ x / n, "c": np.mean(d_mu_q, axis=0),
            "log_s": 1.0 - s2 * np.diag(P)}
    return dtheta, dphi


def kl_grad_phi(model, guide, theta, phi, x):
    """∇_φ (1/N) Σ_n KL(p_θ(z|x_n) ‖ q_φ(z|x_n)) — the wake-φ target (descent of the KL).

    Per datapoint, with m, S the exact posterior::

        d μ_q   = (μ_q − m) / s²,  d A = d μ_q xᵀ,  d c = d μ_q
        d log_s = 1 − (S_ii + (m_i − μ_q,i)²) / s_i²

    Returns
    -------
    dict with φ's keys and shapes.
    """
    theta, phi, x = check_closed_form_pair(model, guide, theta, phi, x)
    n = x.shape[0]
    m, S = posterior(theta, x)
    inv_var = np.exp(-2.0 * phi["log_s"])
    diff = guide_mean(phi, x) - m                         # μ_q − m, (N, dz)
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
    theta, phi = check_closed_form_pair(model, guide, theta, phi)
    _, _, e2 = _residual_moments(model, theta, phi)
    _, S = posterior(theta, np.zeros((1, model.dx)))
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
    theta, phi = check_closed_form_pair(model, guide, theta, phi)
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
    theta = validate_params(theta, model.theta_shapes, "theta")
    W, inv_var = theta["W"], np.exp(-2.0 * theta["log_sigma"])
    _, S = posterior(theta, np.zeros((1, model.dx)))
    A = S @ W.T * inv_var
    return {"A": A, "c": S @ theta["mu"] - A @ theta["b"], "log_s": 0.5 * np.log(np.diag(S))}


def exclusive_optimal_phi(model, theta):
    """The φ maximizing ELBO_1 (minimizing KL(q ‖ p)): the same mean map as
    :func:`moment_matched_phi`, but s² = 1 / diag P, P = S⁻¹ the posterior precision.
    """
    theta = validate_params(theta, model.theta_shapes, "theta")
    phi = moment_matched_phi(model, theta)
    phi["log_s"] = -0.5 * np.log(np.diag(posterior_precision(theta)))
    return phi


def ppca_max_log_likelihood(x, dz):
    """The maximum mean log-likelihood of probabilistic PCA with dz components on data x (N, dx),
    Tipping & Bishop (1999): with sample-covariance eigenvalues λ₁ ≥ … ≥ λ_d and σ²_ML the mean
    of the d − dz smallest, −½ [d log 2π + Σ_{i≤dz} log λ_i + (d − dz) log σ²_ML + d]."""
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[1]
    lam = np.sort(np.linalg.eigvalsh(np.cov(x.T, bias=True)))[::-1]
    s2 = lam[dz:].mean()
    return -0.5 * (d * LOG_2PI + np.sum(np.log(lam[:dz])) + (d - dz) * np.log(s2) + d)


def ppca_max_likelihood_theta(x, dz):
    """θ attaining it in the LinearGaussian parameterization: mu = 0, b = the data mean,
    W = U (Λ − σ² I)^{1/2} (leading eigenvectors U, eigenvalues Λ), log_sigma = ½ log σ²_ML."""
    x = np.asarray(x, dtype=np.float64)
    lam, vec = np.linalg.eigh(np.cov(x.T, bias=True))
    lam, vec = lam[::-1], vec[:, ::-1]
    s2 = lam[dz:].mean()
    return {"mu": np.zeros(dz), "W": vec[:, :dz] * np.sqrt(lam[:dz] - s2), "b": x.mean(axis=0),
            "log_sigma": np.full(x.shape[1], 0.5 * np.log(s2))}


#: the former names: check_pair (check_closed_form_pair), grad_kl_phi (kl_grad_phi)
__getattr__ = renamed(__name__, {"check_pair": "check_closed_form_pair", "grad_kl_phi": "kl_grad_phi"})
