"""What wrong implementations of each estimator produce: the mistakes a diagnosis can name.

Every mistake is a function ``(model, guide, case) -> output`` (a dict keyed like
the right output, or None where it does not apply to this input), computed on the
same inputs as the right answer (:class:`rws_ref.registry.Case`), so a result can be
matched to it.  :func:`base_mistakes` lists one estimator's mistakes;
:func:`composite` adds each of them with a sign flip or a sum over the data on top,
as real code often carries two at once.

The weight rules (how the normalized weights w̄ are formed):

    per datapoint   w̄_kn = w_kn / Σ_l w_ln, and the batch mean's 1/N      (right)
    whole batch     w_kn / Σ_{l,m} w_lm over all K·N particles (no 1/N)
    whole run       log w summed over the batch, then normalized over the particles, no 1/N
                    (Pyro's ReweightedWakeSleep weighs each run of the program this way)
    uniform         w̄ = 1/K
    unnormalized    w instead of w̄
"""
import numpy as np

from .. import family, protocol, registry
from .._trees import negate
from ..estimators import elbo_is, forward_pass, normalized_weights, sleep_phi, wake_phi
from ..numerics import log_mean_exp, logsumexp

__all__ = ["base_mistakes", "composite", "all_mistakes", "nature", "WEIGHT_RULES", "SIGN", "SUM", "ZERO",
           "FIXED_PARTICLE_TERM", "PYRO_WEIGHTS", "ORDINARY_ELBO", "ORDINARY_ELBO_FULL", "Q_FORGOTTEN"]

SIGN = "sign flip"
SUM = "sum over data instead of the mean"
ZERO = "zero (no gradient reaches the parameters: a detached output, a dropped score-function term)"
FIXED_PARTICLE_TERM = ("gradient at fixed particles missing (the score-function term alone; "
                       "unbiased only at K = 1)")
_MISALIGNED = "datapoints misaligned (z of datapoint n paired with x_{n+1})"
PYRO_WEIGHTS = "pyro-style weights (log w summed over the batch, then normalized)"
ORDINARY_ELBO = ("the ordinary K-particle ELBO's score-function gradient, score-only "
                 "((1/K) Σ_k log w_k ∇ log q(z_k))")
ORDINARY_ELBO_FULL = ("the ordinary K-particle ELBO's score-function gradient "
                      "((1/K) Σ_k (log w_k − 1) ∇ log q(z_k))")


def nature(name, K):
    """(nature, what to say) of a known result that is not the estimator: ("mistake", ""), a framework's
    documented ("convention", …), an unbiased ("variant", …) of the estimator, or the estimator of another
    ("objective", …).  ``K``: the particles of the input (the score-only REINFORCE is unbiased at K = 1 only)."""
    base = name.split(" + ")[-1]
    if base == PYRO_WEIGHTS:
        return "convention", ("Pyro's ReweightedWakeSleep convention: one weight per run of the program, log w summed "
                              "over the batch, then normalized over the particles (its documentation asks for no "
                              "mini-batches; at N = 1 this is rws_ref's estimator)")
    if base in (FIXED_PARTICLE_TERM, ORDINARY_ELBO) and K == 1:          # at K = 1 the two are one estimator
        return "variant", ("unbiased, higher variance: the score-only REINFORCE (the gradient at fixed particles, "
                           "whose mean is zero at K = 1, left out; what Trace_ELBO computes for a discrete guide)")
    if base in (ORDINARY_ELBO, ORDINARY_ELBO_FULL):
        return "objective", ("the ordinary ELBO with K particles, (1/K) Σ_k log w_k (what Trace_ELBO and "
                             "TraceGraph_ELBO with num_particles = K estimate): unbiased for ∇ ELBO_1, "
                             "not for ∇ ELBO_IS")
    return "mistake", ""


# -- weight rules: log_w (K, N) -> coefficients that already hold the batch mean's 1/N ------------------


def _per_datapoint(log_w):
    return normalized_weights(log_w), True


