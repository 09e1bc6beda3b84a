"""The exact oracle: bias and variance of estimators with no Monte Carlo error.

For a discrete latent with S states, the K particles of one datapoint are
i.i.d. draws from q_φ(·|x), and every estimator here is a symmetric
function of them.  So its law is a law over *multisets*: count vectors n
with Σ_s n_s = K, of probability  K! / Π_s n_s! · Π_s q_s^{n_s}.  There are
C(K+S−1, S−1) of them instead of S^K ordered tuples, and an expectation is
an exact finite sum.  A batch estimate is the mean of per-datapoint
estimates with independent particles, so its mean is the mean of the
per-datapoint means and its variance is (1/N²) Σ_n Var_n.

Multisets are produced in bounded chunks by unranking (the combinatorial
number system), so memory stays bounded however many there are; the count
is computed before any work and a request above ``max_terms`` is refused.

Two ways to evaluate an estimator on a chunk of M multisets:

- ``method="tables"`` (the default where it applies): the estimator is
  called once on a batch of M copies of x_n with one multiset per copy,
  with the model and guide wrapped so that ``grad_log_joint`` and
  ``grad_log_prob`` return per-copy gradients built from a table of the S
  per-state gradients.  This needs only that the estimator be a batch mean
  of per-datapoint terms that combines gradient dicts entry-wise (sums,
  scalings, negations) — true of every estimator in rws_ref.
- ``method="direct"``: one call of the estimator per multiset.  Works for
  any symmetric estimator; slower.
- ``method="laplace"``: for self-normalized estimators ĝ = Σ_k w̄_k F(z_k)
  only (wake-θ, wake-φ), exact at any K without enumeration.  With the
  weights w and L(t) = E_q e^{−t w}, the identities 1/a = ∫ e^{−ta} dt and
  1/a² = ∫ t e^{−ta} dt over t ∈ (0, ∞) give

      E ĝ    = K Σ_s q_s w_s F_s ∫ e^{−t w_s} L(t)^{K−1} dt
      E ĝ ĝᵀ = K Σ_s q_s w_s² F_s F_sᵀ ∫ t e^{−t w_s} L(t)^{K−1} dt
             + K(K−1) Σ_{s,r} q_s q_r w_s w_r F_s F_rᵀ ∫ t e^{−t(w_s + w_r)} L(t)^{K−2} dt

  one-dimensional integrals done by adaptive quadrature to ~1e-13 relative;
  F_s is the estimator's value at K = 1 with its single particle at s.
"""
import math

import autograd.numpy as anp
import numpy as np
from autograd import grad
from scipy.special import gammaln

from ._checks import check_count
from ._trees import flatten, unflatten
from .numerics import logsumexp

__all__ = ["n_multisets", "multisets", "elbo_is", "moments", "grad_elbo_is", "kl_grad_phi",
           "chi2", "wake_phi_bias_constant", "sleep_target", "sleep_moments", "scalar_laplace",
           "DEFAULT_MAX_TERMS"]

DEFAULT_MAX_TERMS = 20_000_000
_CHUNK_BYTES = 64 * 2 ** 20          # working-set target of one chunk


# -- multisets ----------------------------------------------------------------------


def n_multisets(n_states, K):
    """C(K + S − 1, S − 1): the number of multisets of K particles over S states."""
    return math.comb(K + n_states - 1, n_states - 1)


def _binomial_tables(n_states, K):
    # tables[i][c] = C(c, i) for c = 0 .. S + K − 2, i = 1 .. K, capped at 2^62: every
    # rank is below the total C(K+S−1, S−1) < 2^62, so a capped entry is never selected
    top, cap = n_states + K - 1, 2 ** 62
    return [np.array([min(math.comb(c, i), cap) for c in range(top)], dtype=np.int64)
            for i in range(K + 1)]


def _unrank(ranks, n_states, K, tables):
    """Sorted state tuples (M, K) of the given colex ranks.

    A multiset a_1 ≤ … ≤ a_K corresponds to the strictly increasing
    b_i = a_i + i − 1, whose colex rank is Σ_i C(b_i, i).
    """
    r = np.array(ranks, dtype=np.int64)
    a = np.empty((len(r), K), dtype=np.int64)
    for i in range(K, 0, -1):
        b = np.searchsorted(tables[i], r, side="right") - 1
        r -= tables[i][b]
        a[:, i - 1] = b - (i - 1)
    return a


