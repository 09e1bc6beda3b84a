"""ELBO_IS and the three Reweighted Wake-Sleep gradient estimators.

Every estimator validates its inputs once, from the declarations of the
protocol (docs/protocol.md), runs one forward pass of the model and of the
guide (:func:`forward_pass`), and pulls the normalized weights back.
The cores are deterministic: they take the particles ``z`` explicitly, so an
outside implementation can be compared with them particle for particle.
Sampling is the caller's (``guide.sample`` for wake, ``model.sample`` for
sleep).

Shapes: x (N, *x_shape); z (K, N, *z_shape), particle axis first; log
weights and normalized weights (K, N), normalized per datapoint over k.

Sign convention (docs/rws.md): θ-gradients are ascent directions of the
bound, φ-gradients are descent directions of the inclusive KL.  An optimizer
does θ ← θ + lr·ĝ_θ and φ ← φ − lr·ĝ_φ.
"""
from typing import Callable, NamedTuple

import numpy as np

from . import protocol
from ._checks import renamed
from ._trees import negate
from .numerics import check_log_weights, log_mean_exp, softmax

__all__ = ["log_weights", "elbo_is", "normalized_weights",
           "wake_theta", "wake_phi", "sleep_phi", "wake_step", "forward_pass", "densities",
           "wake_gradients", "ForwardPass", "WakeStep", "NonFiniteLogWeights"]


class NonFiniteLogWeights(ValueError):
    """Log weights that left float64 (NaN, +inf, a non-finite log q, or a datapoint whose particles all
    have weight zero): raised by :func:`densities` with the particle, the datapoint and both densities."""


class ForwardPass(NamedTuple):
    """One forward pass of a model and a guide on validated inputs.

    ``log_w`` (K, N) are the log weights log p_θ(z, x) − log q_φ(z|x); ``pull_theta`` and
    ``pull_phi`` map weights ω (K, N) to ∇_θ Σ ω log p and ∇_φ Σ ω log q (the pullbacks
    of the two densities)."""
    theta: dict
    phi: dict
    x: np.ndarray
    z: np.ndarray
    log_w: np.ndarray
    pull_theta: Callable
    pull_phi: Callable


class WakeStep(NamedTuple):
    """What one wake step computes: ``bound`` L̂ (N,), ``theta`` the wake-θ gradient (ascent),
    ``phi`` the wake-φ gradient (descent)."""
    bound: np.ndarray
    theta: dict
    phi: dict


def forward_pass(model, guide, theta, phi, x, z):
    """Validate the inputs (one step), then one forward pass of the model and of the guide.

    Every estimator starts here.  Returns a :class:`ForwardPass`."""
    return densities(model, guide, *protocol.validate_inputs(model, guide, theta, phi, x, z))


def densities(model, guide, theta, phi, x, z):
    """The forward pass on inputs that are already validated (training's inner loop).

    log p_θ(z, x) by ``model.log_joint_vjp`` (or ``log_joint``), log q_φ(z|x) by
    ``guide.log_prob_vjp`` (or ``log_prob``), and their pullbacks.  Log weights that are
    NaN or +inf are a clear error (:func:`_explain_log_weights`), never a silent NaN."""
    with np.errstate(over="ignore", invalid="ignore"):       # overflow is reported below, clearly
        log_p, pull_theta = protocol.forward(model, protocol.MODEL, theta, z, x)
        log_q, pull_phi = protocol.forward(guide, protocol.GUIDE, phi, z, x)
        log_w = log_p - log_q
    if not np.isfinite(np.add.reduce(log_w, axis=None)):
        _explain_log_weights(model, guide, log_p, log_q, log_w)
    return ForwardPass(theta, phi, x, z, log_w, pull_theta, pull_phi)




def _explain_log_weights(model, guide, log_p, log_q, log_w):
    """A log weight that is NaN or +inf, or a log q that is not finite, means the densities left
    float64 (extreme x or parameters): a clear error, never a silent NaN.  log p = −inf with a
    finite log q is a particle of weight zero and is allowed, unless every particle of a
    datapoint has it (its normalized weights would be 0/0)."""
    bad = ~np.isfinite(log_q) | np.isnan(log_p) | (log_p == np.inf)
    if bad.any():
        k, n = (int(i) for i in np.argwhere(bad)[0])
        cause = ("a density returned NaN" if np.isnan(log_p[k, n]) or np.isnan(log_q[k, n]) else
                 "the densities overflow float64 at these inputs (extreme x or parameters)")
        raise NonFiniteLogWeights(f"log weights are not finite at particle {k} of datapoint {n}: "
                                  f"log p = {log_p[k, n]} ({model!r}), log q = {log_q[k, n]} ({guide!r}); {cause}")
    try:
        check_log_weights(log_w)              # a datapoint whose particles all have weight zero
    except ValueError as err:
        raise NonFiniteLogWeights(str(err)) from None


def log_weights(model, guide, theta, phi, x, z):
    """log w_kn = log p_θ(z_kn, x_n) − log q_φ(z_kn | x_n).

    Parameters
    ----------
    model, guide : objects following the model and guide protocols
    theta, phi : dict of ndarray
    x : ndarray (N, *x_shape)
    z : ndarray (K, N, *z_shape)

    Returns
    -------
    ndarray (K, N)
    """
    return forward_pass(model, guide, theta, phi, x, z).log_w


def elbo_is(log_w):
    """L̂_n = logsumexp_k(log w_kn) − log K, one per datapoint.

    An unbiased estimate of ELBO_IS(θ, φ, x_n) = E_{q^K}[log (1/K) Σ_k w_k]
    when the K particles are independent draws from q_φ(·|x_n).

    Parameters
    ----------
    log_w : ndarray (K, N)
        Log weights; −inf entries are particles of weight zero.

    Returns
    -------
    ndarray (N,)

    Raises
    ------
    ValueError
        for a wrong shape, NaN or +inf, or a datapoint with every weight zero.
    """
    return log_mean_exp(check_log_weights(log_w), axis=0)


