"""rws_ref.checking.endtoend: a stochastic estimator with its own sampling, against the exact mean and variance.
Correct implementations pass (false-failure rate 1e-3 per check, fixed seeds); each planted bug of the
issue is caught with |z| far above the threshold."""
import numpy as np
import pytest

import rws_ref
from rws_ref import family
from rws_ref.checking import endtoend

MIX, CAT = rws_ref.GaussianMixture(4, scale=6.0), rws_ref.SoftmaxLinearGuide(4, loc=15.0, scale=10.0)
TH = MIX.true_theta()
_r = np.random.default_rng(0)
PH = {"w": 3.0 * _r.standard_normal(4), "b": 3.0 * _r.standard_normal(4)}       # a peaked guide
X = np.array([3.0, 12.0, 25.0])
K, M, IOTA, DELTA = 3, 4, 0.3, 0.2
LG1, DG1 = rws_ref.LinearGaussian(1, 1), rws_ref.DiagonalGaussianGuide(1, 1)
TH1 = {"mu": np.array([0.2]), "W": np.array([[1.1]]), "b": np.array([0.1]), "log_sigma": np.array([-0.2])}
PH1 = {"A": np.array([[0.3]]), "c": np.array([0.1]), "log_s": np.array([0.4])}
X1 = np.array([[0.7]])


def draws(phi, x, k, rng):
    return CAT.sample(phi, x, k, rng)


def wake(kind):
    fn = getattr(rws_ref, kind)
    return lambda theta, phi, x, rng: fn(MIX, CAT, theta, phi, x, draws(phi, x, K, rng))


def elbo(theta, phi, x, rng):
    return rws_ref.elbo_is(rws_ref.log_weights(MIX, CAT, theta, phi, x, draws(phi, x, K, rng)))


def sleep(theta, phi, rng):
    z, x = MIX.sample(theta, M, rng)
    return rws_ref.sleep_phi(CAT, phi, z, x)


def insomnia(theta, phi, x, rng, twice=False):
    z, (dz, dx) = draws(phi, x, K, rng), MIX.sample(theta, M, rng)
    out = family.insomnia(MIX, CAT, theta, phi, x, z, dz, dx, IOTA)
    if twice:                                          # ι applied twice to the wake term
        wake_part = rws_ref.wake_phi(MIX, CAT, theta, phi, x, z)
        out = {k: out[k] - IOTA * wake_part[k] + IOTA ** 2 * wake_part[k] for k in out}
    return out


def defensive(theta, phi, x, rng, wrong_draw=False):
    zq = draws(phi, x, K, rng)
    zr = rng.integers(0, 4, zq.shape)
    pick = rng.random(zq.shape) < DELTA
    z = np.where(pick, zr, zq)
    log_q = CAT.log_prob(phi, zq if wrong_draw else z, x)                # the published bug: q at the q-draw
    log_w = MIX.log_joint(theta, z, x) - np.logaddexp(np.log1p(-DELTA) + log_q, np.log(DELTA) - np.log(4))
    w = np.exp(log_w - log_w.max(axis=0))
    g = CAT.grad_log_prob(phi, z, x, w / w.sum(axis=0) / x.shape[0])
    return {k: -v for k, v in g.items()}


def iwae(theta, phi, x, rng, wrong_scale=False):
    eps = rng.standard_normal((1, 1, 1))
    if wrong_scale:                                    # z = μ + s² ε drawn, the IWAE gradient taken at it
        eps = eps * np.exp(phi["log_s"])
    return family.iwae_phi(LG1, DG1, theta, phi, x, eps)


CORRECT = [("elbo_is", elbo, {}), ("wake_theta", wake("wake_theta"), {}), ("wake_phi", wake("wake_phi"), {}),
           ("reinforce_phi", wake("reinforce_phi"), {}), ("vimco_phi", wake("vimco_phi"), {}),
           ("sleep_phi", sleep, {"M": M}), ("insomnia", insomnia, {"M": M, "iota": IOTA}),
           ("defensive_wake_phi", defensive, {"delta": DELTA})]