def _whole_batch(log_w):
    e = np.exp(log_w - log_w.max())
    return e / e.sum(), False


def _whole_batch_mean(log_w):
    e = np.exp(log_w - log_w.max())
    return e / e.sum(), True


def _whole_run(log_w):
    return np.repeat(normalized_weights(log_w.sum(axis=1, keepdims=True)), log_w.shape[1], axis=1), False


def _uniform(log_w):
    return np.full(log_w.shape, 1.0 / log_w.shape[0]), True


def _unnormalized(log_w):
    return np.exp(log_w), True


def _over_datapoints(log_w):
    # softmax over the wrong axis: each particle's weights normalized across the datapoints
    return normalized_weights(log_w.T).T, True


def _log_weights_as_weights(log_w):
    return log_w, True


def _extra_one_over_k(log_w):
    return normalized_weights(log_w) / log_w.shape[0], True


#: mistake name -> rule (log_w -> (w, divided by N?)); "per datapoint" is the right one
WEIGHT_RULES = {
    "weights normalized over the whole batch (all K·N)": _whole_batch,
    "weights normalized over the whole batch (all K·N), then divided by N again": _whole_batch_mean,
    PYRO_WEIGHTS: _whole_run,
    "uniform weights (w̄ = 1/K)": _uniform,
    "unnormalized weights (w instead of w̄)": _unnormalized,
    "weights normalized over the datapoints instead of the particles (softmax over the wrong axis)":
        _over_datapoints,
    "log w used as the weights (w̄ = log w: never exponentiated, never normalized)": _log_weights_as_weights,
    "an extra 1/K (w̄/K: the normalized weights averaged again)": _extra_one_over_k,
}

#: the mistake of a weight rule that needs more than the log weights: w̄ ∝ p_θ(z, x) alone
Q_FORGOTTEN = "weights from p alone (log q forgotten: w̄ ∝ p_θ(z_k, x))"


def _coef(rule, log_w, power=lambda w: w):
    w, mean = rule(log_w)
    c = power(w)
    return c / log_w.shape[1] if mean else c


def _mix(a, b, wa, wb):
    return {k: wa * a[k] + wb * b[k] for k in a}


def _fp(model, guide, case):
    return forward_pass(model, guide, case.theta, case.phi, case.x, case.z)


# -- each estimator written with a weight rule ---------------------------------------------------


#: kind -> how its output is made from the forward pass and per-particle coefficients c (K, N) that hold the
#: weights and the batch mean's 1/N: the estimator with another weight rule
_FROM_WEIGHTS = {
    "wake_theta": lambda fp, c, guide, case: fp.pull_theta(c),
    "wake_phi": lambda fp, c, guide, case: negate(fp.pull_phi(c)),
    "defensive_wake_phi": lambda fp, c, guide, case: negate(fp.pull_phi(c)),
    "insomnia": lambda fp, c, guide, case: _mix(negate(fp.pull_phi(c)), sleep_phi(guide, case.phi, case.dream_z,
                                                                                  case.dream_x),
                                                case.iota, 1.0 - case.iota),
    "reinforce_phi": lambda fp, c, guide, case: fp.pull_phi(elbo_is(fp.log_w)[None, :] / fp.log_w.shape[1] - c),
    "vimco_phi": lambda fp, c, guide, case: fp.pull_phi(family.vimco_signals(fp.log_w) / fp.log_w.shape[1] - c),
}

#: reparameterized kind -> (the power of the weights in the path term, whether the score term is subtracted,
#: the sign of the result)
_REPARAMETERIZED = {"iwae_phi": (lambda w: w, True, 1.0), "stl_phi": (lambda w: w, False, 1.0),
                    "iwae_dreg_phi": (lambda w: w ** 2, False, 1.0),
                    "rws_dreg_phi": (lambda w: w - w ** 2, False, -1.0)}


