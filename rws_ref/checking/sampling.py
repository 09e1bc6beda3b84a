"""Samplers against their densities: does ``guide.sample`` draw from ``guide.log_prob``, and
``model.sample`` from ``model.log_joint``?

Every check on given particles hands the particles to the user's code; a sampler inconsistent with
its own density (one that ignores φ, a wrong scale, copies of one draw) passes them all.  These tests
look at what the sampler draws, each at a false-failure rate ``alpha`` (Bonferroni over the parts it
tests) and each reporting the smallest deviation it detects at the chosen number of draws:

- **χ² goodness of fit** on a finite support (a guide's enumerable z, a model's finite (z, x)): the
  counts of the draws against the exact probabilities, cells with expected counts below 5 merged.
  Smallest deviation: Cohen's w = sqrt(Σ (p' − p)²/p) detected with probability 0.9.
- **The score identity**, for any density: E[∇ log q_φ(z|x)] = 0 under z ~ q_φ(·|x) (and
  E[∇_θ log p_θ(z, x)] = 0 under (z, x) ~ p_θ).  The draws are split in B batches; the batch means of
  the score (one weighted pullback each) give a t-test per parameter entry.  Smallest deviation: a
  mean score of (t_crit + 1.28)/√B batch standard deviations, detected with probability 0.9.
- **The probability integral transform** for a scalar continuous latent: u = F(z|x) from the density
  integrated numerically on a grid, tested for uniformity by Kolmogorov–Smirnov; for a model with a
  finite latent, the randomized PIT of z given x under the exact posterior (z | x is then uniform).
  Smallest deviation: a CDF difference above the KS critical value, detected with probability ≥ ½.
"""
import numpy as np
from scipy import stats
from scipy.optimize import brentq

from .. import protocol
from .._checks import DEFAULT_TIMEOUT, check_count, check_fraction, check_timeout, traceback_text
from .._trees import flatten
from . import limits
from .properties import CheckReport, PropertyResult

__all__ = ["check_guide_sampler", "check_model_sampler", "check_samplers", "chi_square", "chi_square_power",
           "score_test", "reproducible", "hall_t", "skewness",
           "DEFAULT_DRAWS",
           "DEFAULT_ALPHA"]

DEFAULT_DRAWS = 4000
DEFAULT_ALPHA = 1e-3
BATCHES = 50
_POWER_Z = stats.norm.ppf(0.9)


def _state_index(states, draws):
    """Index of each draw (M, *z_shape) among ``states`` (S, *z_shape); −1 for a draw that is none of them.
    Rows compared as float64 bytes (−0.0 made 0.0), by one sort and one binary search."""
    def keys(a):
        rows = np.ascontiguousarray(np.reshape(a, (len(a), -1)), dtype=np.float64) + 0.0
        return rows.view(np.dtype((np.void, 8 * rows.shape[1]))).ravel()
    known, drawn = keys(states), keys(draws)
    order = np.argsort(known, kind="stable")
    pos = np.minimum(np.searchsorted(known[order], drawn), len(known) - 1)
    return np.where(known[order][pos] == drawn, order[pos], -1)


def chi_square(counts, probs):
    """(p-value, statistic, degrees of freedom) of Pearson's χ² test of ``counts`` against the probabilities
    ``probs``, the smallest cells merged until each expects at least 5 draws; df = the merged cells − 1."""
    n = counts.sum()
    expected = n * probs
    order = np.argsort(expected)
    merged_o, merged_e, acc_o, acc_e = [], [], 0.0, 0.0
    for i in order:                                     # merge the smallest cells until each expects ≥ 5
        acc_o, acc_e = acc_o + counts[i], acc_e + expected[i]
        if acc_e >= 5:
            merged_o.append(acc_o)
            merged_e.append(acc_e)
            acc_o = acc_e = 0.0
    if acc_e > 0:
        if merged_e:
            merged_o[-1] += acc_o
            merged_e[-1] += acc_e
        else:
            merged_o, merged_e = [acc_o], [acc_e]
    o, e = np.array(merged_o), np.array(merged_e)
    df = len(o) - 1
    if df < 1:
        return 1.0, 0.0, 0
    statistic = float(np.sum((o - e) ** 2 / e))
    return float(stats.chi2.sf(statistic, df)), statistic, df


