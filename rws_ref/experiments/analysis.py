"""Signal-to-noise ratio of gradient estimators as K grows (Rainforth et al. 2018).

For each estimator and each K, draw R independent replicates of the gradient,
and for every entry compute SNR = |mean| / std.  The sample mean m̂ of R
replicates has E[m̂²] = mean² + std²/R, so |m̂|/ŝ never falls below about
1/√R however small the true SNR is.  The squared SNR of an entry is
therefore estimated without that floor as (m̂² − ŝ²/R) / ŝ², each entry's SNR is
sqrt(max(that, 0)), and the summary per K is the mean over the selected
entries (as in Rainforth et al.).  Its log-log slope in K is fitted by
least squares over the K whose summary is resolved: the mean over entries
of the unclipped SNR² estimates is positive in at least 97.5% of the
bootstrap resamples (a true SNR of 0, as wake-φ's at K = 1, is then reported
as unresolved rather than as the floor).  Uncertainty comes from the bootstrap:
replicates are resampled with replacement (independently for each K), the SNRs and the slope recomputed,
and percentile intervals reported.

Use it on your own estimators: pass any callable ``draw(K, rng) -> dict or
array`` returning one gradient replicate.
"""
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from .. import family
from .._checks import check_count, check_rng
from .._trees import flatten
from ..estimators import log_weights, wake_phi, wake_theta
from ..models import DiagonalGaussianGuide, LinearGaussian
from ..numerics import softmax

__all__ = ["SNRStudy", "snr_study", "snr_study_batched", "rainforth_toy", "rainforth_estimators",
           "rainforth_batched"]


@dataclass
class SNRStudy:
    """Result of :func:`snr_study`.

    Attributes
    ----------
    ks : ndarray (J,)
    snr : dict name -> ndarray (J,)           mean over entries of the SNR, per K
    snr_interval : dict name -> ndarray (J, 2)  bootstrap percentile interval
    slope : dict name -> float                least-squares slope of log SNR on log K
    slope_interval : dict name -> (float, float)
    slope_se : dict name -> float             bootstrap standard deviation of the slope
    snr_se : dict name -> ndarray (J,)        bootstrap standard deviation of the SNR
    resolved : dict name -> bool ndarray (J,)  the K used for the slope
    dropped : dict name -> list (J,)          why a K was left out of the slopes (None where it was used)
    local_slope : dict name -> ndarray (J−1,)  the slope of each segment between consecutive K, nan unless
                                              both ends are used
    local_slope_interval : dict name -> ndarray (J−1, 2)
    entry_snr : dict name -> ndarray (J, P)    every entry's SNR, sqrt(max(estimate of SNR², 0))
    level : float                             the intervals' coverage
    """
    ks: np.ndarray
    snr: dict = field(default_factory=dict)
    snr_interval: dict = field(default_factory=dict)
    slope: dict = field(default_factory=dict)
    slope_interval: dict = field(default_factory=dict)
    slope_se: dict = field(default_factory=dict)
    snr_se: dict = field(default_factory=dict)
    resolved: dict = field(default_factory=dict)
    dropped: dict = field(default_factory=dict)
    local_slope: dict = field(default_factory=dict)
    local_slope_interval: dict = field(default_factory=dict)
    entry_snr: dict = field(default_factory=dict)
    level: float = 0.95

    def table(self):
        """A plain-text table: one row per estimator, SNR per K, slope with its interval."""
        head = f"{'estimator':<14}" + "".join(f"{'K=' + str(k):>10}" for k in self.ks) + "   slope [interval]"
        lines = [head]
        for name in self.snr:
            lo, hi = self.slope_interval[name]
            cells = "".join(f"{v:>10.4g}" if ok else f"{'(' + format(v, '.2g') + ')':>10}"
                            for v, ok in zip(self.snr[name], self.resolved[name]))
            lines.append(f"{name:<14}" + cells + f"   {self.slope[name]:+.3f} [{lo:+.3f}, {hi:+.3f}]")
            lines.append(f"{'  local':<14}" + "".join(
                f"{'':>5}{v:>+10.3f} [{a:+.3f}, {b:+.3f}]" if np.isfinite(v) else f"{'':>5}{'—':>10}"
                for v, (a, b) in zip(self.local_slope[name], self.local_slope_interval[name])))
        lines.append("(parenthesized: left out of the slopes — not resolved, or fewer than 10/SNR² replicates; "
                     "local: the slope of each segment between consecutive K)")
        return "\n".join(lines)


