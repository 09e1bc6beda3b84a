"""rws_ref.checking.sampling: samplers against their densities.  Correct samplers pass (false-failure rate 1e-3 per
test at fixed seeds); the planted bugs of a sampler — φ ignored, a wrong reparameterization scale, K copies
of one draw, one datapoint's particles reused for another — are caught."""
import numpy as np
import pytest
from protocol_variants import UndeclaredGuide, UndeclaredMix

import rws_ref
from rws_ref.checking import sampling, testing

MIX, CAT = rws_ref.GaussianMixture(4, scale=6.0), rws_ref.SoftmaxLinearGuide(4, loc=15.0, scale=10.0)
LG1, DG1 = rws_ref.LinearGaussian(1, 2), rws_ref.DiagonalGaussianGuide(1, 2)
X_M = np.array([3.0, 12.0, 25.0])
PH_M = {"w": np.array([0.3, -1.2, 0.8, 0.1]), "b": np.array([0.5, 0.2, -0.7, 0.0])}
PH_1 = {"A": np.array([[0.2, -0.1]]), "c": np.array([0.3]), "log_s": np.array([0.4])}
X_1 = np.array([[0.5, -1.0], [1.5, 0.3]])


class IgnoresPhi(rws_ref.SoftmaxLinearGuide):
    def sample(self, phi, x, K, rng):
        return rng.integers(0, self.n_components, (K, np.shape(x)[0]))


class Copies(rws_ref.SoftmaxLinearGuide):
    def sample(self, phi, x, K, rng):
        return np.repeat(super().sample(phi, x, 1, rng), K, axis=0)


class Reused(rws_ref.SoftmaxLinearGuide):
    def sample(self, phi, x, K, rng):
        z = super().sample(phi, x, K, rng)
        return np.repeat(z[:, :1], np.shape(x)[0], axis=1)           # datapoint 0's particles for every datapoint


class WrongScale(rws_ref.DiagonalGaussianGuide):
    def sample(self, phi, x, K, rng):                                  # s² ε instead of s ε
        eps = rng.standard_normal((K, np.shape(x)[0], self.dz))
        return x @ phi["A"].T + phi["c"] + np.exp(2 * phi["log_s"]) * eps


def statuses(report):
    return {r.name: r.status for r in report.results}


@pytest.mark.statistical
@pytest.mark.parametrize("guide, phi, x", [(CAT, PH_M, X_M), (DG1, PH_1, X_1),
                                           (rws_ref.BernoulliGuide(3, 4), None, None),
                                           (rws_ref.DiagonalGaussianGuide(2, 3), None, None)],
                         ids=["softmax", "gaussian 1-d", "bernoulli", "gaussian 2-d"])
def test_correct_guide_samplers_pass(guide, phi, x):
    # false-failure rate: 1e-3 per test, at most 3 tests per report
    rng = np.random.default_rng(3)
    phi = guide.init_phi(rng) if phi is None else phi
    x = (rws_ref.SigmoidBeliefNet(3, 4).sample(rws_ref.SigmoidBeliefNet(3, 4).init_theta(rng), 3, rng)[1]
         if x is None and guide.z_domain == "binary" else rng.standard_normal((3, 3)) if x is None else x)
    report = sampling.check_guide_sampler(guide, phi, x, seed=11)
    assert report.ok and "pass" in statuses(report).values(), str(report)


@pytest.mark.statistical
@pytest.mark.parametrize("model", [MIX, rws_ref.LinearGaussian(2, 3), rws_ref.SigmoidBeliefNet(3, 4)],
                         ids=["mixture", "linear-gaussian", "belief net"])
def test_correct_model_samplers_pass(model):
    report = sampling.check_model_sampler(model, model.init_theta(np.random.default_rng(4)), seed=12)
    assert report.ok, str(report)


