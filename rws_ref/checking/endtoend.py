"""A stochastic estimator end to end: the user's code draws its own particles, and the mean of its
outputs over R runs is compared with the exact mean of the estimator it implements.

:func:`check_stochastic` runs ``fn(theta, phi, x, rng)`` — the user's whole estimator, sampling
included — R times with independent generators, and tests each entry of the mean against the exact
mean μ_j with a z-test against the exact variance σ²_j of one output (no Monte Carlo error in μ or σ:
:mod:`rws_ref.exact` on a finite support; Gauss–Hermite quadrature over the base noise ε of a
reparameterized guide otherwise).  Entries are Bonferroni-corrected, so the false-failure rate of a
check is at most ``alpha``; the power is computed: the smallest deviation of each entry detected with
probability 0.9 is (z_crit + 1.28) σ_j / √R, and the report gives the smallest relative deviation the
check detects and the replicates needed to detect a given one.

Bugs in how particles are drawn — a sampler that ignores φ, a wrong reparameterization scale, K copies
of one draw, one datapoint's particles reused for another, a defensive proposal evaluated at another
draw than the particle returned, ι applied twice — move the mean, and only this route can see them.
"""
from dataclasses import dataclass, field

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy import stats
from tqdm import tqdm

from .. import exact, protocol, registry
from .._checks import DEFAULT_TIMEOUT, check_count, check_fraction, check_timeout
from .._trees import flatten, unflatten
from ..registry import Case
from . import limits
from .properties import UserFunction

__all__ = ["check_stochastic", "StochasticReport", "EntryPower", "reference_moments"]

_POWER_Z = stats.norm.ppf(0.9)
RERUNS = 20                             # replicates run a second time to find draws from a global generator


@dataclass
class EntryPower:
    """One entry of the output: its exact mean μ and standard deviation σ (one run), and the smallest
    deviation of its mean the check detects with probability 0.9 at the check's R, absolute and relative."""
    key: str
    index: tuple
    mean: float
    sd: float
    detectable: float

    @property
    def relative(self):
        return self.detectable / abs(self.mean) if self.mean != 0 else float("inf")


@dataclass
class StochasticReport:
    """The outcome of :func:`check_stochastic`: ``ok``, the entries that disagree (key, index, mean, exact
    mean, z), the test's threshold and false-failure rate, and its power entry by entry (``entries``)."""
    kind: str
    ok: bool
    replicates: int
    alpha: float
    critical: float
    disagree: list = field(default_factory=list)
    smallest_relative: float = float("nan")
    replicates_for: dict = field(default_factory=dict)
    route: str = ""
    entries: list = field(default_factory=list)
    norm: float = float("nan")
    reproducibility: str = ""           # empty, or what is wrong with the use of the rng

    def relative_power(self):
        """(most sensitive, median, least sensitive) relative deviation detected with probability 0.9, over
        the entries whose exact mean is not zero."""
        rel = sorted(e.relative for e in self.entries if e.mean != 0 and e.sd > 0)
        if not rel:
            return (float("nan"),) * 3
        return rel[0], float(np.median(rel)), rel[-1]

    def replicates_for_norm(self, relative):
        """Replicates for probability 0.9 of detecting a deviation of norm ``relative`` × ‖exact mean‖ placed in
        any single entry (the least sensitive entry decides); a deviation spread over P entries has a
        component at least 1/√P of its norm, so P times this covers any direction."""
        sd = max((e.sd for e in self.entries), default=0.0)
        if not self.norm > 0 or sd == 0:
            return float("nan")
        return int(np.ceil(((self.critical + _POWER_Z) * sd / (relative * self.norm)) ** 2))

    def detection_probability(self, deviation, replicates=None, sd=None):
        """The probability that the check fails for an estimator whose mean is off by ``deviation`` (a dict
        like the output: mean − exact mean), entry by entry, at ``replicates`` runs (default: this check's).
        Each entry's mean over R runs is normal with the correct estimator's σ (or ``sd``, a dict, the
        other estimator's own); the entries are taken as independent (the Bonferroni test's worst case)."""
        r = self.replicates if replicates is None else check_count(replicates, "replicates")
        keep = 1.0
        for e in self.entries:
            if e.sd == 0:
                continue
            shift = float(np.asarray(deviation[e.key])[e.index]) * np.sqrt(r) / e.sd
            spread = 1.0 if sd is None else float(np.asarray(sd[e.key])[e.index]) / e.sd
            keep *= stats.norm.cdf((self.critical - shift) / spread) - stats.norm.cdf((-self.critical - shift) / spread)
        return 1.0 - keep

    def __str__(self):
        head = (f"check_stochastic({self.kind!r}): {'agrees with the exact mean' if self.ok else 'FAILED'} — "
                f"{self.replicates} runs, |z| ≤ {self.critical:.2f} per entry (false-failure rate {self.alpha:g}, "
                f"Bonferroni over {sum(e.sd > 0 for e in self.entries)} entries), exact moments by {self.route}")
        lines = [head]
        if self.reproducibility:
            lines.append(f"  reproducibility: {self.reproducibility}")
        for key, index, got, want, z in self.disagree[:8]:
            lines.append(f"  {key}{list(index)}: mean of your outputs {got:.6g}, exact mean {want:.6g} (z = {z:.1f})")
        best, median, worst = self.relative_power()
        lines.append(f"  power (probability 0.9): a relative deviation of {best:.2g} in the most sensitive entry, "
                     f"{median:.2g} in the median entry, {worst:.2g} in the least sensitive one; replicates "
                     f"needed in the most sensitive entry for "
                     + ", ".join(f"{rel:g}: {n:,}" for rel, n in self.replicates_for.items()))
        if self.norm > 0:
            lines.append("  a deviation of the mean's norm, in any one entry: replicates needed for "
                         + ", ".join(f"{rel:g}: {self.replicates_for_norm(rel):,}" for rel in self.replicates_for))
        return "\n".join(lines)

    def assert_ok(self):
        if not self.ok:
            raise AssertionError(str(self))


