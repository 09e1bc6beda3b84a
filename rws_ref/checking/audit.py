"""The library checking itself: every estimator on every built-in model against
the exact oracle and the closed forms, by two independent routes.

Each row holds an estimator at one K on one model, its target (what it is
meant to estimate), its exact mean and standard deviation (no Monte Carlo),
the bias, and the verdict of one check:

- "unbiased"       the exact mean equals the target (an independent route:
                   autograd through the enumerated bound, a closed form);
- "zero at K=1"    wake-φ's exact mean is 0 at K = 1;
- "two routes"     the exact mean computed two independent ways agrees
                   (enumeration vs the Laplace route, per-point vs batched
                   quadrature, Gauss–Hermite vs closed form);
- "≡ 0"            RWS-DReG at K = 1 is identically zero.

Exact means for the linear-Gaussian model use Gauss–Hermite rules that are
exact for the polynomial integrands involved (3 points per coordinate:
degree ≤ 5, enough for second moments of degree-2 gradients).
"""
import sys
import time
from dataclasses import dataclass

import numpy as np

from .. import exact, family, protocol, registry
from .._checks import DEFAULT_TIMEOUT
from .._io import atomic_write
from .._trees import flatten as _flat
from ..models import (
    BernoulliGuide,
    DiagonalGaussianGuide,
    GaussianMixture,
    LinearGaussian,
    Scene1D,
    SceneGuide,
    SigmoidBeliefNet,
    benchmark_guide,
)
from ..models import linear_gaussian_exact as lg
from . import limits
from .sampling import check_samplers

__all__ = ["AuditRow", "run_audit", "audit_model", "format_table"]

TOL = 1e-9

#: every estimator the audit checks, by kind, from the one registry (rws_ref.registry)
E = {kind: entry.function for kind, entry in registry.ESTIMATORS.items()}
#: the audit table's label of a kind
LABEL = {"wake_theta": "wake-θ", "wake_phi": "wake-φ", "sleep_phi": "sleep-φ", "iwae_phi": "IWAE φ",
         "stl_phi": "STL φ", "rws_dreg_phi": "RWS-DReG φ", "reinforce_phi": "REINFORCE φ", "vimco_phi": "VIMCO φ",
         "defensive_wake_phi": "defensive wake-φ"}


@dataclass
class AuditRow:
    estimator: str
    model: str
    K: int
    target: str
    mean_norm: float
    bias_norm: float
    std_norm: float
    check: str
    passed: bool

    @property
    def bias_over_std(self):
        return self.bias_norm / self.std_norm if self.std_norm > 0 else (0.0 if self.bias_norm == 0 else np.inf)


def _row(name, model, K, target_name, mean, var, target, check, agree=None):
    m, t = _flat(mean), _flat(target)
    reference = t if agree is None else _flat(agree)
    scale = max(1.0, float(np.max(np.abs(reference))))
    passed = bool(np.max(np.abs(m - reference)) <= TOL * scale)
    return AuditRow(name, model, K, target_name, float(np.linalg.norm(m)), float(np.linalg.norm(m - t)),
                    float(np.sqrt(np.sum(_flat(var)))), check, passed)


# -- linear-Gaussian: Gauss–Hermite exact expectations ----------------------------------------


def _hermite3(mean, std):
    # tensor 3-point probabilists' Gauss–Hermite rule over independent N(mean_i, std_i²)
    nodes1, w1 = np.array([-np.sqrt(3.0), 0.0, np.sqrt(3.0)]), np.array([1 / 6, 2 / 3, 1 / 6])
    d = mean.size
    grid = np.stack(np.meshgrid(*([np.arange(3)] * d), indexing="ij"), axis=-1).reshape(-1, d)
    nodes = mean.reshape(-1) + nodes1[grid] * std.reshape(-1)
    return nodes.reshape((-1,) + mean.shape), np.prod(w1[grid], axis=1)


def _expect(values, weights):
    mean = {k: sum(w * v[k] for w, v in zip(weights, values)) for k in values[0]}
    second = {k: sum(w * v[k] ** 2 for w, v in zip(weights, values)) for k in values[0]}
    return mean, {k: np.maximum(second[k] - mean[k] ** 2, 0.0) for k in mean}


