"""ELBO_IS and the three Reweighted Wake-Sleep gradient estimators.

The cores are deterministic: they take the particles ``z`` explicitly, so an
outside implementation can be compared with them particle for particle.
Sampling is the caller's (``guide.sample`` for wake, ``model.sample`` for
sleep).

Shapes: x (N, *x_shape); z (K, N, *z_shape), particle axis first; log
weights and normalized weights (K, N), normalized per datapoint over k.

Sign convention (DESIGN.md): θ-gradients are ascent directions of the
bound, φ-gradients are descent directions of the inclusive KL.  An optimizer
does θ ← θ + lr·ĝ_θ and φ ← φ − lr·ĝ_φ.
"""
from functools import lru_cache

import numpy as np

from .numerics import check_log_weights, log_mean_exp, softmax

__all__ = ["log_weights", "elbo_is", "normalized_weights",
           "wake_theta", "wake_phi", "sleep_phi"]


def _owner(cls, name):
    return next((klass for klass in cls.__mro__ if name in vars(klass)), None)


def _fast(model, guide):
    return _fast_types(type(model), type(guide))


@lru_cache(maxsize=None)
def _fast_types(model_type, guide_type):
    # Built-in models offer validated-once, cached forward/backward passes. They are
    # used only when the class that defines them also defines the densities and
    # gradients: a subclass overriding log_joint or _log_joint (or a wrapper, which
    # defines none of them on its class) takes the public methods instead.
    for cls, names in ((model_type, ("_forward", "_backward", "check_batch", "log_joint", "_log_joint",
                                     "grad_log_joint")),
                       (guide_type, ("_forward", "_backward", "log_prob", "_log_prob", "grad_log_prob"))):
        owners = {_owner(cls, name) for name in names}
        if len(owners) != 1 or None in owners:
            return False
    return True


def _passes(model, guide, theta, phi, x, z):
    """Validate once and run the forward passes: (θ, φ, x, z, log w, model cache, guide cache)."""
    if _fast(model, guide):
        if (tuple(guide.z_shape), tuple(guide.x_shape)) != (tuple(model.z_shape), tuple(model.x_shape)):
            raise ValueError(f"guide {guide!r} does not match model {model!r}: guide (z_shape, x_shape) "
                             f"= {(tuple(guide.z_shape), tuple(guide.x_shape))}, model "
                             f"{(tuple(model.z_shape), tuple(model.x_shape))}")
        theta, phi = model.check_theta(theta), guide.check_phi(phi)
        x, z = model.check_batch(x, z)
        log_p, model_cache = model._forward(theta, z, x)
        log_q, guide_cache = guide._forward(phi, z, x)
        return theta, phi, x, z, log_p - log_q, model_cache, guide_cache
    log_w = model.log_joint(theta, z, x) - guide.log_prob(phi, z, x)
    return theta, phi, np.asarray(x), np.asarray(z), log_w, None, None


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
    return _passes(model, guide, theta, phi, x, z)[4]


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
    theta, phi, x, z, log_w, model_cache, _ = _passes(model, guide, theta, phi, x, z)
    weights = normalized_weights(log_w) / log_w.shape[1]
    if model_cache is not None:
        return model._backward(theta, z, x, weights, model_cache)
    return model.grad_log_joint(theta, z, x, weights)


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
    theta, phi, x, z, log_w, _, guide_cache = _passes(model, guide, theta, phi, x, z)
    weights = normalized_weights(log_w) / log_w.shape[1]
    if guide_cache is not None:
        grad = guide._backward(phi, z, x, weights, guide_cache)
    else:
        grad = guide.grad_log_prob(phi, z, x, weights)
    return {key: -value for key, value in grad.items()}


def dream_particles(guide, z):
    """Dream latents (M, *z_shape) or (1, M, *z_shape) in the particle layout (1, M, *z_shape)."""
    z = np.asarray(z)
    if z.ndim == 1 + len(guide.z_shape):
        z = z[None]
    if z.ndim != 2 + len(guide.z_shape) or z.shape[0] != 1:
        dims = ", ".join(str(d) for d in guide.z_shape)
        raise ValueError(f"z must have shape (M, {dims}) or (1, M, {dims}) for sleep-φ; "
                         f"got {z.shape}")
    return z


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
    z = dream_particles(guide, z)
    m = z.shape[1]
    grad = guide.grad_log_prob(phi, z, x, np.full((1, m), 1.0 / m))
    return {key: -value for key, value in grad.items()}
