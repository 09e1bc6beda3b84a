"""The SNR study: checked on an estimator whose SNR is known exactly, then run
at reduced size on the Rainforth et al. (2018) toy."""
import numpy as np
import pytest

from rws_ref.experiments import analysis

from _util import mc_rng


def known_snr(K, rng):
    # 3 entries with means 0.2·(1, 2, 3) and standard deviation K^{-1/2}:
    # SNR_j = 0.2·j·√K, so the mean entry SNR is 0.4·√K and its log-log slope is ½.
    return 0.2 * np.arange(1, 4) + rng.standard_normal(3) / np.sqrt(K)


@pytest.mark.statistical
def test_study_recovers_a_known_snr_and_slope():
    # Estimates within 6 bootstrap standard deviations of the truth: with the
    # estimates close to normal (400 replicates), false failure < 1e-8 per check,
    # 5 checks. The bias of the SNR estimator (O(1/R)) is far below 6 SD.
    study = analysis.snr_study({"known": known_snr}, [1, 4, 16, 64], 400, mc_rng(15),
                               n_boot=400)
    truth = 0.4 * np.sqrt([1, 4, 16, 64])
    assert np.all(np.abs(study.snr["known"] - truth) < 6 * study.snr_se["known"])
    assert abs(study.slope["known"] - 0.5) < 6 * study.slope_se["known"]
    assert np.all(study.resolved["known"])


def antithetic_noise():
    # replicates ±v: the sample mean is exactly 0, so the SNR² estimate is −1/R < 0
    state = {"last": None}

    def draw(K, rng):
        if state["last"] is None:
            state["last"] = rng.standard_normal(4)
            return state["last"]
        value, state["last"] = -state["last"], None
        return value
    return draw


def test_a_zero_mean_estimator_is_reported_unresolved_not_at_the_noise_floor():
    # The naive |mean|/std would report about 1/√R here. The floor-free estimate is 0
    # and no K is resolved: a bootstrap resample's SNR² is positive only when its mean
    # exceeds its SE, far from the 97.5% of resamples the criterion asks.
    study = analysis.snr_study({"noise": antithetic_noise(), "signal": known_snr}, [1, 10], 500,
                               np.random.default_rng(1), n_boot=200)
    assert not study.resolved["noise"].any() and np.isnan(study.slope["noise"])
    assert np.all(study.snr["noise"] == 0.0)
    assert "(" in study.table()


@pytest.mark.statistical
def test_rainforth_toy_reduced():
    # K = 10, 100 with 700 replicates (RWS wake-φ's SNR at K = 10, 0.13, needs 10/SNR² ≈ 600 to enter the slope);
    # tolerances are 6 bootstrap SDs of the slope.
    # IWAE θ's slope is ½ (its mean tends to ∇_θ log p(x) ≠ 0 while its std falls
    # like K^{-1/2}); the SNR of RWS wake-φ, STL and IWAE-DReG rises with K; IWAE φ
    # on c is below resolution (its mean is O(perturbation / K), see
    # test_family.test_iwae_bias_gradient_is_odd...).
    toy = analysis.rainforth_toy(np.random.default_rng(0))
    estimators = analysis.rainforth_estimators(*toy)
    study = analysis.snr_study(estimators, [10, 100], 700, mc_rng(16), n_boot=200)
    assert abs(study.slope["IWAE θ"] - 0.5) < 6 * study.slope_se["IWAE θ"]
    for name in ("RWS wake-φ", "STL φ", "IWAE-DReG φ"):
        assert study.slope[name] - 6 * study.slope_se[name] > 0, (name, study.slope[name])
    assert study.snr["IWAE φ"].max() < 0.1 < study.snr["RWS wake-φ"][-1]


@pytest.mark.parametrize("kwargs, kind, words", [
    (dict(ks=[10]), ValueError, "two values"),
    (dict(ks=[0, 10]), ValueError, "ks"),
    (dict(replicates=2), ValueError, "replicates"),
    (dict(level=1.5), ValueError, "level"),
    (dict(rng=0), TypeError, "rng"),
    (dict(estimators=[]), TypeError, "estimators"),
])
def test_study_rejects_bad_arguments(kwargs, kind, words):
    args = dict(estimators={"known": known_snr}, ks=[1, 10], replicates=10, rng=np.random.default_rng())
    args.update(kwargs)
    with pytest.raises(kind, match=words):
        analysis.snr_study(**args)


# -- many replicates: snr_study_batched and the toy's closed forms ----------------------------------
def known_snr_batch(K, B, rng):
    return {"known": 0.2 * np.arange(1, 4) + rng.standard_normal((B, 3)) / np.sqrt(K)}


