"""One table of rws_ref's estimators, read by every layer.

Each :class:`Estimator` says what one kind is: rws_ref's function and its
signature, which parameters its output belongs to, its direction (the sign
convention), what its exact mean equals, when it applies, and (through
:mod:`rws_ref.checking.mistakes`) the mistakes people make implementing it.
``check_estimator`` and the ``rws_check`` fixture (rws_ref.checking.testing), ``compare``
and ``vectors`` (rws_ref.checking.diagnose), the vectors file, the audit, training and
the exercises all look kinds up here, by the name of rws_ref's function.

A check hands an estimator one :class:`Case`: θ, φ and what the signature needs —
the batch x with particles z (or base noise ε for reparameterized estimators),
dreams (z, x) ~ p_θ for sleep-φ and insomnia, ι or δ.

Signatures (a user's function is called the same way, or without the leading
``model, guide`` when it evaluates densities of its own):

    log_w       elbo_is(log_w)                                          -> (N,)
    particles   fn(model, guide, theta, phi, x, z)                      -> dict
    noise       fn(model, guide, theta, phi, x, eps)                    -> dict
    dreams      sleep_phi(guide, phi, dream_z, dream_x)                 -> dict
    insomnia    insomnia(model, guide, theta, phi, x, z, dream_z, dream_x, iota)
    defensive   defensive_wake_phi(model, guide, theta, phi, x, z, delta)
"""
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import numpy as np

from . import family, protocol
from .estimators import elbo_is, log_weights, sleep_phi, wake_phi, wake_theta
from .models import DiagonalGaussianGuide, GaussianMixture, LinearGaussian, SoftmaxLinearGuide

__all__ = ["Case", "Estimator", "ESTIMATORS", "SIGNATURES", "KINDS", "get", "arguments", "reference_output",
           "as_output", "applies", "default_pair", "ASCENT", "DESCENT", "VALUE"]

ASCENT = "ascent of the bound"
DESCENT = "descent of the inclusive KL"
VALUE = "the bound's value"


class Case(NamedTuple):
    """The inputs of one evaluation of an estimator.  Fields a signature does not use stay None;
    for reparameterized estimators ``z`` holds the particles ε becomes (for reference)."""
    theta: dict
    phi: dict
    x: Optional[np.ndarray] = None
    z: Optional[np.ndarray] = None
    eps: Optional[np.ndarray] = None
    dream_z: Optional[np.ndarray] = None
    dream_x: Optional[np.ndarray] = None
    iota: Optional[float] = None
    delta: Optional[float] = None


#: signature -> the names of rws_ref's arguments, in order
SIGNATURES = {
    "log_w": ("log_w",),
    "particles": ("model", "guide", "theta", "phi", "x", "z"),
    "noise": ("model", "guide", "theta", "phi", "x", "eps"),
    "dreams": ("guide", "phi", "dream_z", "dream_x"),
    "insomnia": ("model", "guide", "theta", "phi", "x", "z", "dream_z", "dream_x", "iota"),
    "defensive": ("model", "guide", "theta", "phi", "x", "z", "delta"),
}


@dataclass(frozen=True)
class Estimator:
    """One kind of estimator.

    name       rws_ref's function name, the kind everywhere
    function   rws_ref's implementation, called in ``signature``
    signature  a key of :data:`SIGNATURES`
    output     "theta", "phi" (a gradient dict) or "bound" (L̂ per datapoint)
    direction  :data:`ASCENT`, :data:`DESCENT` or :data:`VALUE`
    mean       what its exact mean equals: "elbo_is" (exact ELBO_IS), "grad_elbo_is"
               (unbiased for ∇ ELBO_IS), "self_normalized" (rws_ref's exact mean, biased at
               finite K), "sleep_target", "insomnia" (ι·E[wake-φ] + (1 − ι)·its dreams),
               "zero at K = 1", ...
    min_k      the smallest K it is defined for
    method     the training method that uses it (rws_ref.experiments.train), or None
    summary    one line for reports and the exercises
    """
    name: str
    function: Callable
    signature: str
    output: str
    direction: str
    mean: str
    summary: str
    min_k: int = 1
    method: Optional[str] = None


