"""When sleep-φ wins and when wake-φ does: both φ-gradients against the gradient we want, the inclusive
KL averaged over the *data* distribution, with no Monte Carlo error.

Run:  python benchmarks/sleep_vs_wake.py

A Gaussian mixture (C = 5, means 0, 10, …, 40, scale 6) with its true θ, a linear-softmax guide at a
φ that is not optimal (the exact posterior's logits halved: a tempered, too-flat guide), and two data
distributions:

- well specified: the data come from the model itself (as in Le et al. 2019, where θ nears the truth);
- misspecified: the data come from components 0 and 1 only (the model puts its x everywhere).

Target T = ∇_φ E_data KL(p_θ(z|x) ‖ q_φ(z|x)), by Gauss–Hermite quadrature over x (40 nodes per
component) and enumeration over z.  Wake-φ's exact mean at each quadrature x (rws_ref.exact.moments),
averaged with the quadrature weights; sleep-φ's exact mean is its own target ∇_φ E_{p_θ(x)} KL at any
K (rws_ref.exact.sleep_target).  Printed: ‖E[ĝ] − T‖ / ‖T‖ per K, K times wake-φ's error (→ c₁), and
wake-φ's standard deviation (the root of E_data Σ_entries Var[ĝ | x], relative to ‖T‖) with √K times it.
"""
import argparse
import sys

import numpy as np

from rws_ref import GaussianMixture, SoftmaxLinearGuide, exact, wake_phi

KS = (1, 2, 5, 10, 20)


def setting():
    model = GaussianMixture(5, scale=6.0)
    guide = SoftmaxLinearGuide(5, loc=20.0, scale=10.0)
    theta = {"logits": np.log(np.arange(1, 6) + 5.0)}
    best = guide.exact_posterior_phi(model, theta)
    phi = {k: 0.5 * v for k, v in best.items()}                  # tempered: q ∝ p(z|x)^½ up to x terms
    return model, guide, theta, phi


def data_points(model, theta_data, nodes=40):
    """x points and weights with Σ_i P_i f(x_i) = E_data f (the z of the quadrature summed out)."""
    _, xs, prob = model.joint_quadrature(theta_data, nodes)
    return xs, prob / prob.sum()


def flat(g):
    return np.concatenate([np.ravel(g[k]) for k in sorted(g)])


def study(model, guide, theta, phi, theta_data):
    xs, prob = data_points(model, theta_data)
    target = sum(p * flat(exact.kl_grad_phi(model, guide, theta, phi, np.array([x]))) for x, p in zip(xs, prob))
    sleep = flat(exact.sleep_target(model, guide, theta, phi))
    rows = []
    for K in KS:
        moments = [exact.moments(wake_phi, model, guide, theta, phi, np.array([x]), K) for x in xs]
        mean = sum(p * flat(m) for (m, _), p in zip(moments, prob))
        spread = np.sqrt(sum(p * flat(v).sum() for (_, v), p in zip(moments, prob))) / np.linalg.norm(target)
        rows.append((K, np.linalg.norm(mean - target) / np.linalg.norm(target),
                     np.linalg.norm(sleep - target) / np.linalg.norm(target), spread))
    return rows


def main(argv=None):
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    print("exact means at 200 quadrature points per K (a minute) ...", file=sys.stderr, flush=True)
    model, guide, theta, phi = setting()
    cases = {"well specified (data from the model)": theta,
             "misspecified (data from components 0 and 1)": {"logits": np.array([0.0, 0.0, -60.0, -60.0, -60.0])}}
    for name, theta_data in cases.items():
        print(f"\n{name}: relative error of the mean gradient against ∇_φ E_data KL")
        print(f"{'K':>4} {'wake-φ':>10} {'K × wake':>10} {'sleep-φ':>10} {'wake std':>10} {'√K × std':>10}")
        for K, wake, sleep, std in study(model, guide, theta, phi, theta_data):
            print(f"{K:>4} {wake:>10.4f} {K * wake:>10.4f} {sleep:>10.4f} {std:>10.4f} {np.sqrt(K) * std:>10.4f}")


if __name__ == "__main__":
    main()
