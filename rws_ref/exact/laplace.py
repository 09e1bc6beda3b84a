"""The Laplace route: exact moments of self-normalized estimators at any K, no enumeration.

For ĝ = Σ_k w̄_k F(z_k) (wake-θ, wake-φ), with the weights w and
L(t) = E_q e^{−t w}, the identities 1/a = ∫ e^{−ta} dt and 1/a² = ∫ t e^{−ta} dt
over t ∈ (0, ∞) give

    E ĝ    = K Σ_s q_s w_s F_s ∫ e^{−t w_s} L(t)^{K−1} dt
    E ĝ ĝᵀ = K Σ_s q_s w_s² F_s F_sᵀ ∫ t e^{−t w_s} L(t)^{K−1} dt
           + K(K−1) Σ_{s,r} q_s q_r w_s w_r F_s F_rᵀ ∫ t e^{−t(w_s + w_r)} L(t)^{K−2} dt

one-dimensional integrals done by adaptive quadrature to ~1e-13 relative;
F_s is the estimator's value at K = 1 with its single particle at s.  On a
finite support (``moments(..., method="laplace")``) the sums over s are exact;
for a scalar continuous latent (:func:`scalar_laplace`) they are Gauss–Hermite
sums, and Frullani's integral gives ELBO_IS itself.
"""
import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from numpy.polynomial.legendre import leggauss
from scipy import integrate
from scipy.integrate import quad_vec

from .. import protocol
from .._checks import check_count
from .._trees import flatten, unflatten
from ..numerics import logsumexp

__all__ = ["scalar_laplace", "laplace_moments", "MAX_LOG_WEIGHT_SPAN", "NEGLIGIBLE"]

#: the widest spread of log-weights (nats) over the states the guide draws that the route integrates: the
#: largest t it reaches is 45 / (smallest weight scaled to max 1), which must stay below float64's 1.8e308
MAX_LOG_WEIGHT_SPAN = 700
#: states beyond that span are given weight 0 when all K particles land on them with at most this probability
NEGLIGIBLE = 1e-15


def _laplace_integrals(q, w, K):
    """I1_s = ∫ w_s e^{−t w_s} L^{K−1} dt,  I2_s = ∫ t w_s² e^{−t w_s} L^{K−1} dt,
    I3_sr = ∫ t w_s w_r e^{−t(w_s+w_r)} L^{K−2} dt over t ∈ (0, ∞), L(t) = Σ q e^{−t w}.

    Weighted by w so that each is at most 1 whatever the spread of the weights.
    The integrands are bumps at t ≈ 1/w_s on scales from 1/K to 1/min(w), so
    the integral runs over y = log t (exact Gauss–Legendre on [0, t_lo] below).
    """
    S = len(w)
    with np.errstate(divide="ignore"):
        log_w = np.log(w)
    pair_log_w = log_w[:, None] + log_w[None, :]
    pair_sum = w[:, None] + w[None, :]

    def g(t):
        # in log space: products of two small weights (w_s w_r < 1e-308 when both are below 1e-154) would
        # underflow to 0 and drop the event that every particle lands on small-weight states
        log_t, log_lap = np.log(t), np.log(q @ np.exp(-t * w))
        first = np.exp(log_w - t * w + (K - 1) * log_lap)
        second = np.exp(log_t + 2 * log_w - t * w + (K - 1) * log_lap)
        third = (np.exp(log_t + pair_log_w - t * pair_sum + (K - 2) * log_lap).reshape(-1) if K >= 2
                 else np.zeros(0))
        return np.concatenate([first, second, third])

    t_lo = 1e-6 / K                                   # below it g is smooth and nearly constant
    nodes, weights = leggauss(8)
    head = sum(wt * g(0.5 * t_lo * (nd + 1.0)) for nd, wt in zip(nodes, weights)) * 0.5 * t_lo
    t_hi = 45.0 / np.min(w[w > 0])                    # e^{−45} ≈ 3e-20 beyond it
    body, _ = quad_vec(lambda y: g(np.exp(y)) * np.exp(y), np.log(t_lo), np.log(t_hi),
                       epsabs=0.0, epsrel=1e-13, norm="max", limit=10_000)
    total = head + body
    return total[:S], total[S:2 * S], total[2 * S:].reshape(S, S) if K >= 2 else None


