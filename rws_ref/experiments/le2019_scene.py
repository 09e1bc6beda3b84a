"""Le et al. (2019)'s titular claim on a model with stochastic control flow, exactly measured.

``rws-ref reproduce le2019-scene [--budget B] [--seeds S] [--jobs J] --out DIR``

Le, Kosiorek, Siddharth, Teh and Wood (UAI 2019) compare wake-wake (WW), wake-sleep (WS), defensive
wake-wake (δ-WW), REINFORCE and VIMCO on models whose discrete choices decide which latents exist — their
Attend-Infer-Repeat and probabilistic-grammar experiments, where the paper reports that RWS learns better
models and inference networks as K grows while the REINFORCE-type estimators do not.  Those models'
likelihoods and posteriors are intractable, so the paper measures them by estimates; here the same five
methods train rws_ref's one-dimensional "attend, infer, repeat" scene (rws_ref.models.control_flow:
a random number n ≤ 3 of objects, each at one of 8 positions, rendered as bumps on 16 pixels plus noise —
585 program paths), where every measure is exact:

* ``log_lik_gap`` — log p_true(x) − log p_θ(x), the mean over held-out x (nats; 0 at the truth);
* ``inference_error`` — the mean over held-out x of ‖q_φ(·|x) − p_true(·|x)‖₂ over the 585 states;
* ``count_tv`` — the mean total-variation distance between q_φ(n|x) and the true posterior p_true(n|x):
  does q put its mass on the right number of objects?

Set-up (rws_ref's choice: the paper has no such model): θ starts at uniform counts and positions and
brightness 1 (the truth: P(n) ∝ 1, 3, 3, 2, positions ∝ 1 + p, brightness 2); φ starts at the guide's
random initialization (seeded per run); a fresh batch of 100 datapoints from the true model at every
step; Adam at learning rate 3·10⁻³ for θ and φ; 2,000 iterations at budget 1; δ = 0.2 for δ-WW;
K ∈ {2, 5, 10, 20}; 100 held-out datapoints per seed.  Results: DIR/runs/*.json, DIR/results.csv,
DIR/summary.json (final values: median and quartiles, mean and 95 % t-interval, range over seeds),
DIR/le2019_scene.png (learning curves) and DIR/le2019_scene_objects.png (held-out scenes beside the
objects each method's guide infers).
"""
import os
import time

import numpy as np

from ..models import Scene1D, SceneGuide
from . import runner
from .le2019_gmm import PAPER_METHODS
from .plots import iteration_axis, median_band, save_png
from .train import TrainConfig, train

__all__ = ["KS", "FULL_ITERS", "le2019_scene", "plot", "summary_table", "run_one", "inferred_objects", "failed"]

KS = (2, 5, 10, 20)
FULL_ITERS = 2_000
BATCH, LR, N_EVAL = 100, 3e-3, 100
EXPERIMENT = "le2019-scene"
#: CPU seconds per training iteration, for the estimate a grid is refused above (measured: 6–10 ms at K = 10)
SECONDS_PER_ITERATION = 1e-2
KEYS = ("log_lik_gap", "inference_error", "count_tv")
LABELS = {"log_lik_gap": "log p_true(x) − log p_θ(x)", "inference_error": "‖q − p_true(z|x)‖",
          "count_tv": "TV(q(n|x), p_true(n|x))"}


def _problem():
    model, guide = Scene1D(), SceneGuide()
    start = {"count_logits": np.zeros(model.n_max + 1), "position_logits": np.zeros(model.positions),
             "log_brightness": np.array(0.0)}
    return model, guide, model.true_theta(), start


