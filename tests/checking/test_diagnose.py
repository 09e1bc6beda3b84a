"""rws_ref.checking.diagnose: every known mistake is named, the correct answer agrees, a near miss fails,
and the mistakes themselves are checked against independent implementations."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

import rws_ref
from rws_ref.checking import diagnose, vectors
from rws_ref.numerics import softmax

from _util import assert_tree_close


def _lg(seed=0, n=3, K=4):
    rng = np.random.default_rng(seed)
    model, guide = rws_ref.LinearGaussian(2, 3), rws_ref.DiagonalGaussianGuide(2, 3)
    theta = model.init_theta(rng)
    phi = {"A": 0.3 * rng.standard_normal((2, 3)), "c": 0.3 * rng.standard_normal(2), "log_s": np.array([0.3, 0.1])}
    x = model.sample(theta, n, rng)[1]
    return model, guide, theta, phi, x, guide.sample(phi, x, K, rng)


def _mixture(seed=0, K=4):
    rng = np.random.default_rng(seed)
    model, guide = rws_ref.GaussianMixture(6, scale=6.0), rws_ref.SoftmaxLinearGuide(6, loc=25.0, scale=15.0)
    theta, phi = model.true_theta(), {"w": 0.5 * rng.standard_normal(6), "b": 0.5 * rng.standard_normal(6)}
    x = np.array([15.0, 24.0, 33.0])
    z = np.array([[1, 2, 3], [2, 2, 4], [1, 3, 3], [2, 3, 4]])[:K]
    return model, guide, theta, phi, x, z


SETTINGS = {"wake_theta": _lg, "wake_phi": _lg, "elbo_is": _lg, "reinforce_phi": _mixture, "vimco_phi": _mixture}
CASES = [(est, name) for est, table in diagnose.MISTAKES.items() for name in table]


@pytest.mark.parametrize("estimator, mistake", CASES, ids=[f"{e}: {m}" for e, m in CASES])
def test_each_mistake_is_named_by_the_diagnosis(estimator, mistake):
    args = SETTINGS[estimator](K=1) if mistake.startswith("K = 1") else SETTINGS[estimator]()
    wrong = diagnose.MISTAKES[estimator][mistake](*args)
    verdict = diagnose.compare(estimator, wrong, *args)
    assert not verdict.ok and verdict.mistake == mistake and verdict.mistake_distance < 1e-12, str(verdict)
    assert "looks like: " + mistake in str(verdict) and "expected" in str(verdict) and verdict.key


@pytest.mark.parametrize("estimator", sorted(diagnose.REFERENCES))
def test_the_correct_answer_agrees_and_a_near_miss_fails(estimator):
    args = SETTINGS[estimator]()
    right = diagnose.REFERENCES[estimator](*args)
    assert diagnose.compare(estimator, right, *args).ok
    near = {k: v * (1 + 1e-6) for k, v in right.items()}
    verdict = diagnose.compare(estimator, near, *args)
    assert not verdict.ok and not verdict.mistakes and "nearer rws_ref's answer" in verdict.note   # no mistake claimed


def test_the_worst_entry_is_located_by_key_and_index():
    args = _lg()
    right = rws_ref.wake_theta(*args)
    wrong = {k: v.copy() for k, v in right.items()}
    wrong["W"][2, 1] += 0.5
    verdict = diagnose.compare("wake_theta", wrong, *args)
    assert (verdict.key, verdict.index) == ("W", (2, 1)) and verdict.got - verdict.expected == pytest.approx(0.5)


# -- the mistakes, each against an implementation written independently here --------------------


def test_gradient_through_the_weights_equals_autograd_of_the_wrong_surrogate():
    model, guide, theta, phi, x, z = _lg()
    log_p = model.log_joint(theta, z, x)

    def wrong(ph):
        log_q = guide.log_prob(ph, z, x)
        return -anp.sum(softmax(log_p - log_q, axis=0) * log_q) / x.shape[0]
    assert_tree_close(diagnose.MISTAKES["wake_phi"]["gradient through the weights"](model, guide, theta, phi, x, z),
                      grad(wrong)(phi), 1e-10)


def test_pyro_style_weights_equal_autograd_of_pyros_surrogate():
    model, guide, theta, phi, x, z = _lg()
    log_q = guide.log_prob(phi, z, x)

    def pyro_bound(th):                          # log mean_k exp(Σ_n log w_kn): one weight per particle
        log_w = anp.sum(model.log_joint(th, z, x) - log_q, axis=1)
        return anp.log(anp.mean(anp.exp(log_w - anp.max(log_w)))) + anp.max(log_w)
    name = "pyro-style weights (log w summed over the batch, then normalized)"
    assert_tree_close(diagnose.MISTAKES["wake_theta"][name](model, guide, theta, phi, x, z), grad(pyro_bound)(theta),
                      1e-10)


def test_arithmetic_vimco_baseline_equals_a_loop():
    model, guide, theta, phi, x, z = _mixture()
    log_w = rws_ref.log_weights(model, guide, theta, phi, x, z)
    K, n = log_w.shape
    coef = np.empty_like(log_w)
    for j in range(n):
        w = np.exp(log_w[:, j])
        bound = np.log(w.mean())
        for k in range(K):
            others = np.delete(w, k)
            coef[k, j] = bound - np.log((others.sum() + others.mean()) / K) - w[k] / w.sum()
    want = guide.grad_log_prob(phi, z, x, coef / n)
    assert_tree_close(diagnose.MISTAKES["vimco_phi"]["arithmetic-mean VIMCO baseline"](model, guide, theta, phi, x, z),
                      want, 1e-10)


# -- results computed from the test vectors -------------------------------------------------------


def test_vector_results_are_judged_with_the_recorded_tolerance_and_mistakes():
    data = vectors.load()
    right = {case["name"]: {est: case["estimators"][est] for est in ("wake_theta", "wake_phi")}
             for case in data["cases"]}
    assert all(v.ok for v in diagnose.vectors(right, data))
    for case in data["cases"]:
        for estimator, table in case["mistakes"].items():
            for mistake, wrong in table.items():
                verdict, = diagnose.vectors({case["name"]: {estimator: wrong}}, data)
                # at K = 1 some mistakes coincide (pyro-style weights = sum over data; a K = 1 shortcut is a
                # zero): the verdict names the mistake or one that gives the same numbers here
                named = verdict.mistakes
                same = [m for m in named if m in table and max(
                    float(np.max(np.abs(np.asarray(table[m][k]) - np.asarray(wrong[k])))) for k in wrong) < 1e-12]
                assert not verdict.ok and verdict.mistake_distance < 1e-12 and same, (case["name"], str(verdict))
    with pytest.raises(ValueError, match="unknown case"):
        diagnose.vectors({"no such case": {}}, data)