@pytest.mark.statistical
def test_the_batched_study_recovers_a_known_snr_and_slope():
    # 20,000 replicates per K in 40 groups; the truth within 6 jackknife SEs (estimates close to normal:
    # false failure < 1e-8 per check, 5 checks); the t-interval at level 1 − 1e-9 covers the slope.
    study = analysis.snr_study_batched(known_snr_batch, [1, 4, 16, 64], 20_000, mc_rng(16), groups=40,
                                       level=1 - 1e-9)
    truth = 0.4 * np.sqrt([1, 4, 16, 64])
    assert np.all(np.abs(study.snr["known"] - truth) < 6 * study.snr_se["known"])
    assert abs(study.slope["known"] - 0.5) < 6 * study.slope_se["known"]
    lo, hi = study.slope_interval["known"]
    assert lo < 0.5 < hi and hi - lo < 0.1 and np.all(study.resolved["known"])


def test_the_batched_study_reports_a_zero_mean_unresolved():
    def draw(K, B, rng):
        v = rng.standard_normal((B // 2, 4))
        return {"noise": np.concatenate([v, -v]), **known_snr_batch(K, B, rng)}   # mean exactly zero
    study = analysis.snr_study_batched(draw, [1, 10], 400, np.random.default_rng(2), groups=4)
    assert not study.resolved["noise"].any() and np.isnan(study.slope["noise"])
    assert study.resolved["known"].all()


def test_the_toys_closed_forms_are_rws_refs_estimators():
    from rws_ref import family
    from rws_ref.estimators import wake_phi, wake_theta
    toy = analysis.rainforth_toy(np.random.default_rng(0))
    model, guide, theta, phi, x = toy
    draw = analysis.rainforth_batched(*toy)
    for K in (1, 3, 7):
        got = draw(K, 1, np.random.default_rng(K))
        eps = np.random.default_rng(K).standard_normal((K, 1, guide.dz))
        z = guide.reparameterize(phi, x, eps)
        expected = {"IWAE θ": wake_theta(model, guide, theta, phi, x, z)["mu"],
                    "IWAE φ": family.iwae_phi(model, guide, theta, phi, x, eps)["c"],
                    "IWAE-DReG φ": family.iwae_dreg_phi(model, guide, theta, phi, x, eps)["c"],
                    "STL φ": family.stl_phi(model, guide, theta, phi, x, eps)["c"],
                    "RWS wake-φ": wake_phi(model, guide, theta, phi, x, z)["c"],
                    "RWS-DReG φ": family.rws_dreg_phi(model, guide, theta, phi, x, eps)["c"]}
        assert sorted(got) == sorted(expected)
        for name, value in expected.items():
            np.testing.assert_allclose(got[name][0], value, rtol=0, atol=1e-13, err_msg=f"{name}, K = {K}")


def test_local_slopes_are_each_segments_slope_and_the_replicate_rule_drops_thin_points():
    """Local slopes: (log SNR_{j+1} − log SNR_j) / (log K_{j+1} − log K_j), recomputed here from the study's SNRs;
    for SNR = 0.4 √K each is ½ within its interval.  The replicate rule: a K whose R is below 10/SNR² leaves the
    slopes with its reason (here SNR 0.05 at R = 2,000 < 4,000), and a K at R ≥ 10/SNR² stays."""
    def draw(K, B, rng):
        out = known_snr_batch(K, B, rng)
        out["thin"] = 0.05 * K ** 0.5 + rng.standard_normal((B, 50))     # 50 entries: significant at K = 1
        return out
    study = analysis.snr_study_batched(draw, [1, 4, 16, 64], 2_000, mc_rng(17), groups=20)
    snr = study.snr["known"]
    expected = np.diff(np.log(snr)) / np.diff(np.log([1, 4, 16, 64]))
    np.testing.assert_allclose(study.local_slope["known"], expected, rtol=1e-12)
    low, high = study.local_slope_interval["known"].T
    assert np.all(low < expected) and np.all(expected < high)
    # SNR of "thin": 0.05, 0.1, 0.2, 0.4 -> 10/SNR² = 4000, 1000, 250, 62.5; R = 2,000 drops K = 1 only, though
    # its mean SNR² over 50 entries is above zero beyond its interval (the significance rule alone keeps it)
    assert study.dropped["thin"][0].startswith("R = 2,000 replicates, fewer than 10/SNR²")
    assert study.dropped["thin"][1:] == [None, None, None] and study.dropped["known"] == [None] * 4
    assert list(study.resolved["thin"]) == [False, True, True, True] and np.isnan(study.local_slope["thin"][0])
    assert np.all(np.isfinite(study.local_slope["thin"][1:]))
    assert analysis.REPLICATES_PER_INVERSE_SNR2 == 10
    assert "local" in study.table()
