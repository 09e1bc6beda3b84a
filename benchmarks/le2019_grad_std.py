"""The third row of Le et al. (2019)'s figure, exactly where rws_ref's oracle reaches: the standard deviation of
the φ-gradient estimator at the end of every run of a le2019-gmm folder, for the methods whose φ-gradient is
self-normalized — WW (wake-φ) and δ-WW (wake-φ on particles from the defensive mixture) — by the exact oracle:
multiset enumeration at K = 2 and 5, the Laplace route at K = 10 and 20 (exact at any K, no enumeration;
rws_ref.exact.moments(method="laplace")).

For each run: its final θ and φ, its 100 evaluation points (drawn as the run drew them), the exact variance of
each entry of the batch estimate (1/N) Σ_n ĝ_n over the K particles per point, and the figure's summary, the
root mean square over φ's entries of that standard deviation.  WS's sleep-φ averages over dreams (z, x) ~ p_θ
with x continuous, REINFORCE and VIMCO are not self-normalized: the oracle has no exact route for them at
K up to 20 (multiset enumeration at C = 20, K = 20 is C(39, 19) ≈ 6.9·10¹⁰ terms), so they are left out.

Run:  python benchmarks/le2019_grad_std.py --runs DIR [--jobs 2] [--write]
(``--write`` stores docs/figures/le2019_gmm_far_grad_std.json; a table per method and K is printed: the median
over seeds with the 25 and 75 % quartiles.)
"""
import argparse
import json
import multiprocessing
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("WW", "δ-WW")


def measure(path):
    """One run's file -> (method, K, seed, the RMS over φ's entries of the exact std of its φ-gradient)."""
    from rws_ref import exact, family, wake_phi
    from rws_ref.experiments import le2019_gmm
    with open(path, encoding="utf-8") as handle:
        run = json.load(handle)
    config = run["config"]
    model, guide, truth, _ = le2019_gmm._problem(config.get("start", "authors-far"), config.get("inputs",
                                                                                              "standardized"))
    eval_x = model.sample(truth, le2019_gmm.N_EVAL, np.random.default_rng([config["seed"], 2019]))[1]
    theta = model.check_theta({k: np.array(v) for k, v in run["parameters"]["theta"].items()})
    phi = guide.check_phi({k: np.array(v) for k, v in run["parameters"]["phi"].items()})
    proposal = guide if config["method"] == "WW" else family.DefensiveGuide(guide, 0.2, None, model)
    method = "tables" if config["K"] <= 5 else "laplace"          # enumeration where it is cheap (≤ 42,504 multisets)
    _, var = exact.moments(wake_phi, model, proposal, theta, phi, eval_x, config["K"], method=method)
    entries = np.concatenate([np.ravel(v) for v in var.values()])
    return config["method"], config["K"], config["seed"], float(np.sqrt(np.mean(np.maximum(entries, 0.0))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", required=True, help="a le2019-gmm output folder")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="write docs/figures/le2019_gmm_far_grad_std.json")
    args = parser.parse_args(argv)
    folder = os.path.join(args.runs, "runs")
    paths = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                   if f.endswith(".json") and f.split("-K")[0].replace("delta-", "δ-") in METHODS)
    print(f"{len(paths)} runs ...", file=sys.stderr, flush=True)
    if args.jobs > 1:
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            rows = pool.map(measure, paths)
    else:
        rows = [measure(p) for p in paths]
    table = {}
    for method, K, seed, std in rows:
        table.setdefault(f"{method} K={K}", {})[str(seed)] = std
    result = {"what": "RMS over φ's entries of the exact std of the φ-gradient at the end of each run, on its "
                      "100 evaluation points", "runs": args.runs, "table": {}}
    print(f"{'method':<8}{'K':>4}  median [25%, 75%] over seeds")
    for name in sorted(table, key=lambda n: (METHODS.index(n.split(' K=')[0]), int(n.split('K=')[1]))):
        values = np.array(list(table[name].values()))
        q25, med, q75 = np.percentile(values, [25, 50, 75])
        result["table"][name] = {"by_seed": table[name], "median": med, "quartiles": [q25, q75]}
        method, K = name.split(" K=")
        print(f"{method:<8}{K:>4}  {med:.4g} [{q25:.4g}, {q75:.4g}]  ({len(values)} seeds)")
    if args.write:
        path = os.path.join(ROOT, "docs", "figures", "le2019_gmm_far_grad_std.json")
        with open(path + ".tmp", "w") as handle:
            json.dump(result, handle, indent=1)
        os.replace(path + ".tmp", path)
        print("wrote", path)


if __name__ == "__main__":
    main()