@pytest.mark.parametrize("guide, phi, x, caught", [
    (IgnoresPhi(4, loc=15.0, scale=10.0), PH_M, X_M, {"χ² over the support"}),
    (Copies(4, loc=15.0, scale=10.0), PH_M, X_M, {"χ² over the support"}),
    (Reused(4, loc=15.0, scale=10.0), PH_M, X_M, {"χ² over the support"}),
    (WrongScale(1, 2), PH_1, X_1, {"score identity", "probability integral transform"}),
], ids=["sampler ignoring φ", "K copies of one draw", "one datapoint's particles reused", "wrong scale s² ε"])
def test_planted_sampler_bugs_are_caught(guide, phi, x, caught):
    report = sampling.check_guide_sampler(guide, phi, x, seed=11)
    failed = {r.name.split(":")[0] for r in report.failed()}
    assert caught <= failed, str(report)


class MissingSoftmaxTerm(rws_ref.SoftmaxLinearGuide):
    # a correct sampler and log_prob, but the score of the gradient forgets the −q term of the softmax
    def log_prob_vjp(self, phi, z, x):
        log_q, pullback = super().log_prob_vjp(phi, z, x)
        u = (x - self.loc) / self.scale
        q = np.exp(self._logits(phi, u) - np.logaddexp.reduce(self._logits(phi, u), axis=1, keepdims=True))

        def wrong(weights):
            g = pullback(weights)
            missing = weights.sum(axis=0)[:, None] * q
            return {"w": g["w"] + u @ missing, "b": g["b"] + missing.sum(axis=0)}
        return log_q, wrong


def test_on_a_finite_latent_the_guides_score_identity_is_exact():
    # a gradient that is not the score of a normalized log_prob fails it, with no sampling involved
    report = sampling.check_guide_sampler(MissingSoftmaxTerm(4, loc=15.0, scale=10.0), PH_M, X_M, seed=11)
    assert {r.name for r in report.failed()} == {"score identity: E[∇_φ log q(z|x)] = 0"}, str(report)
    assert "exact" in report.failed()[0].detail
    # a correct guide peaked on one state (logits 20 apart: the others have probability ~2e-9) passes: batch
    # means of its score never see the rare states and failed it by a t of 16 (tests/test_control_flow.py)
    peaked = {"w": np.zeros(4), "b": np.array([0.0, -20.0, -20.0, 20.0 - 40.0]) + 20.0}
    report = sampling.check_guide_sampler(CAT, peaked, X_M, seed=11)
    assert report.ok, str(report)
    score = next(r for r in report.results if r.name.startswith("score identity"))
    assert score.status == "pass" and "over the 4 states and 3 datapoints" in score.detail


def test_on_a_finite_latent_the_models_score_sums_z_out_exactly():
    # mixture weights with a category of prior probability ~1e-9: z-draws never show it, the Fisher score does
    model = rws_ref.GaussianMixture(4, scale=6.0)
    theta = {"logits": np.array([0.0, 0.5, -20.0, 1.0])}
    report = sampling.check_model_sampler(model, theta, seed=12)
    assert report.ok, str(report)
    score = next(r for r in report.results if r.name.startswith("score identity"))
    assert "z summed out exactly" in score.detail

    class WrongMixSampler(rws_ref.GaussianMixture):
        def sample(self, theta, n, rng):                 # the component means drawn at 10·c + 3: x's law is wrong
            z, x = super().sample(theta, n, rng)
            return z, x + 3.0
    report = sampling.check_model_sampler(WrongMixSampler(4, scale=6.0), theta, seed=12)
    assert not report.ok, str(report)


def test_check_estimator_and_the_audit_catch_a_sampler_that_ignores_phi():
    # the case: it passed every particle-level check before
    report = testing.check_estimator(rws_ref.wake_phi, "wake_phi", MIX, IgnoresPhi(4, loc=15.0, scale=10.0),
                                     max_examples=4)
    failed = {r.name for r in report.failed()}
    assert failed and all(name.startswith("sampler: guide.sample") for name in failed), str(report)
    from rws_ref.checking.audit import audit_model
    rows = audit_model(MIX, IgnoresPhi(4, loc=15.0, scale=10.0), seed=1)
    assert {r.estimator for r in rows if not r.passed} == {"guide.sample"}


def test_the_smallest_detectable_deviation_is_stated():
    report = sampling.check_guide_sampler(CAT, PH_M, X_M, draws=4000, seed=1)
    chi2 = next(r for r in report.results if r.name.startswith("χ²"))
    assert "false-failure rate 0.001" in chi2.detail and "detects Cohen's w ≥" in chi2.detail
    w = float(chi2.detail.split("w ≥ ")[1].split()[0])
    assert 0.05 < w < 0.15                          # about sqrt(λ/n) for λ ≈ 30 at 3 df, n = 4000


