"""rws_ref.experiments.plots: learning curves whose axes show the whole run."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from rws_ref.experiments.plots import plot_history  # noqa: E402


def _history(start, end, n=6):
    its = np.linspace(0, 100, n).astype(int)
    values = np.linspace(start, end, n)
    return [{"iteration": int(i), "elbo_is": float(v), "log_p": float(v) + 0.1, "posterior_error": 1.0 / (1 + i),
             "grad_std_theta": 0.5, "grad_std_phi": 0.2} for i, v in zip(its, values)]


def test_several_runs_share_the_axes_and_the_start_is_on_the_bound_panel(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    figures = []
    monkeypatch.setattr(plt, "close", lambda fig: figures.append(fig))
    plot_history(tmp_path / "curves.png", {"wake": _history(-9.6, -2.0), "sleep": _history(-9.0, -2.2)},
                 title="demo", reference={"ML": -1.9})
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    axes = figures[0].axes
    low, high = axes[0].get_ylim()
    assert low <= -9.6 and high >= -1.9                   # the start of the bound and the reference are shown
    assert len(axes[0].get_lines()) >= 4                  # two runs × (bound, log p)
    assert axes[1].get_yscale() == "log"
    for ax in axes[1:]:                                   # the log panels start at iteration 0 too (the printed start)
        assert all(line.get_xdata()[0] == 0 for line in ax.get_lines())
    error = [line for line in axes[1].get_lines() if line.get_ydata()[0] == 1.0]
    assert len(error) == 2                                # posterior_error 1 / (1 + 0) at the start of both runs
    assert all(ax.get_xlabel() == "iteration" and ax.get_ylabel() for ax in axes)