def _linear_gaussian_rows():
    rows = []
    model, guide = LinearGaussian(2, 3), DiagonalGaussianGuide(2, 3)
    rng = np.random.default_rng(20261124)
    theta = model.init_theta(rng)
    phi = {"A": 0.3 * rng.standard_normal((2, 3)), "c": 0.3 * rng.standard_normal(2), "log_s": np.array([0.2, -0.3])}
    x = model.sample(theta, 1, rng)[1]
    name = "linear-Gaussian"
    mean_q, std_q = guide.mean(phi, x), np.exp(phi["log_s"])[None, :]
    nodes, w = _hermite3(mean_q[None], std_q[None])                  # z (1, 1, 2) per node
    dtheta, dphi = lg.grad_elbo1(model, guide, theta, phi, x)
    m, v = _expect([E["wake_theta"](model, guide, theta, phi, x, z) for z in nodes], w)
    rows.append(_row("wake-θ", name, 1, "∇θ ELBO_1 (closed form)", m, v, dtheta, "unbiased"))
    m, v = _expect([E["wake_phi"](model, guide, theta, phi, x, z) for z in nodes], w)
    zero = {k: np.zeros_like(a) for k, a in phi.items()}
    rows.append(_row("wake-φ", name, 1, "∇φ KL(p‖q) (closed form)", m, v,
                     lg.kl_grad_phi(model, guide, theta, phi, x), "zero at K=1", agree=zero))
    eps_nodes = (nodes - mean_q) / std_q
    for label, fn in ((LABEL[k], E[k]) for k in ("iwae_phi", "stl_phi")):
        m, v = _expect([fn(model, guide, theta, phi, x, e) for e in eps_nodes], w)
        rows.append(_row(label, name, 1, "∇φ ELBO_1 (closed form)", m, v, dphi, "unbiased"))
    m, v = _expect([E["rws_dreg_phi"](model, guide, theta, phi, x, e) for e in eps_nodes], w)
    rows.append(_row("RWS-DReG φ", name, 1, "0 (identically)", m, v, zero, "≡ 0"))
    # sleep-φ: the joint Gaussian (z, x) = mean + L u, u ~ N(0, I_5), by the 3-point rule
    x_bar, C = model.marginal(theta)
    joint_mean = np.concatenate([theta["mu"], x_bar])
    joint_cov = np.block([[np.eye(2), theta["W"].T], [theta["W"], C]])
    L = np.linalg.cholesky(joint_cov)
    u_nodes, w = _hermite3(np.zeros(5), np.ones(5))
    points = joint_mean + u_nodes @ L.T
    m, v = _expect([E["sleep_phi"](guide, phi, p[None, :2], p[None, 2:]) for p in points], w)
    rows.append(_row("sleep-φ", name, 1, "∇φ E_p(x) KL (closed form)", m, v,
                     lg.sleep_target(model, guide, theta, phi), "unbiased"))
    # Fisher's identity at q = the exact posterior (θ with a diagonal posterior), K = 2
    q_mat, _ = np.linalg.qr(np.array([[1.0, 0.2], [0.3, -1.0], [0.5, 0.4]]))
    th_d = {"mu": np.array([0.5, -0.3]), "W": q_mat * np.array([1.5, 0.7]), "b": np.array([0.1, -0.2, 0.3]),
            "log_sigma": np.full(3, np.log(0.6))}
    ph_d = lg.moment_matched_phi(model, th_d)
    mean_d, std_d = guide.mean(ph_d, x), np.exp(ph_d["log_s"])[None, :]
    nodes, w = _hermite3(np.broadcast_to(mean_d, (2, 1, 2)).copy(), np.broadcast_to(std_d, (2, 1, 2)).copy())
    m, v = _expect([E["wake_theta"](model, guide, th_d, ph_d, x, z) for z in nodes], w)
    rows.append(_row("wake-θ", name + " (q = posterior)", 2, "∇θ log p(x) (Fisher)", m, v,
                     lg.grad_elbo1(model, guide, th_d, ph_d, x)[0], "unbiased"))
    return rows


# -- discrete models: the exact oracle ---------------------------------------------------------


