"""A diagnosis instead of a max difference: which entry is wrong, by how much, and which
known mistake the result looks like.

:func:`compare` takes your estimator's output on some particles and returns a
:class:`Verdict`: the estimator, the parameter key and index of the worst
entry, expected and got, and — when the result does not agree — the closest
known mistake, found by computing what each mistake produces on the same
particles (:data:`MISTAKES`).  :func:`vectors` does the same for results you
computed from the shipped test vectors, with no model code on your side.

The mistakes, each by its signature:

    sign flip                 −1 × the answer
    sum over data             N × the answer (the 1/N of the batch mean is missing)
    batch-normalized weights  w̄ normalized over all K·N particles of the batch
    pyro-style weights        log w summed over the batch, then normalized over the
                              particles (and no 1/N), as Pyro's ReweightedWakeSleep does
    gradient through w̄        wake-φ differentiated through its weights too
    uniform weights           w̄ = 1/K (plain averaging over the particles)
    unnormalized weights      w instead of w̄
    missing −log K            the bound without its − log K
    arithmetic VIMCO baseline the arithmetic instead of the geometric mean of the others
    datapoints misaligned     particles of datapoint n paired with x_{n+1}
    K = 1 shortcut            wake-φ returning 0 at K = 1 (its mean) instead of −∇ log q(z_1)
"""
from dataclasses import dataclass

import numpy as np

from . import family
from ._trees import flatten
from .estimators import elbo_is, forward_passes, normalized_weights, wake_phi, wake_theta
from .numerics import log_mean_exp, logsumexp

__all__ = ["Verdict", "compare", "vectors", "MISTAKES", "REFERENCES"]

#: estimator name -> rws_ref's implementation (uniform signature; ELBO_IS as a dict {"elbo_is": (N,)})
REFERENCES = {
    "wake_theta": wake_theta,
    "wake_phi": wake_phi,
    "reinforce_phi": family.reinforce_phi,
    "vimco_phi": family.vimco_phi,
    "elbo_is": lambda m, g, th, ph, x, z: {"elbo_is": elbo_is(forward_passes(m, g, th, ph, x, z)[4])},
}


# -- the mistakes, computed on the same particles ---------------------------------------------------


def _passes(m, g, th, ph, x, z):
    return forward_passes(m, g, th, ph, x, z)[4:]


def _theta_with(weights_of):
    # a wake-θ-shaped result with other weights: pull the model's gradient back with weights_of(log_w)
    def mistake(m, g, th, ph, x, z):
        log_w, pull_p, _ = _passes(m, g, th, ph, x, z)
        return pull_p(weights_of(log_w))
    return mistake


def _phi_with(weights_of):
    def mistake(m, g, th, ph, x, z):
        log_w, _, pull_q = _passes(m, g, th, ph, x, z)
        return {k: -v for k, v in pull_q(weights_of(log_w)).items()}
    return mistake


def _batch(log_w):
    e = np.exp(log_w - log_w.max())
    return e / e.sum()


def _pyro(log_w):
    return np.repeat(normalized_weights(log_w.sum(axis=1, keepdims=True)), log_w.shape[1], axis=1)


def _uniform(log_w):
    return np.full(log_w.shape, 1.0 / log_w.size)


def _unnormalized(log_w):
    return np.exp(log_w) / log_w.shape[1]


def _through_weights(m, g, th, ph, x, z):
    # d/dφ of −(1/N) Σ w̄(φ) log q_φ: wake-φ plus (1/N) Σ_k w̄_k (log q_k − Σ_j w̄_j log q_j) ∇_φ log q_k
    log_w, _, pull_q = _passes(m, g, th, ph, x, z)
    log_q = g.log_prob(ph, z, x)
    w_bar = normalized_weights(log_w)
    extra = pull_q(w_bar * (log_q - (w_bar * log_q).sum(axis=0)) / log_w.shape[1])
    right = wake_phi(m, g, th, ph, x, z)
    return {k: right[k] + extra[k] for k in right}


def _arithmetic_vimco(m, g, th, ph, x, z):
    log_w, _, pull_q = _passes(m, g, th, ph, x, z)
    K = log_w.shape[0]
    others = np.stack([logsumexp(np.delete(log_w, k, axis=0), axis=0) for k in range(K)])   # log Σ_{j≠k} w_j
    loo = np.logaddexp(others, others - np.log(K - 1)) - np.log(K)
    signals = log_mean_exp(log_w, axis=0)[None, :] - loo
    return pull_q((signals - normalized_weights(log_w)) / log_w.shape[1])


