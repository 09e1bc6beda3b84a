"""One table of rws_ref's estimators, read by every layer.

Each :class:`Estimator` says what one kind is: rws_ref's function and its
:class:`Signature`, which parameters its output belongs to, its direction (the
sign convention), what its exact mean equals and when it applies; the mistakes
people make implementing it are in :mod:`rws_ref.checking.mistakes`.
``check_estimator`` and the ``rws_check`` fixture, ``compare`` and ``vectors``,
the vectors file, the audit, training and the exercises all look kinds up here,
by the name of rws_ref's function.

A check hands an estimator one :class:`Case`: θ, φ and what the signature needs —
the batch x with particles z (or base noise ε for reparameterized estimators),
dreams (z, x) ~ p_θ for sleep-φ and insomnia, ι or δ.  What differs between
signatures — how to call, draw, permute, split into single datapoints and shift
a case — is a method of the signature's object, written once here:

    log_w       elbo_is(log_w)                                          -> (N,)
    particles   fn(model, guide, theta, phi, x, z)                      -> dict
    noise       fn(model, guide, theta, phi, x, eps)                    -> dict
    dreams      sleep_phi(guide, phi, dream_z, dream_x)                 -> dict
    insomnia    insomnia(model, guide, theta, phi, x, z, dream_z, dream_x, iota)
    defensive   defensive_wake_phi(model, guide, theta, phi, x, z, delta)

(a user's function is called the same way, or without the leading ``model,
guide`` when it evaluates densities of its own).
"""
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import numpy as np

from . import family, protocol
from .estimators import elbo_is, log_weights, sleep_phi, wake_phi, wake_theta
from .models import DiagonalGaussianGuide, GaussianMixture, LinearGaussian, SoftmaxLinearGuide

__all__ = ["Case", "Signature", "Estimator", "ESTIMATORS", "SIGNATURES", "KINDS", "get", "arguments",
           "reference_output", "as_output", "applies", "default_pair", "ShiftedModel", "ASCENT", "DESCENT", "VALUE"]

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
    log_w: Optional[np.ndarray] = None          # the log weights of (x, z), once computed (the bound's input)


class ShiftedModel:
    """The same model with log p(z, x_n) + c_n: a θ-free constant per datapoint (its gradients in θ and in
    z are the inner model's).  The log weights move by c_n; the normalized weights do not."""

    def __init__(self, inner, shift):
        self.inner, self.shift = inner, np.asarray(shift, dtype=np.float64)
        protocol.copy_declarations(self, inner, "theta_shapes")
        for capability in ("grad_z_log_joint", "support"):       # the same latent and its z-gradient
            if callable(getattr(inner, capability, None)):
                setattr(self, capability, getattr(inner, capability))

    def __repr__(self):
        return f"{self.inner!r} shifted per datapoint"

    def init_theta(self, rng):
        return self.inner.init_theta(rng)

    def sample(self, theta, n, rng):
        return self.inner.sample(theta, n, rng)

    def log_joint(self, theta, z, x):
        return self.inner.log_joint(theta, z, x) + self.shift[: np.shape(x)[0]]

    def grad_log_joint(self, theta, z, x, weights):
        return self.inner.grad_log_joint(theta, z, x, weights)

    def log_joint_vjp(self, theta, z, x):
        log_p, pullback = protocol.model_forward(self.inner, theta, z, x)
        return log_p + self.shift[: np.shape(x)[0]], pullback


def _roll_particles(a):
    # each datapoint's particles (axis 0) rolled by a different amount: a permutation per datapoint
    perm = np.stack([np.roll(np.arange(a.shape[0]), n + 1) for n in range(a.shape[1])], axis=1)
    return np.take_along_axis(a, perm.reshape(perm.shape + (1,) * (a.ndim - 2)), axis=0)