def reference_moments(kind, model, guide, theta, phi, x, K, iota=None, delta=None, M=None, nodes=7):
    """(mean, var, route): the exact mean and per-entry variance of one output of ``kind`` with its particles
    (and dreams) drawn as they should be, and how they were computed."""
    entry = registry.get(kind)
    sig = entry.signature
    if not sig.evaluates_model:                                     # sleep-φ: over (z, x) ~ p_θ
        mean, var = exact.sleep_moments(model, guide, theta, phi, M=M)
        return mean, var, "enumeration over (z, x) ~ p_θ"
    if entry.mean == "insomnia":
        wake_mean, wake_var, route = reference_moments("wake_phi", model, guide, theta, phi, x, K)
        sleep_mean, sleep_var = exact.sleep_moments(model, guide, theta, phi, M=M)
        return ({k: iota * wake_mean[k] + (1 - iota) * sleep_mean[k] for k in wake_mean},
                {k: iota ** 2 * wake_var[k] + (1 - iota) ** 2 * sleep_var[k] for k in wake_var}, route)
    given = Case(theta, phi, x, delta=delta)
    if protocol.support(model) is None:
        return _quadrature(entry, model, guide, given, K, nodes)
    route = "enumeration of the K particles' multisets"
    proposal, on_proposal = sig.proposal(model, guide, given), sig.on_proposal(entry)

    def ref(m, g, th, ph, xx, z):                 # the estimator on the (tabulated) model and proposal
        return on_proposal(m, g, given._replace(theta=th, phi=ph, x=xx, z=z))
    if entry.output == "bound":                                     # L̂_n per datapoint
        parts = [exact.moments(ref, model, proposal, theta, phi, x[n:n + 1], K, method="direct")
                 for n in range(x.shape[0])]
        return ({"elbo_is": np.concatenate([m["elbo_is"] for m, _ in parts])},
                {"elbo_is": np.concatenate([v["elbo_is"] for _, v in parts])}, route)
    mean, var = exact.moments(ref, model, proposal, theta, phi, x, K)
    return mean, var, route


#: the exact moments of the last settings checked: a user's test suite checks the same setting again and again
_MOMENTS = {}
_MOMENTS_KEPT = 16


def _cached_moments(pair, kind, model, guide, theta, phi, x, K, iota, delta, M):
    """:func:`reference_moments`, computed once per setting: the key holds the user's ``pair`` itself (so it stays
    alive while cached) and the bytes of θ, φ and x; objects that cannot be hashed are computed every time."""
    def frozen(params):
        return tuple((k, np.asarray(v).tobytes(), np.shape(v)) for k, v in sorted(params.items()))
    try:
        key = (kind, *pair, frozen(theta), frozen(phi), np.asarray(x).tobytes(), np.shape(x), K, iota, delta, M)
        hash(key)
    except TypeError:
        return reference_moments(kind, model, guide, theta, phi, x, K, iota, delta, M)
    if key not in _MOMENTS:
        if len(_MOMENTS) >= _MOMENTS_KEPT:
            _MOMENTS.pop(next(iter(_MOMENTS)))
        _MOMENTS[key] = reference_moments(kind, model, guide, theta, phi, x, K, iota, delta, M)
    return _MOMENTS[key]


