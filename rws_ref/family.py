"""The estimators RWS is mixed with and compared with.

Deterministic cores, like :mod:`rws_ref.estimators`: particles (or, for
reparameterized estimators, the base noise ``eps``) come in explicitly.
Weights are normalized per datapoint; batch results are means over datapoints.

Signs.  RWS-type φ-gradients (insomnia, defensive wake-φ, RWS-DReG) are, like
wake-φ and sleep-φ, **descent directions of the inclusive KL**.  IWAE-type
φ-gradients (IWAE, STL, IWAE-DReG, REINFORCE, VIMCO) are **ascent directions
of the bound ELBO_IS**, the objective they were built for.  The IWAE
θ-gradient is wake-θ itself (``rws_ref.wake_theta``): with z fixed, θ enters
only through the weights.

Notation, per datapoint, z_k = z(ε_k, φ) reparameterized, w̃ the normalized
weights: s_k = ∂_φ log q_φ(z|x) at z = z_k held fixed (the score); g_k the
path derivative, the gradient of log w_k through z_k alone, so that
d log w_k / dφ = g_k − s_k.  Then

    IWAE      = Σ_k w̃_k (g_k − s_k)        STL       = Σ_k w̃_k g_k
    IWAE-DReG = Σ_k w̃_k² g_k               RWS-DReG  = −Σ_k (w̃_k − w̃_k²) g_k   (descent)

and STL = IWAE − wake-φ, IWAE-DReG − RWS-DReG = STL.
"""
from typing import NamedTuple

import numpy as np

from . import protocol
from ._checks import check_count, check_fraction, check_rng
from ._trees import negate
from .estimators import forward_pass, log_weights, normalized_weights, sleep_phi, wake_phi
from .numerics import array_module, check_log_weights, log_mean_exp, logsumexp

__all__ = ["insomnia", "UniformDomain", "DefensiveGuide", "defensive_wake_phi",
           "iwae_phi", "stl_phi", "iwae_dreg_phi", "rws_dreg_phi",
           "reinforce_phi", "vimco_phi", "vimco_signals", "Reparameterized", "reparameterized_terms",
           "path_gradient"]


# -- insomnia -----------------------------------------------------------------------


def insomnia(model, guide, theta, phi, x, z, dream_z, dream_x, iota):
    """Insomnia: ι·wake-φ + (1 − ι)·sleep-φ.  Descent direction of the inclusive KL.

    Parameters
    ----------
    x, z : the wake batch (N, …) and its particles (K, N, …) from q_φ
    dream_z, dream_x : dreams (M, …) from ``model.sample``
    iota : float in [0, 1]
        ι = 1 is wake-φ exactly, ι = 0 is sleep-φ exactly.

    Returns
    -------
    dict with φ's keys.
    """
    iota = check_fraction(iota, "iota")
    wake = wake_phi(model, guide, theta, phi, x, z)
    sleep = sleep_phi(guide, phi, dream_z, dream_x)
    return {key: iota * wake[key] + (1.0 - iota) * sleep[key] for key in wake}


# -- defensive wake-φ ------------------------------------------------------------------