def _frullani(prob, omega, K):
    """E log((1/K) Σ_k ω_k) for i.i.d. ω with law Σ_i prob_i δ(ω_i) and E ω = 1:
    ∫_0^∞ (e^{−t} − L(t/K)^K) / t dt with L(t) = Σ_i prob_i e^{−t ω_i} (Frullani).
    The integrand tends to 0 at t = 0 because E ω = 1."""
    centred = omega - 1.0

    log_prob = np.log(prob)

    def integrand(t):
        # e^{−t} − L(t/K)^K = −e^{−t} expm1(K log M(u)), u = t/K, M(u) = E e^{−u(ω−1)}:
        # for small u, M = 1 + O(u²) and log1p/expm1 keep large K from cancelling to
        # noise; for u ≥ 1 the same difference in log space cannot overflow
        if t == 0.0:
            return 0.0
        u = t / K
        if u < 1.0:
            log_m = np.log1p(prob @ np.expm1(-u * centred))
            return -np.exp(-t) * np.expm1(K * log_m) / t
        log_m = logsumexp(log_prob - u * centred, axis=0)
        return (np.exp(-t) - np.exp(K * log_m - t)) / t
    value, _ = integrate.quad(integrand, 0.0, np.inf, limit=500, epsabs=1e-13, epsrel=1e-12)
    return value


def scalar_laplace(model, guide, theta, phi, x, K, estimator=None, nodes=120):
    """ELBO_IS, and optionally an estimator's mean and variance, at any K for a scalar
    continuous latent: a model with the capabilities ``posterior`` (its variance bounds the
    weights) and ``log_marginal``, and z_shape (1,), with a Gaussian guide that declares
    ``closed_forms = "diagonal-gaussian"`` (mean ``guide.mean(phi, x)``, scale
    exp(phi["log_s"])) — ``LinearGaussian(1, dx)`` with ``DiagonalGaussianGuide(1, dx)``.

    No Monte Carlo: expectations over q_φ(·|x_n) are Gauss–Hermite sums with
    ``nodes`` points, and the K-particle law enters through the Laplace
    transform of the weights (see the module docstring), so

        ELBO_IS(K) − log p(x) = ∫_0^∞ (e^{−t} − L(t/K)^K) / t dt,  L(t) = E_q e^{−t ω},

    with ω = p_θ(z|x)/q_φ(z|x).  The estimator must be self-normalized,
    Σ_k w̄_k F(z_k) (wake-θ, wake-φ).  The guide must be wider than the
    posterior (s² > posterior variance) so that ω is bounded and the
    quadrature converges; otherwise ValueError.

    Returns
    -------
    dict with "elbo_is" (N,), "chi2" (N,) — χ²(p ‖ q) = E_q ω² − 1 — and, with an
    estimator, "mean" and "var" (dicts, of the batch estimate) and "c1" (dict,
    the coefficient of its 1/K bias, −(1/N) Σ_n E_q[ω² (F − E_p F)]).
    """
    protocol.check_pair(model, guide)
    missing = [f"model.{m}" for m in ("posterior", "log_marginal") if not callable(getattr(model, m, None))]
    if getattr(guide, "closed_forms", None) != "diagonal-gaussian" or not callable(getattr(guide, "mean", None)):
        missing.append("a diagonal-Gaussian guide (closed_forms = 'diagonal-gaussian', guide.mean)")
    if missing or tuple(model.z_shape) != (1,):
        raise TypeError(f"scalar_laplace needs a scalar latent (z_shape (1,); got {tuple(model.z_shape)}) and "
                        f"{', '.join(missing) or 'nothing more'}; e.g. LinearGaussian(1, dx) with "
                        f"DiagonalGaussianGuide(1, dx)")
    theta = protocol.validate_params(theta, model.theta_shapes, "theta")
    phi = protocol.validate_params(phi, guide.phi_shapes, "phi")
    x = protocol.validate_x(model, x)
    K = check_count(K, "K")
    nodes = check_count(nodes, "nodes", minimum=8)
    _, S = model.posterior(theta, x)
    s2 = float(np.exp(2.0 * phi["log_s"][0]))
    if not s2 > S[0, 0]:
        raise ValueError(f"phi['log_s']: the guide variance {s2:.4g} must exceed the posterior variance "
                         f"{S[0, 0]:.4g} for bounded weights")
    xi, gh = hermegauss(nodes)
    prob, log_px = gh / np.sqrt(2.0 * np.pi), model.log_marginal(theta, x)
    per_point = [_scalar_point(model, guide, theta, phi, x[n:n + 1], log_px[n], np.sqrt(s2) * xi, prob, K,
                               estimator) for n in range(x.shape[0])]
    out = {"elbo_is": np.array([p[0] for p in per_point]), "chi2": np.array([p[1] for p in per_point])}
    if estimator is not None:
        like, n_data = per_point[0][2], x.shape[0]
        out.update(mean=unflatten(sum(p[3] for p in per_point) / n_data, like),
                   var=unflatten(sum(p[4] for p in per_point) / n_data ** 2, like),
                   c1=unflatten(sum(p[5] for p in per_point) / n_data, like))
    return out


