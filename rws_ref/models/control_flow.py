"""A model with stochastic control flow: how many objects a scene holds decides which latents exist.

Model (``Scene1D(n_max=3, positions=8, pixels=16)``), a one-dimensional "attend, infer, repeat"::

    n        ~ Categorical(softmax(count_logits)),        n ∈ {0, …, n_max}
    p_i      ~ Categorical(softmax(position_logits)),     i = 1 … n   (only the first n exist)
    x_d      ~ N(a · Σ_{i ≤ n} B[p_i, d], σ²),             d = 0 … D − 1,   a = exp(log_brightness)

B[p, d] = exp(−(d − c_p)² / (2 w²)) is a bump of width w centred on pixel c_p = (p + ½)·D/P − ½.
The program draws n first and then runs a loop n times: the number of latent variables is itself
random, so no fixed reparameterization z = g(ε, φ) exists (n and the p_i are discrete, and a
different n changes which p_i there are at all).

**Representation (docs/protocol.md, "Variable-length latents").**  One latent is the padded integer
vector z = (n, p_1, …, p_{n_max}) of shape (1 + n_max,), the absent positions p_i (i > n) set to 0:
the canonical padding.  z_domain = max(n_max + 1, P).  Both densities are −inf for a vector that is not
canonical (n > n_max, a position ≥ P, an absent position other than 0), so the padded domain carries
exactly the distribution of the program; ``support()`` lists the Σ_{n ≤ n_max} P^n canonical states
(585 by default), so log p_θ(x), the posterior and every estimator's exact moments are enumerated.

Guide (``SceneGuide``), with control flow of its own: u = (x − loc)/scale, h = tanh(hid_w u + hid_b)
(H = 16 hidden units: counting bumps is not linear in the pixels) and::

    q(n | x)              = softmax(count_w h + count_b)
    q(p_i | x, p_{i−1})   = softmax(pos_w u + pos_b + pos_prev[p_{i−1}]),   p_0 = P (a start row)

The objects are proposed one after the other, each given the data and the one before it — the
autoregressive guide of an AIR-style model.

Gradients, with ω_kn the weights and onehot(·) an indicator vector::

    d count_logits    = Σ ω (onehot(n) − softmax(count_logits))
    d position_logits = Σ ω (Σ_{i ≤ n} onehot(p_i) − n · softmax(position_logits))
    d log_brightness  = Σ ω Σ_d (x_d − a r_d) a r_d / σ²,         r = Σ_{i ≤ n} B[p_i]

and for the guide, each present step i a softmax with cross-entropy gradient
G_i = ω (onehot(p_i) − q(· | x, p_{i−1})), pulled back into pos_w (G_i uᵀ), pos_b (G_i) and the row
p_{i−1} of pos_prev; the count step likewise into count_w (G hᵀ), count_b, and through h into hid_w, hid_b
(δ = (count_wᵀ G) ⊙ (1 − h²)).
"""
import numpy as np

from .._checks import check_count, check_draws, check_rng
from ..numerics import LOG_2PI, array_module, log_softmax, logsumexp, softmax
from ..protocol import Guide, Model, support_log_joint, validate_x

__all__ = ["Scene1D", "SceneGuide", "scene_states"]


def scene_states(n_max, positions):
    """Every canonical latent (n, p_1, …, p_{n_max}), shape (S, 1 + n_max), S = Σ_{n ≤ n_max} P^n:
    ordered by n, then lexicographically by the present positions; absent positions are 0."""
    rows = []
    for n in range(n_max + 1):
        grid = np.indices((positions,) * n).reshape(n, -1).T if n else np.zeros((1, 0), dtype=np.int64)
        block = np.zeros((grid.shape[0], 1 + n_max), dtype=np.int64)
        block[:, 0] = n
        block[:, 1:1 + n] = grid
        rows.append(block)
    return np.concatenate(rows)