def chi_square_power(df, n, alpha, power=0.9):
    """The smallest effect (Cohen's w = sqrt(Σ (p' − p)²/p)) the χ² test on ``df`` degrees of freedom at level
    ``alpha`` detects with probability ``power`` from n draws: w = sqrt(λ/n), λ the noncentrality at which the
    noncentral χ² exceeds the critical value with that probability."""
    if df < 1:
        return float("inf")
    critical = stats.chi2.isf(alpha, df)
    lam = brentq(lambda nc: stats.ncx2.sf(critical, df, nc) - power, 1e-9, 1e6)
    return float(np.sqrt(lam / n))


def score_test(batch_means, alpha, what):
    """t-tests of the batch means of a score (B, P) against 0, two-sided, Bonferroni over the P entries that
    vary, each t corrected for the skewness of the batch means by Hall's transformation (Hall 1992:
    t + γ/(6√B)(1 + 2t²) + γ²/(27B) t³, γ the batch means' sample skewness) — a score of a rare event (a
    category or a bit of probability 0.01) is skewed enough that the plain t-test fails a correct sampler
    several times too often.  Entries that never vary (a category never drawn) are not testable and left out,
    unless no entry varies and one is not zero: a sampler that returns the same draw every time."""
    b = batch_means.shape[0]
    if batch_means.shape[1] == 0:
        return PropertyResult(f"score identity: {what}", "not applicable", "there are no parameters to score")
    mean, sd = batch_means.mean(axis=0), batch_means.std(axis=0, ddof=1)
    live = sd > 1e-12 * (1.0 + np.abs(mean))
    p_entries = max(1, int(live.sum()))
    critical = stats.t.isf(alpha / (2 * p_entries), b - 1)
    smallest = (critical + _POWER_Z) / np.sqrt(b)
    t = np.where(live, mean / np.where(live, sd, 1.0) * np.sqrt(b), 0.0)
    corrected = hall_t(t, skewness(batch_means, live), b)
    stuck = not live.any() and bool(np.any(np.abs(mean) > 1e-9))
    detail = (f"{b} batch means of the score over {p_entries} entries, |t| ≤ {critical:.2f} needed (two-sided, "
              f"Bonferroni, skewness-corrected; false-failure rate {alpha:g}); detects a mean score of "
              f"{smallest:.2g} batch SDs with probability 0.9")
    if stuck or np.max(np.abs(corrected)) > critical:
        j = int(np.argmax(np.abs(mean) if stuck else np.abs(corrected)))
        return PropertyResult(f"score identity: {what}", "fail",
                              f"E[score] is not 0: entry {j} has batch mean {mean[j]:.4g} ± {sd[j] / np.sqrt(b):.2g} "
                              f"(t = {t[j]:.1f}, {corrected[j]:.1f} corrected for skewness); the draws do not come "
                              f"from the density they are scored under. " + detail)
    return PropertyResult(f"score identity: {what}", "pass", detail)


def skewness(samples, live):
    """The bias-corrected sample skewness of each column of ``samples`` (B, P); 0 where ``live`` is False."""
    b = samples.shape[0]
    centred = samples - samples.mean(axis=0)
    m2, m3 = np.mean(centred ** 2, axis=0), np.mean(centred ** 3, axis=0)
    g = np.sqrt(b * (b - 1.0)) / (b - 2.0) * m3 / np.where(live, m2, 1.0) ** 1.5
    return np.where(live, g, 0.0)


def hall_t(t, gamma, b):
    """Hall's (1992) skewness-corrected t statistic from b observations of sample skewness ``gamma``:
    t + γ/(6√b)(1 + 2t²) + γ²/(27b) t³, monotone in t."""
    return t + gamma / (6.0 * np.sqrt(b)) * (1.0 + 2.0 * t ** 2) + gamma ** 2 / (27.0 * b) * t ** 3


