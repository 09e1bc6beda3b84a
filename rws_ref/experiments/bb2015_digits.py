"""Bornschein and Bengio (2015)'s experiment at a size where every number is exact: sigmoid belief nets on
binarized handwritten digits, wake-sleep against reweighted wake-sleep as the paper defined it.

``rws-ref reproduce bb2015-digits [--budget B] [--seeds S] [--jobs J | --scheduler ADDRESS] --out DIR``

The data: scikit-learn's 8×8 digits (1,797 images shipped inside the package, never downloaded;
``pip install 'rws_ref[data]'``), each pixel on when its intensity (0–16) is at least 8; a fixed split
by a permutation seeded 2015: 1,500 training images, 297 held out.  The model: SigmoidBeliefNet with
dz = 16 latent bits over the 64 pixels (``latent_bits``, 8 or 16), so log p_θ(x) is an exact sum over
65,536 states and the posterior an exact table; the guide: BernoulliGuide (independent bits, logits A x + c).

Methods, as the paper's q-updates (Bornschein and Bengio's code: a wake step every minibatch, a sleep step on
the model's dreams interleaved with it, both at the same learning rate): RWS (wake-θ; φ by wake-φ *and*
sleep-φ), RWS-wake (wake-φ only), RWS-sleep (sleep-φ only), and WS, the wake-sleep baseline (K = 1, sleep-φ
only); beside them δ-WW (defensive wake-φ, δ = 0.2), REINFORCE and VIMCO; K ∈ {5, 20} (WS: K = 1).  Sleep-φ
steps on one minibatch's worth of dreams (100) per iteration, as the paper's one sleep step on five batches'
worth every fifth iteration; RWS's φ-gradient is ½ wake-φ + ½ sleep-φ (insomnia, ι = ½), which Adam, dividing
out a gradient's scale, steps as wake-φ + sleep-φ.  Minibatches of 100 training images in epochs drawn from
the seed alone (every method of a seed sees the same batches: pairs by seed are sharp), Adam at 3e-3 for θ
and φ, 20,000 iterations at budget 1; θ starts near zero (all entries N(0, 0.01²)) and φ at the guide's own
initialization.  Each run is evaluated on the held-out images at 25 points (fewer in runs under 125
iterations: every 5 iterations at most): the exact log-likelihood per image (mean of log p_θ(x)), the exact
posterior error (mean of ‖q_φ(·|x) − p_θ(·|x)‖₂) and the importance-sampled estimate of the log-likelihood
with the run's K particles (ELBO_IS) — what Bornschein and Bengio could measure.  Outputs as le2019-gmm's
(rws_ref.runner): DIR/runs/, DIR/results.csv, DIR/summary.json (final values: mean and 95 % t-interval over
seeds, and every method's paired difference to RWS by seed, with the difference the seeds can resolve) and
DIR/bb2015_digits.png.
"""
import functools
import os
import time

import numpy as np

from .._checks import check_count
from ..models import BernoulliGuide, SigmoidBeliefNet
from ..numerics import log_sigmoid, logsumexp, sigmoid, softmax
from . import runner
from .plots import save_png
from .train import TrainConfig, train

__all__ = ["METHODS", "KS", "FULL_ITERS", "EXPERIMENT", "LATENT_BITS", "load_digits", "bb2015_digits", "run_one",
           "summary_table", "summary_heading", "mean_cell", "paired_table",
           "run_bb2015", "reconstructions", "image_grids", "importance_estimate",
           "exact_measures"]

EXPERIMENT = "bb2015-digits"
DZ, THRESHOLD, SPLIT_SEED, N_TRAIN = 16, 8, 2015, 1500
BATCH, LR, N_POINTS = 100, 3e-3, 25
#: the paper's q-updates by name (and the methods compared beside them) -> rws_ref training method and options
METHODS = {"WS": {"method": "sleep", "dreams": BATCH},
           "RWS": {"method": "insomnia", "iota": 0.5, "dreams": BATCH},
           "RWS-wake": {"method": "wake"},
           "RWS-sleep": {"method": "sleep", "dreams": BATCH},
           "δ-WW": {"method": "defensive", "delta": 0.2},
           "REINFORCE": {"method": "reinforce"}, "VIMCO": {"method": "vimco"}}
KS = (1, 5, 20)
#: the latent sizes the experiment offers (2^dz states are enumerated at every evaluation)
LATENT_BITS = (8, 16)
FULL_ITERS = 20_000
#: CPU seconds per training iteration with its share of the evaluations (measured on 2 cores, loaded)
SECONDS_PER_ITERATION = 6e-3
KEYS = ("log_likelihood", "posterior_error", "is_estimate")
#: what every method is compared with, seed by seed (summary.json's "paired")
REFERENCE = "RWS"


