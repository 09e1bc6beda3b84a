"""The signal-to-noise study of Rainforth et al. (2018) on their Gaussian toy, with enough replicates
to fit all five slopes: IWAE θ (+½), IWAE φ (−½), STL, IWAE-DReG and RWS wake-φ.

Run:  python benchmarks/snr_study.py [--replicates 1000000] [--replicates-1000 200000] [--write]

Setting: rws_ref.experiments.analysis.rainforth_toy (dimension 20, guide N(A x + c, 2/3 I) at A = I/2, c = μ/2
perturbed by N(0, 0.01²), one observation, seed 0); entries studied: the guide's bias c (φ) and the
prior mean μ (θ).  The replicates come B at a time from the estimators' closed forms on this toy
(rws_ref.experiments.analysis.rainforth_batched, checked against rws_ref's estimators in
tests/experiments/test_analysis.py);
SNRs and slopes with 95 % jackknife t-intervals over 50 groups (rws_ref.experiments.analysis.snr_study_batched).
K = 1000 gets fewer replicates: a replicate there costs about 1.2 ms.  --write stores the study in
docs/figures/snr_study.json, from which docs/make_figures.py draws docs/figures/snr.png.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

from rws_ref.experiments import analysis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KS = (1, 10, 100, 1000)


def run(replicates, replicates_1000):
    rng = np.random.default_rng(0)
    toy = analysis.rainforth_toy(rng)
    counts = {K: (replicates_1000 if K == 1000 else replicates) for K in KS}
    start = time.perf_counter()
    study = analysis.snr_study_batched(analysis.rainforth_batched(*toy), KS, counts, rng, groups=50)
    seconds = time.perf_counter() - start
    return {"ks": list(KS), "replicates": {str(k): v for k, v in counts.items()}, "groups": 50, "level": 0.95,
            "seconds": seconds,
            "estimators": {name: {"snr": study.snr[name].tolist(), "snr_interval": study.snr_interval[name].tolist(),
                                  "resolved": study.resolved[name].tolist(), "slope": study.slope[name],
                                  "slope_interval": list(study.slope_interval[name])}
                           for name in study.snr}}, study


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicates", type=int, default=1_000_000, help="replicates at K = 1, 10, 100")
    parser.add_argument("--replicates-1000", type=int, default=200_000, help="replicates at K = 1000")
    parser.add_argument("--write", action="store_true", help="write docs/figures/snr_study.json")
    args = parser.parse_args(argv)
    print(f"drawing {args.replicates:,} replicates at K = 1, 10, 100 and {args.replicates_1000:,} at K = 1000 "
          f"(about {args.replicates * 1.3e-4 + args.replicates_1000 * 1.24e-3:.0f} s on a quiet core) ...",
          file=sys.stderr, flush=True)
    result, study = run(args.replicates, args.replicates_1000)
    print(f"{result['seconds']:.0f} s; 95% jackknife t-intervals over 50 groups")
    print(study.table())
    if args.write:
        path = os.path.join(ROOT, "docs", "figures", "snr_study.json")
        with open(path + ".tmp", "w") as handle:
            json.dump(result, handle, indent=1)
        os.replace(path + ".tmp", path)
        print("wrote", path)


if __name__ == "__main__":
    main()