@pytest.mark.statistical
@pytest.mark.parametrize("kind, fn, extra", CORRECT, ids=[c[0] for c in CORRECT])
def test_a_correct_stochastic_estimator_agrees_with_the_exact_mean(kind, fn, extra):
    # false-failure rate 1e-3 (Bonferroni over the entries), seed fixed
    report = endtoend.check_stochastic(fn, kind, MIX, CAT, TH, PH, X, K=K, replicates=1000, seed=5, **extra)
    assert report.ok, str(report)
    assert report.route.startswith("enumeration") and report.smallest_relative < 0.5


@pytest.mark.statistical
def test_a_correct_reparameterized_estimator_agrees_with_its_quadrature_mean():
    report = endtoend.check_stochastic(iwae, "iwae_phi", LG1, DG1, TH1, PH1, X1, K=1, replicates=1000, seed=5)
    assert report.ok and report.route.startswith("Gauss–Hermite"), str(report)


def _ignores_phi(theta, phi, x, rng):
    return rws_ref.wake_phi(MIX, CAT, theta, phi, x, rng.integers(0, 4, (K, x.shape[0])))


def _copies(theta, phi, x, rng):
    return rws_ref.wake_phi(MIX, CAT, theta, phi, x, np.repeat(draws(phi, x, 1, rng), K, axis=0))


def _reused(theta, phi, x, rng):
    return rws_ref.wake_phi(MIX, CAT, theta, phi, x, np.repeat(draws(phi, x, K, rng)[:, :1], x.shape[0], axis=1))


PLANTED = [
    ("a guide sampler that ignores φ", "wake_phi", _ignores_phi, {}),
    ("K particles that are copies of one draw", "wake_phi", _copies, {}),
    ("particles of one datapoint reused for another", "wake_phi", _reused, {}),
    ("a defensive proposal evaluated at another draw", "defensive_wake_phi",
     lambda theta, phi, x, rng: defensive(theta, phi, x, rng, wrong_draw=True), {"delta": DELTA}),
    ("an insomnia mix with ι applied twice", "insomnia",
     lambda theta, phi, x, rng: insomnia(theta, phi, x, rng, twice=True),
     {"M": M, "iota": IOTA}),
]


@pytest.mark.parametrize("name, kind, fn, extra", PLANTED, ids=[p[0] for p in PLANTED])
def test_each_planted_sampling_bug_is_caught(name, kind, fn, extra):
    report = endtoend.check_stochastic(fn, kind, MIX, CAT, TH, PH, X, K=K, replicates=2000, seed=5, **extra)
    assert not report.ok and abs(report.disagree[0][4]) > report.critical, str(report)


def test_a_wrong_reparameterization_scale_is_caught():
    report = endtoend.check_stochastic(lambda theta, phi, x, rng: iwae(theta, phi, x, rng, wrong_scale=True),
                                       "iwae_phi", LG1, DG1, TH1, PH1, X1,
                                       K=1, replicates=2000, seed=5)
    assert not report.ok, str(report)


def test_the_report_states_its_power_and_the_replicates_needed():
    report = endtoend.check_stochastic(wake("wake_phi"), "wake_phi", MIX, CAT, TH, PH, X, K=K, replicates=500)
    text = str(report)
    assert "false-failure rate 0.001" in text and "replicates needed for 0.01:" in text
    assert report.replicates_for[0.05] > report.replicates_for[0.1] > 0


# -- each statistic pinned (issue 37) ----------------------------------------------------------------


def test_the_z_threshold_is_two_sided_and_bonferroni_corrected_over_the_live_entries():
    from scipy import stats
    report = endtoend.check_stochastic(wake("wake_phi"), "wake_phi", MIX, CAT, TH, PH, X, K=K, replicates=50)
    live = sum(e.sd > 0 for e in report.entries)
    assert live == 8                                       # the softmax guide's w and b, 4 each
    assert report.critical == pytest.approx(stats.norm.isf(report.alpha / (2 * live)), rel=1e-12)
    # the detectable deviation of an entry: (z_crit + z_0.9) σ / √R, with z_0.9 = 1.2815515655446004
    e = report.entries[0]
    assert e.detectable == pytest.approx((report.critical + 1.2815515655446004) * e.sd / np.sqrt(50), rel=1e-12)