def _categorical(probs, uniforms):
    # inverse-CDF draws along the last axis of probs, one uniform per row: #{c : cdf_c < u}
    cdf = np.cumsum(probs, axis=-1)
    return np.minimum(np.sum(uniforms[..., None] > cdf, axis=-1), probs.shape[-1] - 1)


class _Scene:
    """The layout shared by the model and its guide: the padded latent and its canonical form."""

    def _layout(self, n_max, positions, pixels):
        self.n_max = check_count(n_max, "n_max")
        self.positions = check_count(positions, "positions", minimum=2)
        self.pixels = check_count(pixels, "pixels")
        self.z_shape = (1 + self.n_max,)
        self.x_shape = (self.pixels,)
        self.z_domain = max(self.n_max + 1, self.positions)

    def _parts(self, z):
        """(n, positions, present, canonical) of padded latents z (..., 1 + n_max): n and the positions
        clipped into range so they index safely; ``present`` (..., n_max) marks the objects that exist;
        ``canonical`` (...) marks the vectors the program can produce."""
        n, pos = z[..., 0], z[..., 1:]
        present = np.arange(self.n_max) < n[..., None]                    # bool (..., n_max)
        canonical = (n <= self.n_max) & np.all(np.where(present, pos < self.positions, pos == 0), axis=-1)
        return np.minimum(n, self.n_max), np.minimum(pos, self.positions - 1), present, canonical

    def support(self):
        """Every canonical latent state, shape (S, 1 + n_max) (:func:`scene_states`)."""
        return scene_states(self.n_max, self.positions)


