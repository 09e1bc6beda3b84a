"""The rws-ref command line: audit (the main job), train, and one-line errors with exit 2."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest

import rws_ref
from rws_ref.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "rws_ref.cli", *args], capture_output=True, text=True)


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"rws-ref {rws_ref.__version__}"
    assert main([]) == 0
    assert "Reweighted Wake-Sleep" in capsys.readouterr().out
    for sub in ("audit", "train"):
        with pytest.raises(SystemExit) as info:
            main([sub, "--help"])
        assert info.value.code == 0
        assert sub in capsys.readouterr().out


def test_audit_prints_the_table_and_passes(capsys, tmp_path):
    assert main(["audit", "--plot", str(tmp_path / "bias.png")]) == 0
    out = capsys.readouterr().out
    for word in ("estimator", "wake-θ", "wake-φ", "sleep-φ", "VIMCO φ", "REINFORCE φ", "IWAE φ",
                 "RWS-DReG φ", "defensive wake-φ", "linear-Gaussian", "mixture C=20", "belief net"):
        assert word in out
    assert "FAIL" not in out and "checks passed" in out
    assert (tmp_path / "bias.png").read_bytes()[:4] == b"\x89PNG"


def test_audit_exit_status_is_1_when_a_check_fails(monkeypatch, capsys):
    import rws_ref.checking.audit as audit
    real = audit.run_audit

    def broken():
        rows, seconds = real()
        rows[0].passed = False
        return rows, seconds

    monkeypatch.setattr(audit, "run_audit", broken)
    assert main(["audit"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_train_writes_metrics_plot_and_checkpoint_then_resumes(tmp_path, capsys):
    ckpt, out, plot = tmp_path / "c.npz", tmp_path / "m.csv", tmp_path / "m.png"
    args = ["train", "--model", "mixture", "--method", "defensive", "--iters", "60", "--eval-every", "20",
            "--n-data", "300", "--seed", "4", "--no-progress"]
    assert main(args + ["--out", str(out), "--plot", str(plot), "--checkpoint", str(ckpt)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [int(r["iteration"]) for r in rows] == [0, 20, 40, 60]
    assert {"elbo_is", "log_p", "pi_error", "posterior_error", "grad_std_phi"} <= set(rows[0])
    assert plot.read_bytes()[:4] == b"\x89PNG"
    json_out = tmp_path / "m.json"
    assert main(["train", "--model", "mixture", "--method", "defensive", "--iters", "80", "--eval-every", "20",
                 "--n-data", "300", "--seed", "4", "--no-progress", "--resume", str(ckpt),
                 "--out", str(json_out)]) == 0
    assert [r["iteration"] for r in json.loads(json_out.read_text())] == [0, 20, 40, 60, 80]


BAD_ARGUMENTS = [
    (["--no-such-option"], "unrecognized arguments"),
    (["train", "--K", "0"], "--K"),
    (["train", "--iters", "ten"], "--iters"),
    (["train", "--iota", "1.5"], "--iota"),
    (["train", "--delta", "-0.1"], "--delta"),
    (["train", "--lr-phi", "nan"], "--lr-phi"),
    (["train", "--model", "cnn"], "--model"),
    (["train", "--method", "iwae", "--model", "mixture"], "reparameterizable"),
    (["train", "--method", "vimco", "--K", "1", "--iters", "1"], "K must be >= 2"),
    (["train", "--resume", "/nonexistent/ckpt.npz"], "no such checkpoint"),
    (["train", "--out", "/nonexistent/dir/m.csv"], "does not exist"),
    (["train", "--out", "metrics.txt"], "ending in"),
    (["audit", "--plot", "figure.jpg"], "ending in"),
    (["train", "--K", "100000000000", "--iters", "1"], "GiB"),
    (["train", "--n-data", "100000000000", "--iters", "1"], "GiB"),
    (["train", "--model", "linear-gaussian", "--guide", "mlp"], "no such choice"),
    (["train", "--model", "mixture", "--method", "vimco", "--K", "1"], "K must be >= 2"),
    (["train", "--model", "linear-gaussian", "--method", "reinforce"], "discrete latents"),
    (["train", "--model", "nomodule:"], "--model"),
    (["audit", "--model", "mixture"], "MODULE:ATTR"),
    (["vectors", "--out", "v.txt"], "ending in"),
]


@pytest.mark.parametrize("args, words", BAD_ARGUMENTS)
def test_bad_arguments_give_one_line_on_stderr_and_exit_2(args, words, capsys):
    try:                                                   # in this process: main() is what the console runs
        code = main(list(args))
    except SystemExit as stop:                             # argparse's own refusals
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("args, words", [BAD_ARGUMENTS[0], BAD_ARGUMENTS[9]])
def test_the_console_command_exits_2_with_one_line(args, words):
    result = run(*args)                                    # the real process: its exit status and stderr
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreadable_checkpoint_is_one_line_too(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_text("garbage")
    result = run("train", "--resume", str(bad), "--iters", "2", "--no-progress")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "not a readable" in result.stderr


def test_ppca_from_the_command_line_saves_its_parameters_and_reports_the_closed_form_gap(tmp_path, capsys):
    from rws_ref import LinearGaussian
    params, plot = tmp_path / "p.npz", tmp_path / "curves.png"
    assert main(["train", "--model", "ppca", "--dz", "2", "--dx", "4", "--n-data", "400", "--iters", "600",
                 "--lr-milestones", "300,500", "--no-early-stop", "--grad-replicates", "0", "--eval-every", "100",
                 "--no-progress", "--save-params", str(params), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    gap = float(out.split("maximum likelihood: ")[1].split()[0])
    with np.load(params) as saved:
        theta = {k[6:]: saved[k] for k in saved.files if k.startswith("theta/")}
    assert np.all(theta["mu"] == 0) and np.ptp(theta["log_sigma"]) == 0          # mu frozen, sigma shared
    data = LinearGaussian(2, 4).sample(theta, 1, np.random.default_rng(0))       # the saved θ is usable
    assert data[1].shape == (1, 4) and 0 <= gap < 0.05 and plot.read_bytes()[:4] == b"\x89PNG"


def test_plot_history_draws_several_runs_on_shared_axes(tmp_path):
    from rws_ref.experiments.train import plot_history
    rows = lambda s: [{"iteration": i, "elbo_is": -5.0 + s - 1 / (i + 1), "log_p": -5.0 + s, "pi_error": 0.1 / (i + 1)}
                      for i in range(0, 50, 10)]
    plot_history(tmp_path / "c.png", {"wake": rows(0.0), "sleep": rows(0.1)}, "two runs", {"truth": -4.9})
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_the_module_docstring_lists_every_command():
    import argparse

    from rws_ref import cli
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) and all(f"rws-ref {name}" in cli.__doc__ for name in sub.choices)


def test_a_missing_optional_extra_is_one_readable_line_not_an_internal_error(capsys, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    assert main(["reproduce", "bb2015-digits", "--out", "/nonexistent-parent/x", "--budget", "0.0005"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'rws_ref[data]'" in err and "internal error" not in err and err.count("\n") == 1