def normalized_weights(log_w):
    """w̄_kn = w_kn / Σ_l w_ln, normalized per datapoint n over the particles k.

    Parameters
    ----------
    log_w : ndarray (K, N)

    Returns
    -------
    ndarray (K, N), each column summing to 1.
    """
    return softmax(check_log_weights(log_w), axis=0)


def wake_theta(model, guide, theta, phi, x, z):
    """Wake-θ: ĝ_θ = (1/N) Σ_n Σ_k w̄_kn ∇_θ log p_θ(z_kn, x_n).  Ascent direction.

    The exact θ-gradient of (1/N) Σ_n L̂_n on these particles, hence
    unbiased for ∇_θ (1/N) Σ_n ELBO_IS(θ, φ, x_n) when z ~ q_φ^K.

    Parameters
    ----------
    model, guide : model and guide objects
    theta, phi : dict of ndarray
    x : ndarray (N, *x_shape)
    z : ndarray (K, N, *z_shape), particles drawn from q_φ(·|x)

    Returns
    -------
    dict with θ's keys and shapes.
    """
    fp = forward_pass(model, guide, theta, phi, x, z)
    return fp.pull_theta(softmax(fp.log_w, axis=0) / fp.log_w.shape[1])     # w̄_kn / N


def wake_phi(model, guide, theta, phi, x, z):
    """Wake-φ: ĝ_φ = (1/N) Σ_n Σ_k w̄_kn (−∇_φ log q_φ(z_kn | x_n)).  Descent direction.

    w̄ is held constant.  Self-normalized importance sampling estimate of
    ∇_φ (1/N) Σ_n KL(p_θ(z|x_n) ‖ q_φ(z|x_n)): biased at finite K (bias
    O(1/K)), consistent as K → ∞; at K = 1 its expectation is zero.

    Parameters
    ----------
    model, guide : model and guide objects
    theta, phi : dict of ndarray
    x : ndarray (N, *x_shape)
    z : ndarray (K, N, *z_shape), particles drawn from q_φ(·|x)

    Returns
    -------
    dict with φ's keys and shapes.
    """
    fp = forward_pass(model, guide, theta, phi, x, z)
    grad = fp.pull_phi(softmax(fp.log_w, axis=0) / fp.log_w.shape[1])      # ∇_φ Σ (w̄_kn / N) log q
    return negate(grad)


def wake_step(model, guide, theta, phi, x, z):
    """One validation, one forward pass: a :class:`WakeStep` (bound L̂ (N,), wake-θ, wake-φ).

    The same numbers, bit for bit, as :func:`elbo_is` of :func:`log_weights`,
    :func:`wake_theta` and :func:`wake_phi` called separately on the same
    particles; θ-gradient ascends the bound, φ-gradient descends the KL.
    """
    return wake_gradients(forward_pass(model, guide, theta, phi, x, z))


def wake_gradients(fp):
    """L̂, wake-θ and wake-φ of one :class:`ForwardPass`, from one exp pass: the same operations
    as :func:`elbo_is` and :func:`normalized_weights`.  Returns a :class:`WakeStep`."""
    log_w = fp.log_w
    shift = log_w.max(axis=0, keepdims=True)
    e = np.exp(log_w - shift)
    total = e.sum(axis=0, keepdims=True)
    bound = (np.log(total) + shift)[0] - np.log(log_w.shape[0])
    weights = e / total / log_w.shape[1]                                   # w̄_kn / N
    g_phi = fp.pull_phi(weights)
    return WakeStep(bound, fp.pull_theta(weights), negate(g_phi))


def dream_particles(guide, z, x):
    """Validated dreams: z (M, *z_shape) or (1, M, *z_shape) in the particle layout
    (1, M, *z_shape), and x (M, *x_shape)."""
    protocol.check_guide(guide)
    z = np.asarray(z)
    if z.ndim == 1 + len(guide.z_shape):
        z = z[None]
    if z.ndim != 2 + len(guide.z_shape) or z.shape[0] != 1:
        dims = ", ".join(str(d) for d in guide.z_shape)
        raise ValueError(f"z must have shape (M, {dims}) or (1, M, {dims}) for sleep-φ; "
                         f"got {z.shape}")
    x = protocol.validate_x(guide, x)
    return protocol.validate_z(guide, z, x.shape[0]), x


def sleep_phi(guide, phi, z, x):
    """Sleep-φ: ĝ_φ = (1/M) Σ_m (−∇_φ log q_φ(z_m | x_m)).  Descent direction.

    With (z_m, x_m) ~ p_θ(z, x) (``model.sample``), unbiased for
    ∇_φ E_{p_θ(x)} KL(p_θ(z|x) ‖ q_φ(z|x)).

    Parameters
    ----------
    guide : guide object
    phi : dict of ndarray
    z : ndarray (M, *z_shape) or (1, M, *z_shape)
        One latent per dream; the shape ``model.sample`` returns, or the
        particle layout with K = 1.
    x : ndarray (M, *x_shape)

    Returns
    -------
    dict with φ's keys and shapes.
    """
    phi = protocol.validate_params(phi, guide.phi_shapes, "phi")
    z, x = dream_particles(guide, z, x)
    m = z.shape[1]
    grad = protocol.guide_forward(guide, phi, z, x)[1](np.full((1, m), 1.0 / m))
    return negate(grad)


#: forward_passes, the former name of forward_pass (a ForwardPass still unpacks as the old 7-tuple)
__getattr__ = renamed(__name__, {"forward_passes": "forward_pass"})
