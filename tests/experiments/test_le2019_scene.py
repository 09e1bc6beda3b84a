"""rws-ref reproduce le2019-scene: the five methods on the control-flow scene, every measure exact, checked
against its definition computed here by enumeration; the command at a tiny budget, resumable."""
import csv
import json

import numpy as np
import pytest

from rws_ref import Scene1D, SceneGuide
from rws_ref.cli import main
from rws_ref.experiments import le2019_scene as scene
from rws_ref.experiments import runner
from rws_ref.models import scene_states
from rws_ref.numerics import logsumexp


def _log_joint_table(model, theta, x):
    # one program path at a time, for every datapoint: (S, N)
    states = scene_states(model.n_max, model.positions)
    return np.array([model.log_joint(theta, np.repeat(s[None, None], len(x), axis=1), x)[0] for s in states]), states


def test_the_first_row_of_a_run_is_each_measure_at_the_start_computed_by_enumeration():
    model, guide, truth, start = scene._problem()
    run = scene.run_one(("WW", 2, 3, 10, None))
    first = run["rows"][0]
    x = model.sample(truth, scene.N_EVAL, np.random.default_rng([3, 2019]))[1]
    table_true, states = _log_joint_table(model, truth, x)
    table_start, _ = _log_joint_table(model, start, x)
    gap = np.mean(logsumexp(table_true, axis=0) - logsumexp(table_start, axis=0))
    assert first["log_lik_gap"] == pytest.approx(gap, rel=1e-10)
    # φ at the start is the guide's initialization under the run's seed (train's default)
    phi = guide.init_phi(np.random.default_rng(3))
    q = np.exp(guide.log_prob(phi, np.repeat(states[:, None], len(x), axis=1), x))             # (S, N)
    post = np.exp(table_true - logsumexp(table_true, axis=0))
    assert first["inference_error"] == pytest.approx(np.mean(np.linalg.norm(q - post, axis=0)), rel=1e-10)
    q_n = np.array([[q[states[:, 0] == n, i].sum() for n in range(4)] for i in range(len(x))])
    p_n = np.array([[post[states[:, 0] == n, i].sum() for n in range(4)] for i in range(len(x))])
    assert first["count_tv"] == pytest.approx(np.mean(0.5 * np.abs(q_n - p_n).sum(axis=1)), rel=1e-10)
    assert [r["iteration"] for r in run["rows"]] == [0, 5, 10]                      # every 5 at a tiny budget


def test_a_run_is_a_function_of_its_seed():
    one, again, other = (scene.run_one(("VIMCO", 5, s, 4, None)) for s in (0, 0, 1))
    assert one["rows"] == again["rows"] and one["parameters"] == again["parameters"]
    assert one["rows"][-1]["log_lik_gap"] != other["rows"][-1]["log_lik_gap"]


def test_the_inferred_objects_are_the_modes_over_every_program_path():
    model, guide = Scene1D(), SceneGuide()
    rng = np.random.default_rng(4)
    theta, phi = model.true_theta(), guide.init_phi(rng)
    x = model.sample(theta, 3, rng)[1]
    mine, best = scene.inferred_objects(model, guide, theta, phi, x)
    table, states = _log_joint_table(model, theta, x)
    q = np.array([[guide.log_prob(phi, s[None, None], xn[None])[0, 0] for xn in x] for s in states])   # one by one
    np.testing.assert_array_equal(best, states[np.argmax(table, axis=0)])
    np.testing.assert_array_equal(mine, states[np.argmax(q, axis=0)])


def test_a_tiny_budget_from_the_command_line_writes_every_output_and_a_rerun_resumes(tmp_path, capsys):
    out = tmp_path / "scene"
    args = ["reproduce", "le2019-scene", "--budget", "0.005", "--out", str(out), "--jobs", "2", "--no-progress"]
    assert main(args) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {(r["method"], int(r["K"])) for r in rows} == {(m, K) for m in scene.PAPER_METHODS for K in scene.KS}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 10 and len(summary["final"]) == 20
    final = [r for r in rows if r["method"] == "WW" and r["K"] == "2" and int(r["iteration"]) == 10]
    assert summary["final"]["WW K=2"]["count_tv_median"] == pytest.approx(float(final[0]["count_tv"]), rel=1e-12)
    for name in ("le2019_scene.png", "le2019_scene_objects.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "REINFORCE" in printed and "le2019_scene_objects.png" in printed
    before = (out / "results.csv").read_bytes()
    assert main(args) == 0
    assert (out / "results.csv").read_bytes() == before


def test_the_table_prints_each_median_with_its_quartiles_and_the_failed_seeds():
    # four seeds starting at a gap of 1.0 and ending at 0.1, 0.3, 0.2, 2.0: the last fails (2.0 > 0.5 · 1.0)
    runs = {(m, 5, s): {"rows": [{"iteration": 0, "log_lik_gap": 1.0, "inference_error": 0.9, "count_tv": 0.7},
                                 {"iteration": 9, "log_lik_gap": g, "inference_error": 0.5, "count_tv": 0.25}],
                        "seconds": 1.0} for m in ("WW", "VIMCO") for s, g in enumerate([0.1, 0.3, 0.2, 2.0])}
    summary = runner.final_summary(runs, 9, 1.0, 4, scene.PAPER_METHODS, scene.KEYS, scene.failed)
    assert summary["final"]["WW K=5"]["failed"] == 1 and "half its value at the start" in summary["failed_when"]
    table = scene.summary_table(summary)
    assert "median [25%, 75%] over seeds" in table and "failed: the seeds where log p_true(x)" in table
    ww = next(line for line in table.splitlines() if line.strip().startswith("WW"))
    # gaps 0.1, 0.2, 0.3, 2.0: median 0.25, quartiles 0.175 and 0.725 (linear interpolation)
    assert ww.split() == ["WW", "0.2500", "[0.1750,", "0.7250]", "0.5000", "[0.5000,", "0.5000]", "0.2500",
                          "[0.2500,", "0.2500]", "1/4"]


@pytest.mark.parametrize("kwargs, words", [({"budget": 0}, "budget"), ({"ks": (3,)}, "unknown"),
                                            ({"methods": ("IWAE",)}, "unknown"), ({"seeds": 0}, "seeds")])
def test_bad_arguments_are_refused_before_any_run(tmp_path, kwargs, words):
    with pytest.raises(ValueError, match=words):
        scene.le2019_scene(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()