def _batches(n_draws):
    size = max(1, n_draws // BATCHES)
    return [slice(i * size, (i + 1) * size) for i in range(n_draws // size)]


def check_guide_sampler(guide, phi, x, draws=DEFAULT_DRAWS, seed=0, alpha=DEFAULT_ALPHA, states=None,
                        timeout=DEFAULT_TIMEOUT):
    """Test that ``guide.sample(phi, x, K, rng)`` draws from ``guide.log_prob(phi, ·, x)``.

    Parameters
    ----------
    guide, phi, x : the guide, its parameters and a batch x (N, *x_shape)
    draws : particles drawn per datapoint
    alpha : the false-failure rate of each test
    timeout : seconds (default 60; None: no limit): every call of the guide's methods must return within it
    states : the finite support of z to test counts on (default: the guide's ``support()`` if it has one,
        else every value of its discrete z_domain, at most protocol.MAX_STATES of them).  Pass the model's
        ``model.support()`` for a pair whose finite latent only the model declares: without states the
        latent is taken for continuous and the PIT evaluates the density on a real grid.

    Returns
    -------
    CheckReport with the χ² test (finite z), the score identity, and the PIT (scalar real z).
    """
    draws, seed = check_count(draws, "draws", minimum=2 * BATCHES), check_count(seed, "seed", minimum=0)
    alpha = _check_alpha(alpha)
    guide = limits.timed(guide, check_timeout(timeout))
    phi = protocol.validate_params(phi, guide.phi_shapes, "phi")
    x = protocol.validate_x(guide, x)
    z = protocol.sample_guide(guide, phi, x, draws, np.random.default_rng(seed))
    report = CheckReport(f"{guide!r}.sample")
    report.results.append(reproducible(lambda rng: protocol.sample_guide(guide, phi, x, draws, rng), z, seed))
    states = protocol.latent_states(guide) if states is None else np.asarray(states)
    if states is not None:
        report.results.append(_guide_counts(guide, phi, x, z, states, alpha))
    else:
        report.results.append(PropertyResult("χ² over the support", "not applicable", "z is continuous"))
    report.results.append(_guide_score(guide, phi, x, z, alpha) if states is None else
                          _guide_score_exact(guide, phi, x, states))
    report.results.append(_guide_pit(guide, phi, x, z, alpha) if states is None else PropertyResult(
        "probability integral transform", "not applicable", "the χ² test covers a finite support"))
    return report


def reproducible(draw, first, seed):
    """The draws come from the generator they are given: the same seed twice gives the same draws (else the
    sampler also draws from a global or unseeded generator), and another seed other draws (else it ignores its
    generator) — unless every draw is the same value (a point mass), where seeds cannot differ."""
    name = "reproducible from its rng"
    again, other = draw(np.random.default_rng(seed)), draw(np.random.default_rng([seed, 7]))
    if not np.array_equal(np.asarray(again), np.asarray(first)):
        return PropertyResult(name, "fail", "the same seed gave other draws: the sampler draws from a global or "
                                            "unseeded generator (np.random.*, random.*), not only from the rng given")
    if np.array_equal(np.asarray(other), np.asarray(first)) and not np.all(np.asarray(first) == np.asarray(first)[0]):
        return PropertyResult(name, "fail", "another seed gave the same draws: the sampler ignores the rng it is "
                                            "given (a fixed seed of its own?)")
    return PropertyResult(name, "pass", "the same seed twice gives the same draws; another seed, other draws")


def _check_alpha(alpha):
    alpha = check_fraction(alpha, "alpha")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be a false-failure rate in (0, 0.5); got {alpha!r}")
    return alpha


def _guide_counts(guide, phi, x, z, states, alpha):
    n_data = x.shape[0]
    table = np.repeat(states[:, None], n_data, axis=1)
    probs = np.exp(protocol.guide_forward(guide, phi, protocol.validate_z(guide, table, n_data), x)[0])
    worst = (1.0, 0, 0.0, 0)
    for n in range(n_data):
        index = _state_index(states, z[:, n])
        if np.any(index < 0):
            bad = z[np.argmax(index < 0), n]
            return PropertyResult("χ² over the support", "fail", f"datapoint {n}: the sampler drew {bad.tolist()}, "
                                                                 f"which is none of the {len(states)} states")
        total = probs[:, n].sum()
        if abs(total - 1) > 1e-6:
            return PropertyResult("χ² over the support", "fail", f"datapoint {n}: log_prob sums to {total:.6g} over "
                                                                 f"the states, not 1")
        p, stat, df = chi_square(np.bincount(index, minlength=len(states)).astype(float), probs[:, n])
        if p < worst[0] or n == 0:
            worst = (p, n, stat, df)
    p, n, stat, df = worst
    rate = f"false-failure rate {alpha:g} (Bonferroni over {n_data} datapoints)"
    if p < alpha / n_data:
        return PropertyResult("χ² over the support", "fail",
                              f"datapoint {n}: the counts of {z.shape[0]} draws differ from exp(log_prob): χ² = "
                              f"{stat:.1f} on {df} df, p = {p:.2g}; {rate}")
    w = chi_square_power(df, z.shape[0], alpha / n_data)
    return PropertyResult("χ² over the support", "pass", f"smallest p = {p:.3g}; {rate}; detects Cohen's w ≥ "
                                                         f"{w:.3g} with probability 0.9")


def _guide_score(guide, phi, x, z, alpha):
    means = []
    for part in _batches(z.shape[0]):
        zb = z[part]
        pull = protocol.guide_forward(guide, phi, zb, x)[1]
        means.append(flatten(pull(np.full(zb.shape[:2], 1.0 / zb.shape[0]))))
    return score_test(np.array(means), alpha, "E[∇_φ log q(z|x)] = 0")


def _guide_score_exact(guide, phi, x, states):
    """The score identity on a finite latent, by enumeration: Σ_s q(s|x_n) ∇_φ log q(s|x_n) = ∇_φ Σ_s q = 0 for
    every datapoint, to rounding.  No sampling (the χ² test covers the sampler): a guide peaked on a few states
    (trained, or a rare category) is judged exactly, where batch means of its score would miss the rare
    states and fail a correct guide."""
    name = "score identity: E[∇_φ log q(z|x)] = 0"
    n_data = x.shape[0]
    table = protocol.validate_z(guide, np.repeat(states[:, None], n_data, axis=1), n_data)
    log_q, pull = protocol.guide_forward(guide, phi, table, x)
    q = np.exp(log_q)
    mean = flatten(pull(q))
    if mean.size == 0:
        return PropertyResult(name, "not applicable", "there are no parameters to score")
    # rounding is relative to the size of the terms that cancel: the same sum with random signs, and the score
    # averaged uniformly over the states (a guide peaked on one state has a tiny score there, but its gradient
    # still subtracts two numbers near 1)
    signs = np.where(np.random.default_rng(0).random(q.shape) < 0.5, -1.0, 1.0)
    scale = np.abs(flatten(pull(q * signs))) + np.abs(flatten(pull(np.full(q.shape, 1.0 / len(states)))))
    allowed = 1e-8 * (scale + np.max(scale) + 1e-300)
    detail = (f"exact: Σ_s q(s|x) ∇_φ log q(s|x) over the {len(states)} states and {n_data} datapoints is 0 to "
              f"rounding (no sampling; the χ² test covers the sampler)")
    if np.any(np.abs(mean) > allowed):
        j = int(np.argmax(np.abs(mean) - allowed))
        return PropertyResult(name, "fail", f"entry {j} of Σ_s q(s|x) ∇_φ log q(s|x) is {mean[j]:.4g}, not 0 "
                                            f"(rounding allows {allowed[j]:.2g}): grad_log_prob is not the gradient "
                                            f"of a normalized log_prob. " + detail)
    return PropertyResult(name, "pass", detail)


def _numeric_cdf(log_density, centre, spread, grid_points=4001):
    grid = np.linspace(centre - 12 * spread, centre + 12 * spread, grid_points)
    dens = np.exp(log_density(grid))
    cdf = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(grid))])
    return grid, cdf