def test_a_pair_whose_finite_latent_only_the_model_declares_is_checked_on_that_domain():
    model, guide = UndeclaredMix(), UndeclaredGuide()
    report = testing.check_estimator(rws_ref.wake_theta, "wake_theta", model, guide, max_examples=5)
    assert report.ok, str(report)
    names = {r.name: r.status for r in report.results}
    assert names["sampler: guide.sample, χ² over the support"] == "pass"      # the model's support, not a grid
    assert not any("probability integral transform" in n for n in names)
    # the guide's own check is given the pair's states the same way
    x = np.array([-1.0, 0.5])
    alone = sampling.check_guide_sampler(guide, guide.init_phi(None), x, states=model.support())
    assert alone.ok and statuses(alone)["χ² over the support"] == "pass"


# -- each statistic pinned by a case worked by hand (issue 37) ------------------------------------------


def test_the_chi_square_statistic_and_its_degrees_of_freedom_by_hand():
    # counts 10, 20, 30 against 1/3 each: expected 20 each, χ² = (100 + 0 + 100)/20 = 10 on 2 df; the χ²
    # survival function on 2 df is exp(−x/2)
    p, stat, df = sampling.chi_square(np.array([10.0, 20.0, 30.0]), np.full(3, 1 / 3))
    assert (stat, df) == (10.0, 2) and p == pytest.approx(np.exp(-5.0), rel=1e-12)
    # cells expecting fewer than 5 are merged: expected 2, 3, 45, 50 → cells (2 + 3), 45, 50: 2 df
    p, stat, df = sampling.chi_square(np.array([1.0, 4.0, 45.0, 50.0]), np.array([0.02, 0.03, 0.45, 0.5]))
    assert df == 2 and stat == pytest.approx(0.0) and p == pytest.approx(1.0)
    # on 4 df the survival function is exp(−x/2)(1 + x/2): counts 30, 10, 20, 20, 20 against 1/5 each
    p, stat, df = sampling.chi_square(np.array([30.0, 10.0, 20.0, 20.0, 20.0]), np.full(5, 0.2))
    assert (stat, df) == (10.0, 4) and p == pytest.approx(np.exp(-5.0) * 6.0, rel=1e-12)


def test_the_chi_square_power_is_the_effect_detected_with_probability_0_9():
    from scipy import stats
    w = sampling.chi_square_power(df=3, n=4000, alpha=1e-3)
    critical = stats.chi2.isf(1e-3, 3)
    assert stats.ncx2.sf(critical, 3, 4000 * w ** 2) == pytest.approx(0.9, abs=1e-9)
    assert sampling.chi_square_power(df=3, n=16000, alpha=1e-3) == pytest.approx(w / 2, rel=1e-9)   # w ∝ 1/√n


def test_the_guide_samplers_stated_power_is_at_the_bonferroni_level_over_the_datapoints():
    # three datapoints: the χ² test runs at 1e-3 / 3 for each, and the stated detectable effect is at that level
    import re
    rng = np.random.default_rng(4)
    theta, phi = MIX.init_theta(rng), CAT.init_phi(rng)
    x = MIX.sample(theta, 3, rng)[1]
    report = sampling.check_guide_sampler(CAT, phi, x, draws=4000, seed=1, alpha=1e-3)
    chi = next(r for r in report.results if r.name == "χ² over the support")
    assert chi.status == "pass" and "Bonferroni over 3 datapoints" in chi.detail
    stated = float(re.search(r"detects Cohen's w ≥ ([0-9.e-]+)", chi.detail).group(1))
    df = len(MIX.support()) - 1
    assert stated == pytest.approx(sampling.chi_square_power(df, 4000, 1e-3 / 3), rel=1e-2)
    assert abs(stated - sampling.chi_square_power(df, 4000, 1e-3)) > 0.01 * stated     # the level tells


