"""Reproduce the Gaussian-mixture comparison of Le, Kosiorek, Siddharth, Teh and Wood (UAI 2019),
"Revisiting Reweighted Wake-Sleep for Models with Stochastic Control Flow".

``rws-ref reproduce le2019-gmm [--budget B] [--seeds S] [--jobs J] --out DIR``

The paper's setup: C = 20 components with means 10·c and standard deviation 5,
true mixture weights π_c ∝ c + 5; an MLP inference network (16-16 tanh here);
a fresh batch of 100 datapoints from the true model at every step; Adam at
learning rate 1e-3 for θ and φ; 100,000 iterations; methods wake-wake (WW),
wake-sleep (WS), defensive wake-wake (δ-WW, δ = 0.2), REINFORCE and VIMCO;
K ∈ {2, 5, 10, 20}.  Errors: the model error ‖π_θ − π_true‖₂ and the
inference error, the mean over held-out x of ‖q_φ(·|x) − p_θtrue(·|x)‖₂
against the *true* posterior.  The start (``start``, :data:`STARTS`) is by
default the one of the authors' code as their sweep ran it, π ∝ e^{19−c}
(π₀ ≈ 0.63, model error 0.69); their "near" start (uniform, 0.089) and
rws_ref's earlier mirrored start (π ∝ (C − 1 − c) + 5, 0.178) by name; φ
starts at a fresh MLP.  The authors' network sees raw x; by default ours sees
x standardized by the benchmark's location and scale (``inputs="raw"`` for
theirs).

``budget`` scales the iterations (1.0 is the paper's 100,000); each run is
evaluated at 100 points.  Results: DIR/runs/*.json (one per method, K and
seed, written when the run ends; a rerun skips finished runs and resumes
unfinished ones from their checkpoints), DIR/results.csv, DIR/summary.json
(final errors: mean, 95 % t-interval and range over seeds) and DIR/le2019_gmm.png.
The runs go to local processes (``--jobs``) or to a Dask cluster (``--scheduler``);
the folder is the experiment's own (rws_ref.runner).
"""
import os
import time

import numpy as np

from .._checks import renamed
from ..models import GaussianMixture, MLPGuide, benchmark_guide
from . import runner
from .plots import iteration_axis, median_band, save_png
from .train import TrainConfig, train

__all__ = ["PAPER_METHODS", "KS", "FULL_ITERS", "STARTS", "INPUTS", "le2019_gmm", "plot", "summary_table", "run_one",
           "failed"]

#: the paper's method name -> rws_ref training method and options
PAPER_METHODS = {"WW": {"method": "wake"}, "WS": {"method": "sleep"}, "δ-WW": {"method": "defensive", "delta": 0.2},
                 "REINFORCE": {"method": "reinforce"}, "VIMCO": {"method": "vimco"}}
KS = (2, 5, 10, 20)
FULL_ITERS = 100_000
BATCH, LR, N_EVAL = 100, 1e-3, 100
EXPERIMENT = "le2019-gmm"
#: CPU seconds per training iteration, for the estimate a grid is refused above (measured, benchmarks/run.py)
SECONDS_PER_ITERATION = 2e-3
KEYS = ("model_error", "inference_error")


#: the model's starting mixture logits by name (each a softmax's logits; the model error ‖π − π_true‖ in brackets)
STARTS = {
    # the authors' code (tuananhle7/rrws, gmm/run.py, without --init-near, the way gmm/run_sweep.py runs the
    # sweep of the paper's figure): logits reversed(2·arange(20)) times a softmax multiplier 0.5, π ∝ e^{19−c}
    "authors-far": 0.5 * 2.0 * np.arange(20)[::-1],                           # π₀ ≈ 0.63 (error 0.69)
    "authors-near": np.zeros(20),                                              # --init-near: uniform (0.089)
    "mirrored": np.log(np.arange(20)[::-1] + 5.0),                             # rws_ref's earlier start (0.178)
}
#: what the guide's network sees: x standardized by the benchmark's location and scale, or raw x as the authors'
INPUTS = ("standardized", "raw")


def _problem(start="authors-far", inputs="standardized"):
    model = GaussianMixture(20)
    guide = benchmark_guide("mlp") if inputs == "standardized" else MLPGuide(20, (16, 16))
    truth = model.true_theta()
    logits = STARTS[start]
    return model, guide, truth, {"logits": logits - logits.max()}


