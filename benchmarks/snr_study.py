"""Reproduce the signal-to-noise study of Rainforth et al. (2018) on their Gaussian toy.

Run:  python benchmarks/snr_study.py [replicates]

Setting: rws_ref.analysis.rainforth_toy (dimension 20, guide N(A x + c, 2/3 I)
at A = I/2, c = μ/2 perturbed by N(0, 0.01²), one observation, seed 0).
Entries studied: the guide's bias c (φ) and the prior mean mu (θ).
"""
import sys
import time

import numpy as np

from rws_ref import analysis


def main(replicates=1000):
    rng = np.random.default_rng(0)
    toy = analysis.rainforth_toy(rng)
    estimators = analysis.rainforth_estimators(*toy)
    start = time.perf_counter()
    study = analysis.snr_study(estimators, [1, 10, 100, 1000], replicates, rng, n_boot=200)
    print(f"{replicates} replicates per K, 95% bootstrap intervals, "
          f"{time.perf_counter() - start:.0f} s")
    print(study.table())
    tail = analysis.snr_study(estimators, [10, 100, 1000], replicates, rng, n_boot=200)
    print("\nslopes over K = 10 .. 1000 only:")
    for name in tail.slope:
        lo, hi = tail.slope_interval[name]
        print(f"  {name:<14} {tail.slope[name]:+.3f} [{lo:+.3f}, {hi:+.3f}]")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