def _scalar_point(model, guide, theta, phi, x_n, log_px, offsets, prob, K, estimator):
    """One datapoint of :func:`scalar_laplace`: (ELBO_IS, χ², and with an estimator its
    key layout, mean, variance and c₁ term), the Gauss–Hermite nodes used as particles."""
    nodes = len(prob)
    z = (guide.mean(phi, x_n)[0, 0] + offsets).reshape(-1, 1, 1)
    xs, zs = np.repeat(x_n, nodes, axis=0), z.reshape(1, nodes, 1)
    log_omega = (model.log_joint(theta, zs, xs) - guide.log_prob(phi, zs, xs))[0] - log_px
    omega = np.exp(log_omega)
    bound, chi2 = log_px + _frullani(prob, omega, K), prob @ omega ** 2 - 1.0
    if estimator is None:
        return bound, chi2
    rows = [estimator(model, guide, theta, phi, x_n, zi[None]) for zi in z]
    F = np.stack([flatten(r, rows[0]) for r in rows])
    # the far Gauss–Hermite nodes' weights underflow (to 0, or to a subnormal whose 1/w overflows the
    # quadrature's range to inf): the same span rule as on a finite support, in log space
    with np.errstate(divide="ignore"):
        log_prob = np.log(prob)
    mean, var = _moments(prob, _scaled_weights(log_omega, log_prob, K, 0), F, K, covariance=False)
    c1 = -(prob * omega ** 2) @ (F - (prob * omega) @ F)
    return bound, chi2, rows[0], mean, var, c1


def _moments(q, w, F, K, covariance):
    """Mean and (co)variance of Σ_k w̄_k F(z_k), z_k i.i.d. from Σ_s q_s δ_s, by the Laplace route;
    w are the weights scaled to max 1, F (S, P) the values."""
    I1, I2, I3 = _laplace_integrals(q, w, K)
    mean = K * (q * I1) @ F
    diag_weights = K * q * I2
    B = K * (K - 1) * np.outer(q, q) * I3 if K >= 2 else None
    if covariance:
        second = (F * diag_weights[:, None]).T @ F + (F.T @ B @ F if B is not None else 0.0)
        return mean, second - np.outer(mean, mean)
    second = diag_weights @ F ** 2 + (np.einsum("sp,sr,rp->p", F, B, F) if B is not None else 0.0)
    return mean, second - mean ** 2


def _scaled_weights(log_w, log_q, K, n):
    """The weights scaled to max 1 for :func:`_moments`.  States more than MAX_LOG_WEIGHT_SPAN nats below the
    largest weight get weight 0 when the guide puts so little mass q₀ on them that all K particles land there
    with probability q₀^K ≤ NEGLIGIBLE — the only event in which their weights would count, so the mean moves by
    at most q₀^K·max|F| and the second moment by q₀^K·max|F|²; otherwise the datapoint is refused."""
    drawn = np.isfinite(log_q)
    top = np.max(log_w[drawn])
    far = drawn & (log_w < top - MAX_LOG_WEIGHT_SPAN)
    if far.any():
        q_far = float(np.sum(np.exp(log_q[far])))
        if q_far ** K > NEGLIGIBLE:
            span = float(top - np.min(log_w[drawn]))
            raise ValueError(f"datapoint {n}: the weights p/q of the states the guide can draw span {span:.0f} "
                             f"nats, more than the {MAX_LOG_WEIGHT_SPAN} the Laplace route integrates in float64, "
                             f"and the guide puts {q_far:.3g} of its mass beyond that (all K = {K} particles "
                             f"land there with probability {q_far ** K:.3g}); use method='tables' (enumeration) "
                             f"at this K, or a guide closer to the posterior")
    return np.where(far, 0.0, np.exp(np.minimum(log_w - top, 0.0)))


def laplace_moments(estimator, e, K, covariance):
    """Exact mean and variance of a self-normalized estimator on an enumerated problem ``e``
    (:class:`~rws_ref.exact.enumeration.Enumerated`) at any K, by the Laplace route."""
    total_mean, total_var, like = 0.0, 0.0, None
    for n in range(e.n_data):
        rows = [estimator(e.model, e.guide, e.theta, e.phi, e.x[n:n + 1], s[None, None]) for s in e.states]
        like = rows[0]
        F = np.stack([flatten(r, like) for r in rows])                    # (S, P)
        log_w = e.log_p[:, n] - e.log_q[:, n]
        mean, var = _moments(np.exp(e.log_q[:, n]), _scaled_weights(log_w, e.log_q[:, n], K, n), F, K, covariance)
        total_mean = total_mean + mean / e.n_data
        total_var = total_var + var / e.n_data ** 2
    return unflatten(total_mean, like), (total_var if covariance else unflatten(total_var, like))