def _guide_pit(guide, phi, x, z, alpha):
    name = "probability integral transform"
    if int(np.prod(guide.z_shape, dtype=int)) != 1:
        return PropertyResult(name, "not applicable", "the PIT needs a scalar latent (its CDF by quadrature)")
    n_data, worst = x.shape[0], (1.0, 0, 0.0)
    for n in range(n_data):
        zn = z[:, n].reshape(-1)
        spread = max(float(np.std(zn)), 1e-6)

        def log_density(values, n=n):
            zz = values.reshape((-1, 1) + tuple(guide.z_shape))
            return protocol.guide_forward(guide, phi, zz, x[n:n + 1])[0][:, 0]
        grid, cdf = _numeric_cdf(log_density, float(np.median(zn)), spread)
        if abs(cdf[-1] - 1) > 1e-3:
            return PropertyResult(name, "fail", f"datapoint {n}: exp(log_prob) integrates to {cdf[-1]:.4g} around "
                                                f"the draws, not 1 — the density and the sampler disagree in scale")
        result = stats.kstest(np.interp(zn, grid, cdf), "uniform")
        if result.pvalue < worst[0]:
            worst = (result.pvalue, n, result.statistic)
    p, n, d = worst
    critical = stats.kstwo.isf(alpha / n_data, z.shape[0])
    if p < alpha / n_data:
        return PropertyResult(name, "fail", f"datapoint {n}: u = F(z|x) of the draws is not uniform (KS D = {d:.3g}, "
                                            f"p = {p:.2g}); the sampler does not draw from the density")
    return PropertyResult(name, "pass", f"KS D ≤ {critical:.3g} needed (false-failure rate {alpha:g}, Bonferroni "
                                        f"over {n_data}); detects a CDF difference above it with probability ≥ ½")