@pytest.mark.statistical
def test_insomnias_exact_variance_mixes_the_parts_with_iota_squared():
    # Var[ι W + (1 − ι) S] = ι² Var W + (1 − ι)² Var S for independent wake and sleep parts; checked against
    # the sample variance of 3,000 runs.  The sample variance's standard error is estimated from the fourth
    # moment; 6 standard errors per entry over 8 entries: false-failure rate below 1e-7.
    mean, var, _ = endtoend.reference_moments("insomnia", MIX, CAT, TH, PH, X, K, iota=IOTA, M=M)
    from rws_ref._trees import flatten
    runs = np.array([flatten(insomnia(TH, PH, X, np.random.default_rng([11, r])), mean) for r in range(3000)])
    sample = runs.var(axis=0, ddof=1)
    centred = runs - runs.mean(axis=0)
    se = np.sqrt((np.mean(centred ** 4, axis=0) - sample ** 2) / len(runs))
    assert np.all(np.abs(sample - flatten(var, mean)) <= 6 * se), (sample, flatten(var, mean), se)


def _global_draws(theta, phi, x, rng):
    return rws_ref.wake_phi(MIX, CAT, theta, phi, x, draws(phi, x, K, np.random.default_rng(np.random.randint(2**31))))


def _fixed_draws(theta, phi, x, rng):
    return rws_ref.wake_phi(MIX, CAT, theta, phi, x, draws(phi, x, K, np.random.default_rng(0)))


@pytest.mark.parametrize("fn, words", [(_global_draws, "global or unseeded generator"),
                                       (_fixed_draws, "ignores the rng it is given")], ids=["global rng", "fixed seed"])
def test_an_estimator_that_does_not_draw_from_its_rng_is_named(fn, words):
    # the global generator's state is pinned (and put back), so the verdict does not depend on the tests run before
    state = np.random.get_state()
    try:
        for seed in range(20):
            np.random.seed(seed)
            report = endtoend.check_stochastic(fn, "wake_phi", MIX, CAT, TH, PH, X, K=K, replicates=50)
            assert not report.ok and words in report.reproducibility and words in str(report), seed
    finally:
        np.random.set_state(state)


def test_one_rerun_alone_misses_global_draws_on_this_peaked_guide_and_twenty_do_not(monkeypatch):
    # why RERUNS = 20: over global-generator seeds 0..199, comparing one rerun missed the global draws 4 times
    # (seeds 58, 63, 80, 85: the peaked guide drew the same particles again); twenty reruns missed none.  Here:
    # those four and forty more
    state = np.random.get_state()
    try:
        missed = {}
        for reruns in (1, endtoend.RERUNS):
            monkeypatch.setattr(endtoend, "RERUNS", reruns)
            missed[reruns] = 0
            for seed in [*range(40), 58, 63, 80, 85]:
                np.random.seed(seed)
                report = endtoend.check_stochastic(_global_draws, "wake_phi", MIX, CAT, TH, PH, X, K=K, replicates=20)
                missed[reruns] += "global or unseeded" not in report.reproducibility
    finally:
        np.random.set_state(state)
    assert missed[1] == 4 and missed[endtoend.RERUNS] == 0, missed


def test_a_correct_estimator_that_repeats_an_output_under_two_generators_is_not_called_rng_blind():
    # on this peaked guide the first two replicates of seed 1028 draw the same particles (a few states, K = 2):
    # the reproducibility check compared only those two and failed correct code 1 time in 50; it now needs
    # every one of the R outputs to be equal
    fn, extra = next((f, e) for k, f, e in CORRECT if k == "wake_theta")
    first = [np.concatenate([np.ravel(v) for v in fn(TH, PH, X, np.random.default_rng([1028, r])).values()])
             for r in range(2)]
    assert np.array_equal(first[0], first[1])
    report = endtoend.check_stochastic(fn, "wake_theta", MIX, CAT, TH, PH, X, K=K, replicates=1000, seed=1028,
                                       **extra)
    assert report.ok and report.reproducibility == "", str(report)