class Signature:
    """How an estimator of one signature is called and how a case of it is drawn, permuted, split into single
    datapoints and shifted.  The base class is the particle signature fn(model, guide, θ, φ, x, z); the
    others override what differs.  ``stochastic``: the arguments of the whole estimator, sampling included
    (rws_ref.checking.endtoend)."""
    name = "particles"
    names = ("model", "guide", "theta", "phi", "x", "z")
    stochastic = ("theta", "phi", "x", "rng")
    evaluates_model = True              # a shift of log p_θ reaches it
    dreams = False                      # it takes dreams (z, x) ~ p_θ
    enumerable = True                   # its particles are drawn from the guide: the exact oracle enumerates them

    def __repr__(self):
        return f"Signature({self.name!r})"

    def arguments(self, model, guide, case, with_objects=True):
        """The positional arguments for ``case`` (without model and guide for a function with densities
        of its own)."""
        values = {"model": model, "guide": guide, **case._asdict()}
        return [values[n] for n in self.names if with_objects or n not in ("model", "guide")]

    def size(self, case):
        """The number the batch mean runs over: the datapoints (the dreams for sleep-φ)."""
        return int(np.shape(case.x)[0])

    def particles(self, case):
        """K, the particles per datapoint."""
        return int(np.shape(case.z)[0])

    def proposal(self, model, guide, case):
        """The guide the particles are drawn from."""
        return guide

    def on_proposal(self, entry):
        """The estimator as a function (model, proposal, case) -> output of the guide its particles come from
        (:meth:`proposal`): what the exact oracle enumerates with."""
        return entry.reference

    def draw(self, model, guide, theta, phi, rng, n, k, x=None, z=None, m=None):
        """A :class:`Case` around θ, φ: x from the model (unless given), particles z (unless given: from the
        pair's finite latent domain, else from the guide), and what the signature needs besides (``m``
        dreams, default n)."""
        x = protocol.sample_model(model, theta, n, rng)[1] if x is None else x
        if z is None:
            states = protocol.latent_states(model, guide)
            z = states[rng.integers(0, len(states), (k, x.shape[0]))] if states is not None else \
                protocol.sample_guide(guide, phi, x, k, rng)
        return self._extras(Case(theta, phi, x, z), model, guide, rng, m or x.shape[0])

    def _extras(self, case, model, guide, rng, m):
        return case

    def prepared(self, model, guide, case):
        """The case with what every evaluation of it needs computed once (the bound's log weights)."""
        return case

    def permuted(self, case):
        """The case with each datapoint's particles permuted, by a different permutation per datapoint."""
        return case._replace(z=_roll_particles(case.z))

    def singles(self, case):
        """The case split into one datapoint each."""
        return [case._replace(x=case.x[n:n + 1], z=case.z[:, n:n + 1],
                              log_w=None if case.log_w is None else case.log_w[:, n:n + 1])
                for n in range(self.size(case))]

    def shifted(self, model, guide, case, c):
        """(model, case) with log p_θ(z, x_n) shifted by c_n."""
        return ShiftedModel(model, c), case

    def shift_moves(self, c):
        """How a shift c (N,) moves the output: None when it is invariant ({"elbo_is": c} for the bound)."""
        return None

    def spread(self, model, guide, case, c):
        """(model, case) with only the first particle of datapoint n moved by c_n — log weights spread past
        exp's range within a datapoint — or None where the signature's inputs cannot be moved one particle at a
        time (the particles' log weights come from the model)."""
        return None

    def applies(self, model, guide):
        """None, or the reason this signature cannot be evaluated on the pair."""
        return None


class _LogW(Signature):
    name, names = "log_w", ("log_w",)

    def arguments(self, model, guide, case, with_objects=True):
        if case.log_w is not None:
            return [case.log_w]
        return [log_weights(model, guide, case.theta, case.phi, case.x, case.z)]

    def prepared(self, model, guide, case):
        return case._replace(log_w=self.arguments(model, guide, case)[0])      # computed once, read by every call

    def permuted(self, case):
        moved = super().permuted(case)
        return moved if case.log_w is None else moved._replace(log_w=_roll_particles(case.log_w))

    def shifted(self, model, guide, case, c):
        return model, case._replace(log_w=self.arguments(model, guide, case)[0] + c)

    def shift_moves(self, c):
        return {"elbo_is": np.asarray(c, dtype=np.float64)}

    def spread(self, model, guide, case, c):
        log_w = np.array(self.arguments(model, guide, case)[0], dtype=np.float64)
        if log_w.shape[0] < 2:
            return None                                   # one particle: no spread within a datapoint
        log_w[0] += c
        return model, case._replace(log_w=log_w)


class _Noise(Signature):
    name, names = "noise", ("model", "guide", "theta", "phi", "x", "eps")
    enumerable = False                  # ε is continuous

    def particles(self, case):
        return int(np.shape(case.eps)[0])

    def draw(self, model, guide, theta, phi, rng, n, k, x=None, z=None, m=None):
        x = protocol.sample_model(model, theta, n, rng)[1] if x is None else x
        eps = rng.standard_normal((k, x.shape[0]) + tuple(guide.z_shape))
        return Case(theta, phi, x, guide.reparameterize(phi, x, eps), eps)

    def permuted(self, case):
        return case._replace(eps=_roll_particles(case.eps))

    def singles(self, case):
        return [one._replace(eps=case.eps[:, n:n + 1]) for n, one in enumerate(super().singles(case))]

    def applies(self, model, guide):
        missing = [f"model.{m}" for m in ("grad_z_log_joint",) if not callable(getattr(model, m, None))]
        missing += [f"guide.{m}" for m in ("reparameterize", "grad_z_log_prob", "pull_back")
                    if not callable(getattr(guide, m, None))]
        if missing:
            return f"needs a reparameterized pair; missing {', '.join(missing)} (docs/protocol.md)"
        return None