class UniformDomain:
    """r(z|x) uniform over a guide's finite latent: over ``states`` (S, *z_shape) when given, else the states
    of the guide's ``support()`` when it declares one (a padded variable-length latent, docs/protocol.md,
    whose domain holds states no program produces), else every entry of z (shape ``z_shape``) independently
    uniform on {0, …, C−1} of its declared discrete z_domain (C = 2 for "binary").  The default defensive
    component of any guide with a discrete z_domain (docs/protocol.md)."""

    def __init__(self, guide, states=None):
        protocol.check_guide(guide)
        self.z_shape, self.z_domain = tuple(guide.z_shape), protocol.domain(guide, "z")
        self.x_shape, self.x_domain = tuple(guide.x_shape), protocol.domain(guide, "x")
        if self.z_domain == "real":
            raise TypeError(f"defensive must be given for {guide!r}: a uniform default exists only for a "
                            f"discrete z_domain ('binary' or a number of categories), not 'real'")
        self.n_values = 2 if self.z_domain == "binary" else self.z_domain
        self.states = protocol.support(guide) if states is None else np.asarray(states)
        if self.states is None:
            self._log_r = -int(np.prod(self.z_shape, dtype=int)) * np.log(self.n_values)
        else:
            self._codes = np.sort(self._encode(self.states))
            self._log_r = -np.log(self.states.shape[0])

    def __repr__(self):
        over = "" if self.states is None else f", over {self.states.shape[0]} support() states"
        return f"UniformDomain(z_shape={self.z_shape}, z_domain={self.z_domain!r}{over})"

    def _encode(self, z):
        # each latent as one integer Σ_i z_i C^i (its entries are in 0..C−1), shape z.shape[:-len(z_shape)]
        flat = np.asarray(z).reshape(np.shape(z)[:np.ndim(z) - len(self.z_shape)] + (-1,)).astype(np.int64)
        return flat @ (self.n_values ** np.arange(flat.shape[-1], dtype=np.int64))

    def log_prob(self, z, x):
        """log r(z_kn | x_n): −size(z_shape) · log C, or −log S on the S support states (−inf off them);
        returns (K, N)."""
        x = protocol.validate_x(self, x)
        z = protocol.validate_z(self, z, x.shape[0])
        if self.states is None:
            return np.full(z.shape[:2], self._log_r)
        codes = self._encode(z)
        found = self._codes[np.minimum(np.searchsorted(self._codes, codes), self._codes.size - 1)] == codes
        return np.where(found, self._log_r, -np.inf)

    def sample(self, x, K, rng):
        """K uniform draws per datapoint: (K, N, *z_shape), int64 categories or float 0/1."""
        x = protocol.validate_x(self, x)
        size = (check_count(K, "K"), x.shape[0])
        if self.states is not None:
            return self.states[check_rng(rng).integers(0, self.states.shape[0], size=size)]
        draws = check_rng(rng).integers(0, self.n_values, size=size + self.z_shape)
        return draws.astype(np.float64) if self.z_domain == "binary" else draws


class DefensiveGuide:
    """The proposal q_mix(z|x) = (1 − δ) q_φ(z|x) + δ r(z|x) of defensive wake-φ.

    ``log_prob`` is log q_mix (the proposal the particles come from, so the
    weights are p_θ / q_mix) while ``grad_log_prob`` is that of the learned
    q_φ alone.  Wake-φ run with this guide *is* defensive wake-φ, and the exact
    oracle run with it enumerates multisets under q_mix.  It follows the guide
    protocol itself, every method written out.

    Parameters
    ----------
    guide : the learned guide q_φ
    delta : float in [0, 1]
    defensive : object with ``log_prob(z, x)`` and ``sample(x, K, rng)``;
        default :class:`UniformDomain` of the guide (guides with a discrete z_domain), uniform over the
        ``support()`` of ``model`` (or else of the guide) where one is declared.
    model : the model of the pair (optional): its ``support()`` is the default component's states
    """

    def __init__(self, guide, delta, defensive=None, model=None):
        self.guide = protocol.check_guide(guide)
        self.delta = check_fraction(delta, "delta")
        if defensive is None:
            defensive = UniformDomain(guide, None if model is None else protocol.support(model))
        if not (callable(getattr(defensive, "log_prob", None)) and callable(getattr(defensive, "sample", None))):
            raise TypeError(f"defensive must have log_prob(z, x) and sample(x, K, rng); "
                            f"got {type(defensive).__name__}")
        self.defensive = defensive
        protocol.copy_declarations(self, guide, "phi_shapes")

    def __repr__(self):
        return f"DefensiveGuide({self.guide!r}, delta={self.delta}, defensive={self.defensive!r})"

    def init_phi(self, rng):
        """The learned guide's initial φ."""
        return self.guide.init_phi(rng)

    def _log_mix(self, log_q, log_r):
        xp = array_module(log_q)
        with np.errstate(divide="ignore"):
            return xp.logaddexp(np.log1p(-self.delta) + log_q, np.log(self.delta) + np.asarray(log_r))

    def sample(self, phi, x, K, rng):
        """K particles per datapoint from q_mix: each from r with probability δ, else q_φ."""
        check_rng(rng)
        from_q = self.guide.sample(phi, x, K, rng)
        from_r = np.asarray(self.defensive.sample(x, K, rng))
        pick_r = rng.random(from_q.shape[:2]) < self.delta
        return np.where(pick_r.reshape(pick_r.shape + (1,) * (from_q.ndim - 2)), from_r, from_q)

    def log_prob(self, phi, z, x):
        """log q_mix(z_kn | x_n); returns (K, N)."""
        return self._log_mix(self.guide.log_prob(phi, z, x), self.defensive.log_prob(z, x))

    def log_prob_vjp(self, phi, z, x):
        """(log q_mix (K, N), the learned guide's pullback): one forward pass of q_φ."""
        log_q, pullback = protocol.guide_forward(self.guide, phi, z, x)
        return self._log_mix(log_q, self.defensive.log_prob(z, x)), pullback

    def grad_log_prob(self, phi, z, x, weights):
        """∇_φ Σ ω log q_φ(z|x) of the learned guide (not of the mixture)."""
        return self.guide.grad_log_prob(phi, z, x, weights)