def _weighted(kind, rule):
    """``kind`` computed with the weights of ``rule`` in place of the per-datapoint ones."""
    entry = registry.get(kind)

    def mistake(model, guide, case):
        if kind in _REPARAMETERIZED:
            return _reparameterized(kind, rule, model, guide, case)
        proposal = entry.signature.proposal(model, guide, case)
        fp = _fp(model, proposal, case)
        c = _coef(rule, fp.log_w if rule is not _p_alone else _log_p(model, proposal, case, fp))
        return _FROM_WEIGHTS[kind](fp, c, guide, case)
    return mistake


def _p_alone(log_p):
    return normalized_weights(log_p), True


def _log_p(model, guide, case, fp):
    """log p_θ(z_k, x_n) (K, N) of the particles: the log weights plus log q."""
    return fp.log_w + protocol.guide_forward(guide, fp.phi, fp.z, fp.x)[0]


def _reparameterized(kind, rule, model, guide, case, power=None):
    r = family.reparameterized_terms(model, guide, case.theta, case.phi, case.x, case.eps)
    own_power, score_term, sign = _REPARAMETERIZED[kind]
    log_w = r.log_w if rule is not _p_alone else r.log_w + guide.log_prob(case.phi, r.z, r.x)
    c = _coef(rule, log_w, power or own_power)
    path = family.path_gradient(guide, case.phi, r.x, case.eps, c, r.dlogw_dz)
    if score_term:
        score = guide.grad_log_prob(case.phi, r.z, r.x, c)
        path = {k: path[k] - score[k] for k in path}
    return {k: sign * v for k, v in path.items()}


# -- mistakes particular to one estimator ---------------------------------------------------------


def _through_weights(defensive=False):
    # d/dφ of −(1/N) Σ w̄(φ) log q_φ: wake-φ plus (1/N) Σ_k w̄_k (log q_k − Σ_j w̄_j log q_j) ∇_φ log q_k,
    # with w̄ ∝ p / q_mix and ∂ log q_mix / ∂ log q = (1 − δ) q / q_mix for the defensive mixture
    def mistake(model, guide, case):
        mix = family.DefensiveGuide(guide, case.delta, model=model) if defensive else guide
        fp = _fp(model, mix, case)
        log_q = guide.log_prob(case.phi, case.z, case.x)
        w_bar = normalized_weights(fp.log_w)
        d_log_mix = (1.0 - case.delta) * np.exp(log_q - mix.log_prob(case.phi, case.z, case.x)) if defensive else 1.0
        centred = log_q - (w_bar * log_q).sum(axis=0)
        extra = guide.grad_log_prob(case.phi, case.z, case.x, w_bar * centred * d_log_mix / fp.log_w.shape[1])
        right = negate(guide.grad_log_prob(case.phi, case.z, case.x, w_bar / fp.log_w.shape[1]))
        return {k: right[k] + extra[k] for k in right}
    return mistake


def _k1_zero(model, guide, case):
    # at K = 1 wake-φ's *mean* is zero; returning zero instead of the estimate −∇ log q(z_1) is a mistake
    if np.shape(case.z)[0] != 1:
        return None
    return {k: np.zeros(np.shape(v)) for k, v in case.phi.items()}


def _arithmetic_vimco(model, guide, case):
    fp = _fp(model, guide, case)
    log_w, K = fp.log_w, fp.log_w.shape[0]
    others = np.stack([logsumexp(np.delete(log_w, k, axis=0), axis=0) for k in range(K)])   # log Σ_{j≠k} w_j
    loo = np.logaddexp(others, others - np.log(K - 1)) - np.log(K)
    signals = log_mean_exp(log_w, axis=0)[None, :] - loo
    return fp.pull_phi((signals - normalized_weights(log_w)) / log_w.shape[1])


def _vimco_with(baseline):
    """VIMCO with a wrong leave-one-out baseline: the geometric mean over all K weights (particle k
    included), or over the other K − 1 divided by K instead of K − 1."""
    def mistake(model, guide, case):
        fp = _fp(model, guide, case)
        log_w, K = fp.log_w, fp.log_w.shape[0]
        others = np.stack([logsumexp(np.delete(log_w, k, axis=0), axis=0) for k in range(K)])   # log Σ_{j≠k} w_j
        total = log_w.sum(axis=0)[None, :]
        geo = total / K if baseline == "all" else (total - log_w) / K
        loo = np.logaddexp(others, geo) - np.log(K)
        signals = log_mean_exp(log_w, axis=0)[None, :] - loo
        return fp.pull_phi((signals - normalized_weights(log_w)) / log_w.shape[1])
    return mistake