def load_digits():
    """(train (1500, 64), held_out (297, 64)): the binarized digits, float 0/1, in the fixed split."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise ImportError("the digits ship with scikit-learn: pip install 'rws_ref[data]'") from None
    images = sklearn_digits().data
    x = (images >= THRESHOLD).astype(np.float64)
    x = x[np.random.default_rng(SPLIT_SEED).permutation(len(x))]
    return x[:N_TRAIN], x[N_TRAIN:]


def _pairs(methods, ks):
    """The grid's (method, K): WS at K = 1 only (the baseline as the paper ran it), every other method at K ≥ 2
    (at K = 1 the one normalized weight is 1 and wake-φ's mean is zero: RWS-sleep would be WS, RWS-wake drifts)."""
    return [(m, K) for m in methods for K in ks if (K == 1) == (m == "WS")]


class _Trained(SigmoidBeliefNet):
    """The belief net as training sees it: the same model with its enumerations (``support``,
    ``log_marginal``, ``posterior``, ``data_support``) switched off — at 16 bits the generic evaluation would
    pair every one of the 65,536 states with every held-out image, so the run's exact measures come from
    :func:`exact_measures` on the full model instead."""
    support = log_marginal = posterior = data_support = None


def _load(data):
    """The (training, held-out) images of ``data``, "digits" or "bars" (rws_ref.experiments.bars)."""
    if data == "bars":
        from .bars import load_bars
        return load_bars()
    return load_digits()


def _problem(latent_bits, data="digits"):
    data, held_out = _load(data)
    return data, held_out, SigmoidBeliefNet(latent_bits, data.shape[1]), BernoulliGuide(latent_bits, data.shape[1])


def run_one(task):
    """One training run, ``task`` = (method, K, seed, iterations, checkpoint path or None[, {"latent_bits": the
    latent size, "data": "digits" (default) or "bars"}]); returns its rows, final θ and φ and wall seconds
    (runner.finished_run).  A pure function of the task (the data are loaded in the worker).  The minibatches
    come from the seed alone (TrainConfig.data_seed), so the methods of one seed train on the same batches in the
    same order."""
    method, K, seed, iters, ckpt, *options = task
    options = options[0] if options else {}
    data, held_out, model, guide = _problem(options.get("latent_bits", DZ), options.get("data", "digits"))
    start = np.random.default_rng([seed, 2015])
    theta = {k: 0.01 * start.standard_normal(shape) for k, shape in model.theta_shapes.items()}
    cfg = TrainConfig(K=K, iters=iters, batch_size=BATCH, lr_theta=LR, lr_phi=LR, seed=seed, data_seed=seed,
                      eval_every=max(5, iters // N_POINTS), grad_replicates=0, early_stop=False, **METHODS[method])
    resume = ckpt if ckpt is not None and os.path.exists(ckpt) else None
    began = time.perf_counter()

    def exact(theta, phi, x):
        log_likelihood, error = exact_measures(model, guide, theta, phi, x)
        return {"log_likelihood": log_likelihood, "posterior_error": error}
    result = train(_Trained(model.dz, model.dx), guide, data, cfg, theta=theta, eval_data=held_out, checkpoint=ckpt,
                   checkpoint_every=max(1, iters // 10), resume=resume, metrics=exact)
    if result.stopped_by == "interrupted":
        raise KeyboardInterrupt
    rows = [{"method": method, "K": K, "seed": seed, "iteration": r["iteration"], "log_likelihood": r["log_likelihood"],
             "posterior_error": r["posterior_error"], "is_estimate": r["elbo_is"]} for r in result.history]
    return runner.finished_run(rows, result.theta, result.phi, time.perf_counter() - began)


def bb2015_digits(out_dir, budget=0.01, seeds=1, methods=tuple(METHODS), ks=KS, jobs=1, progress=False,
                  scheduler=None, fresh=False, max_runs=runner.MAX_RUNS, latent_bits=DZ):
    """Run (or resume) the experiment; write results.csv, summary.json and the figure into ``out_dir``.
    ``latent_bits``: 16 (default) or 8, the belief net's latent size.

    Returns
    -------
    (rows, summary, seconds), as :func:`rws_ref.reproduce.le2019_gmm`; the summary also holds "paired",
    every method's difference to RWS seed by seed (:func:`rws_ref.runner.paired_summary`).
    """
    if latent_bits not in LATENT_BITS:
        raise ValueError(f"latent_bits must be one of {list(LATENT_BITS)}; got {latent_bits!r}")
    return run_bb2015(EXPERIMENT, "digits", {"latent_bits": latent_bits}, out_dir, budget, seeds, methods, ks, KS,
                      jobs=jobs, progress=progress, scheduler=scheduler, fresh=fresh, max_runs=max_runs)


def run_bb2015(name, data, options, out_dir, budget, seeds, methods, ks, known_ks, **how):
    """The belief-net comparison on ``data`` ("digits" or "bars") as experiment ``name`` with ``options`` (the
    latent size, and the data when not digits): arguments checked, the grid run by rws_ref.runner (``how``:
    jobs, progress, scheduler, fresh, max_runs).  Returns (rows, summary, seconds)."""
    budget, seeds, how["jobs"] = runner.check_arguments(budget, seeds, how["jobs"], methods, ks, METHODS, known_ks,
                                                        FULL_ITERS)
    pairs = _pairs(methods, ks)
    if not pairs:
        raise ValueError(f"no run in the grid: WS runs at K = 1 only, every other method at K >= 2; got methods "
                         f"{list(methods)} and ks {list(ks)}")
    _load(data)                                                # the extra is there, before any run starts
    experiment = runner.Experiment(name, FULL_ITERS, SECONDS_PER_ITERATION, METHODS, KEYS, run_one,
                                   f"bb2015_{data}.png", functools.partial(plot, data=data), options=options,
                                   paired=(REFERENCE, "log_likelihood"),
                                   more_figures=lambda out, runs: _image_figure(out, runs, data))
    return runner.run_experiment(experiment, out_dir, pairs, budget, seeds, **how)


def _image_figure(out_dir, runs, data="digits"):
    image_grids({(m, K): run["parameters"] for (m, K, s), run in runs.items() if s == 0},
                os.path.join(out_dir, f"bb2015_{data}_images.png"), data=data)


def summary_table(summary):
    """The final held-out values as a text table: method, K → exact log-likelihood per image, its
    importance-sampled estimate with K particles, the posterior error (mean ± t half-width)."""
    lines = [summary_heading(summary),
             f"{'method':<10}{'K':>4}{'exact log p(x)':>22}{'IS estimate (K)':>22}{'posterior error':>22}"
             f"{'s per run':>11}"]
    for name, c in summary["final"].items():
        method, K = name.split(" K=")
        cells = [mean_cell(c, key) for key in KEYS]
        lines.append(f"{method:<10}{K:>4}{cells[0]:>22}{cells[2]:>22}{cells[1]:>22}{summary['seconds_per_run'][name]:>11.0f}")
    paired = paired_table(summary)
    return "\n".join(lines) + ("\n" + paired if paired else "")


def summary_heading(summary):
    """The first line of a summary table: iterations, budget, seeds."""
    return (f"{summary['iterations']:,} iterations per run (budget {summary['budget']}), {summary['seeds']} "
            f"seed(s); held-out images, at the end")


def mean_cell(c, key, shift=0.0, sign=1.0):
    """One summary cell: sign·(mean − shift) of ``key`` over seeds, with the half-width of its t-interval when the
    seeds differ."""
    low, high = c[f"{key}_interval"]
    return f"{sign * (c[key] - shift):.3f}" + (f" ±{(high - low) / 2:.3f}" if high > low else "")


def paired_table(summary):
    """summary.json's "paired" part as text: per comparison the seeds, the mean difference of the exact held-out
    log-likelihood with its 95 % t-interval, the differences' standard deviation and the difference the seeds
    resolve at 80 % power; "" without pairs (one seed)."""
    paired = summary.get("paired") or {}
    if not paired:
        return ""
    lines = ["paired by seed, exact held-out log p(x) (method minus reference; the seeds share their minibatches)",
             f"{'comparison':<28}{'seeds':>6}{'difference [95% interval]':>30}{'sd':>8}{'resolves (80%)':>16}"]
    for name, c in paired.items():
        low, high = c["interval"]
        lines.append(f"{name:<28}{c['seeds']:>6}{c['mean']:>+12.3f} [{low:+.3f}, {high:+.3f}]"
                     f"{c['sd']:>8.3f}{c['resolvable']:>16.3f}")
    return "\n".join(lines)


def plot(rows, path, iters, data="digits"):
    """Learning curves on the held-out images, a column per K, a line per method (the mean over seeds, with the
    band of its 95 % t-interval when there are several): top, the exact log-likelihood per image (solid) and
    the IS estimate with K particles (dashed), the axis fitted to the last nine tenths of the run; bottom, the
    exact posterior error."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ks = sorted({r["K"] for r in rows})
    fig, axes = plt.subplots(2, len(ks), figsize=(3.6 * len(ks), 6.4), sharey="row", sharex=True, squeeze=False)
    late = []
    for column, K in enumerate(ks):
        top, bottom = axes[0, column], axes[1, column]
        for index, method in enumerate(METHODS):
            sel = [r for r in rows if r["K"] == K and r["method"] == method]
            if not sel:
                continue
            its = sorted({r["iteration"] for r in sel})
            color = f"C{index}"
            for ax, key in ((top, "log_likelihood"), (bottom, "posterior_error")):
                bands = [runner.interval([r[key] for r in sel if r["iteration"] == it]) for it in its]
                ax.plot(its, [b[0] for b in bands], label=method, lw=1.3, color=color)
                if any(b[2] > b[1] for b in bands):
                    ax.fill_between(its, [b[1] for b in bands], [b[2] for b in bands], color=color, alpha=0.2, lw=0)
                if key == "log_likelihood":
                    late += [b[0] for it, b in zip(its, bands) if it >= iters / 10]
            est = [np.mean([r["is_estimate"] for r in sel if r["iteration"] == it]) for it in its]
            top.plot(its, est, "--", lw=0.9, color=color)
            late += [e for it, e in zip(its, est) if it >= iters / 10]
        top.set_title(f"K = {K}")
        bottom.set_xlabel("iteration")
        bottom.set_yscale("log")
    if late:
        low, high = min(late), max(late)
        axes[0, 0].set_ylim(low - 0.08 * (high - low + 1e-9), high + 0.08 * (high - low + 1e-9))
    axes[0, 0].set_ylabel("held-out log p(x) per image (nats)")
    axes[1, 0].set_ylabel("posterior error, mean ‖q − p(·|x)‖₂")
    handles = {}                                               # every method once, whichever column it is in
    for ax in axes[0]:
        handles.update({label: h for h, label in zip(*ax.get_legend_handles_labels())})
    axes[0, -1].legend(handles.values(), handles.keys(), fontsize=8)
    seeds = len({r["seed"] for r in rows})
    what = "binarized digits" if data == "digits" else "5×5 bars"
    fig.suptitle(f"SBN on {what}, {iters:,} iterations, {seeds} seed(s); solid: exact, dashed: "
                 f"IS estimate with K particles", fontsize=9)
    fig.tight_layout()
    save_png(fig, path)


def _tables(model, guide, theta, phi, x):
    """(log p_θ(s, x_n), log q_φ(s | x_n)), both (S, N) over the model's support() states s, through
    public capabilities only: p from the model's exact ``posterior`` table and its ``log_joint`` at each image's
    posterior mode (log p(s, x) = log p(s|x) + log p(x), log p(x) = log p(s*, x) − log p(s*|x)); q from the
    BernoulliGuide's logits l = A x + c as products, log q(s|x) = s · log σ(l) + (1 − s) · log σ(−l) — no
    (S, N, dz) array."""
    states = model.support()
    log_post = np.log(np.maximum(model.posterior(theta, x), np.finfo(float).tiny)).T          # (S, N)
    mode = np.argmax(log_post, axis=0)
    at_mode = model.log_joint(theta, states[mode][None], x)[0]                                # (N,)
    log_px = at_mode - log_post[mode, np.arange(x.shape[0])]
    logits = x @ phi["A"].T + phi["c"]                                                         # (N, dz)
    log_q = states @ log_sigmoid(logits).T + (1.0 - states) @ log_sigmoid(-logits).T
    return log_post + log_px, log_q


def exact_measures(model, guide, theta, phi, x, chunk=None):
    """(mean over the images ``x`` of log p_θ(x), mean of ‖q_φ(·|x) − p_θ(·|x)‖₂ over the 2^dz states), exact,
    for the SigmoidBeliefNet and BernoulliGuide pair; the images in chunks of about 1.6·10⁷ / 2^dz so no table
    exceeds some 130 MB."""
    states = model.support().shape[0]
    chunk = max(1, 16_000_000 // states) if chunk is None else check_count(chunk, "chunk")
    log_p, errors = [], []
    for first in range(0, x.shape[0], chunk):
        part = x[first:first + chunk]
        log_joint, log_q = _tables(model, guide, theta, phi, part)
        log_p.append(logsumexp(log_joint, axis=0))
        errors.append(np.linalg.norm(np.exp(log_q) - softmax(log_joint, axis=0), axis=0))
    return float(np.mean(np.concatenate(log_p))), float(np.mean(np.concatenate(errors)))


def importance_estimate(model, guide, theta, phi, x, K, replicates, rng):
    """What an importance-sampled evaluation with K particles reports: the mean over the images ``x`` of
    L̂_n = log (1/K) Σ_k w_kn, z_kn ~ q_φ(·|x_n), drawn ``replicates`` (≥ 2) times per image.

    The latent support is finite, so K draws from q_φ(·|x_n) are drawn as their counts over the states
    (multinomial, the same distribution) and L̂_n = log Σ_s c_sn w_sn − log K with the weights of every
    state computed once: the cost does not grow with K.

    Returns (estimate, standard error): the mean over images and replicates, and its Monte Carlo standard
    error given the images, sqrt(Σ_n s_n² / R) / N with s_n² the sample variance of image n's R estimates.
    Its expectation is the mean of ELBO_IS(θ, φ, x_n) ≤ mean log p_θ(x_n)."""
    replicates, K = check_count(replicates, "replicates"), check_count(K, "K")
    if replicates < 2:
        raise ValueError(f"replicates must be at least 2 (for the standard error); got {replicates}")
    log_joint, log_q = _tables(model, guide, theta, phi, x)
    log_w, q = (log_joint - log_q).T, softmax(log_q, axis=0).T                 # (N, S)
    estimates = np.empty((replicates, len(x)))
    for r in range(replicates):
        counts = rng.multinomial(K, q)                                         # (N, S), rows sum to K
        with np.errstate(divide="ignore"):
            estimates[r] = logsumexp(log_w + np.log(counts), axis=1) - np.log(K)
    se = np.sqrt(np.sum(np.var(estimates, axis=0, ddof=1)) / replicates) / len(x)
    return float(estimates.mean()), float(se)


def reconstructions(model, guide, theta, phi, x):
    """E_{q_φ(z|x)} p_θ(x_d = 1 | z) per pixel, exactly (a sum over the 2^dz states), shape (N, dx): what the
    learned guide and model make of each image.  ``x`` (N, dx) binary."""
    q = softmax(_tables(model, guide, theta, phi, x)[1], axis=0)                # (S, N)
    pixels = sigmoid(model.support() @ theta["W"].T + theta["b_x"])            # (S, dx)
    return q.T @ pixels


def image_grids(parameters, path, n=8, seed=0, data="digits"):
    """One picture of what each learned model does (seed 0 of every (method, K)): on the left ``n`` digits
    x ~ p_θ(x) (binary draws), on the right the first ``n`` held-out digits (top row) and, per model,
    their reconstructions E_{q_φ(z|x)} p_θ(x = 1 | z) (grey levels).  ``parameters`` {(method, K): {"theta",
    "phi"}} as the run files hold them; ``data`` "digits" or "bars"."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    _, held_out = _load(data)
    side = int(round(np.sqrt(held_out.shape[1])))
    shown = held_out[:n]
    rows = [("held-out", None, shown)]
    for (method, K), params in parameters.items():
        bits = len(params["theta"]["b_z"])
        model, guide = SigmoidBeliefNet(bits, held_out.shape[1]), BernoulliGuide(bits, held_out.shape[1])
        theta = model.check_theta({k: np.asarray(v) for k, v in params["theta"].items()})
        phi = guide.check_phi({k: np.asarray(v) for k, v in params["phi"].items()})
        drawn = model.sample(theta, n, np.random.default_rng([seed, 8]))[1]
        rows.append((f"{method} K={K}", drawn, reconstructions(model, guide, theta, phi, shown)))
    fig, axes = plt.subplots(len(rows), 2 * n + 1, figsize=(0.42 * (2 * n + 1) + 0.9, 0.46 * len(rows) + 0.5),
                             squeeze=False, gridspec_kw={"width_ratios": [1] * n + [0.35] + [1] * n})
    for r, (label, drawn, recon) in enumerate(rows):
        for c in range(2 * n + 1):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            image = drawn[c] if c < n and drawn is not None else recon[c - n - 1] if c > n else None
            if image is None:
                ax.axis("off")
                continue
            ax.imshow(image.reshape(side, side), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
        if drawn is None:
            axes[r, n + 1].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    fig.subplots_adjust(left=0.13, right=0.99, top=0.94, bottom=0.01, wspace=0.08, hspace=0.12)
    for first, last, title in ((0, n - 1, "images drawn from each learned model, x ~ p_θ(x)"),
                               (n + 1, 2 * n, "held-out images and their reconstructions")):
        middle = (axes[0, first].get_position().x0 + axes[0, last].get_position().x1) / 2
        fig.text(middle, 0.995, title, ha="center", va="top", fontsize=8)
    save_png(fig, path)