def _k1_zero(m, g, th, ph, x, z):
    # at K = 1 wake-φ's *mean* is zero; returning zero instead of the estimate −∇ log q(z_1) is a mistake
    if np.shape(z)[0] != 1:
        return None
    return {k: np.zeros(np.shape(v)) for k, v in wake_phi(m, g, th, ph, x, z).items()}


def _scaled(reference, factor_of):
    def mistake(m, g, th, ph, x, z):
        right = reference(m, g, th, ph, x, z)
        return {k: factor_of(x) * v for k, v in right.items()}
    return mistake


def _misaligned(reference):
    def mistake(m, g, th, ph, x, z):
        if np.shape(x)[0] < 2:
            return None
        return reference(m, g, th, ph, np.roll(np.asarray(x), -1, axis=0), z)
    return mistake


def _common(name, reference):
    return {"sign flip": _scaled(reference, lambda x: -1.0),
            "sum over data instead of the mean": _scaled(reference, lambda x: float(np.shape(x)[0])),
            "datapoints misaligned (z of datapoint n paired with x_{n+1})": _misaligned(reference)}


#: estimator name -> {mistake name: function (model, guide, theta, phi, x, z) -> what it produces}
MISTAKES = {
    "wake_theta": {**_common("wake_theta", wake_theta),
                   "weights normalized over the whole batch (all K·N)": _theta_with(_batch),
                   "pyro-style weights (log w summed over the batch, then normalized)": _theta_with(_pyro),
                   "uniform weights (w̄ = 1/K)": _theta_with(_uniform),
                   "unnormalized weights (w instead of w̄)": _theta_with(_unnormalized)},
    "wake_phi": {**_common("wake_phi", wake_phi),
                 "weights normalized over the whole batch (all K·N)": _phi_with(_batch),
                 "pyro-style weights (log w summed over the batch, then normalized)": _phi_with(_pyro),
                 "uniform weights (w̄ = 1/K)": _phi_with(_uniform),
                 "gradient through the weights": _through_weights,
                 "K = 1 shortcut (zero, the estimator's mean, instead of its value)": _k1_zero},
    "reinforce_phi": _common("reinforce_phi", family.reinforce_phi),
    "vimco_phi": {**_common("vimco_phi", family.vimco_phi),
                  "arithmetic-mean VIMCO baseline": _arithmetic_vimco},
    "elbo_is": {"sign flip": _scaled(REFERENCES["elbo_is"], lambda x: -1.0),
                "missing −log K": lambda m, g, th, ph, x, z: {"elbo_is": REFERENCES["elbo_is"](
                    m, g, th, ph, x, z)["elbo_is"] + np.log(np.shape(z)[0])},
                "datapoints misaligned (z of datapoint n paired with x_{n+1})": _misaligned(REFERENCES["elbo_is"])},
}


# -- the verdict ------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """One comparison: ``ok``, and on failure where, by how much, and what it looks like."""
    estimator: str
    ok: bool
    max_abs_diff: float
    tolerance: float
    key: str = ""
    index: tuple = ()
    expected: float = 0.0
    got: float = 0.0
    mistake: str = ""
    mistake_distance: float = float("nan")
    note: str = ""

    def __str__(self):
        if self.ok:
            return f"{self.estimator}: agrees (max |difference| {self.max_abs_diff:.2e} ≤ {self.tolerance:.1e})"
        where = f"{self.key}{list(self.index) if self.index else ''}"
        text = (f"{self.estimator}: {where} expected {self.expected:.10g}, got {self.got:.10g} "
                f"(max |difference| {self.max_abs_diff:.3e} > tolerance {self.tolerance:.1e})")
        if self.mistake:
            text += (f"; looks like: {self.mistake}" if self.mistake_distance <= 1e-6 else
                     f"; closest known mistake: {self.mistake} (relative distance {self.mistake_distance:.2g}, "
                     f"so probably something else)")
        return text + (f"; {self.note}" if self.note else "")


def _as_tree(value, like):
    if isinstance(value, dict):
        return value
    return {next(iter(like)): value}


def _distance(a, b):
    a, b = flatten(a, sorted(a)), flatten(b, sorted(b))
    if a.shape != b.shape or not np.all(np.isfinite(b)):
        return np.inf
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300))