def run_one(task):
    """One training run, ``task`` = (method, K, seed, iterations, checkpoint path or None); returns its rows
    (iteration and the three exact measures), final θ and φ and wall seconds (runner.finished_run).  A pure
    function of the task, resumable from its checkpoint."""
    method, K, seed, iters, ckpt = task
    model, guide, truth, start = _problem()
    eval_x = model.sample(truth, N_EVAL, np.random.default_rng([seed, 2019]))[1]
    true_log_p = float(np.mean(model.log_marginal(truth, eval_x)))
    cfg = TrainConfig(K=K, iters=iters, batch_size=BATCH, lr_theta=LR, lr_phi=LR, seed=seed,
                      eval_every=max(5, iters // 40), grad_replicates=0, early_stop=False, **PAPER_METHODS[method])
    resume = ckpt if ckpt is not None and os.path.exists(ckpt) else None
    began = time.perf_counter()
    result = train(model, guide, eval_x, cfg, theta=start, true_theta=truth, checkpoint=ckpt,
                   checkpoint_every=max(1, iters // 10), resume=resume,
                   sample_data=lambda rng, n: model.sample(truth, n, rng)[1],
                   metrics=lambda theta, phi, x: {"count_tv": guide.count_accuracy(model, truth, phi, x)["tv"]})
    if result.stopped_by == "interrupted":
        raise KeyboardInterrupt
    rows = [{"method": method, "K": K, "seed": seed, "iteration": r["iteration"],
             "log_lik_gap": true_log_p - r["log_p"], "inference_error": r["true_posterior_error"],
             "count_tv": r["count_tv"]} for r in result.history]
    return runner.finished_run(rows, result.theta, result.phi, time.perf_counter() - began)


def le2019_scene(out_dir, budget=0.01, seeds=1, methods=tuple(PAPER_METHODS), ks=KS, jobs=1, progress=False,
                 scheduler=None, fresh=False, max_runs=runner.MAX_RUNS):
    """Run (or resume) the comparison; write results.csv, summary.json and the two figures into ``out_dir``.
    Arguments as rws_ref.experiments.le2019_gmm.le2019_gmm.  Returns (rows, summary, seconds)."""
    budget, seeds, jobs = runner.check_arguments(budget, seeds, jobs, methods, ks, PAPER_METHODS, KS, FULL_ITERS)
    experiment = runner.Experiment(EXPERIMENT, FULL_ITERS, SECONDS_PER_ITERATION, PAPER_METHODS, KEYS, run_one,
                                   "le2019_scene.png", plot, more_figures=_objects_figure, failed=failed)
    return runner.run_experiment(experiment, out_dir, [(m, K) for m in methods for K in ks], budget, seeds,
                                 jobs=jobs, scheduler=scheduler, progress=progress, fresh=fresh, max_runs=max_runs)


def failed(first, last):
    """log p_true(x) − log p_θ(x) at the end is above half its value at the start (training did not close half
    the distance to the true model)"""
    return last["log_lik_gap"] > 0.5 * first["log_lik_gap"]


def summary_table(summary):
    """The final values as a text table: per K and method, each measure's median over seeds with its 25–75 %
    quartiles in brackets (one seed: the value), and the failed seeds (:func:`failed`)."""
    return (runner.median_table(summary, KEYS, ("gap", "inference", "count"), PAPER_METHODS)
            + "\ngap = log p_true(x) − log p_θ(x) (nats), inference = ‖q − p_true(z|x)‖, count = TV of q(n|x)")


def plot(rows, path, iters):
    """The three measures against iterations: a row per measure, a column per K, a line per method — the
    median over seeds, with the 25–75 % band when there are several."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter
    ks = sorted({r["K"] for r in rows})
    first = min((r["iteration"] for r in rows if r["iteration"] > 0), default=1)
    fig, axes = plt.subplots(len(KEYS), len(ks), figsize=(3.1 * len(ks), 7.2), sharex=True, sharey="row",
                             squeeze=False)
    for col, K in enumerate(ks):
        for method in PAPER_METHODS:
            sel = [r for r in rows if r["K"] == K and r["method"] == method]
            if not sel:
                continue
            for row_i, key in enumerate(KEYS):
                median_band(axes[row_i, col], sel, key, method)
        axes[0, col].set_title(f"K = {K}")
        axes[-1, col].set_xlabel("iteration")
        for ax in axes[:, col]:
            iteration_axis(ax, first, iters)
            ax.grid(alpha=0.3)
    # the gap on a log scale down to 0.001 nats, linear through 0: it may dip below 0 on held-out data
    axes[0, 0].set_yscale("symlog", linthresh=1e-3)
    axes[0, 0].yaxis.set_major_locator(FixedLocator([-1e-3, 0, 1e-3, 1e-2, 0.1, 1, 10]))
    axes[0, 0].yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes[0, 0].set_ylim(bottom=-2e-3)
    for row_i, key in enumerate(KEYS):
        axes[row_i, 0].set_ylabel(LABELS[key], fontsize=9)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=len(PAPER_METHODS), fontsize=8,
               frameon=False)
    seeds = len({r["seed"] for r in rows})
    fig.suptitle(f"Scene with stochastic control flow (585 program paths), {iters:,} iterations per run, "
                 f"{seeds} seed(s)" + (", median and 25–75% band" if seeds > 1 else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    save_png(fig, path)


def inferred_objects(model, guide, theta, phi, x):
    """For each row of ``x``: the guide's most probable program path argmax_z q_φ(z|x) and the exact
    posterior's argmax_z p_θ(z|x), both over the model's support (canonical latents, shape (N, 1 + n_max))."""
    states = model.support()
    log_q = guide.log_prob(phi, np.repeat(states[:, None], x.shape[0], axis=1), x)          # (S, N)
    return states[np.argmax(log_q, axis=0)], states[np.argmax(model.posterior(theta, x), axis=1)]


def _objects_figure(out_dir, runs):
    """Held-out scenes (seed 0's first four) beside the objects inferred by each method's guide at the
    largest K run, and the true posterior's most probable scene."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    model, guide, truth, _ = _problem()
    chosen = {}
    for (m, K, s), run in runs.items():
        if s == 0 and K >= chosen.get(m, (0, None))[0]:
            chosen[m] = (K, run)
    x = model.sample(truth, N_EVAL, np.random.default_rng([0, 2019]))[1][:4]
    fig, axes = plt.subplots(len(chosen) + 1, len(x), figsize=(3.0 * len(x), 1.5 * (len(chosen) + 1)),
                             sharex=True, sharey=True, squeeze=False)
    pixels = np.arange(model.pixels)
    rows = [("true posterior", model.support()[np.argmax(model.posterior(truth, x), axis=1)], truth)]
    for m, (K, run) in chosen.items():
        theta = {k: np.asarray(v, dtype=np.float64) for k, v in run["parameters"]["theta"].items()}
        phi = {k: np.asarray(v, dtype=np.float64) for k, v in run["parameters"]["phi"].items()}
        rows.append((f"{m}, K = {K}", inferred_objects(model, guide, theta, phi, x)[0], theta))
    for r, (label, z, theta) in enumerate(rows):
        for c in range(len(x)):
            ax = axes[r, c]
            ax.plot(pixels, x[c], ".", color="0.4", ms=4)
            ax.plot(pixels, model.render(theta, z[c]), lw=1.4)
            n = int(z[c, 0])
            for p in z[c, 1:1 + n]:
                ax.axvline((p + 0.5) * model.pixels / model.positions - 0.5, color="C3", lw=0.8, ls=":")
            ax.text(0.02, 0.95, f"n = {n}" + (f", positions {', '.join(str(int(p)) for p in z[c, 1:1 + n])}"
                                              if n else ""), transform=ax.transAxes, va="top", fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle("Held-out scenes (dots), the most probable objects under each guide (lines: the rendered scene, "
                 "dotted: the positions)", fontsize=9)
    fig.tight_layout()
    save_png(fig, os.path.join(out_dir, "le2019_scene_objects.png"))