def check_model_sampler(model, theta, draws=DEFAULT_DRAWS, seed=0, alpha=DEFAULT_ALPHA, timeout=DEFAULT_TIMEOUT):
    """Test that ``model.sample(theta, n, rng)`` draws from ``model.log_joint``: χ² over (z, x) when both are
    finite (``support()`` and ``data_support()``); the randomized PIT of z given x under the exact posterior
    when z is finite; the score identity E[∇_θ log p_θ(z, x)] = 0 always.  ``timeout`` (seconds) bounds every
    call of the model's methods.  Returns a CheckReport."""
    draws, seed = check_count(draws, "draws", minimum=2 * BATCHES), check_count(seed, "seed", minimum=0)
    alpha = _check_alpha(alpha)
    model = limits.timed(model, check_timeout(timeout))
    theta = protocol.validate_params(theta, model.theta_shapes, "theta")
    z, x = protocol.sample_model(model, theta, draws, np.random.default_rng(seed))
    report = CheckReport(f"{model!r}.sample")
    report.results.append(reproducible(lambda rng: np.concatenate(
        [np.reshape(a, (draws, -1)) for a in protocol.sample_model(model, theta, draws, rng)], axis=1),
        np.concatenate([np.reshape(z, (draws, -1)), np.reshape(x, (draws, -1))], axis=1), seed))
    states = protocol.support(model)
    if states is None:
        report.results.append(PropertyResult("posterior PIT of z given x", "not applicable",
                                             "needs a finite support()"))
        means = []
        for part in _batches(draws):
            zb, xb = z[part][None], x[part]
            pull = protocol.model_forward(model, theta, zb, xb)[1]
            means.append(flatten(pull(np.full(zb.shape[:2], 1.0 / zb.shape[1]))))
        report.results.append(score_test(np.array(means), alpha, "E[∇_θ log p(z, x)] = 0"))
        return report
    index = _state_index(states, z)
    if np.any(index < 0):
        report.results.append(PropertyResult("posterior PIT of z given x", "fail",
                                             f"the sampler drew z = {z[np.argmax(index < 0)].tolist()}, outside "
                                             f"support()"))
        return report
    u, means = _posterior_parts(model, theta, x, states, index, np.random.default_rng([seed, 1]))
    report.results.append(_model_pit(u, alpha))
    score = score_test(means, alpha, "E[∇_θ log p(z, x)] = 0")
    score.detail += ("; z summed out exactly: the batch means are of ∇_θ log p(x) = Σ_s p(s|x) ∇_θ log p(s, x) "
                     "(the PIT tests z given x)")
    report.results.append(score)
    return report