def _verdict(estimator, got, expected, rtol, atol, mistakes):
    got = _as_tree(got, expected)
    if sorted(got) != sorted(expected):
        return Verdict(estimator, False, np.inf, 0.0, note=f"keys {sorted(got)}, expected {sorted(expected)}")
    worst, where, tolerance = -1.0, None, 0.0
    for key in sorted(expected):
        e, g = np.asarray(expected[key], dtype=np.float64), np.asarray(got[key], dtype=np.float64)
        if e.shape != g.shape:
            return Verdict(estimator, False, np.inf, 0.0, key=key, note=f"shape {g.shape}, expected {e.shape}")
        diff = np.abs(g - e)
        allowed = atol + rtol * np.abs(e)
        excess = np.where(np.isnan(diff), np.inf, diff - allowed)
        if excess.size and np.max(excess) > worst:
            idx = np.unravel_index(int(np.argmax(excess)), e.shape) if e.ndim else ()
            worst, where = float(np.max(excess)), (key, tuple(int(i) for i in idx), float(e[idx]), float(g[idx]))
            tolerance = float(allowed[idx])
    max_diff = max(float(np.nanmax(np.abs(np.asarray(got[k], float) - np.asarray(expected[k], float))))
                   if np.size(expected[k]) else 0.0 for k in expected)
    if worst <= 0:
        return Verdict(estimator, True, max_diff, tolerance)
    key, idx, e, g = where
    verdict = Verdict(estimator, False, max_diff, tolerance, key=key, index=idx, expected=e, got=g)
    scored = sorted((_distance(got, m), name) for name, m in mistakes.items() if m is not None)
    if scored:
        best = scored[0][0]
        tied = [name for dist, name in scored if dist <= best + 1e-12]     # indistinguishable on this input
        verdict.mistake_distance, verdict.mistake = best, " or ".join(tied)
        if len(tied) > 1:
            verdict.note = "these mistakes give the same result on this input; a larger K or N tells them apart"
    return verdict


def compare(estimator, got, model, guide, theta, phi, x, z, rtol=1e-8, atol=1e-12):
    """Compare your ``got`` for ``estimator`` with rws_ref on the same inputs, and diagnose.

    Parameters
    ----------
    estimator : one of :data:`REFERENCES` ("wake_theta", "wake_phi", "reinforce_phi",
        "vimco_phi", "elbo_is")
    got : dict keyed like the parameters (for "elbo_is", the (N,) array or {"elbo_is": array})
    model, guide, theta, phi, x, z : the inputs you computed it from
    rtol, atol : agreement means |got − expected| ≤ atol + rtol·|expected| entry by entry

    Returns
    -------
    Verdict (``str(verdict)`` is the diagnosis)
    """
    if estimator not in REFERENCES:
        raise ValueError(f"estimator must be one of {sorted(REFERENCES)}; got {estimator!r}")
    expected = REFERENCES[estimator](model, guide, theta, phi, x, z)
    mistakes = {}
    for name, make in MISTAKES[estimator].items():
        try:
            mistakes[name] = make(model, guide, theta, phi, x, z)
        except (ValueError, FloatingPointError):        # a mistake that is undefined here (e.g. overflow)
            continue
    return _verdict(estimator, got, expected, rtol, atol, mistakes)


def vectors(results, data=None):
    """Verdicts for results computed from the test vectors, with no model code of yours.

    Parameters
    ----------
    results : dict case name -> {estimator name: your output}
    data : the loaded vectors (default ``rws_ref.vectors.load()``)

    Returns
    -------
    list of Verdict, one per (case, estimator) you gave; each estimator's name is
    prefixed with its case.  The tolerance is the one recorded in the file.
    """
    from . import vectors as vec
    data = vec.load() if data is None else data
    cases = {case["name"]: case for case in data["cases"]}
    out = []
    for name, outputs in results.items():
        if name not in cases:
            raise ValueError(f"results names an unknown case {name!r}; cases: {sorted(cases)}")
        case = cases[name]
        for estimator, got in outputs.items():
            expected = (case["estimators"].get(estimator) if estimator != "elbo_is"
                        else {"elbo_is": case["elbo_is"]})
            if expected is None:
                raise ValueError(f"case {name!r} records no {estimator!r}; it has {sorted(case['estimators'])}")
            tol = case["tolerance"]
            mistakes = {m: v for m, v in case["mistakes"].get(estimator, {}).items()}
            verdict = _verdict(estimator, got, expected, tol["rtol"], tol["atol"], mistakes)
            verdict.estimator = f"{name}: {estimator}"
            out.append(verdict)
    return out