def _discrete_rows(model, guide, theta, phi, x, name, ks_wake, ks_phi, k_score, rows=None):
    rows = [] if rows is None else rows
    for K in ks_wake:
        m, v = exact.moments(E["wake_theta"], model, guide, theta, phi, x, K)
        target, label = _grad_bound(model, guide, theta, phi, x, K)
        rows.append(_row("wake-θ", name, K, f"∇θ ELBO_IS ({label})", m, v, target[0], "unbiased"))
    target = exact.kl_grad_phi(model, guide, theta, phi, x)
    for K in ks_phi:
        m, v = exact.moments(E["wake_phi"], model, guide, theta, phi, x, K)
        if K == 1:
            rows.append(_row("wake-φ", name, K, "∇φ KL(p‖q) (enumerated)", m, v, target, "zero at K=1",
                             agree={k: np.zeros_like(a) for k, a in m.items()}))
        else:
            lap, _ = exact.moments(E["wake_phi"], model, guide, theta, phi, x, K, method="laplace")
            rows.append(_row("wake-φ", name, K, "∇φ KL(p‖q) (enumerated)", m, v, target, "two routes",
                             agree=lap))
    if protocol.domain(guide, "z") != "real":
        rows.append(_defensive_row(model, guide, theta, phi, x, name, ks_phi[-1], target))
    dphi, label = _grad_bound(model, guide, theta, phi, x, k_score)
    for estimator, fn in ((LABEL[k], E[k]) for k in ("reinforce_phi", "vimco_phi")):
        m, v = exact.moments(fn, model, guide, theta, phi, x, k_score)
        rows.append(_row(estimator, name, k_score, f"∇φ ELBO_IS ({label})", m, v, dphi[1], "unbiased"))
    if any(callable(getattr(model, cap, None)) for cap in ("data_support", "joint_quadrature", "sleep_target")):
        m, v = exact.sleep_moments(model, guide, theta, phi, M=1)
        batched = exact.sleep_target(model, guide, theta, phi)
        rows.append(_row("sleep-φ", name, 1, "∇φ E_p(x) KL (quadrature/enum.)", m, v, batched, "two routes"))
    return rows


def _grad_bound(model, guide, theta, phi, x, K):
    grads, route = exact.grad_elbo_is_any_route(model, guide, theta, phi, x, K)
    return grads, {"autograd": "autograd, enumerated", "tables": "score tables, enumerated"}[route]


def _defensive_row(model, guide, theta, phi, x, name, K, target):
    mix = family.DefensiveGuide(guide, 0.2, model=model)
    m, v = exact.moments(E["wake_phi"], model, mix, theta, phi, x, K)
    if K <= 3:
        direct, _ = exact.moments(lambda mo, g, t, p, xx, z: E["defensive_wake_phi"](mo, guide, t, p, xx, z, 0.2),
                                  model, mix, theta, phi, x, K, method="direct")
    else:
        direct, _ = exact.moments(E["wake_phi"], model, mix, theta, phi, x, K, method="laplace")
    return _row("defensive wake-φ δ=0.2", name, K, "∇φ KL(p‖q) (enumerated)", m, v, target, "two routes",
                agree=direct)


def audit_model(model, guide, theta=None, phi=None, x=None, ks=(1, 3), k_score=3, seed=0, name=None,
                timeout=DEFAULT_TIMEOUT, progress=False):
    """The audit of any model with a finite ``support()`` (docs/protocol.md): wake-θ,
    wake-φ, defensive wake-φ, REINFORCE, VIMCO and (with an x-expectation capability)
    sleep-φ against the exact oracle, each by a second route.  θ, φ and two datapoints
    default to draws from ``init_theta``, ``init_phi`` and ``sample`` with ``seed``.
    ``timeout`` (seconds, default 60; None: no limit) bounds every call of the model's and guide's methods
    (TimeoutError naming the method); ``progress`` prints each row to stderr as it is done.

    Returns
    -------
    list of AuditRow
    """
    protocol.check_pair(model, guide)
    model, guide = limits.timed(model, timeout), limits.timed(guide, timeout)
    if protocol.support(model) is None:
        raise TypeError(f"the audit enumerates the latent: model {model!r} must declare a finite support()")
    rng = np.random.default_rng(seed)
    theta = protocol.init_params(model, rng) if theta is None else theta
    phi = protocol.init_params(guide, rng) if phi is None else phi
    x = protocol.sample_model(model, theta, 2, rng)[1] if x is None else x
    ks = tuple(ks)
    rows = _discrete_rows(model, guide, theta, phi, x, name or repr(model), ks, ks, k_score,
                          _Rows(progress))
    for result in check_samplers(model, guide, seed):
        rows.append(AuditRow(result.name.split(", ")[0].replace("sampler: ", ""), name or repr(model), 0,
                             result.name.split(", ", 1)[-1], np.nan, np.nan, np.nan, "sampler",
                             result.status != "fail"))
    return list(rows)