def run_one(task):
    """One training run of the comparison, ``task`` = (method, K, seed, iterations, checkpoint path or None[,
    {"start": a name of STARTS, "inputs": one of INPUTS}] — the defaults: the authors' far start, standardized x);
    returns its rows (iteration, model and inference error), final θ and φ and wall seconds
    (runner.finished_run).  A pure function of the task: it runs the same here, in a pool worker or on a
    Dask worker; resumes from the checkpoint when there is one (the seconds are then those of the last part)."""
    method, K, seed, iters, ckpt, *options = task
    model, guide, truth, start = _problem(**(options[0] if options else {}))
    eval_x = model.sample(truth, N_EVAL, np.random.default_rng([seed, 2019]))[1]
    cfg = TrainConfig(K=K, iters=iters, batch_size=BATCH, lr_theta=LR, lr_phi=LR, seed=seed,
                      eval_every=max(1, iters // 100), grad_replicates=0, early_stop=False, **PAPER_METHODS[method])
    resume = ckpt if ckpt is not None and os.path.exists(ckpt) else None
    began = time.perf_counter()
    result = train(model, guide, eval_x, cfg, theta=start, true_theta=truth, checkpoint=ckpt,
                   checkpoint_every=max(1, iters // 10), resume=resume,
                   sample_data=lambda rng, n: model.sample(truth, n, rng)[1])
    if result.stopped_by == "interrupted":
        raise KeyboardInterrupt
    rows = [{"method": method, "K": K, "seed": seed, "iteration": r["iteration"], "model_error": r["pi_error"],
             "inference_error": r["true_posterior_error"]} for r in result.history]
    return runner.finished_run(rows, result.theta, result.phi, time.perf_counter() - began)


def le2019_gmm(out_dir, budget=0.01, seeds=1, methods=tuple(PAPER_METHODS), ks=KS, jobs=1, progress=False,
               scheduler=None, fresh=False, max_runs=runner.MAX_RUNS, start="authors-far", inputs="standardized"):
    """Run (or resume) the comparison; write results.csv, summary.json and the figure into ``out_dir``.

    ``start``: the model's starting mixture weights, a name of :data:`STARTS` — "authors-far" (default; the
    authors' code as their sweep ran it), "authors-near" (their --init-near, uniform) or "mirrored";
    ``inputs``: "standardized" (default) or "raw", the x the guide's network sees (the authors': raw).

    ``scheduler``: a Dask scheduler's address (or a dask.distributed.Client) to run the runs on
    (default: ``jobs`` local processes); ``fresh``: start afresh in a folder that holds runs of another
    configuration; ``max_runs``: the largest grid accepted without asking (rws_ref.runner).

    Returns
    -------
    (rows, summary, seconds) — every evaluation row, the final errors by method and K (mean and a 95 %
    t-interval over seeds), the wall time.
    """
    budget, seeds, jobs = runner.check_arguments(budget, seeds, jobs, methods, ks, PAPER_METHODS, KS, FULL_ITERS)
    if start not in STARTS or inputs not in INPUTS:
        raise ValueError(f"start must be one of {list(STARTS)} and inputs one of {list(INPUTS)}; got start = "
                         f"{start!r}, inputs = {inputs!r}")
    experiment = runner.Experiment(EXPERIMENT, FULL_ITERS, SECONDS_PER_ITERATION, PAPER_METHODS, KEYS, run_one,
                                   "le2019_gmm.png", plot, options={"start": start, "inputs": inputs},
                                   failed=failed)
    return runner.run_experiment(experiment, out_dir, [(m, K) for m in methods for K in ks], budget, seeds,
                                 jobs=jobs, scheduler=scheduler, progress=progress, fresh=fresh, max_runs=max_runs)


def failed(first, last):
    """the model error at the end is above half the model error at the start (training did not close half the
    distance to the true mixture weights)"""
    return last["model_error"] > 0.5 * first["model_error"]


def summary_table(summary):
    """The final errors as a text table: per K and method, the model and inference errors' medians over seeds
    with their 25–75 % quartiles in brackets (one seed: the value), and the failed seeds (:func:`failed`).
    summary.json holds the means and 95 % t-intervals too."""
    return runner.median_table(summary, KEYS, ("model", "inference"), PAPER_METHODS)


def plot(rows, path, iters):
    """Errors against iterations on log scales, in the paper's layout: a row for the model error and one
    for the inference error, a column per K, a line per method (the median over seeds, with the 25–75 %
    band when there are several).  The x axis is linear up to the first evaluation and
    logarithmic after it, so the start (iteration 0) is shown."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
    ks = sorted({r["K"] for r in rows})
    first = min((r["iteration"] for r in rows if r["iteration"] > 0), default=1)
    fig, axes = plt.subplots(2, len(ks), figsize=(3.2 * len(ks), 5.6), sharex=True, sharey="row", squeeze=False)
    lowest = [np.inf, np.inf]
    for col, K in enumerate(ks):
        for method in PAPER_METHODS:
            sel = [r for r in rows if r["K"] == K and r["method"] == method]
            if not sel:
                continue
            for row_i, key in enumerate(KEYS):           # the median and the 25–75 % band, as the paper's figure
                lowest[row_i] = min(lowest[row_i], median_band(axes[row_i, col], sel, key, method))
        axes[0, col].set_title(f"K = {K}")
        axes[1, col].set_xlabel("iteration")
        for ax in axes[:, col]:
            iteration_axis(ax, first, iters)
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(NullFormatter())
    for row_i in range(2):
        if np.isfinite(lowest[row_i]) and lowest[row_i] > 0:
            axes[row_i, 0].set_ylim(bottom=lowest[row_i] / 2)
    axes[0, 0].set_ylabel("model error ‖π − π_true‖")
    axes[1, 0].set_ylabel("inference error ‖q − p_true(z|x)‖")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=len(PAPER_METHODS), fontsize=8,
               frameon=False)                                     # below the panels, covering no curve
    seeds = len({r["seed"] for r in rows})
    fig.suptitle(f"Le et al. (2019) GMM, {iters:,} iterations per run, {seeds} seed(s)"
                 + (", the median and the 25–75% band" if seeds > 1 else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    save_png(fig, path)


#: METHODS, the former name of PAPER_METHODS (rws_ref.experiments.train.METHODS is a tuple of rws_ref's methods)
__getattr__ = renamed(__name__, {"METHODS": "PAPER_METHODS"})