class _Dreams(Signature):
    name, names = "dreams", ("guide", "phi", "dream_z", "dream_x")
    stochastic = ("theta", "phi", "rng")
    evaluates_model, dreams = False, True

    def size(self, case):
        return int(np.shape(case.dream_x)[0])

    def particles(self, case):
        return 1

    def _extras(self, case, model, guide, rng, m):
        dream_z, dream_x = protocol.sample_model(model, case.theta, m, rng)
        return case._replace(dream_z=dream_z, dream_x=dream_x)

    def permuted(self, case):
        order = np.roll(np.arange(self.size(case)), 1)
        return case._replace(dream_z=np.asarray(case.dream_z)[order], dream_x=np.asarray(case.dream_x)[order])

    def singles(self, case):
        return [case._replace(dream_z=np.asarray(case.dream_z)[m:m + 1], dream_x=np.asarray(case.dream_x)[m:m + 1])
                for m in range(self.size(case))]

    def shifted(self, model, guide, case, c):
        return model, case

    def applies(self, model, guide):
        if not protocol.serves(model, "sample"):
            return "needs dreams (z, x) ~ p_θ: the model must serve sample()"
        return None


class _Insomnia(_Dreams):
    name, names = "insomnia", ("model", "guide", "theta", "phi", "x", "z", "dream_z", "dream_x", "iota")
    stochastic = Signature.stochastic
    evaluates_model = True

    size, particles, permuted, singles, shifted = (Signature.size, Signature.particles, Signature.permuted,
                                                   Signature.singles, Signature.shifted)     # insomnia keeps its dreams

    def _extras(self, case, model, guide, rng, m):
        return super()._extras(case, model, guide, rng, m)._replace(iota=float(rng.uniform(0.05, 0.95)))


class _Defensive(Signature):
    name, names = "defensive", ("model", "guide", "theta", "phi", "x", "z", "delta")

    def _extras(self, case, model, guide, rng, m):
        return case._replace(delta=float(rng.uniform(0.05, 0.95)))

    def proposal(self, model, guide, case):
        return family.DefensiveGuide(guide, case.delta, model=model)

    def on_proposal(self, entry):
        return ESTIMATORS["wake_phi"].reference             # wake-φ run with q_mix as the guide is defensive wake-φ

    def applies(self, model, guide):
        if protocol.domain(guide, "z") == "real":
            return ("needs a discrete latent: its default component r is uniform over a discrete z_domain, and this "
                    "guide's z is real")
        return None


#: signature name -> its object
SIGNATURES = {s.name: s for s in (_LogW(), Signature(), _Noise(), _Dreams(), _Insomnia(), _Defensive())}


@dataclass(frozen=True)
class Estimator:
    """One kind of estimator.

    name       rws_ref's function name, the kind everywhere
    function   rws_ref's implementation, called in ``signature``
    signature  its :class:`Signature` (SIGNATURES[name])
    output     "theta", "phi" (a gradient dict) or "bound" (L̂ per datapoint)
    direction  :data:`ASCENT`, :data:`DESCENT` or :data:`VALUE`
    mean       what its exact mean equals: "elbo_is" (exact ELBO_IS), "grad_elbo_is"
               (unbiased for ∇ ELBO_IS), "self_normalized" (rws_ref's exact mean, biased at
               finite K), "sleep_target", "insomnia" (ι·E[wake-φ] + (1 − ι)·its dreams),
               "zero at K = 1", ...
    min_k      the smallest K it is defined for
    method     the training method that uses it (rws_ref.experiments.train), or None
    summary    one line for reports and the exercises
    shift_invariant  a θ-free constant added to a datapoint's log joint leaves it unchanged (False for
               REINFORCE, whose learning signal L̂ moves with it)
    """
    name: str
    function: Callable
    signature: Signature
    output: str
    direction: str
    mean: str
    summary: str
    min_k: int = 1
    method: Optional[str] = None
    shift_invariant: bool = True

    def reference(self, model, guide, case):
        """rws_ref's own output for ``case``, as a dict (the bound's (N,) array as {"elbo_is": array})."""
        return as_output(self, self.function(*self.signature.arguments(model, guide, case)))