def _score_term_missing(model, guide, case):
    # only the gradient of L̂ at fixed particles, −Σ_k w̄_k ∇ log q(z_k): what a framework computes for a
    # discrete guide when the score-function term is dropped (numerically equal to wake-φ's descent vector)
    fp = _fp(model, guide, case)
    return fp.pull_phi(-normalized_weights(fp.log_w) / fp.log_w.shape[1])


def _fixed_particle_term_missing(kind):
    # the score-function term alone, Σ_k signal_k ∇ log q(z_k): the gradient of L̂ at fixed particles,
    # −Σ_k w̄_k ∇ log q(z_k), dropped.  Its mean is zero only at K = 1 (Pyro's Trace_ELBO on a discrete
    # guide computes this at K = 1); at K > 1 the result is biased.
    def mistake(model, guide, case):
        fp = _fp(model, guide, case)
        signal = elbo_is(fp.log_w)[None, :] if kind == "reinforce_phi" else family.vimco_signals(fp.log_w)
        return fp.pull_phi(np.broadcast_to(signal, fp.log_w.shape) / fp.log_w.shape[1])
    return mistake


def _ordinary_elbo(fixed_particle_term):
    # the ordinary K-particle ELBO, (1/K) Σ_k log w_k, differentiated by the score function particle by
    # particle: (1/N) Σ_n (1/K) Σ_k (log w_kn [− 1]) ∇ log q(z_kn) — what Trace_ELBO and TraceGraph_ELBO with
    # num_particles = K compute for a discrete guide (score-only; the "− 1", the gradient at fixed particles,
    # has mean zero).  Unbiased for ∇ ELBO_1, not for ∇ ELBO_IS at K > 1.
    def mistake(model, guide, case):
        fp = _fp(model, guide, case)
        K, n = fp.log_w.shape
        return fp.pull_phi((fp.log_w - (1.0 if fixed_particle_term else 0.0)) / (K * n))
    return mistake


def _signal_without_log_k(model, guide, case):
    fp = _fp(model, guide, case)
    signal = elbo_is(fp.log_w)[None, :] + np.log(fp.log_w.shape[0])
    return fp.pull_phi((signal - normalized_weights(fp.log_w)) / fp.log_w.shape[1])


def _defensive_with(change):
    def mistake(model, guide, case):
        if change == "swap":
            fp = _fp(model, family.DefensiveGuide(guide, 1.0 - case.delta, model=model), case)
            return negate(fp.pull_phi(normalized_weights(fp.log_w) / fp.log_w.shape[1]))
        mix = family.DefensiveGuide(guide, case.delta, model=model)
        if change == "weights against q":           # w ∝ p / q_φ: the particles' real proposal left out
            fp = _fp(model, guide, case)
            return negate(fp.pull_phi(normalized_weights(fp.log_w) / fp.log_w.shape[1]))
        # change == "gradient of the mixture": −Σ w̄ ∇ log q_mix = −Σ w̄ (1 − δ) q/q_mix ∇ log q_φ
        fp = _fp(model, mix, case)
        log_q = guide.log_prob(case.phi, case.z, case.x)
        ratio = (1.0 - case.delta) * np.exp(log_q - mix.log_prob(case.phi, case.z, case.x))
        return negate(fp.pull_phi(normalized_weights(fp.log_w) * ratio / fp.log_w.shape[1]))
    return mistake


def _insomnia_with(change):
    def mistake(model, guide, case):
        wake = wake_phi(model, guide, case.theta, case.phi, case.x, case.z)
        sleep = sleep_phi(guide, case.phi, case.dream_z, case.dream_x)
        iota = case.iota
        if change == "swap":
            return _mix(wake, sleep, 1.0 - iota, iota)
        return _mix(wake, sleep, iota * iota, 1.0 - iota)             # ι applied twice to the wake term
    return mistake


