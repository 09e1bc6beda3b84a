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
