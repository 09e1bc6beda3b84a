"""Exact bias and standard deviation of wake-φ and sleep-φ on the mixture benchmark,
and the time and peak memory of the exact oracle.

Run:  python benchmarks/exact_oracle.py

Setting (Le et al. 2019): GaussianMixture(20) at its true θ (π_c ∝ c + 5);
SoftmaxLinearGuide(20, loc=95, scale=60) at the fixed φ whose logits are
half those of the exact posterior (q ∝ p_θ(z|x)^½ up to x-terms: a tempered
posterior, too flat); a batch of N = 100 observations drawn from the true model with seed 0.

- wake-φ: K particles for each of the N datapoints; bias against
  ∇_φ (1/N) Σ_n KL(p_θ(z|x_n) ‖ q_φ(z|x_n)), the target on this batch.
- sleep-φ: M = K·N dreams (the same number of latent draws); its exact
  mean is its own target ∇_φ E_{p_θ(x)} KL, so its bias is 0; the table
  also shows how far that target is from the batch's wake target.

Norms are Euclidean over all 40 entries; "std" is sqrt(Σ_entries Var).
"""
import platform
import resource
import time
import tracemalloc

import numpy as np

from rws_ref import BernoulliGuide, GaussianMixture, SigmoidBeliefNet, exact, wake_phi
from rws_ref.models import benchmark_guide


def flat(tree):
    return np.concatenate([np.ravel(v) for v in tree.values()])


def mixture_table():
    model, guide = GaussianMixture(), benchmark_guide("linear")
    theta = model.true_theta()
    phi = {k: 0.5 * v for k, v in guide.exact_posterior_phi(model, theta).items()}
    _, x = model.sample(theta, 100, np.random.default_rng(0))
    wake_target = flat(exact.kl_grad_phi(model, guide, theta, phi, x))
    sleep_target, sleep_var1 = (flat(t) for t in exact.sleep_moments(model, guide, theta, phi, M=1))
    print("mixture C = 20, N = 100: exact bias and std of the φ-gradient estimators")
    print(f"  |wake target| = {np.linalg.norm(wake_target):.4f}   "
          f"|sleep target − wake target| = {np.linalg.norm(sleep_target - wake_target):.4f}")
    print(f"  {'K':>3} {'wake-φ |bias|':>14} {'wake-φ std':>11} {'sleep-φ |bias|':>15} {'sleep-φ std':>12}")
    for K in (1, 2, 5, 10, 20):
        mean, var = exact.moments(wake_phi, model, guide, theta, phi, x, K, method="laplace")
        bias = np.linalg.norm(flat(mean) - wake_target)
        std = np.sqrt(flat(var).sum())
        sleep_std = np.sqrt(sleep_var1.sum() / (K * len(x)))
        print(f"  {K:>3} {bias:>14.5f} {std:>11.5f} {0.0:>15.1f} {sleep_std:>12.5f}")


def timed(label, call, terms):
    tracemalloc.start()
    start = time.perf_counter()
    call()
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"  {label}: {terms:,} multisets in {elapsed:.2f} s "
          f"({1e6 * elapsed / terms:.2f} µs each), peak traced memory {peak / 2 ** 20:.0f} MiB")


def oracle_timings():
    print("exact moments of wake-φ by multiset enumeration (method='tables', one datapoint)")
    rng = np.random.default_rng(1)
    model, guide = GaussianMixture(), benchmark_guide("linear")
    theta, phi = model.true_theta(), guide.init_phi(rng)
    x = model.sample(theta, 1, rng)[1]
    timed("mixture C = 20, K = 5 ", lambda: exact.moments(wake_phi, model, guide, theta, phi, x, 5),
          exact.n_multisets(20, 5))
    sbn, bern = SigmoidBeliefNet(4, 8), BernoulliGuide(4, 8)
    th, ph = sbn.init_theta(rng), bern.init_phi(rng)
    xb = sbn.sample(th, 1, rng)[1]
    timed("belief net 16 states, K = 10", lambda: exact.moments(wake_phi, sbn, bern, th, ph, xb, 10),
          exact.n_multisets(16, 10))
    print(f"  process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    import argparse
    import sys
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    print("the mixture table, then the oracle's timings (a few minutes) ...", file=sys.stderr, flush=True)
    print(f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, NumPy {np.__version__}")
    mixture_table()
    oracle_timings()