def _iwae_score_sign(model, guide, case):
    r = family.reparameterized_terms(model, guide, case.theta, case.phi, case.x, case.eps)
    c = normalized_weights(r.log_w) / r.x.shape[0]
    path = family.path_gradient(guide, case.phi, r.x, case.eps, c, r.dlogw_dz)
    score = guide.grad_log_prob(case.phi, r.z, r.x, c)
    return {k: path[k] + score[k] for k in path}


def _iwae_path_without_q(model, guide, case):
    r = family.reparameterized_terms(model, guide, case.theta, case.phi, case.x, case.eps)
    c = normalized_weights(r.log_w) / r.x.shape[0]
    path = family.path_gradient(guide, case.phi, r.x, case.eps, c, model.grad_z_log_joint(case.theta, r.z, r.x))
    score = guide.grad_log_prob(case.phi, r.z, r.x, c)
    return {k: path[k] - score[k] for k in path}


def _reparameterized_as(kind, power):
    def mistake(model, guide, case):
        return _reparameterized(kind, _per_datapoint, model, guide, case, power)
    return mistake


def _bound(fn):
    def mistake(model, guide, case):
        log_w = _fp(model, guide, case).log_w
        return {"elbo_is": fn(log_w)}
    return mistake


def _misaligned(entry):
    def mistake(model, guide, case):
        if case.x is None or np.shape(case.x)[0] < 2:
            return None
        return registry.reference_output(entry, model, guide, case._replace(x=np.roll(np.asarray(case.x), -1,
                                                                                         axis=0)))
    return mistake


def _zero(model, guide, case, entry):
    params = case.theta if entry.output == "theta" else case.phi
    return {k: np.zeros(np.shape(v)) for k, v in params.items()}


# -- the catalogue ---------------------------------------------------------------------------------


_PARTICULAR = {
    "elbo_is": {
        "missing −log K": _bound(lambda log_w: elbo_is(log_w) + np.log(log_w.shape[0])),
        "mean of log w (the K = 1 bound) instead of the log of the mean weight": _bound(
            lambda log_w: log_w.mean(axis=0)),
        "logsumexp over the whole batch (all K·N)": _bound(
            lambda log_w: np.full(log_w.shape[1], logsumexp(log_w.reshape(-1), axis=0) - np.log(log_w.shape[0]))),
    },
    "wake_phi": {"gradient through the weights": _through_weights(),
                 "K = 1 shortcut (zero, the estimator's mean, instead of its value)": _k1_zero},
    "defensive_wake_phi": {
        "gradient through the weights": _through_weights(defensive=True),
        "weights p/q_φ instead of p/q_mix (the mixture the particles came from left out)":
            _defensive_with("weights against q"),
        "∇ log q_mix instead of ∇ log q_φ (the mixture differentiated)": _defensive_with("gradient of the mixture"),
        "δ and 1 − δ swapped": _defensive_with("swap")},
    "insomnia": {"ι and 1 − ι swapped": _insomnia_with("swap"),
                 "ι applied twice to the wake term": _insomnia_with("twice")},
    "reinforce_phi": {"score-function term missing (only the gradient at fixed particles)": _score_term_missing,
                      FIXED_PARTICLE_TERM: _fixed_particle_term_missing("reinforce_phi"),
                      ORDINARY_ELBO: _ordinary_elbo(False),
                      ORDINARY_ELBO_FULL: _ordinary_elbo(True),
                      "learning signal without −log K": _signal_without_log_k},
    "vimco_phi": {"arithmetic-mean VIMCO baseline": _arithmetic_vimco,
                  "leave-one-out including particle k (the geometric mean of all K weights)": _vimco_with("all"),
                  "geometric mean of the others divided by K instead of K − 1": _vimco_with("over K"),
                  "score-function term missing (only the gradient at fixed particles)": _score_term_missing,
                  FIXED_PARTICLE_TERM: _fixed_particle_term_missing("vimco_phi")},
    "iwae_phi": {"score term missing (STL)": _reparameterized_as("stl_phi", lambda w: w),
                 "score term added instead of subtracted": _iwae_score_sign,
                 "∇_z log q missing from the path derivative (only ∇_z log p_θ through z)": _iwae_path_without_q},
    "stl_phi": {"score term kept (the IWAE gradient)": lambda m, g, c: registry.ESTIMATORS["iwae_phi"].function(
        m, g, c.theta, c.phi, c.x, c.eps)},
    "iwae_dreg_phi": {"w̃ instead of w̃² (STL)": _reparameterized_as("stl_phi", lambda w: w)},
    "rws_dreg_phi": {"w̃² instead of w̃ − w̃² (IWAE-DReG's coefficient)": _reparameterized_as(
        "rws_dreg_phi", lambda w: w ** 2)},
}


