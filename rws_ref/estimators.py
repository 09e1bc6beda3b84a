"""ELBO_IS and the three Reweighted Wake-Sleep gradient estimators.

Every estimator validates its inputs once, from the declarations of the
protocol (docs/protocol.md), runs one forward pass of the model and of the
guide (:func:`forward_passes`), and pulls the normalized weights back.
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
import numpy as np

from . import protocol
from .numerics import check_log_weights, log_mean_exp, softmax

__all__ = ["log_weights", "elbo_is", "normalized_weights",
           "wake_theta", "wake_phi", "sleep_phi", "wake_step", "forward_passes"]


def forward_passes(model, guide, theta, phi, x, z):
    """Validate once, then one forward pass of the model and of the guide.

    Returns (θ, φ, x, z, log w (K, N), model pullback, guide pullback): the
    validated float64 inputs, the log weights, and the two vector-Jacobian
    products (weights (K, N) -> gradient dict) of ``protocol.model_forward``
    and ``protocol.guide_forward``.  Every estimator starts here.
    """
    protocol.check_pair(model, guide)
    theta = protocol.validate_params(theta, model.theta_shapes, "theta")
    phi = protocol.validate_params(phi, guide.phi_shapes, "phi")
    x = protocol.validate_x(model, x)
    z = protocol.validate_z(model, z, x.shape[0])
    return (theta, phi, x, z) + _trusted_passes(model, guide, theta, phi, x, z)


def _trusted_passes(model, guide, theta, phi, x, z):
    # the forward passes on inputs that are already validated (training's inner loop)
    with np.errstate(over="ignore", invalid="ignore"):       # overflow is reported below, clearly
        log_p, pull_p = protocol.model_forward(model, theta, z, x)
        log_q, pull_q = protocol.guide_forward(guide, phi, z, x)
        log_w = log_p - log_q
    if not np.isfinite(np.add.reduce(log_w, axis=None)):
        _explain_log_weights(model, guide, log_p, log_q)
    return log_w, pull_p, pull_q


def _explain_log_weights(model, guide, log_p, log_q):
    """A log weight that is NaN or +inf, or a log q that is not finite, means the densities left
    float64 (extreme x or parameters): a clear error, never a silent NaN.  log p = −inf with a
    finite log q is a particle of weight zero and is allowed."""
    bad = ~np.isfinite(log_q) | np.isnan(log_p) | (log_p == np.inf)
    if bad.any():
        k, n = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"log weights are not finite at particle {k} of datapoint {n}: "
                         f"log p = {log_p[k, n]} ({model!r}), log q = {log_q[k, n]} ({guide!r}); the densities "
                         f"overflow float64 at these inputs (extreme x or parameters)")


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
    return forward_passes(model, guide, theta, phi, x, z)[4]


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
    log_w, pull_theta = forward_passes(model, guide, theta, phi, x, z)[4:6]
    return pull_theta(normalized_weights(log_w) / log_w.shape[1])


def wake_phi(model, guide, theta, phi, x, z):
    """Wake-φ: ĝ_φ = (1/N) Σ_n Σ_k w̄_kn (−∇_φ log q_φ(z_kn | x_n)).  Descent direction.

    w̄ is held constant.  Self-normalized importance sampling estimate of
    ∇_φ (1/N) Σ_n KL(p_θ(z|x_n) ‖ q_φ(z|x_n)): biased at finite K (bias
    O(1/K)), consistent as K → ∞; at K = 1 its expectation is zero.

    Parameters
    ----------
    as :func:`wake_theta`.

    Returns
    -------
    dict with φ's keys and shapes.
    """
    log_w, _, pull_phi = forward_passes(model, guide, theta, phi, x, z)[4:]
    grad = pull_phi(normalized_weights(log_w) / log_w.shape[1])
    return {key: -value for key, value in grad.items()}


def wake_step(model, guide, theta, phi, x, z):
    """One validation, one forward pass: (L̂ (N,), wake-θ dict, wake-φ dict).

    The same numbers, bit for bit, as :func:`elbo_is` of :func:`log_weights`,
    :func:`wake_theta` and :func:`wake_phi` called separately on the same
    particles; θ-gradient ascends the bound, φ-gradient descends the KL.
    """
    log_w, pull_theta, pull_phi = forward_passes(model, guide, theta, phi, x, z)[4:]
    return _step(log_w, pull_theta, pull_phi)


def _step(log_w, pull_theta, pull_phi):
    # L̂ and w̄ from one exp pass: the same operations as elbo_is and normalized_weights
    log_w = check_log_weights(log_w)
    shift = log_w.max(axis=0, keepdims=True)
    e = np.exp(log_w - shift)
    total = e.sum(axis=0, keepdims=True)
    bound = (np.log(total) + shift)[0] - np.log(log_w.shape[0])
    weights = e / total / log_w.shape[1]
    g_phi = pull_phi(weights)
    return bound, pull_theta(weights), {key: -value for key, value in g_phi.items()}


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
    return {key: -value for key, value in grad.items()}