def _posterior_parts(model, theta, x, states, index, rng):
    """Batch by batch, one pass of the model over every state and draw: the randomized PIT values of the
    drawn z under the exact posterior, and the batch means of the Fisher score ∇_θ log p(x) =
    Σ_s p(s|x) ∇_θ log p(s, x) — the score with z summed out, so a rare state of z (a category of prior
    probability 10⁻⁶) enters through its posterior weight, not as a draw that batches of draws miss."""
    u, means = [], []
    for part in _batches(x.shape[0]):
        xb, n = x[part], x[part].shape[0]
        table = protocol.validate_z(model, np.repeat(states[:, None], n, axis=1), n)
        log_p, pull = protocol.model_forward(model, theta, table, xb)                            # (S, n)
        post = np.exp(log_p - np.logaddexp.reduce(log_p, axis=0))
        below, cols = np.cumsum(post, axis=0) - post, np.arange(n)
        u.append(below[index[part], cols] + rng.random(n) * post[index[part], cols])
        means.append(flatten(pull(post / n)))
    return np.concatenate(u), np.array(means)


def _model_pit(u, alpha):
    """z | x under the exact posterior: u = F(z − 1 | x) + V p(z | x), V uniform, is uniform if the sampler
    draws (z, x) from the joint the log density states (states ordered as support() lists them)."""
    n = u.shape[0]
    result = stats.kstest(u, "uniform")
    critical = stats.kstwo.isf(alpha, n)
    if result.pvalue < alpha:
        return PropertyResult("posterior PIT of z given x", "fail",
                              f"z given x is not distributed as p_θ(z|x) (KS D = {result.statistic:.3g}, p = "
                              f"{result.pvalue:.2g}): sample() and log_joint disagree")
    return PropertyResult("posterior PIT of z given x", "pass", f"KS D ≤ {critical:.3g} needed (false-failure rate "
                                                                f"{alpha:g}); detects a larger CDF difference with "
                                                                f"probability ≥ ½")


def check_samplers(model, guide, seed=0, draws=DEFAULT_DRAWS, alpha=DEFAULT_ALPHA):
    """Both samplers of a pair at θ, φ from ``init_theta``/``init_phi`` and x from the model (``seed``):
    a list of PropertyResult named "sampler: …" (what check_estimator and audit_model include).  A pair
    without ``sample`` methods gets "not applicable"."""
    rng = np.random.default_rng([seed, 25])
    out = []
    if not protocol.serves(model, "sample"):
        return [PropertyResult("sampler: model and guide", "not applicable", "the model serves no sample()")]
    try:
        theta, phi = protocol.init_params(model, rng), protocol.init_params(guide, rng)
        x = protocol.sample_model(model, theta, 3, rng)[1]
        states = protocol.latent_states(model, guide)              # the pair's latent domain, not the guide's alone
        for who, check in (("guide", lambda: check_guide_sampler(guide, phi, x, draws, seed, alpha, states)),
                           ("model", lambda: check_model_sampler(model, theta, draws, seed, alpha))):
            out += [PropertyResult(f"sampler: {who}.sample, {r.name}", r.status, r.detail) for r in check().results
                    if r.status != "not applicable"]
    except protocol.MissingCapability as err:
        return [PropertyResult("sampler: model and guide", "not applicable", str(err))]
    except Exception as err:                  # the user's sampler or density failed: a failed check, shown as it is
        out.append(PropertyResult("sampler: model and guide", "fail", f"raised {traceback_text(err)}"))
    return out