def multisets(n_states, K, chunk_rows=None):
    """Yield all multisets of K particles over ``n_states`` states, in chunks.

    Yields
    ------
    states : int ndarray (M, K)
        Sorted state indices, one multiset per row.
    counts : int ndarray (M, S)
        Count vectors n with Σ_s n_s = K.
    log_coef : ndarray (M,)
        log K! − Σ_s log n_s!, the log multinomial coefficient.
    """
    n_states, K = check_count(n_states, "n_states"), check_count(K, "K")
    total = n_multisets(n_states, K)
    if total >= 2 ** 62:
        raise ValueError(f"{total} multisets is beyond the 64-bit ranks used here")
    rows = chunk_rows or max(1, _CHUNK_BYTES // (8 * (K + n_states) * 4))
    tables = _binomial_tables(n_states, K)
    for start in range(0, total, rows):
        a = _unrank(np.arange(start, min(start + rows, total)), n_states, K, tables)
        m = a.shape[0]
        counts = np.bincount((np.arange(m)[:, None] * n_states + a).reshape(-1),
                             minlength=m * n_states).reshape(m, n_states)
        yield a, counts, gammaln(K + 1.0) - gammaln(counts + 1.0).sum(axis=1)


def _check_size(n_states, K, n_data, max_terms):
    total = n_multisets(n_states, K) * n_data
    if total > max_terms:
        raise ValueError(
            f"exact enumeration needs {total:,} terms (C(K+S-1, S-1) = {n_multisets(n_states, K):,} "
            f"multisets for S = {n_states} states, K = {K}, times N = {n_data} datapoints), above "
            f"max_terms = {max_terms:,}; pass max_terms={total} to allow it (time grows in proportion)")
    return total


def _discrete(model, guide, theta, phi, x, K):
    if not hasattr(model, "support"):
        raise TypeError(f"model must have a finite latent support (a support() method) for exact "
                        f"enumeration; got {type(model).__name__}")
    theta, phi = model.check_theta(theta), guide.check_phi(phi)
    states = model.support()
    if np.ndim(x) < 1:
        raise ValueError(f"x must have shape (N, ...) with N >= 1 datapoints; got shape {np.shape(x)}")
    # particles listing every state for every datapoint: (S, N, *z_shape); log_joint validates x
    x = np.asarray(x)
    all_states = np.repeat(states[:, None], x.shape[0], axis=1)
    log_p = model.log_joint(theta, all_states, x)
    log_q = guide.log_prob(phi, all_states, x)
    return theta, phi, np.asarray(x, dtype=np.float64), states, all_states, log_p, log_q, check_count(K, "K")


def _log_prob_of(counts, log_coef, log_q_n):
    # log multinomial probability of each multiset under q(·|x_n); log_q_n (S,)
    return log_coef + counts @ log_q_n


# -- ELBO_IS ------------------------------------------------------------------------


def elbo_is(model, guide, theta, phi, x, K, max_terms=DEFAULT_MAX_TERMS):
    """Exact ELBO_IS(θ, φ, x_n) = E_{q^K}[log (1/K) Σ_k w_k] per datapoint.  (N,).

    Σ over multisets n of P(n) · (logsumexp_s(log n_s + log w_s) − log K).
    """
    theta, phi, x, states, _, log_p, log_q, K = _discrete(model, guide, theta, phi, x, K)
    _check_size(len(states), K, x.shape[0], max_terms)
    log_w = log_p - log_q                                             # (S, N)
    out = np.zeros(x.shape[0])
    for _, counts, log_coef in multisets(len(states), K):
        with np.errstate(divide="ignore"):
            log_counts = np.log(counts)                               # −inf where n_s = 0
        for n in range(x.shape[0]):
            prob = np.exp(_log_prob_of(counts, log_coef, log_q[:, n]))
            out[n] += prob @ logsumexp(log_counts + log_w[:, n], axis=1)
    return out - np.log(K)


def grad_elbo_is(model, guide, theta, phi, x, K, max_terms=DEFAULT_MAX_TERMS):
    """Exact ∇ of the mean bound (1/N) Σ_n ELBO_IS(θ, φ, x_n), by autograd on the enumeration.

    The independent route for the exact mean of wake-θ: the enumerated bound
    Σ_n P_φ(n) L(n; θ, φ) is differentiated in θ and in φ (through both the
    multiset probabilities and the weights).

    Returns
    -------
    (dtheta, dphi) : dicts, the plain gradients (ascent directions of the bound).
    """
    theta, phi, x, states, all_states, _, _, K = _discrete(model, guide, theta, phi, x, K)
    n_data = x.shape[0]
    _check_size(len(states), K, n_data, max_terms)

    def chunk_bound(params, counts, log_coef, log_counts):
        th, ph = params
        log_q = guide._log_prob(ph, all_states, x)                         # (S, N)
        log_w = model._log_joint(th, all_states, x) - log_q
        log_prob = log_coef[:, None] + anp.dot(counts, log_q)              # (M, N)
        bound = logsumexp(log_counts[:, :, None] + log_w[None], axis=1)    # (M, N)
        return anp.sum(anp.exp(log_prob) * bound) / n_data

    d_chunk = grad(chunk_bound)
    dtheta = {k: np.zeros_like(v) for k, v in theta.items()}
    dphi = {k: np.zeros_like(v) for k, v in phi.items()}
    # autograd keeps a few (M, S, N) arrays per chunk: size the chunks for that
    rows = max(1, _CHUNK_BYTES // (8 * 6 * len(states) * n_data))
    for _, counts, log_coef in multisets(len(states), K, rows):
        with np.errstate(divide="ignore"):
            log_counts = np.log(counts.astype(np.float64))
        g_theta, g_phi = d_chunk((theta, phi), counts.astype(np.float64), log_coef, log_counts)
        for key in dtheta:
            dtheta[key] += g_theta[key]
        for key in dphi:
            dphi[key] += g_phi[key]
    return dtheta, dphi


# -- moments of an estimator ---------------------------------------------------------


class _Accumulator:
    """Probability-weighted mean and (co)variance of rows, merged chunk by chunk (Chan et al.)."""

    def __init__(self, covariance):
        self.covariance = covariance
        self.weight, self.mean, self.m2 = 0.0, None, None

    def add(self, prob, values):
        w = prob.sum()
        if w == 0.0:
            return
        mean = prob @ values / w
        centred = values - mean
        m2 = (centred * prob[:, None]).T @ centred if self.covariance else prob @ centred ** 2
        if self.mean is None:
            self.weight, self.mean, self.m2 = w, mean, m2
            return
        delta = mean - self.mean
        total = self.weight + w
        self.mean = self.mean + delta * (w / total)
        self.m2 = self.m2 + m2 + (np.outer(delta, delta) if self.covariance else delta ** 2) * (
            self.weight * w / total)
        self.weight = total

    def result(self):
        if abs(self.weight - 1.0) > 1e-8:
            raise RuntimeError(f"multiset probabilities sum to {self.weight!r}, not 1")
        return self.mean, self.m2 / self.weight


class _TableModel:
    """Wraps a model for one datapoint x_n and one chunk of multisets.

    ``log_joint`` looks its values up in a table of the S per-state values,
    and ``grad_log_joint`` returns per-datapoint gradients (leading axis M)
    assembled from a table of the S per-state gradients: the same numbers
    the model computes, without recomputing them for every particle.
    """

    _grad_name, _density_name = "grad_log_joint", "log_joint"

    def __init__(self, inner, params, x_n, states):
        self._inner, self._params = inner, params
        self._log_density = getattr(inner, self._density_name)(
            params, states[:, None], x_n[None])[:, 0]                    # (S,)
        one = np.ones((1, 1))
        rows = [getattr(inner, self._grad_name)(params, s[None, None], x_n[None], one) for s in states]
        self._keys = list(rows[0])
        self._shapes = [np.shape(rows[0][k]) for k in self._keys]
        self._table = np.stack([flatten(r, self._keys) for r in rows])
        self._z = self._idx = None

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def bind(self, z, idx):
        self._z, self._idx = z, idx                     # particles (K, M, …) and state indices (K, M)

    def _check_same(self, params, z):
        if z is not self._z and not np.array_equal(z, self._z):
            raise RuntimeError("the estimator evaluated the model or guide at particles other than the ones it "
                               "was given; use method='direct'")
        if any(not np.array_equal(params[k], self._params[k]) for k in self._params):
            raise RuntimeError("the estimator evaluated the model or guide at other parameters; "
                               "use method='direct'")

    def _lookup(self, params, z):
        self._check_same(params, z)
        return self._log_density[self._idx]

    def _per_copy(self, params, z, weights):
        self._check_same(params, z)
        weights = np.asarray(weights, dtype=np.float64)
        m, s = self._idx.shape[1], self._table.shape[0]
        flat = (np.arange(m)[None, :] * s + self._idx).reshape(-1)
        omega = np.bincount(flat, weights=weights.reshape(-1), minlength=m * s).reshape(m, s)
        values = omega @ self._table                                 # (M, P)
        out, start = {}, 0
        for key, shape in zip(self._keys, self._shapes):
            size = int(np.prod(shape))
            out[key] = values[:, start:start + size].reshape((m,) + shape)
            start += size
        return out

    def log_joint(self, theta, z, x):
        return self._lookup(theta, z)

    def grad_log_joint(self, theta, z, x, weights):
        return self._per_copy(theta, z, weights)


class _TableGuide(_TableModel):
    _grad_name, _density_name = "grad_log_prob", "log_prob"

    def log_prob(self, phi, z, x):
        return self._lookup(phi, z)

    def grad_log_prob(self, phi, z, x, weights):
        return self._per_copy(phi, z, weights)


def moments(estimator, model, guide, theta, phi, x, K, covariance=False, method="tables",
            max_terms=DEFAULT_MAX_TERMS):
    """Exact mean and variance of ``estimator`` over z_1:K ~ q_φ^K, for discrete latents.

    Parameters
    ----------
    estimator : callable (model, guide, theta, phi, x, z) -> dict
        Any estimator symmetric in its K particles, e.g. ``rws_ref.wake_theta``.
    model, guide, theta, phi : a model with ``support()`` and its guide
    x : ndarray (N, *x_shape)
    K : int
    covariance : bool
        If True, return the full covariance over the flattened entries
        (keys in the estimator's order, each raveled in C order) instead of
        per-entry variances.
    method : "tables", "direct" or "laplace"
        How each multiset is evaluated (see the module docstring);
        "laplace" needs no enumeration and holds only for self-normalized
        estimators Σ_k w̄_k F(z_k) such as wake-θ and wake-φ.
    max_terms : int
        Refuse requests of more than this many (multiset, datapoint) terms.

    Returns
    -------
    mean : dict
        E[ĝ], the estimator's exact expectation for the batch.
    var : dict, or ndarray (P, P) if ``covariance``
        Var[ĝ] per entry (or Cov), the batch estimate's exact variance.
    """
    if method not in ("tables", "direct", "laplace"):
        raise ValueError(f"method must be 'tables', 'direct' or 'laplace'; got {method!r}")
    theta, phi, x, states, _, log_p, log_q, K = _discrete(model, guide, theta, phi, x, K)
    n_data = x.shape[0]
    if method == "laplace":
        return _laplace_moments(estimator, model, guide, theta, phi, x, K, states,
                                log_p - log_q, log_q, covariance)
    _check_size(len(states), K, n_data, max_terms)
    total_mean, total_var, like = 0.0, 0.0, None
    n_entries = sum(np.size(v) for v in theta.values()) + sum(np.size(v) for v in phi.values())
    row_bytes = 8 * (4 * K * int(np.prod(states.shape[1:], dtype=int)) + 2 * len(states) + 4 * n_entries)
    chunk_rows = max(1, _CHUNK_BYTES // row_bytes)
    for n in range(n_data):
        acc = _Accumulator(covariance)
        x_n = x[n]
        if method == "tables":
            t_model = _TableModel(model, theta, x_n, states)
            t_guide = _TableGuide(guide, phi, x_n, states)
        for a, counts, log_coef in multisets(len(states), K, chunk_rows):
            prob = np.exp(_log_prob_of(counts, log_coef, log_q[:, n]))
            z = np.moveaxis(states[a], 1, 0)                          # (K, M, *z_shape)
            m = a.shape[0]
            if method == "tables":
                t_model.bind(z, a.T)
                t_guide.bind(z, a.T)
                out = estimator(t_model, t_guide, theta, phi, np.repeat(x_n[None], m, axis=0), z)
                like = like or {k: np.zeros(np.shape(v)[1:]) for k, v in out.items()}
                for key, value in out.items():
                    if np.shape(value) != (m,) + np.shape(like[key]):
                        raise RuntimeError(f"estimator output {key!r} has shape {np.shape(value)}, not "
                                           f"per-datapoint; use method='direct'")
                values = m * np.concatenate([np.reshape(out[k], (m, -1)) for k in like], axis=1)
            else:
                rows = [estimator(model, guide, theta, phi, x_n[None], z[:, j:j + 1]) for j in range(m)]
                like = like or {k: np.zeros(np.shape(v)) for k, v in rows[0].items()}
                values = np.stack([flatten(r, like) for r in rows])
            acc.add(prob, values)
        mean_n, var_n = acc.result()
        total_mean = total_mean + mean_n / n_data
        total_var = total_var + var_n / n_data ** 2
    mean = unflatten(total_mean, like)
    return mean, (total_var if covariance else unflatten(total_var, like))


def _laplace_integrals(q, w, K):
    """I1_s = ∫ w_s e^{−t w_s} L^{K−1} dt,  I2_s = ∫ t w_s² e^{−t w_s} L^{K−1} dt,
    I3_sr = ∫ t w_s w_r e^{−t(w_s+w_r)} L^{K−2} dt over t ∈ (0, ∞), L(t) = Σ q e^{−t w}.

    Weighted by w so that each is at most 1 whatever the spread of the weights.
    The integrands are bumps at t ≈ 1/w_s on scales from 1/K to 1/min(w), so
    the integral runs over y = log t (exact Gauss–Legendre on [0, t_lo] below).
    """
    from numpy.polynomial.legendre import leggauss
    from scipy.integrate import quad_vec
    S = len(w)
    pair_w = np.outer(w, w)
    pair_sum = w[:, None] + w[None, :]

    def g(t):
        e = np.exp(-t * w)
        lap = q @ e
        first = w * e * lap ** (K - 1)
        second = t * w * first
        third = (t * pair_w * np.exp(-t * pair_sum) * lap ** (K - 2)).reshape(-1) if K >= 2 else np.zeros(0)
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
    from scipy import integrate
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
    continuous latent: ``LinearGaussian(1, dx)`` with ``DiagonalGaussianGuide(1, dx)``.

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
    from numpy.polynomial.hermite_e import hermegauss
    from .models import linear_gaussian as lg
    if not (isinstance(model, lg.LinearGaussian) and model.dz == 1):
        raise TypeError(f"model must be a LinearGaussian with dz = 1; got {model!r}")
    theta, phi, x = lg._check_pair(model, guide, theta, phi, x)
    K = check_count(K, "K")
    nodes = check_count(nodes, "nodes", minimum=8)
    _, S = model.posterior(theta, x)
    s2 = float(np.exp(2.0 * phi["log_s"][0]))
    if not s2 > S[0, 0]:
        raise ValueError(f"phi['log_s']: the guide variance {s2:.4g} must exceed the posterior variance "
                         f"{S[0, 0]:.4g} for bounded weights")
    xi, gh = hermegauss(nodes)
    prob = gh / np.sqrt(2.0 * np.pi)
    n_data, log_px = x.shape[0], model.log_marginal(theta, x)
    out = {"elbo_is": np.empty(n_data), "chi2": np.empty(n_data)}
    total_mean = total_var = total_c1 = 0.0
    like = None
    for n in range(n_data):
        z = (guide.mean(phi, x[n:n + 1])[0, 0] + np.sqrt(s2) * xi).reshape(-1, 1, 1)   # nodes as particles
        xs = np.repeat(x[n:n + 1], nodes, axis=0)
        zs = z.reshape(1, nodes, 1)
        log_w = (model.log_joint(theta, zs, xs) - guide.log_prob(phi, zs, xs))[0]
        omega = np.exp(log_w - log_px[n])
        out["elbo_is"][n] = log_px[n] + _frullani(prob, omega, K)
        out["chi2"][n] = prob @ omega ** 2 - 1.0
        if estimator is None:
            continue
        rows = [estimator(model, guide, theta, phi, x[n:n + 1], zi[None]) for zi in z]
        like = rows[0]
        F = np.stack([flatten(r, like) for r in rows])
        w = omega / omega.max()
        I1, I2, I3 = _laplace_integrals(prob, w, K)
        mean = K * (prob * I1) @ F
        second = (K * prob * I2) @ F ** 2
        if K >= 2:
            second = second + np.einsum("sp,sr,rp->p", F, K * (K - 1) * np.outer(prob, prob) * I3, F)
        target = (prob * omega) @ F
        total_mean = total_mean + mean / n_data
        total_var = total_var + (second - mean ** 2) / n_data ** 2
        total_c1 = total_c1 - (prob * omega ** 2) @ (F - target) / n_data
    if estimator is not None:
        out.update(mean=unflatten(total_mean, like), var=unflatten(total_var, like),
                   c1=unflatten(total_c1, like))
    return out


def _laplace_moments(estimator, model, guide, theta, phi, x, K, states, log_w, log_q, covariance):
    total_mean, total_var, like = 0.0, 0.0, None
    n_data = x.shape[0]
    for n in range(n_data):
        rows = [estimator(model, guide, theta, phi, x[n:n + 1], s[None, None]) for s in states]
        like = rows[0]
        F = np.stack([flatten(r, like) for r in rows])                    # (S, P)
        q = np.exp(log_q[:, n])
        w = np.exp(log_w[:, n] - np.max(log_w[:, n]))                       # scale-free: max w = 1
        I1, I2, I3 = _laplace_integrals(q, w, K)
        mean = K * (q * I1) @ F
        diag_weights = K * q * I2
        B = K * (K - 1) * np.outer(q, q) * I3 if K >= 2 else None
        if covariance:
            second = (F * diag_weights[:, None]).T @ F + (F.T @ B @ F if B is not None else 0.0)
            var = second - np.outer(mean, mean)
        else:
            second = diag_weights @ F ** 2 + (np.einsum("sp,sr,rp->p", F, B, F) if B is not None else 0.0)
            var = second - mean ** 2
        total_mean = total_mean + mean / n_data
        total_var = total_var + var / n_data ** 2
    return unflatten(total_mean, like), (total_var if covariance else unflatten(total_var, like))


# -- exact targets -------------------------------------------------------------------


def kl_grad_phi(model, guide, theta, phi, x):
    """∇_φ (1/N) Σ_n KL(p_θ(z|x_n) ‖ q_φ(z|x_n)), the wake-φ target (descent of the KL).

    Discrete latents: −(1/N) Σ_n Σ_s p_θ(s|x_n) ∇_φ log q_φ(s|x_n), by
    enumeration.  The linear-Gaussian pair uses its closed form.

    Returns
    -------
    dict with φ's keys.
    """
    from .models import linear_gaussian as lg
    if isinstance(model, lg.LinearGaussian):
        return lg.grad_kl_phi(model, guide, theta, phi, x)
    theta, phi, x, states, all_states, _, _, _ = _discrete(model, guide, theta, phi, x, 1)
    posterior = model.posterior(theta, x)                               # (N, S)
    g = guide.grad_log_prob(phi, all_states, x, posterior.T / x.shape[0])
    return {key: -value for key, value in g.items()}


def _density_ratios(model, guide, theta, phi, x):
    # ω_sn = p_θ(s|x_n) / q_φ(s|x_n) for discrete latents, with q_sn; both (S, N)
    theta, phi, x, states, all_states, log_p, log_q, _ = _discrete(model, guide, theta, phi, x, 1)
    log_post = log_p - logsumexp(log_p, axis=0)
    return states, all_states, np.exp(log_post - log_q), np.exp(log_q), phi, x


def chi2(model, guide, theta, phi, x):
    """χ²(p_θ(z|x_n) ‖ q_φ(z|x_n)) = E_q[ω²] − 1 per datapoint, ω = p_θ(z|x)/q_φ(z|x).  (N,).

    It sets the large-K gap of the bound: log p_θ(x) − ELBO_IS(K) = χ² / (2K) + O(1/K²).
    """
    _, _, omega, q, _, _ = _density_ratios(model, guide, theta, phi, x)
    return np.sum(q * omega ** 2, axis=0) - 1.0


def wake_phi_bias_constant(model, guide, theta, phi, x):
    """c₁ in E[wake-φ] − ∇_φ KL = c₁ / K + O(1/K²), exactly, for discrete latents.

    Self-normalized importance sampling (delta method): with f(z) = −∇_φ log q_φ(z|x)
    and ω = p_θ(z|x)/q_φ(z|x), c₁ = −(1/N) Σ_n E_q[ω² (f − E_p f)].

    Returns
    -------
    dict with φ's keys.
    """
    states, _, omega, q, phi, x = _density_ratios(model, guide, theta, phi, x)
    one, total = np.ones((1, 1)), None
    for n in range(x.shape[0]):
        rows = [guide.grad_log_prob(phi, s[None, None], x[n:n + 1], one) for s in states]
        f = -np.stack([flatten(r, rows[0]) for r in rows])                 # (S, P)
        target = (q[:, n] * omega[:, n]) @ f
        c1 = -(q[:, n] * omega[:, n] ** 2) @ (f - target) / x.shape[0]
        total = c1 if total is None else total + c1
    return unflatten(total, rows[0])


def _joint_points(model, theta, nodes):
    """Points (z_i, x_i) with probabilities P_i such that Σ_i P_i f(z_i, x_i) = E_{p_θ(z,x)} f.

    Exact for models with enumerable data (``data_support``); for the
    Gaussian mixture, Gauss–Hermite quadrature with ``nodes`` points per
    component over x ~ N(mu_z, σ²).
    """
    states = model.support()
    if hasattr(model, "data_support"):
        xs = model.data_support()
        z = np.repeat(states[:, None], len(xs), axis=1)                 # (S, X, …)
        log_p = model.log_joint(theta, z, xs)                           # (S, X)
        return z.reshape((1, -1) + z.shape[2:]), np.tile(xs, (len(states), 1)), np.exp(log_p).reshape(-1)
    if hasattr(model, "means") and hasattr(model, "scale"):
        from numpy.polynomial.hermite_e import hermegauss
        xi, w = hermegauss(nodes)
        w = w / np.sqrt(2.0 * np.pi)
        pi = model.mixing_weights(theta)
        xs = (model.means[:, None] + model.scale * xi[None, :]).reshape(-1)
        z = np.repeat(states, nodes)[None, :]
        return z, xs, (pi[:, None] * w[None, :]).reshape(-1)
    raise TypeError(f"no enumeration or quadrature over x is known for {type(model).__name__}")


def sleep_target(model, guide, theta, phi, nodes=64):
    """∇_φ E_{p_θ(x)} KL(p_θ(z|x) ‖ q_φ(z|x)) = −E_{p_θ(z,x)} ∇_φ log q_φ(z|x).  Descent.

    Exact by enumeration for the sigmoid belief net; Gauss–Hermite
    quadrature over x (``nodes`` per component) for the Gaussian mixture;
    closed form for the linear-Gaussian pair.
    """
    from .models import linear_gaussian as lg
    if isinstance(model, lg.LinearGaussian):
        return lg.sleep_target(model, guide, theta, phi)
    theta, phi = model.check_theta(theta), guide.check_phi(phi)
    z, xs, prob = _joint_points(model, theta, check_count(nodes, "nodes"))
    g = guide.grad_log_prob(phi, z, xs, prob[None, :])
    return {key: -value for key, value in g.items()}


def sleep_moments(model, guide, theta, phi, M=1, nodes=64):
    """Exact mean and per-entry variance of sleep-φ with M dreams (z_m, x_m) ~ p_θ.

    The mean is :func:`sleep_target`; the variance is Var_{p_θ}[−∇_φ log q_φ(z|x)] / M.
    """
    theta, phi = model.check_theta(theta), guide.check_phi(phi)
    M = check_count(M, "M")
    z, xs, prob = _joint_points(model, theta, check_count(nodes, "nodes"))
    one = np.ones((1, 1))
    rows = [guide.grad_log_prob(phi, z[:, i:i + 1], xs[i:i + 1], one) for i in range(len(prob))]
    values = -np.stack([flatten(r, rows[0]) for r in rows])
    acc = _Accumulator(covariance=False)
    acc.add(prob, values)
    mean, var = acc.result()
    return unflatten(mean, rows[0]), unflatten(var / M, rows[0])
