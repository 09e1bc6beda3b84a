"""Exact targets: what the φ estimators aim at, and the constants of their bias.

- wake-φ aims at ∇_φ (1/N) Σ_n KL(p_θ(z|x_n) ‖ q_φ(z|x_n))  (:func:`kl_grad_phi`);
- sleep-φ at ∇_φ E_{p_θ(x)} KL(p_θ(z|x) ‖ q_φ(z|x))        (:func:`sleep_target`);
- the gap log p − ELBO_IS(K) ≈ χ²/(2K)                      (:func:`chi2`);
- E[wake-φ] − target ≈ c₁/K                                 (:func:`wake_phi_bias_constant`).

By enumeration over a finite ``support()``, by the model's ``data_support()`` or
``joint_quadrature`` for the expectation over x, or by the model's closed-form
capabilities (docs/protocol.md).
"""
import numpy as np

from .. import protocol
from .._checks import check_count
from .._trees import flatten, negate, unflatten
from ..numerics import logsumexp
from .enumeration import Enumerated, WeightedMoments

__all__ = ["kl_grad_phi", "chi2", "wake_phi_bias_constant", "sleep_target", "sleep_moments", "joint_points"]


def kl_grad_phi(model, guide, theta, phi, x):
    """∇_φ (1/N) Σ_n KL(p_θ(z|x_n) ‖ q_φ(z|x_n)), the wake-φ target (descent of the KL).

    A model with a finite ``support()``: −(1/N) Σ_n Σ_s p_θ(s|x_n) ∇_φ log q_φ(s|x_n),
    by enumeration (the posterior from the log joint over the support).  Otherwise the
    model's closed-form capability ``kl_grad_phi(guide, theta, phi, x)`` (docs/protocol.md).

    Returns
    -------
    dict with φ's keys.
    """
    if protocol.support(model) is None:
        return _closed_form(model, "kl_grad_phi", guide, theta, phi, x)
    e = Enumerated(model, guide, theta, phi, x)
    posterior = np.exp(e.log_p - logsumexp(e.log_p, axis=0))             # (S, N)
    return negate(e.pull_q(posterior / e.n_data))


def _closed_form(model, name, *args):
    fn = getattr(model, name, None)
    if not callable(fn):
        raise TypeError(f"model {model!r} has neither a finite support() nor the closed-form capability "
                        f"{name}(...) (docs/protocol.md)")
    return fn(*args)


def _density_ratios(model, guide, theta, phi, x):
    # the enumerated problem and ω_sn = p_θ(s|x_n) / q_φ(s|x_n), q_sn; both (S, N)
    e = Enumerated(model, guide, theta, phi, x)
    log_post = e.log_p - logsumexp(e.log_p, axis=0)
    return e, np.exp(log_post - e.log_q), np.exp(e.log_q)


def chi2(model, guide, theta, phi, x):
    """χ²(p_θ(z|x_n) ‖ q_φ(z|x_n)) = E_q[ω²] − 1 per datapoint, ω = p_θ(z|x)/q_φ(z|x).  (N,).

    It sets the large-K gap of the bound: log p_θ(x) − ELBO_IS(K) = χ² / (2K) + O(1/K²).
    """
    _, omega, q = _density_ratios(model, guide, theta, phi, x)
    return np.sum(q * omega ** 2, axis=0) - 1.0


def wake_phi_bias_constant(model, guide, theta, phi, x):
    """c₁ in E[wake-φ] − ∇_φ KL = c₁ / K + O(1/K²), exactly, for discrete latents.

    Self-normalized importance sampling (delta method): with f(z) = −∇_φ log q_φ(z|x)
    and ω = p_θ(z|x)/q_φ(z|x), c₁ = −(1/N) Σ_n E_q[ω² (f − E_p f)].

    Returns
    -------
    dict with φ's keys.
    """
    e, omega, q = _density_ratios(model, guide, theta, phi, x)
    one, total = np.ones((1, 1)), None
    for n in range(e.n_data):
        rows = [e.guide.grad_log_prob(e.phi, s[None, None], e.x[n:n + 1], one) for s in e.states]
        f = -np.stack([flatten(r, rows[0]) for r in rows])                 # (S, P)
        target = (q[:, n] * omega[:, n]) @ f
        c1 = -(q[:, n] * omega[:, n] ** 2) @ (f - target) / e.n_data
        total = c1 if total is None else total + c1
    return unflatten(total, rows[0])