_S = SIGNATURES
ESTIMATORS = {e.name: e for e in [
    Estimator("elbo_is", elbo_is, _S["log_w"], "bound", VALUE, "elbo_is",
              "L̂_n = logsumexp_k log w_kn − log K, unbiased for ELBO_IS"),
    Estimator("wake_theta", wake_theta, _S["particles"], "theta", ASCENT, "grad_elbo_is",
              "(1/N) Σ_n Σ_k w̄_kn ∇_θ log p_θ(z_kn, x_n)"),
    Estimator("wake_phi", wake_phi, _S["particles"], "phi", DESCENT, "self_normalized",
              "(1/N) Σ_n Σ_k w̄_kn (−∇_φ log q_φ(z_kn | x_n)), w̄ held constant", method="wake"),
    Estimator("sleep_phi", sleep_phi, _S["dreams"], "phi", DESCENT, "sleep_target",
              "(1/M) Σ_m (−∇_φ log q_φ(z_m | x_m)) on dreams (z_m, x_m) ~ p_θ", method="sleep"),
    Estimator("insomnia", family.insomnia, _S["insomnia"], "phi", DESCENT, "insomnia",
              "ι · wake-φ + (1 − ι) · sleep-φ", method="insomnia"),
    Estimator("defensive_wake_phi", family.defensive_wake_phi, _S["defensive"], "phi", DESCENT, "self_normalized",
              "wake-φ with particles from (1 − δ) q_φ + δ r, weights p_θ / q_mix", method="defensive"),
    Estimator("iwae_phi", family.iwae_phi, _S["noise"], "phi", ASCENT, "grad_elbo_is",
              "(1/N) Σ_n Σ_k w̃_k (g_k − s_k), the reparameterized IWAE gradient", method="iwae"),
    Estimator("stl_phi", family.stl_phi, _S["noise"], "phi", ASCENT, "biased",
              "(1/N) Σ_n Σ_k w̃_k g_k, sticking the landing (score term dropped)"),
    Estimator("iwae_dreg_phi", family.iwae_dreg_phi, _S["noise"], "phi", ASCENT, "grad_elbo_is",
              "(1/N) Σ_n Σ_k w̃_k² g_k, doubly reparameterized IWAE"),
    Estimator("rws_dreg_phi", family.rws_dreg_phi, _S["noise"], "phi", DESCENT, "self_normalized",
              "−(1/N) Σ_n Σ_k (w̃_k − w̃_k²) g_k, doubly reparameterized wake-φ"),
    Estimator("reinforce_phi", family.reinforce_phi, _S["particles"], "phi", ASCENT, "grad_elbo_is",
              "(1/N) Σ_n Σ_k (L̂_n − w̄_kn) ∇_φ log q_φ(z_kn | x_n), score function", method="reinforce",
              shift_invariant=False),
    Estimator("vimco_phi", family.vimco_phi, _S["particles"], "phi", ASCENT, "grad_elbo_is",
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
    """The positional arguments of ``entry``'s signature for ``case`` (:meth:`Signature.arguments`)."""
    return entry.signature.arguments(model, guide, case, with_objects)


def as_output(entry, value):
    """An estimator's output as a dict: the bound's (N,) array becomes {"elbo_is": array}."""
    if entry.output == "bound" and not isinstance(value, dict):
        return {"elbo_is": value}
    return value


def reference_output(entry, model, guide, case):
    """rws_ref's own output for ``case``, as a dict (:meth:`Estimator.reference`)."""
    return entry.reference(model, guide, case)


def default_pair(entry):
    """The model and guide a check uses when none are given: LinearGaussian(2, 3) with its diagonal
    Gaussian guide; where that pair does not apply (defensive wake-φ, whose default component needs a
    discrete latent) a four-component mixture with a softmax guide."""
    pair = LinearGaussian(2, 3), DiagonalGaussianGuide(2, 3)
    if entry.signature.applies(*pair) is None:
        return pair
    return GaussianMixture(4, scale=6.0), SoftmaxLinearGuide(4, loc=15.0, scale=10.0)


def applies(entry, model, guide, K=None):
    """None if ``entry`` applies to this model and guide (and K), else the reason it does not."""
    if K is not None and K < entry.min_k:
        return f"{entry.name} needs K >= {entry.min_k}"
    if entry.output == "theta" and not model.theta_shapes:
        return f"{entry.name} is a gradient in θ, and the model has no parameters (theta_shapes = {{}})"
    if entry.output == "phi" and not guide.phi_shapes:
        return f"{entry.name} is a gradient in φ, and the guide has no parameters (phi_shapes = {{}})"
    reason = entry.signature.applies(model, guide)
    return f"{entry.name} {reason}" if reason else None
