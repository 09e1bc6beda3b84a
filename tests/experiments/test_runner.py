"""rws_ref.experiments.runner and the experiments' seeding, each statistic pinned by a case worked by hand."""
import numpy as np
import pytest

from rws_ref.experiments import le2019_gmm, runner


def test_the_interval_over_seeds_is_students_t_with_n_minus_1_degrees_of_freedom():
    # values 1, 2, 3, 4: mean 2.5, sample sd sqrt(5/3); t_{0.975, 3} = 3.182446305284263 (tables)
    mean, low, high = runner.interval([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305284263 * np.sqrt(5.0 / 3.0) / 2.0
    assert mean == 2.5 and low == pytest.approx(2.5 - half, rel=1e-12) and high == pytest.approx(2.5 + half, rel=1e-12)
    # two values: t_{0.975, 1} = 12.706204736174707; a z of 1.96 or n degrees of freedom would be far off
    mean, low, high = runner.interval([0.0, 1.0])
    assert high - mean == pytest.approx(12.706204736174707 * np.sqrt(0.5) / np.sqrt(2.0), rel=1e-12)
    assert runner.interval([3.0]) == (3.0, 3.0, 3.0)
    mean, low, high = runner.interval([1.0, 2.0, 3.0, 4.0], level=0.9)        # t_{0.95, 3} = 2.353363434801823
    assert high - mean == pytest.approx(2.353363434801823 * np.sqrt(5.0 / 3.0) / 2.0, rel=1e-12)


def test_the_runs_of_different_seeds_differ_and_a_seed_repeats_exactly():
    one, again, other = (le2019_gmm.run_one(("WW", 2, seed, 6, None)) for seed in (0, 0, 1))
    assert one["rows"] == again["rows"] and one["parameters"] == again["parameters"]
    # another seed: another training stream (the learned θ) and another evaluation set (the errors at the start,
    # where θ is the same for every seed)
    assert not np.allclose(np.asarray(one["parameters"]["theta"]["logits"]),
                           np.asarray(other["parameters"]["theta"]["logits"]))
    first = lambda run: (run["rows"][0]["model_error"], run["rows"][0]["inference_error"])      # noqa: E731
    assert first(one)[0] == first(other)[0] and first(one)[1] != first(other)[1]


def test_the_final_summary_gives_median_and_quartiles_beside_the_mean():
    # five seeds ending at 0, 0, 0, 1, 10 (one bad seed): mean 2.2, median 0, quartiles 0 and 1 (numpy's
    # linear interpolation: positions 1 and 3 of the sorted five)
    runs = {("WW", 2, s): {"rows": [{"iteration": 0, "e": 5.0}, {"iteration": 7, "e": v}], "seconds": 1.0}
            for s, v in enumerate([0.0, 10.0, 0.0, 1.0, 0.0])}
    cell = runner.final_summary(runs, 7, 0.5, 5, {"WW": {}}, ("e",))["final"]["WW K=2"]
    assert cell["e"] == pytest.approx(2.2) and cell["e_median"] == 0.0 and cell["e_quartiles"] == [0.0, 1.0]
    assert cell["e_range"] == [0.0, 10.0] and cell["e_interval"][0] < 0.0 < cell["e_interval"][1]
    assert cell["seeds"] == 5


@pytest.mark.parametrize("n", [3, 5, 25])
def test_the_resolvable_difference_has_the_stated_power_under_the_noncentral_t(n):
    """The difference a paired t-test detects at 80 % power, against scipy's noncentral t (an independent route:
    the function integrates over the chi-square instead): the power there is 0.8, with n − 1 degrees of
    freedom and the two-sided 97.5 % t quantile — n degrees of freedom or the normal quantile would move it."""
    from scipy.stats import nct, t
    delta = runner.resolvable_difference(0.17, n)
    crit, nc = t.ppf(0.975, n - 1), delta * np.sqrt(n) / 0.17
    assert nct.sf(crit, n - 1, nc) + nct.cdf(-crit, n - 1, nc) == pytest.approx(0.8, abs=1e-8)
    wrong_df = nct.sf(t.ppf(0.975, n), n, nc) + nct.cdf(-t.ppf(0.975, n), n, nc)
    assert abs(wrong_df - 0.8) > 1e-3
    assert runner.resolvable_difference(0.0, n) == 0.0


def test_the_resolvable_difference_matches_simulated_t_tests():
    """10 normal differences with the resolvable mean: the two-sided 5 % t-test rejects in 80 % of 40,000
    simulated studies; the rate's standard error is 0.002, the tolerance 5 of them (a false failure about
    once in 1.7 million)."""
    from scipy.stats import ttest_1samp
    n, sd = 10, 0.3
    delta = runner.resolvable_difference(sd, n)
    d = np.random.default_rng(11).normal(delta, sd, size=(40_000, n))
    rate = np.mean(ttest_1samp(d, 0.0, axis=1).pvalue < 0.05)
    assert abs(rate - 0.8) < 5 * np.sqrt(0.8 * 0.2 / 40_000)


def test_the_paired_summary_differences_each_seed_against_the_reference():
    """Differences by seed against the reference at the same K, or at each of its K when it did not run at
    that K; only seeds both ran; the mean, sd and t-interval of the differences computed here by hand."""
    from scipy.stats import t
    final = {("RWS", 5, 0): -20.0, ("RWS", 5, 1): -19.0, ("RWS", 5, 2): -19.5, ("RWS", 20, 0): -18.9,
             ("RWS", 20, 1): -19.2, ("WS", 1, 0): -20.3, ("WS", 1, 1): -19.1, ("WS", 1, 2): -19.9,
             ("A", 5, 0): -20.1, ("A", 5, 1): -18.8, ("A", 5, 3): -30.0}
    runs = {key: {"rows": [{"iteration": 0, "ll": -50.0}, {"iteration": 9, "ll": value}]}
            for key, value in final.items()}
    out = runner.paired_summary(runs, 9, "RWS", "ll")
    assert set(out) == {"WS K=1 − RWS K=5", "WS K=1 − RWS K=20", "A K=5 − RWS K=5"}
    d = np.array([-0.3, -0.1, -0.4])
    c = out["WS K=1 − RWS K=5"]
    half = t.ppf(0.975, 2) * np.std(d, ddof=1) / np.sqrt(3)
    assert c["seeds"] == 3 and c["mean"] == pytest.approx(d.mean(), abs=1e-12)
    assert c["interval"] == pytest.approx([d.mean() - half, d.mean() + half], abs=1e-12)
    assert c["sd"] == pytest.approx(np.std(d, ddof=1), abs=1e-12)
    assert c["resolvable"] == pytest.approx(runner.resolvable_difference(np.std(d, ddof=1), 3), rel=1e-12)
    assert out["WS K=1 − RWS K=20"]["seeds"] == 2                     # seeds 0 and 1 only
    assert out["A K=5 − RWS K=5"]["mean"] == pytest.approx(np.mean([-0.1, 0.2]), abs=1e-12)   # seed 3 unpaired