def _batch_means(t_values, b=50):
    """Batch means (b, P) whose t-statistics are exactly ``t_values``: mean t/√b, sample sd 1."""
    rng = np.random.default_rng(0)
    e = rng.standard_normal((b, len(t_values)))
    e = (e - e.mean(axis=0)) / e.std(axis=0, ddof=1)
    return e + np.asarray(t_values) / np.sqrt(b)


def test_the_score_test_is_two_sided_and_bonferroni_corrected_over_the_entries():
    from scipy import stats
    b, entries, alpha = 50, 10, 1e-3
    corrected = stats.t.isf(alpha / (2 * entries), b - 1)                         # 4.3, where one entry alone: 3.5
    between = (stats.t.isf(alpha / 2, b - 1) + corrected) / 2
    ok = sampling.score_test(_batch_means([between] + [0.0] * (entries - 1), b), alpha, "pinned")
    assert ok.status == "pass" and f"|t| ≤ {corrected:.2f}" in ok.detail          # Bonferroni over 10 entries
    low = sampling.score_test(_batch_means([-(corrected + 0.5)] + [0.0] * (entries - 1), b), alpha, "pinned")
    assert low.status == "fail"                                                   # a negative t fails: two-sided
    high = sampling.score_test(_batch_means([corrected + 0.5] + [0.0] * (entries - 1), b), alpha, "pinned")
    assert high.status == "fail"


def test_the_pit_uses_each_datapoints_own_distribution():
    # two datapoints whose guide means are 20 sds apart: a PIT through one datapoint's CDF would put the
    # other's draws all at 0 or 1
    x = np.array([[-5.0, 0.0], [5.0, 0.0]])
    phi = {"A": np.array([[1.0, 0.0]]), "c": np.array([0.0]), "log_s": np.array([np.log(0.5)])}
    report = sampling.check_guide_sampler(DG1, phi, x, seed=3)
    assert statuses(report)["probability integral transform"] == "pass", str(report)


class GlobalDraws(rws_ref.SoftmaxLinearGuide):
    def sample(self, phi, x, K, rng):                      # a generator of its own, seeded from the global one
        return super().sample(phi, x, K, np.random.default_rng(np.random.randint(2 ** 31)))


class FixedSeed(rws_ref.SoftmaxLinearGuide):
    def sample(self, phi, x, K, rng):                      # ignores the rng: the same draws every call
        return super().sample(phi, x, K, np.random.default_rng(0))


@pytest.mark.parametrize("guide, words", [(GlobalDraws(4, loc=15.0, scale=10.0), "global or unseeded"),
                                          (FixedSeed(4, loc=15.0, scale=10.0), "ignores the rng")],
                         ids=["global rng", "fixed seed"])
def test_a_sampler_that_does_not_draw_from_its_rng_is_named(guide, words):
    report = sampling.check_guide_sampler(guide, PH_M, X_M)
    assert statuses(report)["reproducible from its rng"] == "fail" and words in report.results[0].detail


def test_halls_skewness_correction_by_hand():
    # t + γ/(6√b)(1 + 2t²) + γ²/(27b) t³ at t = 2, γ = 0.5, b = 50
    assert sampling.hall_t(2.0, 0.5, 50) == pytest.approx(2 + 0.5 / (6 * np.sqrt(50)) * 9 + 0.25 / 1350 * 8, rel=1e-14)
    assert sampling.hall_t(-1.5, 0.0, 50) == -1.5                                  # no skewness, no change


@pytest.mark.statistical
def test_the_score_test_holds_its_rate_on_the_score_of_a_rare_event():
    # the score of a category of probability 0.003 (z − p, z ~ Bernoulli(p)), 80 draws per batch, 50 batches:
    # the plain t-test rejects about 7 times too often at 1e-3 (measured 6.8e-3); the skewness-corrected one
    # holds the rate (2.2e-4).  5,000 correct samplers: at the nominal rate 5 rejections (Poisson sd 2.2); the
    # bound 15 is 4.5 sd above it (false-failure rate below 1e-4), while the uncorrected test gives about 34.
    rng = np.random.default_rng(2026)
    p, rejected = 0.003, 0
    for _ in range(5000):
        batch_means = (rng.binomial(80, p, size=(50, 1)) / 80.0) - p
        rejected += sampling.score_test(batch_means, 1e-3, "rare").status == "fail"
    assert rejected <= 15, rejected