def base_mistakes(kind):
    """{mistake name: function (model, guide, case) -> output or None} for one estimator kind."""
    entry = registry.get(kind)
    out = {SIGN: lambda m, g, c: negate(registry.reference_output(entry, m, g, c))}
    if entry.output != "bound":
        out[SUM] = _summed(entry)
        out[ZERO] = (
            lambda m, g, c: _zero(m, g, c, entry))
    if kind in _FROM_WEIGHTS or kind in _REPARAMETERIZED:
        out.update({name: _weighted(kind, rule) for name, rule in WEIGHT_RULES.items()})
        out[Q_FORGOTTEN] = _weighted(kind, _p_alone)
    out.update(_PARTICULAR.get(kind, {}))
    if entry.signature.enumerable and entry.signature.evaluates_model:      # particles z paired with data x
        out[_MISALIGNED] = _misaligned(entry)
    return out


def _summed(entry):
    # the batch mean's 1/N (1/M for dreams) left out: N × the answer (insomnia: N × wake, M × sleep)
    def mistake(m, g, c):
        if entry.name in _SUMMED:
            return _SUMMED[entry.name](m, g, c)
        return {k: entry.signature.size(c) * v for k, v in entry.reference(m, g, c).items()}
    return mistake


def _insomnia_summed(m, g, c):
    wake, sleep = wake_phi(m, g, c.theta, c.phi, c.x, c.z), sleep_phi(g, c.phi, c.dream_z, c.dream_x)
    return _mix(wake, sleep, c.iota * np.shape(c.x)[0], (1.0 - c.iota) * np.shape(c.dream_x)[0])


#: kinds whose "sum over the data" is not N × the answer
_SUMMED = {"insomnia": _insomnia_summed}


def composite(made, n_data):
    """Two mistakes at once, from outputs already computed: each base mistake with a sign flip
    (−1 ×) and with a sum over the data (N ×) on top, and the two together.  ``made`` maps
    names to outputs (None where a mistake does not apply)."""
    out = {}
    for name, value in made.items():
        if value is None or name in (SIGN, ZERO):
            continue
        out[f"{SIGN} + {name}"] = negate(value)
        if SUM in made and name != SUM:
            out[f"{SUM} + {name}"] = {k: n_data * v for k, v in value.items()}
            out[f"{SIGN} + {SUM} + {name}"] = {k: -n_data * v for k, v in value.items()}
    return out


def all_mistakes(kind, model, guide, case):
    """Every mistake's output for this input, base and composite: {name: output}.  A mistake
    that is undefined here (it does not apply, or overflows) is left out."""
    made = {}
    for name, make in base_mistakes(kind).items():
        try:
            with np.errstate(all="ignore"):        # a mistake may overflow (no max shift): a probe, not news
                value = make(model, guide, case)
        except (ValueError, FloatingPointError, TypeError):
            continue
        if value is not None:
            made[name] = {k: np.asarray(v, dtype=np.float64) for k, v in value.items()}
    entry = registry.get(kind)
    return {**made, **composite(made, entry.signature.size(case) if entry.output != "bound" else 1)}
