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

from ._checks import check_count, check_rng
from ._trees import flatten

__all__ = ["SNRStudy", "snr_study", "rainforth_toy", "rainforth_estimators"]


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
        lines.append("(parenthesized: not resolved by the replicates, left out of the slope)")
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
    resolved = (np.mean(boot2 > 0, axis=0) >= 0.975) & (snr2 > 0)
    study.resolved[name] = resolved
    if resolved.sum() < 2:
        study.slope[name], study.slope_interval[name], study.slope_se[name] = np.nan, (np.nan, np.nan), np.nan
        return
    study.slope[name] = float(_slope(ks[resolved], study.snr[name][resolved]))
    usable = np.all(boot[:, resolved] > 0, axis=1)
    slopes = np.array([_slope(ks[resolved], row[resolved]) for row in boot[usable]])
    study.slope_interval[name] = tuple(float(v) for v in np.percentile(slopes, [tail, 100 - tail]))
    study.slope_se[name] = float(slopes.std(ddof=1))


def rainforth_toy(rng, dim=20, perturbation=0.01):
    """The toy of Rainforth et al. (2018): p(z) = N(μ, I), p(x|z) = N(z, I), dimension 20.

    A LinearGaussian with W = I, b = 0, σ = 1 and μ ~ N(0, I); one observation
    x ~ p_θ(x); the guide N(A x + c, (2/3) I) at A = I/2, c = μ/2 (the exact
    posterior's mean map; its variance is 1/2, not 2/3) perturbed by N(0, 0.01²).

    Returns
    -------
    model, guide, theta, phi, x
    """
    from .models import DiagonalGaussianGuide, LinearGaussian
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
    IWAE θ (= wake-θ), IWAE φ, IWAE-DReG φ, STL φ and RWS wake-φ, each restricted
    to one parameter block (by default the guide's bias c and the prior mean mu)."""
    from . import family
    from .estimators import wake_phi, wake_theta

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
    }