ESTIMATORS = {e.name: e for e in [
    Estimator("elbo_is", elbo_is, "log_w", "bound", VALUE, "elbo_is",
              "L̂_n = logsumexp_k log w_kn − log K, unbiased for ELBO_IS"),
    Estimator("wake_theta", wake_theta, "particles", "theta", ASCENT, "grad_elbo_is",
              "(1/N) Σ_n Σ_k w̄_kn ∇_θ log p_θ(z_kn, x_n)"),
    Estimator("wake_phi", wake_phi, "particles", "phi", DESCENT, "self_normalized",
              "(1/N) Σ_n Σ_k w̄_kn (−∇_φ log q_φ(z_kn | x_n)), w̄ held constant", method="wake"),
    Estimator("sleep_phi", sleep_phi, "dreams", "phi", DESCENT, "sleep_target",
              "(1/M) Σ_m (−∇_φ log q_φ(z_m | x_m)) on dreams (z_m, x_m) ~ p_θ", method="sleep"),
    Estimator("insomnia", family.insomnia, "insomnia", "phi", DESCENT, "insomnia",
              "ι · wake-φ + (1 − ι) · sleep-φ", method="insomnia"),
    Estimator("defensive_wake_phi", family.defensive_wake_phi, "defensive", "phi", DESCENT, "self_normalized",
              "wake-φ with particles from (1 − δ) q_φ + δ r, weights p_θ / q_mix", method="defensive"),
    Estimator("iwae_phi", family.iwae_phi, "noise", "phi", ASCENT, "grad_elbo_is",
              "(1/N) Σ_n Σ_k w̃_k (g_k − s_k), the reparameterized IWAE gradient", method="iwae"),
    Estimator("stl_phi", family.stl_phi, "noise", "phi", ASCENT, "biased",
              "(1/N) Σ_n Σ_k w̃_k g_k, sticking the landing (score term dropped)"),
    Estimator("iwae_dreg_phi", family.iwae_dreg_phi, "noise", "phi", ASCENT, "grad_elbo_is",
              "(1/N) Σ_n Σ_k w̃_k² g_k, doubly reparameterized IWAE"),
    Estimator("rws_dreg_phi", family.rws_dreg_phi, "noise", "phi", DESCENT, "self_normalized",
              "−(1/N) Σ_n Σ_k (w̃_k − w̃_k²) g_k, doubly reparameterized wake-φ"),
    Estimator("reinforce_phi", family.reinforce_phi, "particles", "phi", ASCENT, "grad_elbo_is",
              "(1/N) Σ_n Σ_k (L̂_n − w̄_kn) ∇_φ log q_φ(z_kn | x_n), score function", method="reinforce"),
    Estimator("vimco_phi", family.vimco_phi, "particles", "phi", ASCENT, "grad_elbo_is",
              "(1/N) Σ_n Σ_k ((L̂ − L̂_{−k}) − w̄_kn) ∇_φ log q_φ(z_kn | x_n)", min_k=2, method="vimco"),
]}

#: the kinds, in the order of the course
KINDS = tuple(ESTIMATORS)


def get(kind, name="kind"):
    """The :class:`Estimator` of ``kind``; a clear error for anything else."""
    if not isinstance(kind, str):
        raise TypeError(f"{name} must be one of {', '.join(KINDS)} (a string); got {type(kind).__name__} {kind!r}")
    if kind not in ESTIMATORS:
        raise ValueError(f"{name} must be one of {', '.join(KINDS)}; got {kind!r}")
    return ESTIMATORS[kind]


def arguments(entry, model, guide, case, with_objects=True):
    """The positional arguments of ``entry``'s signature for ``case`` (without the leading
    model and guide when ``with_objects`` is False: a function with densities of its own)."""
    values = {"model": model, "guide": guide, **case._asdict()}
    if entry.signature == "log_w":
        return [log_weights(model, guide, case.theta, case.phi, case.x, case.z)]
    names = SIGNATURES[entry.signature]
    if not with_objects:
        names = [n for n in names if n not in ("model", "guide")]
    return [values[n] for n in names]


def as_output(entry, value):
    """An estimator's output as a dict: the bound's (N,) array becomes {"elbo_is": array}."""
    if entry.output == "bound" and not isinstance(value, dict):
        return {"elbo_is": value}
    return value


def reference_output(entry, model, guide, case):
    """rws_ref's own output for ``case``, as a dict."""
    return as_output(entry, entry.function(*arguments(entry, model, guide, case)))


def default_pair(entry):
    """The model and guide a check uses when none are given: LinearGaussian(2, 3) with its diagonal
    Gaussian guide; for defensive wake-φ (whose default component needs a discrete latent) a
    four-component mixture with a softmax guide."""
    if entry.signature == "defensive":
        return GaussianMixture(4, scale=6.0), SoftmaxLinearGuide(4, loc=15.0, scale=10.0)
    return LinearGaussian(2, 3), DiagonalGaussianGuide(2, 3)


def applies(entry, model, guide, K=None):
    """None if ``entry`` applies to this model and guide (and K), else the reason it does not."""
    if K is not None and K < entry.min_k:
        return f"{entry.name} needs K >= {entry.min_k}"
    if entry.output == "theta" and not model.theta_shapes:
        return f"{entry.name} is a gradient in θ, and the model has no parameters (theta_shapes = {{}})"
    if entry.output == "phi" and not guide.phi_shapes:
        return f"{entry.name} is a gradient in φ, and the guide has no parameters (phi_shapes = {{}})"
    if entry.signature == "noise":
        missing = [f"model.{m}" for m in ("grad_z_log_joint",) if not callable(getattr(model, m, None))]
        missing += [f"guide.{m}" for m in ("reparameterize", "grad_z_log_prob", "pull_back")
                    if not callable(getattr(guide, m, None))]
        if missing:
            return f"{entry.name} needs a reparameterized pair; missing {', '.join(missing)} (docs/protocol.md)"
    if entry.signature == "defensive" and protocol.domain(guide, "z") == "real":
        return ("defensive_wake_phi's default component r is uniform over a discrete z_domain; "
                "this guide's z is real")
    return None