class Scene1D(_Scene, Model):
    """p_θ(z, x): a random number of objects at discrete positions, rendered as bumps plus noise.

    Parameters
    ----------
    n_max : int
        The most objects a scene holds (default 3).
    positions : int
        P, the number of discrete positions (default 8).
    pixels : int
        D, the length of the observation (default 16).
    width : float
        w, the width of an object's bump in pixels (default 1).
    noise : float
        σ, the standard deviation of the pixel noise (default 0.5).

    Notes
    -----
    θ keys: ``count_logits`` (n_max + 1,), ``position_logits`` (P,), ``log_brightness`` ().
    z_domain = max(n_max + 1, P) (integer), x real (D,).
    Capabilities: ``support()`` (the canonical padded states), ``log_marginal``, ``posterior``,
    ``count_posterior``, ``summary``.
    """

    def __init__(self, n_max=3, positions=8, pixels=16, width=1.0, noise=0.5):
        self._layout(n_max, positions, pixels)
        for name, value in (("width", width), ("noise", noise)):
            if isinstance(value, (bool, str)) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive finite number; got {value!r}")
        self.width, self.noise = float(width), float(noise)
        centres = (np.arange(self.positions) + 0.5) * self.pixels / self.positions - 0.5
        self.bumps = np.exp(-0.5 * ((np.arange(self.pixels)[None, :] - centres[:, None]) / self.width) ** 2)
        self.theta_shapes = {"count_logits": (self.n_max + 1,), "position_logits": (self.positions,),
                             "log_brightness": ()}

    def __repr__(self):
        return (f"Scene1D(n_max={self.n_max}, positions={self.positions}, pixels={self.pixels}, "
                f"width={self.width}, noise={self.noise})")

    def true_theta(self):
        """The experiment's data-generating θ: P(n) ∝ (1, 3, 3, 2, 2, …) over n = 0 … n_max, position
        weights ∝ 1 + p (objects prefer the right), brightness a = 2 (4σ at the default noise)."""
        counts = np.array([1.0] + [3.0, 3.0] + [2.0] * self.n_max)[:self.n_max + 1]
        weights = 1.0 + np.arange(self.positions)
        return {"count_logits": np.log(counts / counts.sum()),
                "position_logits": np.log(weights / weights.sum()), "log_brightness": np.array(np.log(2.0))}

    def init_theta(self, rng):
        """Random θ: every logit ~ N(0, 0.1²), log_brightness ~ N(0, 0.1²) (brightness near 1)."""
        check_rng(rng)
        return {key: 0.1 * rng.standard_normal(shape) for key, shape in self.theta_shapes.items()}

    def summary(self, theta):
        """What training compares with the truth: the count and position probabilities and the
        brightness (as a 1-element array)."""
        theta = self.check_theta(theta)
        return {"count_probs": softmax(theta["count_logits"], axis=0),
                "position_probs": softmax(theta["position_logits"], axis=0),
                "brightness": np.exp(theta["log_brightness"]).reshape(1)}

    def render(self, theta, z):
        """The noiseless image a · Σ_{i ≤ n} B[p_i] of canonical latents z (..., 1 + n_max): (..., D)."""
        theta = self.check_theta(theta)
        z = np.asarray(z)
        if z.shape[-1:] != self.z_shape:
            raise ValueError(f"z must end in shape {self.z_shape}; got {z.shape}")
        _, pos, present, _ = self._parts(z)
        return np.exp(theta["log_brightness"]) * np.einsum("...i,...id->...d", present.astype(np.float64),
                                                            self.bumps[pos])

    def sample(self, theta, n, rng):
        """Draw (z, x) ~ p_θ: z integer (n, 1 + n_max) in canonical form, x float (n, D)."""
        theta = self.check_theta(theta)
        n = check_count(n, "n")
        check_draws(n, (1 + self.n_max + self.pixels,), f"sampling n = {n} scenes (z, x)")
        check_rng(rng)
        count = _categorical(softmax(theta["count_logits"], axis=0), rng.random(n))
        pos = _categorical(softmax(theta["position_logits"], axis=0), rng.random((n, self.n_max)))
        z = np.concatenate([count[:, None], np.where(np.arange(self.n_max) < count[:, None], pos, 0)], axis=1)
        return z, self.render(theta, z) + self.noise * rng.standard_normal((n, self.pixels))

    def log_joint_vjp(self, theta, z, x):
        """log p_θ(z_kn, x_n) (K, N), −inf off the canonical form, and its pullback
        ω ↦ ∇_θ Σ ω log p (the formulas in the module docstring).  Trusts its input."""
        xp = array_module(*theta.values())
        n, pos, present, canonical = self._parts(z)
        log_pc = log_softmax(theta["count_logits"], axis=0)
        log_pp = log_softmax(theta["position_logits"], axis=0)
        brightness = xp.exp(theta["log_brightness"])
        shape = np.einsum("kni,knid->knd", present.astype(np.float64), self.bumps[pos])              # r (K, N, D)
        resid = (x - brightness * shape) / self.noise
        log_p = (log_pc[n] + xp.sum(present * log_pp[pos], axis=-1) - 0.5 * xp.sum(resid ** 2, axis=-1)
                 - self.pixels * (np.log(self.noise) + 0.5 * LOG_2PI))
        log_p = xp.where(canonical, log_p, -np.inf)

        def pullback(weights):
            w = np.where(canonical, weights, 0.0)
            pc, pp = np.exp(log_pc), np.exp(log_pp)
            per_object = np.broadcast_to(w[..., None], present.shape)[present]
            return {"count_logits": np.bincount(n.reshape(-1), w.reshape(-1), minlength=self.n_max + 1)
                    - w.sum() * pc,
                    "position_logits": np.bincount(pos[present], per_object, minlength=self.positions)
                    - np.sum(w * n) * pp,
                    "log_brightness": np.array(np.sum(w * np.sum(resid * brightness * shape, axis=-1))
                                               / self.noise)}
        return log_p, pullback

    def log_marginal(self, theta, x):
        """log p_θ(x_n) by summing over the canonical states.  (N,)."""
        return logsumexp(support_log_joint(self, theta, x), axis=0)

    def posterior(self, theta, x):
        """Exact posterior table p_θ(z = support()[s] | x_n), shape (N, S)."""
        return softmax(support_log_joint(self, theta, x), axis=0).T

    def count_posterior(self, theta, x):
        """p_θ(n | x_n) for n = 0 … n_max, shape (N, n_max + 1): the posterior summed within each n."""
        return _by_count(self.posterior(theta, x), self.support()[:, 0], self.n_max)