def defensive_wake_phi(model, guide, theta, phi, x, z, delta, defensive=None):
    """Defensive wake-φ (δ-wake, Le et al. 2019).  Descent direction of the inclusive KL.

    ĝ = (1/N) Σ_n Σ_k w̄_kn (−∇_φ log q_φ(z_kn | x_n)), with z_kn drawn from
    q_mix = (1 − δ) q_φ + δ r and w̄ normalizing p_θ(z, x) / q_mix(z|x).
    Consistent for ∇_φ KL(p_θ(z|x) ‖ q_φ(z|x)) as K → ∞; δ = 0 is wake-φ exactly.

    Parameters
    ----------
    z : particles from ``DefensiveGuide(guide, delta, defensive).sample``
    delta : float in [0, 1]
    defensive : the component r (see :class:`DefensiveGuide`; by default uniform over the model's
        ``support()``, or over the guide's finite z_domain)

    Returns
    -------
    dict with φ's keys.
    """
    return wake_phi(model, DefensiveGuide(guide, delta, defensive, model), theta, phi, x, z)


# -- reparameterized estimators ------------------------------------------------------------


class Reparameterized(NamedTuple):
    """The parts every reparameterized estimator is built from, for z = z(ε, φ):
    x (N, …), z (K, N, …), log weights (K, N) and ∂ log w / ∂z at fixed φ (K, N, *z_shape)."""
    x: np.ndarray
    z: np.ndarray
    log_w: np.ndarray
    dlogw_dz: np.ndarray


def reparameterized_terms(model, guide, theta, phi, x, eps):
    """:class:`Reparameterized` for base noise ε (K, N, *z_shape), through the capabilities
    ``guide.reparameterize``, ``model.grad_z_log_joint`` and ``guide.grad_z_log_prob``."""
    for obj, name, method in ((model, "model", "grad_z_log_joint"), (guide, "guide", "pull_back"),
                              (guide, "guide", "reparameterize"), (guide, "guide", "grad_z_log_prob")):
        if not callable(getattr(obj, method, None)):
            raise TypeError(f"{name} must be reparameterizable (have {method}); got {type(obj).__name__}")
    x = protocol.validate_x(guide, x)
    z = guide.reparameterize(phi, x, eps)
    log_w = log_weights(model, guide, theta, phi, x, z)
    dlogw_dz = model.grad_z_log_joint(theta, z, x) - guide.grad_z_log_prob(phi, z, x)
    return Reparameterized(x, z, log_w, dlogw_dz)


def path_gradient(guide, phi, x, eps, coef, dlogw_dz):
    """Σ_kn coef_kn g_kn: the path derivatives g_k (the gradient of log w_k through z_k
    alone) weighted per particle, by the guide's ``pull_back`` through z = z(ε, φ)."""
    dlogw_dz = np.asarray(dlogw_dz)
    return guide.pull_back(phi, x, eps, coef.reshape(coef.shape + (1,) * (dlogw_dz.ndim - 2)) * dlogw_dz)


def iwae_phi(model, guide, theta, phi, x, eps):
    """Reparameterized IWAE φ-gradient (1/N) Σ_n Σ_k w̃_k (g_k − s_k).  Ascent of the bound.

    The exact φ-gradient of (1/N) Σ_n L̂_n with z_k = z(ε_k, φ).

    Parameters
    ----------
    eps : ndarray (K, N, *z_shape), the base noise ε ~ N(0, I)

    Returns
    -------
    dict with φ's keys.
    """
    r = reparameterized_terms(model, guide, theta, phi, x, eps)
    coef = normalized_weights(r.log_w) / r.x.shape[0]
    path = path_gradient(guide, phi, r.x, eps, coef, r.dlogw_dz)
    score = guide.grad_log_prob(phi, r.z, r.x, coef)
    return {key: path[key] - score[key] for key in path}


def stl_phi(model, guide, theta, phi, x, eps):
    """Sticking-the-landing (1/N) Σ_n Σ_k w̃_k g_k (score term dropped).  Ascent of the bound."""
    r = reparameterized_terms(model, guide, theta, phi, x, eps)
    return path_gradient(guide, phi, r.x, eps, normalized_weights(r.log_w) / r.x.shape[0], r.dlogw_dz)