def _quadrature(entry, model, guide, given, K, nodes):
    """Mean and variance over ε ~ N(0, I) of the estimator at z = reparameterize(φ, x, ε), by tensor
    Gauss–Hermite quadrature (exact for integrands polynomial in ε of degree ≤ 2·nodes − 1)."""
    if not callable(getattr(guide, "reparameterize", None)):
        raise TypeError(f"the exact moments of {entry.name} on a continuous latent need a reparameterized guide "
                        f"(guide.reparameterize) or a finite support()")
    shape = (K, given.x.shape[0]) + tuple(guide.z_shape)
    dims = int(np.prod(shape))
    if dims > 4:
        raise exact.TooLarge(f"Gauss–Hermite over K·N·dim z = {dims} dimensions ({nodes}^{dims} points); use "
                             f"K·N·dim z ≤ 4 (e.g. one datapoint and K = 1 or 2) on a continuous latent")
    xi, w = hermegauss(nodes)
    w = w / w.sum()
    grid = np.indices((nodes,) * dims).reshape(dims, -1).T
    first = second = like = None
    for point, weight in zip(xi[grid], np.prod(w[grid], axis=1)):
        eps = point.reshape(shape)
        z = guide.reparameterize(given.phi, given.x, eps)
        out = entry.reference(model, guide, given._replace(z=z, eps=eps))
        like = out if like is None else like
        v = flatten(out, like)
        first = weight * v if first is None else first + weight * v
        second = weight * v ** 2 if second is None else second + weight * v ** 2
    return (unflatten(first, like), unflatten(np.maximum(second - first ** 2, 0.0), like),
            f"Gauss–Hermite quadrature over ε ({nodes} nodes per dimension)")


#: check_stochastic refuses more replicates than this unless ``max_replicates`` is raised
MAX_REPLICATES = 1_000_000


def check_stochastic(fn, kind, model=None, guide=None, theta=None, phi=None, x=None, K=3, replicates=2000,
                     seed=0, alpha=1e-3, iota=None, delta=None, M=None, detect=(0.01, 0.05, 0.1),
                     timeout=DEFAULT_TIMEOUT, progress=False, max_replicates=MAX_REPLICATES):
    """Run the user's stochastic estimator R times and test its mean against the exact mean.

    Parameters
    ----------
    fn : the whole estimator, sampling included: ``fn(theta, phi, x, rng)`` (sleep-φ: ``fn(theta, phi, rng)``),
        with or without the leading ``model, guide`` (a function with ``*args`` gets them); it returns what
        rws_ref's function ``kind`` returns
    kind : a kind of rws_ref.registry
    model, guide : the pair (default: registry.default_pair); θ, φ, x default to draws from it (seed)
    K : the particles per datapoint ``fn`` draws; M : the dreams per call (sleep-φ, insomnia);
    iota, delta : insomnia's ι and defensive wake-φ's δ, as ``fn`` uses them
    replicates : R, the runs of ``fn``; each gets its own generator np.random.default_rng([seed, r])
    alpha : the false-failure rate of the whole check (Bonferroni over the entries)
    detect : relative deviations for which the report gives the replicates needed
    timeout : seconds (default 60; None: no limit): every call of ``fn`` and of the model's and guide's methods
        must return within it (TimeoutError naming the function)
    progress : bool, a progress bar of the runs on stderr
    max_replicates : the most replicates accepted (default 1,000,000; raise it to run more)

    Returns
    -------
    StochasticReport
    """
    entry = registry.get(kind)
    sig = entry.signature
    replicates, K = check_count(replicates, "replicates", minimum=10), check_count(K, "K")
    if replicates > check_count(max_replicates, "max_replicates"):
        raise ValueError(f"replicates = {replicates:,} is above the limit of {max_replicates:,}; pass "
                         f"max_replicates={replicates} to allow it")
    alpha = check_fraction(alpha, "alpha")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5); got {alpha!r}")
    if sig.dreams:
        M = check_count(M, "M (the dreams each call of fn draws)")
    iota, delta = (check_fraction(v, n) if n in sig.names else v for v, n in ((iota, "iota"), (delta, "delta")))
    if model is None and guide is None:
        model, guide = registry.default_pair(entry)
    protocol.check_pair(model, guide)
    timeout = check_timeout(timeout)
    pair = (model, guide)                                  # the user's objects: the key of the cached moments
    model, guide = limits.timed(model, timeout), limits.timed(guide, timeout)
    rng = np.random.default_rng(seed)
    # read-only views: the user's function cannot write into the caller's θ, φ, x (nor into what the check uses)
    theta = protocol.init_params(model, rng) if theta is None else protocol.validate_params(theta, model.theta_shapes,
                                                                                            "theta")
    phi = protocol.init_params(guide, rng) if phi is None else protocol.validate_params(phi, guide.phi_shapes, "phi")
    x = protocol.sample_model(model, theta, 2, rng)[1] if x is None else protocol.validate_x(model, x)
    mean, var, route = _cached_moments(pair, kind, model, guide, theta, phi, x, K, iota, delta, M)
    call = UserFunction(fn, entry, timeout, names=("model", "guide") + sig.stochastic)
    outputs = []
    bar = tqdm(total=replicates, desc=f"check_stochastic({kind!r})", unit="run", disable=not progress)
    for r in range(replicates):
        bar.update(1)
        args = _arguments(call, sig, model, guide, theta, phi, x, np.random.default_rng([seed, r]))
        outputs.append(flatten(call.check_output(call.invoke(args), mean), mean))
    bar.close()
    outputs = np.array(outputs)
    report = _z_test(entry, outputs, mean, var, replicates, alpha, detect, route)
    report.reproducibility = _reproducibility(
        outputs, report, lambda r: flatten(call.check_output(call.invoke(_arguments(
            call, sig, model, guide, theta, phi, x, np.random.default_rng([seed, r]))), mean), mean))
    report.ok = report.ok and not report.reproducibility
    return report


