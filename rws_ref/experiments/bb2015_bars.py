"""Bornschein and Bengio (2015)'s bars problem, where the true generator is known: the belief-net comparison of
bb2015-digits (the same methods, optimizer and measures) on 5×5 bars (rws_ref.experiments.bars).

``rws-ref reproduce bb2015-bars [--budget B] [--seeds S] [--jobs J | --scheduler ADDRESS] --out DIR``

As the paper's bars set-up: 15 latent bits (32,768 states, enumerated for the exact held-out log-likelihood and
posterior), K = 10 particles for the reweighted methods (WS at K = 1); 10,000 training images, 1,000 held out.
Unlike theirs (momentum SGD at 0.1 on minibatches of 10, early stopping), the optimizer, batch and iterations
are bb2015-digits' (Adam at 3e-3, 100 images, 20,000 iterations at budget 1).  What the bars add: the held-out
log-likelihood under the true generator, the best any model can reach, so each method's gap to it — an
unbiased estimate of KL(p_true ‖ p_θ) on the held-out draws — is in the summary table.
"""
import numpy as np

from . import runner
from .bars import load_bars, true_log_likelihood
from .bb2015_digits import METHODS, mean_cell, paired_table, run_bb2015, summary_heading

__all__ = ["EXPERIMENT", "KS", "LATENT_BITS", "bb2015_bars", "summary_table", "true_held_out"]

EXPERIMENT = "bb2015-bars"
KS = (1, 10)
LATENT_BITS = 15


def bb2015_bars(out_dir, budget=0.01, seeds=1, methods=tuple(METHODS), ks=KS, jobs=1, progress=False,
                scheduler=None, fresh=False, max_runs=runner.MAX_RUNS):
    """Run (or resume) the bars comparison; write results.csv, summary.json (with the paired part) and the
    figures into ``out_dir``.  Returns (rows, summary, seconds), as :func:`rws_ref.reproduce.le2019_gmm`."""
    return run_bb2015(EXPERIMENT, "bars", {"data": "bars", "latent_bits": LATENT_BITS}, out_dir, budget, seeds,
                      methods, ks, KS, jobs=jobs, progress=progress, scheduler=scheduler, fresh=fresh,
                      max_runs=max_runs)


def true_held_out():
    """The mean held-out log-likelihood under the true generator, per image (exact)."""
    return float(np.mean(true_log_likelihood(load_bars()[1])))


def summary_table(summary):
    """The final held-out values: method, K → exact log p(x) and its gap to the true generator's, the IS
    estimate with K particles, the posterior error (mean ± t half-width over seeds); then the paired part."""
    best = true_held_out()
    lines = [f"{summary_heading(summary)}; the true generator: {best:.3f} nats per image",
             f"{'method':<10}{'K':>4}{'exact log p(x)':>20}{'gap to truth':>16}{'IS estimate (K)':>20}"
             f"{'posterior error':>20}"]
    for name, c in summary["final"].items():
        method, K = name.split(" K=")
        lines.append(f"{method:<10}{K:>4}{mean_cell(c, 'log_likelihood'):>20}"
                     f"{mean_cell(c, 'log_likelihood', best, -1.0):>16}{mean_cell(c, 'is_estimate'):>20}"
                     f"{mean_cell(c, 'posterior_error'):>20}")
    paired = paired_table(summary)
    return "\n".join(lines) + ("\n" + paired if paired else "")
