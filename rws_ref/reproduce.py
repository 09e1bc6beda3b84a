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
against the *true* posterior.  The start is far from the truth: mixture
weights mirrored, π ∝ (C − 1 − c) + 5 (model error 0.178), and a fresh MLP.

``budget`` scales the iterations (1.0 is the paper's 100,000); each run is
evaluated at 100 points.  Results: DIR/runs/*.json (one per method, K and
seed, written when the run ends; a rerun skips finished runs and resumes
unfinished ones from their checkpoints), DIR/results.csv, DIR/summary.json
(final errors, mean and range over seeds) and DIR/le2019_gmm.png.
"""
import csv
import json
import os
import time

import numpy as np

from ._checks import check_count
from ._io import atomic_write, check_output_path
from .models import GaussianMixture, benchmark_guide

__all__ = ["METHODS", "KS", "FULL_ITERS", "le2019_gmm", "plot", "summary_table"]

#: the paper's method name -> rws_ref training method and options
METHODS = {"WW": {"method": "wake"}, "WS": {"method": "sleep"}, "δ-WW": {"method": "defensive", "delta": 0.2},
           "REINFORCE": {"method": "reinforce"}, "VIMCO": {"method": "vimco"}}
KS = (2, 5, 10, 20)
FULL_ITERS = 100_000
BATCH, LR, N_EVAL = 100, 1e-3, 100


def _problem():
    model = GaussianMixture(20)
    guide = benchmark_guide("mlp")
    truth = model.true_theta()
    far = np.arange(20)[::-1] + 5.0
    return model, guide, truth, {"logits": np.log(far / far.sum())}


def _run_name(method, K, seed):
    return f"{method.replace('δ-', 'delta-')}-K{K}-seed{seed}"


def run_one(method, K, seed, iters, out_dir):
    """One training run of the comparison; returns its rows (iteration, model and inference error)."""
    from .train import TrainConfig, train
    model, guide, truth, start = _problem()
    name = _run_name(method, K, seed)
    done = os.path.join(out_dir, "runs", name + ".json")
    if os.path.exists(done):
        with open(done) as handle:
            return json.load(handle)
    eval_x = model.sample(truth, N_EVAL, np.random.default_rng([seed, 2019]))[1]
    cfg = TrainConfig(K=K, iters=iters, batch_size=BATCH, lr_theta=LR, lr_phi=LR, seed=seed,
                      eval_every=max(1, iters // 100), grad_replicates=0, early_stop=False, **METHODS[method])
    ckpt = os.path.join(out_dir, "runs", name + ".npz")
    result = train(model, guide, eval_x, cfg, theta=start, true_theta=truth, checkpoint=ckpt,
                   checkpoint_every=max(1, iters // 10), resume=ckpt if os.path.exists(ckpt) else None,
                   sample_data=lambda rng, n: model.sample(truth, n, rng)[1])
    rows = [{"method": method, "K": K, "seed": seed, "iteration": r["iteration"], "model_error": r["pi_error"],
             "inference_error": r["true_posterior_error"]} for r in result.history]
    if result.stopped_by == "interrupted":
        raise KeyboardInterrupt
    atomic_write(done, lambda handle: json.dump(rows, handle))
    os.unlink(ckpt)
    return rows


def _run_star(args):
    return run_one(*args)


def le2019_gmm(out_dir, budget=0.01, seeds=1, methods=tuple(METHODS), ks=KS, jobs=1, progress=False):
    """Run (or resume) the comparison; write results.csv, summary.json and the figure into ``out_dir``.

    Returns
    -------
    (rows, summary, seconds) — every evaluation row, the final errors by method and K, the wall time.
    """
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget <= 1:
        raise ValueError(f"budget must be a number in (0, 1] (a fraction of the paper's {FULL_ITERS:,} "
                         f"iterations); got {budget!r}")
    seeds, jobs = check_count(seeds, "seeds"), check_count(jobs, "jobs")
    unknown = [m for m in methods if m not in METHODS] + [k for k in ks if k not in KS]
    if unknown:
        raise ValueError(f"unknown methods or K: {unknown}; methods {list(METHODS)}, K {list(KS)}")
    if not os.path.isdir(out_dir):
        check_output_path(os.fspath(out_dir), "out")                   # its parent must exist and be writable
        os.makedirs(out_dir)
    os.makedirs(os.path.join(out_dir, "runs"), exist_ok=True)
    iters = max(10, int(round(budget * FULL_ITERS)))
    tasks = [(m, K, s, iters, out_dir) for m in methods for K in ks for s in range(seeds)]
    start = time.perf_counter()
    results = _map(tasks, jobs, progress)
    rows = [row for run in results for row in run]
    summary = _summary(rows, iters, budget, seeds)
    _write(out_dir, rows, summary)
    return rows, summary, time.perf_counter() - start


def _map(tasks, jobs, progress):
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(tasks), desc="rws-ref reproduce le2019-gmm", unit="run")
    out = []
    if jobs == 1:
        for task in tasks:
            out.append(run_one(*task))
            bar is not None and bar.update(1)
    else:
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            for rows in pool.imap(_run_star, tasks):
                out.append(rows)
                bar is not None and bar.update(1)
    if bar is not None:
        bar.close()
    return out


def _summary(rows, iters, budget, seeds):
    final = {}
    for row in rows:
        if row["iteration"] == iters:
            final.setdefault((row["method"], row["K"]), []).append(row)
    table = {f"{m} K={K}": {"model_error": float(np.mean([r["model_error"] for r in v])),
                            "inference_error": float(np.mean([r["inference_error"] for r in v])),
                            "model_error_range": [float(min(r["model_error"] for r in v)),
                                                  float(max(r["model_error"] for r in v))],
                            "inference_error_range": [float(min(r["inference_error"] for r in v)),
                                                      float(max(r["inference_error"] for r in v))]}
             for (m, K), v in sorted(final.items(), key=lambda item: (list(METHODS).index(item[0][0]), item[0][1]))}
    return {"iterations": iters, "budget": budget, "seeds": seeds, "final": table}


def _write(out_dir, rows, summary):
    keys = ["method", "K", "seed", "iteration", "model_error", "inference_error"]

    def write_csv(handle):
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    atomic_write(os.path.join(out_dir, "results.csv"), write_csv)
    atomic_write(os.path.join(out_dir, "summary.json"), lambda handle: json.dump(summary, handle, indent=1))
    plot(rows, os.path.join(out_dir, "le2019_gmm.png"), summary["iterations"])


def summary_table(summary):
    """The final errors as a text table: method × K → model error, inference error (mean over seeds)."""
    ks = sorted({int(k.split("K=")[1]) for k in summary["final"]})
    head = f"{'method':<11}" + "".join(f"{'K=' + str(K) + ' model':>14}{'inference':>11}" for K in ks)
    lines = [f"{summary['iterations']:,} iterations per run (budget {summary['budget']}), "
             f"{summary['seeds']} seed(s); errors at the end, mean over seeds", head]
    for method in METHODS:
        cells = [summary["final"].get(f"{method} K={K}") for K in ks]
        if any(c is None for c in cells):
            continue
        lines.append(f"{method:<11}" + "".join(f"{c['model_error']:>14.4f}{c['inference_error']:>11.4f}"
                                               for c in cells))
    return "\n".join(lines)


def plot(rows, path, iters):
    """Errors against iterations on log scales, in the paper's layout: a row for the model error and one
    for the inference error, a column per K, a line per method (mean over seeds)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ks = sorted({r["K"] for r in rows})
    fig, axes = plt.subplots(2, len(ks), figsize=(3.2 * len(ks), 5.6), sharex=True, sharey="row", squeeze=False)
    for col, K in enumerate(ks):
        for method in METHODS:
            sel = [r for r in rows if r["K"] == K and r["method"] == method and r["iteration"] > 0]
            if not sel:
                continue
            its = sorted({r["iteration"] for r in sel})
            for row_i, key in enumerate(("model_error", "inference_error")):
                mean = [np.mean([r[key] for r in sel if r["iteration"] == it]) for it in its]
                axes[row_i, col].loglog(its, mean, label=method, lw=1.2)
        axes[0, col].set_title(f"K = {K}")
        axes[1, col].set_xlabel("iteration")
    axes[0, 0].set_ylabel("model error ‖π − π_true‖")
    axes[1, 0].set_ylabel("inference error ‖q − p_true(z|x)‖")
    axes[0, -1].legend(fontsize=8)
    fig.suptitle(f"Le et al. (2019) GMM, {iters:,} iterations per run", fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110), binary=True)
    plt.close(fig)