def _reproducibility(outputs, report, rerun):
    """What is wrong with fn's use of its generator ("" when nothing): ``rerun(r)`` runs replicate r again.

    RERUNS of the replicates run again with their own generators: a correct fn gives each output again; one
    that also draws from a global generator gives another — unless its draws happen to coincide, which on a
    peaked discrete guide one rerun alone missed now and then (p per rerun; p^RERUNS now).  An fn that ignores
    its rng gives one output R times; a correct one may repeat an output now and then (a discrete latent with few
    states draws the same particles under two generators), never R times."""
    replicates = len(outputs)
    for r in np.unique(np.linspace(0, replicates - 1, min(RERUNS, replicates)).astype(int)):
        if not np.array_equal(rerun(int(r)), outputs[r]):
            return ("the same generator gave another output: fn also draws from a global or unseeded generator "
                    "(np.random.*, random.*), not only from the rng it is given")
    live = np.array([e.sd > 0 for e in report.entries])
    if live.any() and np.all(outputs[:, live] == outputs[0, live]):
        return (f"{replicates} generators gave the same output where the estimator varies: fn ignores the rng it "
                f"is given (a fixed seed of its own?)")
    return ""


def _arguments(call, sig, model, guide, theta, phi, x, rng):
    values = {"model": model, "guide": guide, "theta": theta, "phi": phi, "x": x, "rng": rng}
    return [values[n] for n in ("model", "guide") + sig.stochastic if call.objects or n not in ("model", "guide")]


def _z_test(entry, outputs, mean, var, R, alpha, detect, route):
    mu, sigma2 = flatten(mean, mean), flatten(var, mean)
    got = outputs.mean(axis=0)
    keys = [(k, idx) for k in mean for idx in np.ndindex(np.shape(mean[k]))]
    live = sigma2 > 1e-24 * (1 + mu ** 2)
    critical = float(stats.norm.isf(alpha / (2 * max(1, int(live.sum())))))
    se = np.sqrt(np.where(live, sigma2, 1.0) / R)
    z = np.where(live, (got - mu) / se, 0.0)
    fixed_off = ~live & (np.abs(got - mu) > 1e-9 * (1 + np.abs(mu)))
    bad = np.flatnonzero((np.abs(z) > critical) | fixed_off)
    order = bad[np.argsort(-np.where(fixed_off[bad], np.inf, np.abs(z[bad])))]
    disagree = [(keys[j][0], keys[j][1], float(got[j]), float(mu[j]), float(z[j]) if live[j] else float("inf"))
                for j in order]
    detectable = (critical + _POWER_Z) * np.sqrt(np.where(live, sigma2, 0.0) / R)
    entries = [EntryPower(keys[j][0], keys[j][1], float(mu[j]), float(np.sqrt(sigma2[j])) if live[j] else 0.0,
                          float(detectable[j])) for j in range(len(keys))]
    sensitive = live & (np.abs(mu) > 0)
    if sensitive.any():
        rel = detectable[sensitive] / np.abs(mu[sensitive])
        smallest = float(rel.min())
        best = np.argmin(rel)
        needed = {d: int(np.ceil(((critical + _POWER_Z) * np.sqrt(sigma2[sensitive][best]) /
                                  (d * np.abs(mu[sensitive][best]))) ** 2)) for d in detect}
    else:
        smallest, needed = float("nan"), {}
    return StochasticReport(entry.name, not disagree, R, alpha, critical, disagree, smallest, needed, route,
                            entries, float(np.linalg.norm(mu)))

