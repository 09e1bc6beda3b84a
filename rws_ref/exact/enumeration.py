"""Exact enumeration: the law of K particles on a finite support is a law over multisets.

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
is computed before any work and a request whose work (multisets × datapoints ×
the size of one evaluation) is above ``max_terms`` is refused.

Two ways to evaluate an estimator on a chunk of M multisets:

- ``method="tables"`` (the default): the estimator is called once on a
  batch of M copies of x_n with one multiset per copy, with the model and
  guide replaced by protocol objects whose ``grad_log_joint`` and
  ``grad_log_prob`` return per-copy gradients built from a table of the S
  per-state gradients.  This needs only that the estimator be a batch mean
  of per-datapoint terms that combines gradient dicts entry-wise (sums,
  scalings, negations) — true of every estimator in rws_ref.
- ``method="direct"``: one call of the estimator per multiset.  Works for
  any symmetric estimator; slower.

The model needs only the protocol and ``support()`` (docs/protocol.md).
"""
import math

import autograd.numpy as anp
import numpy as np
from autograd import grad

from .. import protocol
from .._checks import TooLarge, check_count, check_memory
from .._trees import flatten, unflatten
from ..numerics import logsumexp
from .laplace import laplace_moments
from .tables import small_dot, tables_evaluator

__all__ = ["n_multisets", "multisets", "elbo_is", "moments", "grad_elbo_is", "grad_elbo_is_any_route", "Enumerated",
           "WeightedMoments", "TooLarge", "DEFAULT_MAX_TERMS"]

DEFAULT_MAX_TERMS = 500_000_000      # units of work (see _check_size): about half a minute
_CHUNK_BYTES = 64 * 2 ** 20          # working-set target of one chunk


# -- multisets ----------------------------------------------------------------------


def n_multisets(n_states, K):
    """C(K + S − 1, S − 1): the number of multisets of K particles over S states."""
    n_states, K = check_count(n_states, "n_states"), check_count(K, "K")
    return math.comb(K + n_states - 1, n_states - 1)


def _log_n_multisets(n_states, K):
    # log C(K+S−1, S−1) in floating point: instant at any size (the exact integer is not)
    return math.lgamma(K + n_states) - math.lgamma(K + 1) - math.lgamma(n_states)


def _bounded_count(n_states, K, limit):
    """The exact count if it is below about ``limit`` (cheap then), else None, decided without
    computing a huge integer."""
    if _log_n_multisets(n_states, K) > math.log(limit) + 1.0:
        return None
    return n_multisets(n_states, K)


_RANK_LIMIT = 2 ** 61


def _binomial_tables(t, top):
    """tables[i][c] = C(c, i) for i = 0..t, c = 0..top−1, exact below 2^62 and capped there.

    Row by row from C(c, i) = Σ_{j<c} C(j, i−1): a float running sum finds where the
    exact int64 sum would pass 2^62, so it never overflows.  Every rank is below
    2^61, so a capped entry (true value ≥ 2^62·(1 − 1e−12)) is never selected."""
    cap = 2 ** 62
    tables = [np.ones(top, dtype=np.int64)]
    for _ in range(t):
        prev = tables[-1]
        approx = np.concatenate([[0.0], np.cumsum(prev[:-1].astype(np.float64))])
        n_exact = int(np.searchsorted(approx, float(cap)))
        row = np.full(top, cap, dtype=np.int64)
        row[0] = 0
        row[1:n_exact] = np.cumsum(prev[:n_exact - 1])
        tables.append(np.minimum(row, cap))
    return tables


def _compositions(ranks, n_states, K, tables):
    """Count vectors (M, S) of the given ranks: the S − 1 bars of stars and bars among
    K + S − 1 slots are a combination c_1 < … < c_{S−1}, unranked in colex order
    (rank = Σ_i C(c_i, i)); the counts are the gaps between the bars."""
    t = n_states - 1
    r = np.array(ranks, dtype=np.int64)
    bars = np.empty((len(r), t + 2), dtype=np.int64)
    bars[:, 0], bars[:, -1] = -1, K + n_states - 1
    for i in range(t, 0, -1):
        c = np.searchsorted(tables[i], r, side="right") - 1
        r -= tables[i][c]
        bars[:, i] = c
    return np.diff(bars, axis=1) - 1