def joint_points(model, theta, nodes):
    """Points (z_i, x_i) with probabilities P_i such that Σ_i P_i f(z_i, x_i) = E_{p_θ(z,x)} f.

    Exact for a model with ``support()`` and ``data_support()``; otherwise the
    model's ``joint_quadrature(theta, nodes)`` (docs/protocol.md).
    Returns z (1, P, *z_shape), x (P, *x_shape), P (P,).
    """
    theta = protocol.validate_params(theta, model.theta_shapes, "theta")
    states = protocol.support(model)
    if states is not None and callable(getattr(model, "data_support", None)):
        xs = protocol.validate_x(model, model.data_support(), name=f"{model!r}.data_support()")
        z = np.repeat(states[:, None], len(xs), axis=1)                 # (S, X, …)
        log_p = protocol.model_forward(model, theta, z, xs)[0]          # (S, X)
        return z.reshape((1, -1) + z.shape[2:]), np.tile(xs, (len(states),) + (1,) * (xs.ndim - 1)), \
            np.exp(log_p).reshape(-1)
    quadrature = getattr(model, "joint_quadrature", None)
    if not callable(quadrature):
        raise TypeError(f"model {model!r} has no data_support() (with support()) and no "
                        f"joint_quadrature(theta, nodes): nothing to take E over x with (docs/protocol.md)")
    z, xs, prob = quadrature(theta, check_count(nodes, "nodes"))
    xs = protocol.validate_x(model, xs, name=f"{model!r}.joint_quadrature x")
    z = protocol.validate_z(model, np.asarray(z)[None], xs.shape[0], name=f"{model!r}.joint_quadrature z")
    prob = np.asarray(prob, dtype=np.float64)
    if prob.shape != (xs.shape[0],) or not np.all(np.isfinite(prob)) or abs(prob.sum() - 1.0) > 1e-8:
        raise ValueError(f"{model!r}.joint_quadrature must return probabilities (P,) summing to 1")
    return z, xs, prob


def sleep_target(model, guide, theta, phi, nodes=64):
    """∇_φ E_{p_θ(x)} KL(p_θ(z|x) ‖ q_φ(z|x)) = −E_{p_θ(z,x)} ∇_φ log q_φ(z|x).  Descent.

    The model's closed-form capability ``sleep_target(guide, theta, phi)`` if it has
    one (the linear-Gaussian model); otherwise exact by enumeration over
    ``support()`` × ``data_support()`` (the sigmoid belief net) or by the model's
    ``joint_quadrature`` (``nodes`` per component for the Gaussian mixture).
    """
    protocol.check_pair(model, guide)
    if callable(getattr(model, "sleep_target", None)):
        return model.sleep_target(guide, theta, phi)
    phi = protocol.validate_params(phi, guide.phi_shapes, "phi")
    z, xs, prob = joint_points(model, theta, nodes)
    g = protocol.guide_forward(guide, phi, z, xs)[1](prob[None, :])
    return negate(g)


def sleep_moments(model, guide, theta, phi, M=1, nodes=64):
    """Exact mean and per-entry variance of sleep-φ with M dreams (z_m, x_m) ~ p_θ.

    The mean is :func:`sleep_target`; the variance is Var_{p_θ}[−∇_φ log q_φ(z|x)] / M.
    Needs ``data_support()`` with ``support()``, or ``joint_quadrature``.
    """
    protocol.check_pair(model, guide)
    phi = protocol.validate_params(phi, guide.phi_shapes, "phi")
    M = check_count(M, "M")
    z, xs, prob = joint_points(model, theta, nodes)
    one = np.ones((1, 1))
    rows = [guide.grad_log_prob(phi, z[:, i:i + 1], xs[i:i + 1], one) for i in range(len(prob))]
    values = -np.stack([flatten(r, rows[0]) for r in rows])
    acc = WeightedMoments(covariance=False)
    acc.add(prob, values)
    mean, var = acc.result()
    return unflatten(mean, rows[0]), unflatten(var / M, rows[0])