def iwae_dreg_phi(model, guide, theta, phi, x, eps):
    """IWAE-DReG (Tucker et al. 2019) (1/N) Σ_n Σ_k w̃_k² g_k.  Ascent of the bound;
    unbiased for the IWAE φ-gradient's mean."""
    r = reparameterized_terms(model, guide, theta, phi, x, eps)
    return path_gradient(guide, phi, r.x, eps, normalized_weights(r.log_w) ** 2 / r.x.shape[0], r.dlogw_dz)


def rws_dreg_phi(model, guide, theta, phi, x, eps):
    """RWS-DReG (Tucker et al. 2019) −(1/N) Σ_n Σ_k (w̃_k − w̃_k²) g_k.  Descent of the KL;
    same mean as wake-φ at every K, identically zero at K = 1."""
    r = reparameterized_terms(model, guide, theta, phi, x, eps)
    w_bar = normalized_weights(r.log_w)
    return negate(path_gradient(guide, phi, r.x, eps, (w_bar - w_bar ** 2) / r.x.shape[0], r.dlogw_dz))


# -- score-function estimators (discrete guides) -----------------------------------------


def reinforce_phi(model, guide, theta, phi, x, z):
    """REINFORCE for ∇_φ ELBO_IS: (1/N) Σ_n Σ_k (L̂_n − w̄_kn) ∇_φ log q_φ(z_kn | x_n).  Ascent.

    The score-function term L̂ Σ_k ∇ log q(z_k) plus the gradient of L̂ at
    fixed particles, −Σ_k w̄_k ∇ log q(z_k).  Unbiased for ∇_φ ELBO_IS.

    Returns
    -------
    dict with φ's keys.
    """
    fp = forward_pass(model, guide, theta, phi, x, z)
    signal = log_mean_exp(fp.log_w, axis=0)[None, :] - normalized_weights(fp.log_w)       # L̂_n − w̄_kn
    return fp.pull_phi(signal / fp.log_w.shape[1])


def vimco_signals(log_w):
    """VIMCO's per-particle learning signals L̂ − L̂_{−k}, shape (K, N).

    L̂_{−k} replaces w_k by the geometric mean of the other K − 1 weights:
    log (1/K)(Σ_{j≠k} w_j + exp(mean_{j≠k} log w_j)).  Needs K ≥ 2.

    O(K·N) time and memory: Σ_{j≠k} w_j from running log-sums from both ends
    (no K × K table), everything relative to the largest log weight, so the
    signals are correct to rounding for log weights of any finite size (equal
    log weights give 0 within an ulp, not −inf or NaN).
    """
    log_w = check_log_weights(log_w)
    K = log_w.shape[0]
    if K < 2:
        raise ValueError(f"log_w must have K >= 2 particles for VIMCO's leave-one-out signals; got K = {K}")
    if np.isneginf(log_w).any():
        raise ValueError("log_w: VIMCO's geometric-mean baseline is undefined with a zero-weight "
                         "particle (log w = -inf)")
    c = log_w - log_w.max(axis=0)                                     # ≤ 0, no overflow anywhere
    geo = (c.sum(axis=0) - c) / (K - 1)                               # mean of the others' c
    before = np.logaddexp.accumulate(c, axis=0)                       # log Σ_{j≤k} e^{c_j}
    after = np.logaddexp.accumulate(c[::-1], axis=0)[::-1]            # log Σ_{j≥k} e^{c_j}
    edge = np.full((1, c.shape[1]), -np.inf)
    others = np.logaddexp(np.concatenate([edge, before[:-1]]), np.concatenate([after[1:], edge]))
    return logsumexp(c, axis=0)[None, :] - np.logaddexp(others, geo)


def vimco_phi(model, guide, theta, phi, x, z):
    """VIMCO (Mnih & Rezende 2016): (1/N) Σ_n Σ_k ((L̂ − L̂_{−k}) − w̄_k) ∇_φ log q_φ(z_k|x).  Ascent.

    REINFORCE with a leave-one-out control variate per particle; unbiased for
    ∇_φ ELBO_IS.  Needs K ≥ 2.
    """
    fp = forward_pass(model, guide, theta, phi, x, z)
    return fp.pull_phi((vimco_signals(fp.log_w) - normalized_weights(fp.log_w)) / fp.log_w.shape[1])