def _as_vector(draw):
    if isinstance(draw, dict):
        return flatten(draw)
    return np.ravel(np.asarray(draw, dtype=np.float64))


def _snr(samples):
    # samples (R, P) -> (mean entry SNR, mean unclipped SNR² estimate, every entry's SNR)
    r = samples.shape[0]
    var = samples.var(axis=0, ddof=1)
    snr2 = (samples.mean(axis=0) ** 2 - var / r) / np.where(var > 0, var, np.inf)
    entry = np.sqrt(np.maximum(snr2, 0.0))
    return entry.mean(), snr2.mean(), entry


def _slope(ks, values):
    return np.polyfit(np.log(ks), np.log(values), 1)[0]


#: a K enters the slopes only with at least this many replicates per 1/SNR² (below, the estimate of SNR² is
#: dominated by its own floor correction: its relative standard error is about sqrt(2·(1 + 2·R·SNR²)) / (R·SNR²))
REPLICATES_PER_INVERSE_SNR2 = 10


def _usable(snr, significant, counts):
    """(mask of the K used for slopes, the reason each other K was dropped): used when its mean SNR² is above
    zero beyond its interval and R ≥ 10/SNR²."""
    reasons = []
    for value, ok, r in zip(snr, significant, counts):
        need = REPLICATES_PER_INVERSE_SNR2 / value ** 2 if value > 0 else np.inf
        reasons.append("its SNR² is not above zero beyond its interval" if not ok else
                       f"R = {int(r):,} replicates, fewer than 10/SNR² = {need:,.0f}" if r < need else None)
    return np.array([reason is None for reason in reasons]), reasons


