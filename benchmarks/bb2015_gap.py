"""What Bornschein and Bengio's importance-sampled evaluation would have reported for our digit models: for
every finished run of ``rws-ref reproduce bb2015-digits``, the exact held-out log-likelihood per image and
the importance-sampled estimate with K' particles from the run's own guide, K' ∈ {1, 5, 20, 100, 1000,
10000}; the gap exact − estimate (≥ 0 in expectation) with its Monte Carlo standard error.  And each
(method, K)'s exact log-likelihood minus WS K = 1's on the same seed: the runs of one seed start from
the same θ and φ, so the paired differences can be tighter than the intervals of the means.

Run:  python benchmarks/bb2015_gap.py --runs DIR [--jobs 2] [--write]

DIR is the experiment's folder (``--out`` of the command).  ``--write`` stores the measurements in
docs/figures/bb2015_gap.json (the table of docs/digits.md is read from it).  Each run's estimates use
their own generator (seeded by the run's seed and K'), so the numbers do not depend on --jobs.
"""
import argparse
import json
import multiprocessing
import os
import sys
import time

import numpy as np

from rws_ref._io import atomic_write
from rws_ref.experiments import bb2015_digits as digits
from rws_ref.experiments import runner
from rws_ref.models import BernoulliGuide, SigmoidBeliefNet

EVAL_KS = (1, 5, 20, 100, 1000, 10000)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "docs", "figures", "bb2015_gap.json")


def measure(task):
    """One run's file → its exact held-out log-likelihood and (estimate, standard error) per K'."""
    path, replicates = task
    with open(path, encoding="utf-8") as handle:
        run = json.load(handle)
    config = run["config"]
    _, held_out = digits.load_digits()
    bits = len(run["parameters"]["theta"]["b_z"])                     # the run's own latent size (8 or 16)
    model, guide = SigmoidBeliefNet(bits, held_out.shape[1]), BernoulliGuide(bits, held_out.shape[1])
    theta = model.check_theta({k: np.array(v) for k, v in run["parameters"]["theta"].items()})
    phi = guide.check_phi({k: np.array(v) for k, v in run["parameters"]["phi"].items()})
    estimates = {}
    for K in EVAL_KS:
        rng = np.random.default_rng([config["seed"], K, 2015])
        estimates[str(K)] = digits.importance_estimate(model, guide, theta, phi, held_out, K, replicates, rng)
    return {"method": config["method"], "K": config["K"], "seed": config["seed"],
            "exact": float(np.mean(model.log_marginal(theta, held_out))), "estimates": estimates}


def gap_table(runs):
    """Per (method, K): the exact log-likelihood (mean over seeds) and the gap exact − estimate at each K'
    (mean over seeds ± its Monte Carlo standard error, sqrt(Σ se²) / seeds)."""
    cells = {}
    for r in runs:
        cells.setdefault((r["method"], r["K"]), []).append(r)
    order = list(digits.METHODS)
    lines = [f"{'method':<10}{'K':>4}{'exact':>10}" + "".join(f"{'gap K=' + str(k):>16}" for k in EVAL_KS)]
    for (method, K), rs in sorted(cells.items(), key=lambda item: (order.index(item[0][0]), item[0][1])):
        row = f"{method:<10}{K:>4}{np.mean([r['exact'] for r in rs]):>10.3f}"
        for k in EVAL_KS:
            gap = np.mean([r["exact"] - r["estimates"][str(k)][0] for r in rs])
            se = np.sqrt(sum(r["estimates"][str(k)][1] ** 2 for r in rs)) / len(rs)
            row += f"{gap:>9.3f} ±{se:<5.3f}"
        lines.append(row)
    return "\n".join(lines)


def paired_table(runs, baseline=("WS", 1)):
    """Per (method, K): the exact log-likelihood minus the baseline's on the same seed (the same starting θ
    and φ), mean over seeds ± the half-width of its 95 % t-interval."""
    by_seed = {(r["method"], r["K"], r["seed"]): r["exact"] for r in runs}
    order = list(digits.METHODS)
    table = {}
    for method, K in sorted({(r["method"], r["K"]) for r in runs}, key=lambda mk: (order.index(mk[0]), mk[1])):
        diffs = [by_seed[method, K, s] - by_seed[(*baseline, s)] for (m, k, s) in by_seed
                 if (m, k) == (method, K) and (*baseline, s) in by_seed]
        mean, low, high = runner.interval(diffs)
        table[f"{method} K={K}"] = {"difference": mean, "half_width": (high - low) / 2, "seeds": len(diffs)}
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", required=True, help="the folder of rws-ref reproduce bb2015-digits")
    parser.add_argument("--replicates", type=int, default=4, help="estimates per image and K' (default 4)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--write", action="store_true", help=f"store the measurements in {os.path.normpath(OUT)}")
    args = parser.parse_args(argv)
    folder = os.path.join(args.runs, "runs")
    if not os.path.isdir(folder):
        parser.error(f"--runs {args.runs}: no runs/ folder there (the --out of rws-ref reproduce bb2015-digits)")
    if args.replicates < 2 or args.jobs < 1:
        parser.error("--replicates must be at least 2 and --jobs at least 1")
    paths = sorted(os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".json"))
    start = time.perf_counter()
    tasks = [(p, args.replicates) for p in paths]
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            runs = pool.map(measure, tasks)
    else:
        runs = [measure(t) for t in tasks]
    seconds = time.perf_counter() - start
    with open(os.path.join(args.runs, "rws-ref-reproduce.json"), encoding="utf-8") as handle:
        iterations = json.load(handle)["iterations"]
    print(f"{len(runs)} runs of {iterations:,} iterations; {args.replicates} estimates per held-out image and K'; "
          f"{seconds:.0f} s\n" + gap_table(runs))
    paired = paired_table(runs)
    print("\nexact log-likelihood minus WS K=1's on the same seed (mean ± 95 % t half-width):")
    for name, cell in paired.items():
        print(f"{name:<16}{cell['difference']:>8.3f} ±{cell['half_width']:.3f}")
    if args.write:
        result = {"iterations": iterations, "replicates": args.replicates, "eval_ks": list(EVAL_KS),
                  "held_out_images": 297, "seconds": round(seconds, 1), "runs": runs,
                  "paired_with_ws_k1": paired}
        atomic_write(OUT, lambda handle: json.dump(result, handle, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