class _Rows(list):
    """The audit's rows; with ``progress`` each row is printed to stderr as it is added (long audits of a
    user's model show that they move)."""

    def __init__(self, progress=False):
        super().__init__()
        self.progress = progress

    def append(self, row):
        super().append(row)
        if self.progress:
            print(f"  audit: {row.estimator} K={row.K} {'pass' if row.passed else 'FAIL'}", file=sys.stderr,
                  flush=True)


def _mixture_problem():
    model, guide = GaussianMixture(), benchmark_guide("linear")
    theta = model.true_theta()
    phi = {k: 0.5 * v for k, v in guide.exact_posterior_phi(model, theta).items()}
    x = model.sample(theta, 2, np.random.default_rng(0))[1]
    return model, guide, theta, phi, x


def run_audit():
    """Run every check; returns (rows, seconds)."""
    start = time.perf_counter()
    rows = _linear_gaussian_rows()
    rows += _discrete_rows(*_mixture_problem(), "mixture C=20", ks_wake=(1, 5), ks_phi=(1, 2, 5), k_score=3)
    rng = np.random.default_rng(7)
    sbn, bern = SigmoidBeliefNet(4, 6), BernoulliGuide(4, 6)
    th, ph = sbn.init_theta(rng), bern.init_phi(rng)
    ph["A"] = rng.standard_normal(ph["A"].shape)
    xb = sbn.sample(th, 2, rng)[1]
    rows += _discrete_rows(sbn, bern, th, ph, xb, "belief net 16 states", ks_wake=(1, 4), ks_phi=(1, 4), k_score=4)
    scene, guide = Scene1D(2, 5, 8), SceneGuide(2, 5, 8)          # stochastic control flow: 31 padded states
    th, ph = scene.init_theta(rng), guide.init_phi(rng)
    xs = scene.sample(scene.true_theta(), 2, rng)[1]
    rows += _discrete_rows(scene, guide, th, ph, xs, "scene n ≤ 2, 31 states", ks_wake=(1, 3), ks_phi=(1, 2),
                           k_score=3)
    return rows, time.perf_counter() - start


def format_table(rows):
    """The audit table as text (norms over all parameter entries)."""
    head = (f"{'estimator':<24}{'model':<33}{'K':>3}  {'target':<36}{'|mean|':>10}{'|bias|':>11}"
            f"{'std':>10}{'bias/std':>10}  {'check':<13}verdict")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.estimator:<24}{r.model:<33}{r.K:>3}  {r.target:<36}{r.mean_norm:>10.4g}"
                     f"{r.bias_norm:>11.3g}{r.std_norm:>10.4g}{r.bias_over_std:>10.3g}  {r.check:<13}"
                     f"{'pass' if r.passed else 'FAIL'}")
    return "\n".join(lines)


def plot_bias_std(path):
    """Exact bias and standard deviation of wake-φ (and sleep-φ's std) against K on the mixture."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    model, guide, theta, phi, x = _mixture_problem()
    target = _flat(exact.kl_grad_phi(model, guide, theta, phi, x))
    ks = np.array([1, 2, 3, 5, 10, 20, 50, 100])
    bias, std = [], []
    for K in ks:
        m, v = exact.moments(E["wake_phi"], model, guide, theta, phi, x, int(K), method="laplace")
        bias.append(np.linalg.norm(_flat(m) - target))
        std.append(np.sqrt(np.sum(_flat(v))))
    _, sleep_var = exact.sleep_moments(model, guide, theta, phi, M=1)
    sleep_std = np.sqrt(np.sum(_flat(sleep_var)) / (ks * x.shape[0]))
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.loglog(ks, bias, "o-", label="wake-φ |bias| (exact)")
    ax.loglog(ks, std, "s-", label="wake-φ std (exact)")
    ax.loglog(ks, sleep_std, "^--", label="sleep-φ std, M = K·N dreams (exact)")
    ax.set_xlabel("K")
    ax.set_ylabel("norm over the 40 guide parameters")
    ax.set_title("Mixture C = 20, N = 2: exact bias and std")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=120, metadata={"Software": None}),
                 binary=True)
    plt.close(fig)
