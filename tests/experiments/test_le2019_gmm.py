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
    # the start is far from the truth: mirrored mixture weights
    assert all(float(r["model_error"]) == pytest.approx(0.1778, abs=1e-4) for r in start)
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