def _local_slopes(ks, rows):
    """The slope of log SNR on log K of each segment between consecutive K: rows (..., J) -> (..., J − 1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.diff(np.log(rows), axis=-1) / np.diff(np.log(ks))


def _fill_slopes(study, name, used, point, resamples, interval):
    """The overall and local slopes of ``point`` (J,) over the used K, with intervals from ``resamples``
    (B, J) by ``interval(point_value, resampled_values) -> (low, high, se)``."""
    ks = study.ks
    local = np.where(used[1:] & used[:-1], _local_slopes(ks, point), np.nan)
    resampled = _local_slopes(ks, resamples)
    study.local_slope[name] = local
    study.local_slope_interval[name] = np.array([interval(v, resampled[:, j])[:2] if np.isfinite(v) else
                                                 (np.nan, np.nan) for j, v in enumerate(local)])
    if used.sum() < 2:
        study.slope[name], study.slope_interval[name], study.slope_se[name] = np.nan, (np.nan, np.nan), np.nan
        return
    study.slope[name] = float(_slope(ks[used], point[used]))
    fine = np.all(resamples[:, used] > 0, axis=1)
    slopes = np.array([_slope(ks[used], row[used]) for row in resamples[fine]])
    low, high, se = interval(study.slope[name], slopes)
    study.slope_interval[name], study.slope_se[name] = (low, high), se


def snr_study(estimators, ks, replicates, rng, n_boot=200, level=0.95):
    """Measure the SNR of each estimator at each K, with bootstrap intervals and log-log slopes.

    Parameters
    ----------
    estimators : dict name -> callable(K, rng) -> dict or ndarray
        One independent gradient replicate per call (select the entries you
        want to study inside the callable).
    ks : sequence of int
    replicates : int
        R, the number of replicates per (estimator, K).
    rng : numpy.random.Generator
    n_boot : int
        Bootstrap resamples.
    level : float
        Coverage of the percentile intervals.

    Returns
    -------
    SNRStudy
    """
    check_rng(rng)
    ks = np.array([check_count(int(k) if isinstance(k, np.integer) else k, "ks[i]") for k in ks])
    if len(ks) < 2:
        raise ValueError(f"ks must hold at least two values of K to fit a slope; got {list(ks)}")
    replicates = check_count(replicates, "replicates", minimum=3)
    n_boot = check_count(n_boot, "n_boot", minimum=10)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    if not isinstance(estimators, dict) or not estimators:
        raise TypeError("estimators must be a non-empty dict name -> callable(K, rng)")
    study = SNRStudy(ks=ks, level=level)
    for name, draw in estimators.items():
        if not callable(draw):
            raise TypeError(f"estimators[{name!r}] must be a callable (K, rng) -> gradient; got {type(draw).__name__}")
        samples = [np.stack([_as_vector(draw(int(K), rng)) for _ in range(replicates)]) for K in ks]
        for K, sample in zip(ks, samples):
            if not np.all(np.isfinite(sample)):
                raise ValueError(f"estimators[{name!r}] returned a non-finite value at K = {K}; "
                                 f"the SNR of NaN or inf is undefined")
        _measure(study, name, samples, rng, n_boot)
    return study


def _measure(study, name, samples, rng, n_boot):
    """Fill ``study`` for one estimator from its replicates (one (R, P) array per K)."""
    ks, tail, replicates = study.ks, 100 * (1 - study.level) / 2, samples[0].shape[0]
    point = [_snr(s) for s in samples]
    study.snr[name] = np.array([p[0] for p in point])
    snr2 = np.array([p[1] for p in point])
    study.entry_snr[name] = np.stack([p[2] for p in point])
    boot, boot2 = np.empty((n_boot, len(ks))), np.empty((n_boot, len(ks)))
    for b in range(n_boot):
        for j, s in enumerate(samples):
            boot[b, j], boot2[b, j], _ = _snr(s[rng.integers(0, replicates, replicates)])
    study.snr_interval[name] = np.percentile(boot, [tail, 100 - tail], axis=0).T
    study.snr_se[name] = boot.std(axis=0, ddof=1)
    significant = (np.mean(boot2 > 0, axis=0) >= 0.975) & (snr2 > 0)
    used, study.dropped[name] = _usable(study.snr[name], significant, [replicates] * len(ks))
    study.resolved[name] = used

    def percentile(value, resampled):
        resampled = resampled[np.isfinite(resampled)]
        low, high = np.percentile(resampled, [tail, 100 - tail])
        return float(low), float(high), float(resampled.std(ddof=1))
    _fill_slopes(study, name, used, study.snr[name], boot, percentile)


def rainforth_toy(rng, dim=20, perturbation=0.01):
    """The toy of Rainforth et al. (2018): p(z) = N(μ, I), p(x|z) = N(z, I), dimension 20.

    A LinearGaussian with W = I, b = 0, σ = 1 and μ ~ N(0, I); one observation
    x ~ p_θ(x); the guide N(A x + c, (2/3) I) at A = I/2, c = μ/2 (the exact
    posterior's mean map; its variance is 1/2, not 2/3) perturbed by N(0, 0.01²).

    Returns
    -------
    model, guide, theta, phi, x
    """
    check_rng(rng)
    dim = check_count(dim, "dim")
    model, guide = LinearGaussian(dim, dim), DiagonalGaussianGuide(dim, dim)
    mu = rng.standard_normal(dim)
    theta = {"mu": mu, "W": np.eye(dim), "b": np.zeros(dim), "log_sigma": np.zeros(dim)}
    _, x = model.sample(theta, 1, rng)
    phi = {"A": 0.5 * np.eye(dim) + perturbation * rng.standard_normal((dim, dim)),
           "c": 0.5 * mu + perturbation * rng.standard_normal(dim),
           "log_s": np.full(dim, 0.5 * np.log(2.0 / 3.0))}
    return model, guide, theta, phi, x


def rainforth_estimators(model, guide, theta, phi, x, phi_key="c", theta_key="mu"):
    """Replicate-drawing callables for :func:`snr_study` on a reparameterizable pair:
    IWAE θ (= wake-θ), IWAE φ, IWAE-DReG φ, STL φ, RWS wake-φ and RWS-DReG φ, each restricted
    to one parameter block (by default the guide's bias c and the prior mean mu)."""

    def noise(K, rng):
        return rng.standard_normal((K, x.shape[0], guide.dz))

    def reparam(fn, key):
        return lambda K, rng: fn(model, guide, theta, phi, x, noise(K, rng))[key]

    return {
        "IWAE θ": lambda K, rng: wake_theta(model, guide, theta, phi, x,
                                            guide.reparameterize(phi, x, noise(K, rng)))[theta_key],
        "IWAE φ": reparam(family.iwae_phi, phi_key),
        "IWAE-DReG φ": reparam(family.iwae_dreg_phi, phi_key),
        "STL φ": reparam(family.stl_phi, phi_key),
        "RWS wake-φ": lambda K, rng: wake_phi(model, guide, theta, phi, x,
                                              guide.reparameterize(phi, x, noise(K, rng)))[phi_key],
        "RWS-DReG φ": reparam(family.rws_dreg_phi, phi_key),
    }


# -- many replicates: moments accumulated in groups, jackknife intervals ----------------------------------


def snr_study_batched(draw_batch, ks, replicates, rng, groups=50, level=0.95, chunk=100_000):
    """:func:`snr_study` for millions of replicates: replicates drawn a batch at a time and kept only as
    per-group sums, the intervals from the jackknife over the groups instead of the bootstrap.

    The summary SNR per K, its resolution rule and the slope are :func:`snr_study`'s.  Each is also
    recomputed with one group left out; the jackknife standard error gives Student-t intervals
    (G − 1 degrees of freedom) for the SNR and the slope.

    Parameters
    ----------
    draw_batch : callable (K, B, rng) -> dict name -> (B, P) array
        B independent replicates of every estimator at once (they may share their draws: each
        estimator's SNR is computed on its own).
    ks : sequence of int
    replicates : int, or dict K -> int (a different R per K)
    groups : int, the jackknife's groups (each K's replicates split evenly)
    chunk : the particles of one batch, K·B ≤ chunk (the memory a batch takes)


    Returns
    -------
    SNRStudy (``entry_snr`` holds every entry's SNR; ``snr_se``, ``slope_se`` the jackknife errors)
    """
    check_rng(rng)
    ks = np.array([check_count(int(k), "ks[i]") for k in ks])
    if len(ks) < 2:
        raise ValueError(f"ks must hold at least two values of K to fit a slope; got {list(ks)}")
    groups = check_count(groups, "groups", minimum=2)
    per_k = {int(K): check_count(replicates[int(K)] if isinstance(replicates, dict) else replicates,
                                 "replicates", minimum=groups) for K in ks}
    if not callable(draw_batch):
        raise TypeError(f"draw_batch must be a callable (K, B, rng) -> dict of (B, P) arrays; "
                        f"got {type(draw_batch).__name__}")
    sums = {}                                             # name -> (J, G, 2, P): Σ and Σ² of centred draws
    counts = np.zeros((len(ks), groups))
    for j, K in enumerate(ks):
        size = per_k[int(K)] // groups
        for g in range(groups):
            left = size
            while left:
                b = min(left, max(1, chunk // int(K)))
                for name, draws in draw_batch(int(K), b, rng).items():
                    draws = np.asarray(draws, dtype=np.float64)
                    if not np.all(np.isfinite(draws)):
                        raise ValueError(f"draw_batch returned a non-finite {name} at K = {K}")
                    acc = sums.setdefault(name, np.zeros((len(ks), groups, 2, draws.shape[1])))
                    acc[j, g, 0] += draws.sum(axis=0)
                    acc[j, g, 1] += (draws ** 2).sum(axis=0)
                left -= b
            counts[j, g] = size
    study = SNRStudy(ks=ks, level=level)
    t = stats.t.ppf(0.5 + level / 2, groups - 1)
    for name, acc in sums.items():
        _jackknife(study, name, acc, counts, t)
    return study


def _moment_snr(total, n):
    """(summary SNR, mean unclipped SNR², entry SNRs) from Σ and Σ² of n replicates (P entries)."""
    mean = total[0] / n
    var = (total[1] - n * mean ** 2) / (n - 1)
    snr2 = (mean ** 2 - var / n) / np.where(var > 0, var, np.inf)
    entry = np.sqrt(np.maximum(snr2, 0.0))
    return entry.mean(), snr2.mean(), entry


def _jackknife(study, name, acc, counts, t):
    ks, groups = study.ks, acc.shape[1]
    full = [_moment_snr(acc[j].sum(axis=0), counts[j].sum()) for j in range(len(ks))]
    loo = np.array([[_moment_snr(acc[j].sum(axis=0) - acc[j, g], counts[j].sum() - counts[j, g])[:2]
                     for g in range(groups)] for j in range(len(ks))])          # (J, G, 2)
    scale = np.sqrt((groups - 1) / groups)

    def se(values):                                      # jackknife standard error over the groups
        return scale * np.sqrt(np.sum((values - values.mean(axis=-1, keepdims=True)) ** 2, axis=-1))
    snr = np.array([f[0] for f in full])
    snr2 = np.array([f[1] for f in full])
    study.snr[name], study.entry_snr[name] = snr, np.stack([f[2] for f in full])
    study.snr_se[name] = se(loo[:, :, 0])
    study.snr_interval[name] = np.stack([snr - t * study.snr_se[name], snr + t * study.snr_se[name]], axis=1)
    significant = snr2 - t * se(loo[:, :, 1]) > 0        # the mean SNR² above zero beyond its interval
    used, study.dropped[name] = _usable(snr, significant, counts.sum(axis=1))
    study.resolved[name] = used

    def jackknife(value, left_out):                      # left_out: the statistic with each group left out
        spread = scale * np.sqrt(np.sum((left_out - left_out.mean()) ** 2))
        return value - t * spread, value + t * spread, float(spread)
    _fill_slopes(study, name, used, snr, loo[:, :, 0].T, jackknife)


def rainforth_batched(model, guide, theta, phi, x, phi_key="c", theta_key="mu"):
    """The six estimators of :func:`rainforth_estimators` on the toy, B replicates at once:
    ``draw_batch(K, B, rng)`` for :func:`snr_study_batched`.  Closed forms for the guide's bias c
    and the prior mean μ (tests/experiments/test_analysis.py checks them against rws_ref's estimators):

    with z_k = m + s ⊙ ε_k, m = A x + c, log w_k = log p_θ(z_k, x) − log q_φ(z_k | x),
    w̄ = softmax_k(log w), g_k = ∇_z log p_θ(z_k, x) = −(z_k − μ) + Wᵀ((x − W z_k − b) / σ²) and
    r_k = −∇_z log q_φ(z_k | x) = (z_k − m) / s²:

    - IWAE θ (wake-θ) on μ:  Σ_k w̄_k (z_k − μ)
    - IWAE φ on c:  Σ_k w̄_k g_k  (with z = m + s ε, log q(z_k | x) does not move with c)
    - STL φ on c:  Σ_k w̄_k (g_k + r_k)  (the score term ∂ log q / ∂c at fixed z dropped)
    - IWAE-DReG φ on c:  Σ_k w̄_k² (g_k + r_k)
    - RWS wake-φ on c (descent):  −Σ_k w̄_k r_k
    - RWS-DReG φ on c (descent):  −Σ_k (w̄_k − w̄_k²) (g_k + r_k)  (zero at K = 1)
    """
    if (phi_key, theta_key) != ("c", "mu") or x.shape[0] != 1:
        raise ValueError("rainforth_batched has the closed forms of the bias c and the prior mean mu at one "
                         "observation (the toy's); use rainforth_estimators otherwise")
    W, b, mu = theta["W"], theta["b"], theta["mu"]
    inv_var_x = np.exp(-2.0 * theta["log_sigma"])
    m = phi["A"] @ x[0] + phi["c"]
    s = np.exp(phi["log_s"])

    def draw_batch(K, B, rng):
        eps = rng.standard_normal((K, B, guide.dz))
        z = m + s * eps                                                  # (K, B, dz)
        w = softmax(log_weights(model, guide, theta, phi, np.broadcast_to(x, (B, x.shape[1])), z), axis=0)
        g = -(z - mu) + ((x[0] - z @ W.T - b) * inv_var_x) @ W
        r = (z - m) / s ** 2
        weighted = lambda v, ww=w: np.einsum("kb,kbd->bd", ww, v)          # noqa: E731
        return {"IWAE θ": weighted(z - mu), "IWAE φ": weighted(g), "IWAE-DReG φ": weighted(g + r, w ** 2),
                "STL φ": weighted(g + r), "RWS wake-φ": -weighted(r), "RWS-DReG φ": -weighted(g + r, w - w ** 2)}
    return draw_batch