def _by_count(table, counts, n_max):
    # (N, S) probabilities of the states → (N, n_max + 1) probabilities of their counts
    return np.stack([table[:, counts == c].sum(axis=1) for c in range(n_max + 1)], axis=1)


class SceneGuide(_Scene, Guide):
    """q_φ(z|x) = q(n|x) Π_{i ≤ n} q(p_i | x, p_{i−1}): the count, then the objects one by one.

    Parameters
    ----------
    n_max, positions, pixels : int
        As the model's.
    hidden : int
        H, the tanh units of the count's hidden layer (default 16).
    loc, scale : float
        Fixed input standardization u = (x − loc)/scale (default 0 and 1).

    Notes
    -----
    φ keys: ``hid_w`` (H, D), ``hid_b`` (H,), ``count_w`` (n_max + 1, H), ``count_b`` (n_max + 1,),
    ``pos_w`` (P, D), ``pos_b`` (P,), ``pos_prev`` (P + 1, P) — row P is the start.
    """

    def __init__(self, n_max=3, positions=8, pixels=16, hidden=16, loc=0.0, scale=1.0):
        self._layout(n_max, positions, pixels)
        self.hidden = check_count(hidden, "hidden")
        for name, value, positive in (("loc", loc, False), ("scale", scale, True)):
            if isinstance(value, (bool, str)) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not np.isfinite(value) or (positive and value <= 0):
                raise ValueError(f"{name} must be a {'positive ' if positive else ''}finite number; got {value!r}")
        self.loc, self.scale = float(loc), float(scale)
        c, p, d, h = self.n_max + 1, self.positions, self.pixels, self.hidden
        self.phi_shapes = {"hid_w": (h, d), "hid_b": (h,), "count_w": (c, h), "count_b": (c,), "pos_w": (p, d),
                           "pos_b": (p,), "pos_prev": (p + 1, p)}

    def __repr__(self):
        return (f"SceneGuide(n_max={self.n_max}, positions={self.positions}, pixels={self.pixels}, "
                f"hidden={self.hidden}, loc={self.loc}, scale={self.scale})")

    def init_phi(self, rng):
        """Random φ: hid_w ~ N(0, 1/D), every other entry ~ N(0, 0.1²)."""
        check_rng(rng)
        phi = {key: 0.1 * rng.standard_normal(shape) for key, shape in self.phi_shapes.items()}
        phi["hid_w"] = rng.standard_normal(self.phi_shapes["hid_w"]) / np.sqrt(self.pixels)
        return phi

    def _heads(self, phi, x):
        # u, the hidden layer h (N, H), the count logits (N, n_max + 1) and the data part of the position
        # logits (N, P)
        xp = array_module(*phi.values())
        u = (x - self.loc) / self.scale
        h = xp.tanh(xp.dot(u, xp.transpose(phi["hid_w"])) + phi["hid_b"])
        return (u, h, xp.dot(h, xp.transpose(phi["count_w"])) + phi["count_b"],
                xp.dot(u, xp.transpose(phi["pos_w"])) + phi["pos_b"])

    def count_probs(self, phi, x):
        """q_φ(n | x_n) for n = 0 … n_max, shape (N, n_max + 1)."""
        phi, x = self.check_phi(phi), validate_x(self, x)
        return softmax(self._heads(phi, x)[2], axis=-1)

    def sample(self, phi, x, K, rng):
        """K independent particles per datapoint: integer array (K, N, 1 + n_max), canonical."""
        phi, x = self.check_phi(phi), validate_x(self, x)
        K = check_count(K, "K")
        N = x.shape[0]
        check_draws(K * N, self.z_shape, f"K = {K} particles for N = {N} datapoints")
        check_rng(rng)
        _, _, count_logits, base = self._heads(phi, x)
        z = np.zeros((K, N, 1 + self.n_max), dtype=np.int64)
        z[..., 0] = n = _categorical(softmax(count_logits, axis=-1), rng.random((K, N)))
        prev = np.full((K, N), self.positions)
        for i in range(self.n_max):
            p = _categorical(softmax(base + phi["pos_prev"][prev], axis=-1), rng.random((K, N)))
            z[..., 1 + i] = np.where(i < n, p, 0)
            prev = p
        return z

    def log_prob_vjp(self, phi, z, x):
        """log q_φ(z_kn | x_n) (K, N), −inf off the canonical form, and its pullback
        ω ↦ ∇_φ Σ ω log q (module docstring).  Trusts its input."""
        xp = array_module(*phi.values())
        n, pos, present, canonical = self._parts(z)
        u, h, count_logits, base = self._heads(phi, x)
        N, P = x.shape[0], self.positions
        prev = np.concatenate([np.full(pos.shape[:-1] + (1,), P), pos[..., :-1]], axis=-1)   # (K, N, n_max)
        log_qc = log_softmax(count_logits, axis=-1)                                         # (N, n_max + 1)
        # one position step's log-probabilities for each datapoint and each previous position, looked up
        # per particle (a (N, P + 1, P) table instead of one softmax per particle and step)
        log_table = log_softmax(base[:, None, :] + phi["pos_prev"][None], axis=-1)         # (N, P + 1, P)
        rows = np.arange(N)[None, :, None]
        picked = log_table[rows, prev, pos]                                                 # (K, N, n_max)
        log_q = log_qc[np.arange(N)[None, :], n] + xp.sum(present * picked, axis=-1)
        log_q = xp.where(canonical, log_q, -np.inf)

        def pullback(weights):
            w = np.where(canonical, weights, 0.0)
            c = self.n_max + 1
            counts = np.bincount((np.arange(N)[None, :] * c + n).reshape(-1), w.reshape(-1),
                                 minlength=N * c).reshape(N, c)
            g_count = counts - w.sum(axis=0)[:, None] * np.exp(log_qc)                      # (N, n_max + 1)
            q_pos = np.exp(log_table)[rows, prev]                                            # (K, N, n_max, P)
            g_pos = (w[..., None] * present)[..., None] * ((pos[..., None] == np.arange(P)) - q_pos)
            g_prev = np.bincount((prev[..., None] * P + np.arange(P)).reshape(-1), g_pos.reshape(-1),
                                 minlength=(P + 1) * P).reshape(P + 1, P)
            g_data = g_pos.sum(axis=(0, 2))                                                  # (N, P)
            delta = (g_count @ phi["count_w"]) * (1.0 - h ** 2)                             # (N, H)
            return {"hid_w": delta.T @ u, "hid_b": delta.sum(axis=0), "count_w": g_count.T @ h,
                    "count_b": g_count.sum(axis=0), "pos_w": g_data.T @ u, "pos_b": g_data.sum(axis=0),
                    "pos_prev": g_prev}
        return log_q, pullback

    def count_accuracy(self, model, theta, phi, x):
        """How well q finds the number of objects, against the exact posterior count p_θ(n | x):
        ``{"tv": mean total-variation distance between q(n|x) and p_θ(n|x), "mode": fraction of
        datapoints where the two modes agree}`` — both exact (no sampling)."""
        q, p = self.count_probs(phi, x), model.count_posterior(theta, x)
        return {"tv": float(0.5 * np.abs(q - p).sum(axis=1).mean()),
                "mode": float(np.mean(q.argmax(axis=1) == p.argmax(axis=1)))}