def multisets(n_states, K, chunk_rows=None, states=True):
    """Yield all multisets of K particles over ``n_states`` states, in chunks.

    Time and memory per multiset are O(S) for the counts (and O(K) more with
    ``states``), so K = 100,000 particles on two states is 100,001 small rows.

    Yields
    ------
    states : int ndarray (M, K), or None if ``states`` is False
        Sorted state indices, one multiset per row.
    counts : int ndarray (M, S)
        Count vectors n with Σ_s n_s = K.
    log_coef : ndarray (M,)
        log K! − Σ_s log n_s!, the log multinomial coefficient.
    """
    n_states, K = check_count(n_states, "n_states"), check_count(K, "K")
    total = _bounded_count(n_states, K, _RANK_LIMIT)
    if total is None or total >= _RANK_LIMIT:
        raise ValueError(f"about 10^{_log_n_multisets(n_states, K) / math.log(10):.1f} multisets is beyond the "
                         f"64-bit ranks used here (2^61)")
    rows = chunk_rows or max(1, _CHUNK_BYTES // (8 * ((K if states else 0) + n_states) * 4))
    tables = _binomial_tables(n_states - 1, K + n_states - 1)
    log_factorial = np.array([math.lgamma(n + 1.0) for n in range(K + 1)])         # log n!, to an ulp
    for start in range(0, total, rows):
        counts = _compositions(np.arange(start, min(start + rows, total)), n_states, K, tables)
        m = counts.shape[0]
        a = (np.repeat(np.tile(np.arange(n_states), m), counts.reshape(-1)).reshape(m, K) if states else None)
        yield a, counts, log_factorial[K] - log_factorial[counts].sum(axis=1)


def _count_text(n):
    """An integer for a message: with separators, or as a power of ten when it is huge."""
    return f"{n:,}" if n < 10 ** 30 else f"about 10^{math.log10(n):.1f}"


def _check_size(n_states, K, n_data, max_terms, particles):
    """Refuse, before any work, an enumeration whose work exceeds ``max_terms`` units.

    The work is what the time and memory grow with: multisets × datapoints × the size of
    one multiset's evaluation — S counts, plus K particles when the estimator is called
    on them (``particles``).  One unit is roughly 0.05 µs."""
    if isinstance(max_terms, bool) or not isinstance(max_terms, (int, np.integer)):
        raise TypeError(f"max_terms must be a positive integer; got {type(max_terms).__name__} {max_terms!r}")
    max_terms = check_count(int(max_terms), "max_terms")
    per_term = n_data * (n_states + (K if particles else 0))
    count = _bounded_count(n_states, K, 1e30)            # the exact count, unless it is astronomical
    if count is None:
        log10 = _log_n_multisets(n_states, K) / math.log(10)
        raise TooLarge(f"exact enumeration needs about 10^{log10:.1f} multisets (C(K+S-1, S-1) for S = "
                         f"{n_states} states and K = {K}), times N = {n_data} datapoints, far above max_terms = "
                         f"{max_terms:,}")
    work = count * per_term
    if work > max_terms:
        raise TooLarge(
            f"exact enumeration needs {_count_text(work)} units of work ({_count_text(count)} multisets, "
            f"C(K+S-1, S-1) for "
            f"S = {n_states} states and K = {K}, times N = {n_data} datapoints, times "
            f"{'S + K' if particles else 'S'} per multiset), above max_terms = {max_terms:,}; pass "
            f"max_terms={work if work < 10 ** 30 else _count_text(work)} to allow it (about {work * 5e-8:.3g} s)")
    return work


class Enumerated:
    """A problem on a finite latent support, validated once: θ, φ, x, the states
    (S, *z_shape), the particles ``all_states`` (S, N, *z_shape) listing every state for
    every datapoint, and the tables log p (S, N), log q (S, N)."""

    def __init__(self, model, guide, theta, phi, x):
        protocol.check_pair(model, guide)
        states = protocol.support(model)
        if states is None:
            raise TypeError(f"model must declare a finite latent support (a support() method, "
                            f"docs/protocol.md) for exact enumeration; got {model!r}")
        self.model, self.guide = model, guide
        self.theta = protocol.validate_params(theta, model.theta_shapes, "theta")
        self.phi = protocol.validate_params(phi, guide.phi_shapes, "phi")
        self.x = protocol.validate_x(model, x)
        self.states = states
        check_memory(8 * 4 * states.size * self.x.shape[0], f"the {len(states):,} latent states for "
                     f"N = {self.x.shape[0]} datapoints")
        self.all_states = np.repeat(states[:, None], self.x.shape[0], axis=1)
        self.log_p = protocol.model_forward(model, self.theta, self.all_states, self.x)[0]
        self.log_q, self.pull_q = protocol.guide_forward(guide, self.phi, self.all_states, self.x)
        self._check_tables()

    def _check_tables(self):
        """The densities over the support: no NaN or +inf (naming the state), and the guide's probabilities
        summing to 1 for every datapoint — else the guide puts mass outside support() (or support() misses
        states), and every exact number would be silently wrong."""
        for table, who in ((self.log_p, f"{self.model!r}.log_joint"), (self.log_q, f"{self.guide!r}.log_prob")):
            bad = np.isnan(table) | (table == np.inf)
            if bad.any():
                s, n = (int(i) for i in np.argwhere(bad)[0])
                raise ValueError(f"{who} is {table[s, n]} at the support state {self.states[s].tolist()} for "
                                 f"datapoint {n}; a density must be finite (or −inf for probability zero)")
        total = np.exp(logsumexp(self.log_q, axis=0))
        if np.any(np.abs(total - 1.0) > 1e-9):
            n = int(np.argmax(np.abs(total - 1.0)))
            raise ValueError(f"the guide's probabilities over {self.model!r}.support() sum to {total[n]:.12g} for "
                             f"datapoint {n}, not 1: the guide puts mass on states outside the support, or "
                             f"support() misses states it can sample")

    @property
    def n_states(self):
        return len(self.states)

    @property
    def n_data(self):
        return self.x.shape[0]


def _log_prob_of(counts, log_coef, log_q_n):
    # log multinomial probability of each multiset under q(·|x_n); log_q_n (S,)
    return log_coef + small_dot("ms,s->m", counts, log_q_n)


# -- ELBO_IS ------------------------------------------------------------------------


def elbo_is(model, guide, theta, phi, x, K, max_terms=DEFAULT_MAX_TERMS):
    """Exact ELBO_IS(θ, φ, x_n) = E_{q^K}[log (1/K) Σ_k w_k] per datapoint.  (N,).

    Σ over multisets n of P(n) · (logsumexp_s(log n_s + log w_s) − log K).
    """
    e, K = Enumerated(model, guide, theta, phi, x), check_count(K, "K")
    _check_size(e.n_states, K, e.n_data, max_terms, particles=False)
    log_w = e.log_p - e.log_q                                         # (S, N)
    out = np.zeros(e.n_data)
    for _, counts, log_coef in multisets(e.n_states, K, states=False):
        with np.errstate(divide="ignore"):
            log_counts = np.log(counts)                               # −inf where n_s = 0
        for n in range(e.n_data):
            prob = np.exp(_log_prob_of(counts, log_coef, e.log_q[:, n]))
            out[n] += small_dot("m,m->", prob, logsumexp(log_counts + log_w[:, n], axis=1))
    return out - np.log(K)


def grad_elbo_is(model, guide, theta, phi, x, K, max_terms=DEFAULT_MAX_TERMS, method="autograd"):
    """Exact ∇ of the mean bound (1/N) Σ_n ELBO_IS(θ, φ, x_n), by enumeration.

    method="autograd" (the independent route for the exact mean of wake-θ):
    the enumerated bound Σ_n P_φ(n) L(n; θ, φ) is differentiated by autograd
    in θ and in φ (through both the multiset probabilities and the weights);
    it needs densities autograd can trace (docs/protocol.md).
    method="tables" works for any model: with w̄_s(n) = n_s w_s / Σ_r n_r w_r,

        ∇_θ = Σ_s [Σ_n P(n) w̄_s(n)] ∇_θ log p(s, x)
        ∇_φ = Σ_s [Σ_n P(n) (L(n) n_s − w̄_s(n))] ∇_φ log q(s | x)   (score function)

    each a single weighted call of the model's and the guide's gradients.

    Returns
    -------
    (dtheta, dphi) : dicts, the plain gradients (ascent directions of the bound).
    """
    if method not in ("autograd", "tables"):
        raise ValueError(f"method must be 'autograd' or 'tables'; got {method!r}")
    e, K = Enumerated(model, guide, theta, phi, x), check_count(K, "K")
    _check_size(e.n_states, K, e.n_data, max_terms, particles=False)
    return (_grad_autograd if method == "autograd" else _grad_tables)(e, K)


def grad_elbo_is_any_route(model, guide, theta, phi, x, K, max_terms=DEFAULT_MAX_TERMS):
    """:func:`grad_elbo_is` by the autograd route where the densities can be traced (the route
    independent of every manual gradient), else by the score-function tables.

    Returns
    -------
    ((dtheta, dphi), route) with route "autograd" or "tables".
    """
    try:
        return grad_elbo_is(model, guide, theta, phi, x, K, max_terms), "autograd"
    except (TypeError, ValueError, AttributeError):          # densities autograd cannot trace
        return grad_elbo_is(model, guide, theta, phi, x, K, max_terms, method="tables"), "tables"


def _grad_autograd(e, K):
    def chunk_bound(params, counts, log_coef, log_counts):
        th, ph = params
        log_q = e.guide.log_prob(ph, e.all_states, e.x)                    # (S, N)
        log_w = e.model.log_joint(th, e.all_states, e.x) - log_q
        log_prob = log_coef[:, None] + anp.dot(counts, log_q)              # (M, N)
        bound = logsumexp(log_counts[:, :, None] + log_w[None], axis=1)    # (M, N)
        return anp.sum(anp.exp(log_prob) * bound) / e.n_data

    d_chunk = grad(chunk_bound)
    dtheta = {k: np.zeros_like(v) for k, v in e.theta.items()}
    dphi = {k: np.zeros_like(v) for k, v in e.phi.items()}
    # autograd keeps a few (M, S, N) arrays per chunk: size the chunks for that
    rows = max(1, _CHUNK_BYTES // (8 * 6 * e.n_states * e.n_data))
    for _, counts, log_coef in multisets(e.n_states, K, rows, states=False):
        with np.errstate(divide="ignore"):
            log_counts = np.log(counts.astype(np.float64))
        g_theta, g_phi = d_chunk((e.theta, e.phi), counts.astype(np.float64), log_coef, log_counts)
        for key in dtheta:
            dtheta[key] += g_theta[key]
        for key in dphi:
            dphi[key] += g_phi[key]
    return dtheta, dphi


def _grad_tables(e, K):
    log_w = e.log_p - e.log_q                                              # (S, N)
    a, b = np.zeros_like(log_w), np.zeros_like(log_w)
    for _, counts, log_coef in multisets(e.n_states, K, states=False):
        with np.errstate(divide="ignore"):
            log_counts = np.log(counts)
        for n in range(e.n_data):
            prob = np.exp(_log_prob_of(counts, log_coef, e.log_q[:, n]))   # (M,)
            log_nw = log_counts + log_w[:, n]                              # (M, S)
            bound = logsumexp(log_nw, axis=1)                              # (M,) L + log K
            w_bar = np.exp(log_nw - bound[:, None])
            a[:, n] += small_dot("m,ms->s", prob, w_bar)
            b[:, n] += small_dot("m,ms->s", prob, counts * (bound - np.log(K))[:, None] - w_bar)
    _, pull_p = protocol.model_forward(e.model, e.theta, e.all_states, e.x)
    return pull_p(a / e.n_data), e.pull_q(b / e.n_data)


# -- moments of an estimator ---------------------------------------------------------


class WeightedMoments:
    """Probability-weighted mean and (co)variance of rows, merged chunk by chunk (Chan et al.)."""

    def __init__(self, covariance):
        self.covariance = covariance
        self.weight, self.mean, self.m2 = 0.0, None, None

    def add(self, prob, values):
        w = prob.sum()
        if w == 0.0:
            return
        mean = small_dot("m,mp->p", prob, values) / w
        centred = values - mean
        m2 = (small_dot("mp,m,mq->pq", centred, prob, centred) if self.covariance
              else small_dot("m,mp->p", prob, centred ** 2))
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
        How each multiset is evaluated (see the package docstring);
        "laplace" needs no enumeration and holds only for self-normalized
        estimators Σ_k w̄_k F(z_k) such as wake-θ and wake-φ.
    max_terms : int
        Refuse requests of more work than this: multisets × datapoints × (S + K) units.

    Returns
    -------
    mean : dict
        E[ĝ], the estimator's exact expectation for the batch.
    var : dict, or ndarray (P, P) if ``covariance``
        Var[ĝ] per entry (or Cov), the batch estimate's exact variance.
    """
    if method not in ("tables", "direct", "laplace"):
        raise ValueError(f"method must be 'tables', 'direct' or 'laplace'; got {method!r}")
    if not callable(estimator):
        raise TypeError(f"estimator must be a callable (model, guide, theta, phi, x, z) -> dict; "
                        f"got {type(estimator).__name__}")
    e, K = Enumerated(model, guide, theta, phi, x), check_count(K, "K")
    if method == "laplace":
        return laplace_moments(estimator, e, K, covariance)
    _check_size(e.n_states, K, e.n_data, max_terms, particles=True)
    n_entries = sum(np.size(v) for v in e.theta.values()) + sum(np.size(v) for v in e.phi.values())
    row_bytes = 8 * (4 * K * int(np.prod(e.states.shape[1:], dtype=int)) + 2 * e.n_states + 4 * n_entries)
    chunk_rows = max(1, _CHUNK_BYTES // row_bytes)
    total_mean, total_var, like = 0.0, 0.0, {}
    for n in range(e.n_data):
        acc = WeightedMoments(covariance)
        evaluate = (tables_evaluator if method == "tables" else _direct_evaluator)(estimator, e, n, like)
        for a, counts, log_coef in multisets(e.n_states, K, chunk_rows):
            acc.add(np.exp(_log_prob_of(counts, log_coef, e.log_q[:, n])), evaluate(a))
        mean_n, var_n = acc.result()
        total_mean = total_mean + mean_n / e.n_data
        total_var = total_var + var_n / e.n_data ** 2
    mean = unflatten(total_mean, like)
    return mean, (total_var if covariance else unflatten(total_var, like))


def _direct_evaluator(estimator, e, n, like):
    # one call of the estimator per multiset, on the one datapoint x_n
    def evaluate(a):
        z = np.moveaxis(e.states[a], 1, 0)
        rows = [estimator(e.model, e.guide, e.theta, e.phi, e.x[n:n + 1], z[:, j:j + 1])
                for j in range(a.shape[0])]
        like.update({k: np.zeros(np.shape(v)) for k, v in rows[0].items() if k not in like})
        return np.stack([flatten(r, like) for r in rows])
    return evaluate
