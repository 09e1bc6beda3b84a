"""rws-ref reproduce le2019-gmm: the paper's setup at a tiny budget, resumable, its outputs."""
import csv
import json

import numpy as np
import pytest

from rws_ref.cli import main
from rws_ref.experiments import le2019_gmm as reproduce


def test_a_tiny_budget_runs_every_method_and_k_and_a_rerun_resumes(tmp_path, capsys):
    out = tmp_path / "le2019"
    args = ["reproduce", "le2019-gmm", "--budget", "0.0002", "--out", str(out), "--jobs", "2", "--no-progress"]
    assert main(args) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {(r["method"], int(r["K"])) for r in rows} == {(m, K) for m in reproduce.PAPER_METHODS for K in reproduce.KS}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 20 and len(summary["final"]) == 20
    assert (out / "le2019_gmm.png").read_bytes()[:4] == b"\x89PNG"
    start = [r for r in rows if int(r["iteration"]) == 0]
    # the default start is the authors' far one: π ∝ e^{19−c}, model error 0.6939
    assert all(float(r["model_error"]) == pytest.approx(0.6939, abs=1e-4) for r in start)
    assert json.loads((out / "rws-ref-reproduce.json").read_text())["start"] == "authors-far"
    before = (out / "results.csv").read_bytes()
    assert main(args) == 0                                             # every run is found finished
    assert (out / "results.csv").read_bytes() == before
    assert "WW" in capsys.readouterr().out


def test_the_setup_is_the_papers():
    model, guide, truth, start = reproduce._problem()
    assert model.n_components == 20 and np.allclose(model.means, 10 * np.arange(20)) and model.scale == 5.0
    pi = np.exp(truth["logits"])
    assert np.allclose(pi, (np.arange(20) + 5) / np.sum(np.arange(20) + 5))
    assert guide.hidden == (16, 16) and reproduce.BATCH == 100 and reproduce.LR == 1e-3
    assert reproduce.FULL_ITERS == 100_000 and reproduce.KS == (2, 5, 10, 20)


@pytest.mark.parametrize("kwargs, words", [({"budget": 0}, "budget"), ({"budget": 2.0}, "budget"),
                                            ({"methods": ("IWAE",)}, "unknown"), ({"seeds": 0}, "seeds")])
def test_bad_arguments_are_refused_before_any_run(tmp_path, kwargs, words):
    with pytest.raises(ValueError, match=words):
        reproduce.le2019_gmm(tmp_path / "x", **kwargs)


def test_the_starts_are_the_authors_and_ours_by_name():
    truth = np.arange(20) + 5.0
    truth /= truth.sum()
    expected = {"authors-far": np.exp(19.0 - np.arange(20)),            # logits reversed(2·arange(20)) × 0.5
                "authors-near": np.ones(20), "mirrored": np.arange(20)[::-1] + 5.0}
    errors = {"authors-far": 0.6939, "authors-near": 0.0889, "mirrored": 0.1778}
    for name, weights in expected.items():
        logits = reproduce._problem(name)[3]["logits"]
        pi = np.exp(logits) / np.exp(logits).sum()
        np.testing.assert_allclose(pi, weights / weights.sum(), rtol=1e-12)
        assert np.linalg.norm(pi - truth) == pytest.approx(errors[name], abs=1e-4)
    raw = reproduce._problem("authors-far", "raw")[1]
    assert raw.loc == 0.0 and raw.scale == 1.0
    assert reproduce._problem()[1].loc != 0.0                              # standardized by default


def test_a_start_is_part_of_the_configuration_and_a_folder_of_another_is_refused(tmp_path, capsys):
    out = tmp_path / "gmm"
    base = ["reproduce", "le2019-gmm", "--budget", "0.0001", "--out", str(out), "--no-progress", "--jobs", "1"]
    assert main(base + ["--start", "authors-near"]) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {round(float(r["model_error"]), 4) for r in rows if r["iteration"] == "0"} == {0.0889}
    run = json.loads(next((out / "runs").glob("WW-K2-seed0.json")).read_text())
    assert run["config"]["start"] == "authors-near" and run["config"]["inputs"] == "standardized"
    assert main(base) == 2                                                  # the default start is another
    assert "configuration" in capsys.readouterr().err
    assert main(["reproduce", "le2019-scene", "--start", "mirrored", "--out", str(tmp_path / "s")]) == 2
    assert "options of le2019-gmm" in capsys.readouterr().err


def test_raw_x_runs_the_authors_input_and_changes_the_run():
    one = reproduce.run_one(("WW", 2, 0, 6, None, {"start": "authors-far", "inputs": "raw"}))
    other = reproduce.run_one(("WW", 2, 0, 6, None))
    assert one["rows"][0]["model_error"] == other["rows"][0]["model_error"]
    assert one["rows"][0]["inference_error"] != other["rows"][0]["inference_error"]


def test_a_failed_seed_is_one_that_did_not_close_half_the_distance_to_the_truth():
    first = {"model_error": 0.6939, "inference_error": 0.9}
    assert reproduce.failed(first, {"model_error": 0.732, "inference_error": 0.98})        # worse than it began
    assert reproduce.failed(first, {"model_error": 0.35, "inference_error": 0.1})
    assert not reproduce.failed(first, {"model_error": 0.34, "inference_error": 0.9})
