"""rws_ref.checking.mistakes: every estimator's mistakes are named by the diagnosis, composites too, ties only when
the outputs coincide; and the mistakes equal implementations written independently here."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from autograd.tracer import getval

import rws_ref
from rws_ref import family, registry
from rws_ref.checking import diagnose, mistakes
from rws_ref.checking.properties import draw_case
from rws_ref.numerics import softmax

from _util import assert_tree_close

LG = rws_ref.LinearGaussian(2, 3), rws_ref.DiagonalGaussianGuide(2, 3)
MIX = rws_ref.GaussianMixture(5, scale=6.0), rws_ref.SoftmaxLinearGuide(5, loc=20.0, scale=10.0)


def _setting(kind, K=4, seed=0):
    """A generic input for ``kind``: K particles for N = 3 datapoints, parameters away from symmetries."""
    entry = registry.get(kind)
    model, guide = LG if entry.signature.name in ("noise", "dreams", "log_w") else MIX
    rng = np.random.default_rng(seed)
    theta = {k: v + 0.5 * rng.standard_normal(np.shape(v)) for k, v in model.init_theta(rng).items()}
    phi = {k: v + 0.5 * rng.standard_normal(np.shape(v)) for k, v in guide.init_phi(rng).items()}
    x = model.sample(theta, 3, rng)[1]
    if model is MIX[0]:                                  # between components: w̄ is not one-hot
        x = np.array([15.0, 21.0, 27.0])
    return model, guide, draw_case(entry, model, guide, theta, phi, rng, n=3, k=K, x=x)


CASES = [(kind, name) for kind in registry.KINDS for name in mistakes.base_mistakes(kind)]


@pytest.mark.parametrize("kind, name", CASES, ids=[f"{k}: {n}" for k, n in CASES])
def test_each_mistake_of_each_estimator_is_named(kind, name):
    model, guide, case = _setting(kind, K=1 if name.startswith("K = 1") else 4)
    wrong = mistakes.base_mistakes(kind)[name](model, guide, case)
    if wrong is None:
        pytest.skip(f"{name} does not apply here")
    verdict = diagnose.compare(kind, wrong, model, guide, **case._asdict())
    assert not verdict.ok and verdict.mistake == name and verdict.mistake_distance < 1e-12, str(verdict)


@pytest.mark.parametrize("kind, base", [("wake_theta", "pyro-style weights (log w summed over the batch, then "
                                                       "normalized)"),
                                        ("wake_phi", "gradient through the weights"),
                                        ("reinforce_phi", "score-function term missing (only the gradient at "
                                                          "fixed particles)")])
def test_two_mistakes_at_once_are_named_as_a_composite(kind, base):
    model, guide, case = _setting(kind)
    one = mistakes.base_mistakes(kind)[base](model, guide, case)
    for factor, words in ((-1.0, f"{mistakes.SIGN} + {base}"), (3.0, f"{mistakes.SUM} + {base}"),
                          (-3.0, f"{mistakes.SIGN} + {mistakes.SUM} + {base}")):
        verdict = diagnose.compare(kind, {k: factor * v for k, v in one.items()}, model, guide, **case._asdict())
        assert verdict.mistake == words, str(verdict)


def test_a_zero_result_is_not_called_a_tie_and_something_else_is_not_named():
    model, guide, case = _setting("wake_theta")
    zero = {k: np.zeros(np.shape(v)) for k, v in case.theta.items()}
    verdict = diagnose.compare("wake_theta", zero, model, guide, **case._asdict())
    assert verdict.mistake == mistakes.ZERO and "same result" not in str(verdict) and "exactly zero" in str(verdict)
    odd = {k: np.full(np.shape(v), 0.123) for k, v in case.theta.items()}
    verdict = diagnose.compare("wake_theta", odd, model, guide, **case._asdict())
    assert " or " not in verdict.mistake and "probably something else" in str(verdict)


# -- the mistakes against implementations written independently here --------------------------------


def test_mistakes_that_are_other_estimators_equal_those_estimators():
    model, guide, case = _setting("iwae_phi")
    th, ph, x, eps = case.theta, case.phi, case.x, case.eps
    m = lambda kind, name: mistakes.base_mistakes(kind)[name](model, guide, case)
    assert_tree_close(m("iwae_phi", "score term missing (STL)"), family.stl_phi(model, guide, th, ph, x, eps), 1e-12)
    assert_tree_close(m("stl_phi", "score term kept (the IWAE gradient)"), family.iwae_phi(model, guide, th, ph, x,
                                                                                             eps), 1e-12)
    assert_tree_close(m("iwae_dreg_phi", "w̃ instead of w̃² (STL)"), family.stl_phi(model, guide, th, ph, x, eps),
                      1e-12)
    model, guide, case = _setting("insomnia")
    swapped = mistakes.base_mistakes("insomnia")["ι and 1 − ι swapped"](model, guide, case)
    assert_tree_close(swapped, family.insomnia(model, guide, case.theta, case.phi, case.x, case.z, case.dream_z,
                                               case.dream_x, 1.0 - case.iota), 1e-12)
    model, guide, case = _setting("defensive_wake_phi")
    table = mistakes.base_mistakes("defensive_wake_phi")
    assert_tree_close(table["δ and 1 − δ swapped"](model, guide, case), family.defensive_wake_phi(
        model, guide, case.theta, case.phi, case.x, case.z, 1.0 - case.delta), 1e-12)
    assert_tree_close(table["weights p/q_φ instead of p/q_mix (the mixture the particles came from left out)"](
        model, guide, case), rws_ref.wake_phi(model, guide, case.theta, case.phi, case.x, case.z), 1e-12)
    # the score-function term of REINFORCE dropped leaves −Σ w̄ ∇ log q: numerically wake-φ's descent vector
    model, guide, case = _setting("reinforce_phi")
    assert_tree_close(mistakes.base_mistakes("reinforce_phi")[
        "score-function term missing (only the gradient at fixed particles)"](model, guide, case),
        rws_ref.wake_phi(model, guide, case.theta, case.phi, case.x, case.z), 1e-12)


def test_the_defensive_mistakes_in_phi_equal_autograd_of_their_wrong_surrogates():
    model, guide, case = _setting("defensive_wake_phi")
    mix = family.DefensiveGuide(guide, case.delta)
    th, x, z = case.theta, case.x, case.z
    log_p = model.log_joint(th, z, x)

    def through_weights(ph):                                 # −(1/N) Σ w̄(φ) log q_φ, w̄ ∝ p / q_mix(φ)
        return -anp.sum(softmax(log_p - mix.log_prob(ph, z, x), axis=0) * guide.log_prob(ph, z, x)) / x.shape[0]

    def mixture_differentiated(ph):                          # −(1/N) Σ stop(w̄) log q_mix(φ)
        w_bar = getval(softmax(log_p - mix.log_prob(ph, z, x), axis=0))
        return -anp.sum(w_bar * mix.log_prob(ph, z, x)) / x.shape[0]
    table = mistakes.base_mistakes("defensive_wake_phi")
    assert_tree_close(table["gradient through the weights"](model, guide, case), grad(through_weights)(case.phi),
                      1e-10)
    assert_tree_close(table["∇ log q_mix instead of ∇ log q_φ (the mixture differentiated)"](model, guide, case),
                      grad(mixture_differentiated)(case.phi), 1e-10)


def test_the_insomnia_iota_applied_twice_is_a_loop_over_its_parts():
    model, guide, case = _setting("insomnia")
    wake = rws_ref.wake_phi(model, guide, case.theta, case.phi, case.x, case.z)
    sleep = rws_ref.sleep_phi(guide, case.phi, case.dream_z, case.dream_x)
    want = {k: case.iota ** 2 * wake[k] + (1 - case.iota) * sleep[k] for k in wake}
    assert_tree_close(mistakes.base_mistakes("insomnia")["ι applied twice to the wake term"](model, guide, case),
                      want, 1e-12)


def test_no_mistake_name_holds_the_word_that_joins_ties():
    for kind in registry.KINDS:
        for name in mistakes.base_mistakes(kind):
            assert " or " not in name, (kind, name)        # a tie is shown as "a or b"


# -- the mistakes as students write them (independently of rws_ref.checking.mistakes), through check_estimator ------

def _lw(model, guide, theta, phi, x, z):
    return model.log_joint(theta, z, x) - guide.log_prob(phi, z, x)


def _softmax(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _with_weights(weights, phi_grad=False):
    def fn(model, guide, theta, phi, x, z):
        w = weights(model, guide, theta, phi, x, z) / x.shape[0]
        if phi_grad:
            return {k: -v for k, v in guide.grad_log_prob(phi, z, x, w).items()}
        return model.grad_log_joint(theta, z, x, w)
    return fn


def _vimco(geometric):
    def fn(model, guide, theta, phi, x, z):
        log_w = _lw(model, guide, theta, phi, x, z)
        K = log_w.shape[0]
        lme = lambda a: a.max(0) + np.log(np.mean(np.exp(a - a.max(0)), 0))      # noqa: E731
        signal = np.empty_like(log_w)
        for k in range(K):
            swapped = log_w.copy()
            swapped[k] = geometric(log_w, k, K)
            signal[k] = lme(log_w) - lme(swapped)
        return guide.grad_log_prob(phi, z, x, (signal - _softmax(log_w, 0)) / x.shape[0])
    return fn


def _iwae_without_grad_z_log_q(model, guide, theta, phi, x, eps):
    z = guide.reparameterize(phi, x, eps)
    w = _softmax(_lw(model, guide, theta, phi, x, z), 0) / x.shape[0]
    path = guide.pull_back(phi, x, eps, w[..., None] * model.grad_z_log_joint(theta, z, x))
    score = guide.grad_log_prob(phi, z, x, w)
    return {k: path[k] - score[k] for k in path}


def _negated(fn):
    return lambda *args: {k: -v for k, v in fn(*args).items()}


STUDENTS = [
    ("wake_theta", _with_weights(lambda m, g, th, ph, x, z: _softmax(_lw(m, g, th, ph, x, z), 1)),
     "weights normalized over the datapoints instead of the particles (softmax over the wrong axis)"),
    ("wake_theta", _with_weights(lambda m, g, th, ph, x, z: _lw(m, g, th, ph, x, z)),
     "log w used as the weights (w̄ = log w: never exponentiated, never normalized)"),
    ("wake_theta", _with_weights(lambda m, g, th, ph, x, z: _softmax(_lw(m, g, th, ph, x, z), 0) / z.shape[0]),
     "an extra 1/K (w̄/K: the normalized weights averaged again)"),
    ("wake_theta", _with_weights(lambda m, g, th, ph, x, z: _softmax(m.log_joint(th, z, x), 0)),
     mistakes.Q_FORGOTTEN),
    ("wake_phi", _with_weights(lambda m, g, th, ph, x, z: _softmax(m.log_joint(th, z, x), 0), phi_grad=True),
     mistakes.Q_FORGOTTEN),
    ("vimco_phi", _vimco(lambda log_w, k, K: log_w.mean(0)),
     "leave-one-out including particle k (the geometric mean of all K weights)"),
    ("vimco_phi", _vimco(lambda log_w, k, K: (log_w.sum(0) - log_w[k]) / K),
     "geometric mean of the others divided by K instead of K − 1"),
    ("iwae_phi", _iwae_without_grad_z_log_q,
     "∇_z log q missing from the path derivative (only ∇_z log p_θ through z)"),
]
STUDENTS += [(kind, _negated(fn), f"{mistakes.SIGN} + {name}") for kind, fn, name in STUDENTS]


@pytest.mark.parametrize("kind, fn, name", STUDENTS, ids=[f"{k}: {n[:60]}" for k, _, n in STUDENTS])
def test_a_students_mistake_is_named_by_check_estimator(kind, fn, name):
    from rws_ref.checking import testing
    model, guide = LG if not registry.get(kind).signature.enumerable else MIX
    report = testing.check_estimator(fn, kind, model, guide, max_examples=15, samplers=False)
    agreement = next(r for r in report.results if r.name == "agreement with rws_ref")
    assert agreement.status == "fail"
    # the last diagnosis — on the larger generic input when the drawn one is small and ties mistakes — names it
    last = agreement.detail.split("looks like: ")[-1]
    assert last.startswith(f"{name}; input") or last == name, agreement.detail


def test_the_bounds_mistakes_equal_their_formulas_written_here():
    from scipy.special import logsumexp
    model, guide, case = _setting("elbo_is")
    log_w = rws_ref.log_weights(model, guide, case.theta, case.phi, case.x, case.z)
    made = mistakes.base_mistakes("elbo_is")
    K = log_w.shape[0]
    np.testing.assert_allclose(made["missing −log K"](model, guide, case)["elbo_is"], logsumexp(log_w, axis=0),
                               rtol=1e-13)                                    # log Σ_k w_k: no −log K at all
    np.testing.assert_allclose(made["mean of log w (the K = 1 bound) instead of the log of the mean weight"](
        model, guide, case)["elbo_is"], log_w.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(made["logsumexp over the whole batch (all K·N)"](model, guide, case)["elbo_is"],
                               np.full(log_w.shape[1], logsumexp(log_w) - np.log(K)), rtol=1e-13)
