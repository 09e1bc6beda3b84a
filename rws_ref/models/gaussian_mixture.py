"""The Gaussian-mixture benchmark of Le et al. (2019) and its categorical guides.

Model (``GaussianMixture(n_components=20, means=None, scale=5.0)``)::

    p_θ(z)   = Categorical(π),  π = softmax(theta["logits"]),  z ∈ {0..C−1}
    p(x|z)   = N(x; mu_z, scale²),  fixed means (default mu_c = 10·c)

Particles are integer arrays of shape (K, N); data x has shape (N,).
The true mixing weights of the benchmark are π_c ∝ c + 5 (``true_theta``).

Guides, q_φ(z|x) = softmax(logits_φ(u)) with the input u = (x − loc) / scale
standardized by fixed constants:

- ``SoftmaxLinearGuide(n_components)``: logits = w·u + b.  The exact
  posterior has logits log π_c + x mu_c/σ² − mu_c²/(2σ²) + const(x), affine
  in x, so this guide holds it exactly (``exact_posterior_phi``).
- ``MLPGuide(n_components, hidden=(16, 16))``: tanh hidden layers, softmax
  output, with hand-written backpropagation.

Both share ∂/∂logits Σ_k ω_k log softmax(l)[z_k] = Σ_k ω_k (onehot(z_k) − q).
"""
import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from .._checks import as_float_array, check_count, check_draws, check_finite, check_rng
from ..numerics import LOG_2PI, array_module, log_softmax, logsumexp, softmax
from ..protocol import Guide, Model, support_log_joint, validate_x

__all__ = ["GaussianMixture", "SoftmaxLinearGuide", "MLPGuide", "benchmark_guide", "BENCHMARK_LOC",
           "BENCHMARK_SCALE"]

#: the guides' input standardization u = (x − loc)/scale on the C = 20 benchmark: about the mean and the
#: spread of x under the true mixture (means 0, 10, …, 190; weights ∝ c + 5)
BENCHMARK_LOC, BENCHMARK_SCALE = 95.0, 60.0


def benchmark_guide(kind="mlp"):
    """The guide of Le et al. (2019)'s C = 20 benchmark: ``MLPGuide(20, (16, 16))`` ("mlp") or
    ``SoftmaxLinearGuide(20)`` ("linear"), both standardizing x by :data:`BENCHMARK_LOC`,
    :data:`BENCHMARK_SCALE`."""
    if kind == "mlp":
        return MLPGuide(20, (16, 16), loc=BENCHMARK_LOC, scale=BENCHMARK_SCALE)
    if kind == "linear":
        return SoftmaxLinearGuide(20, loc=BENCHMARK_LOC, scale=BENCHMARK_SCALE)
    raise ValueError(f"kind must be 'mlp' or 'linear'; got {kind!r}")


class GaussianMixture(Model):
    """p_θ(z, x) = softmax(logits)_z · N(x; mu_z, scale²).

    Parameters
    ----------
    n_components : int
        C, the number of components.
    means : array_like (C,), optional
        Component means; default mu_c = 10·c.
    scale : float
        The shared standard deviation σ of every component (default 5).

    Notes
    -----
    θ key: ``logits`` (C,).  z_domain = C (integer indices), x real.
    Capabilities: ``support()`` {0, …, C−1}, ``joint_quadrature`` (Gauss–Hermite
    over x per component), ``log_marginal``, ``posterior`` (table), ``summary``
    (the mixing weights π).
    """

    def __init__(self, n_components=20, means=None, scale=5.0):
        self.n_components = check_count(n_components, "n_components", minimum=2)
        c = self.n_components
        if means is None:
            means = 10.0 * np.arange(c)
        self.means = check_finite(as_float_array(means, "means"), "means")
        if self.means.shape != (c,):
            raise ValueError(f"means must have shape (n_components,) = ({c},); got {self.means.shape}")
        if isinstance(scale, (bool, str)) or not isinstance(scale, (int, float, np.integer, np.floating)) \
                or not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive finite number; got {scale!r}")
        self.scale = float(scale)
        self.z_shape = ()
        self.x_shape = ()
        self.z_domain = c
        self.theta_shapes = {"logits": (c,)}

    def __repr__(self):
        return f"GaussianMixture(n_components={self.n_components}, scale={self.scale})"

    def support(self):
        """Every latent state, shape (C,): the integers 0..C−1."""
        return np.arange(self.n_components)

    def true_theta(self):
        """The benchmark's data-generating θ: π_c ∝ c + 5."""
        weights = np.arange(self.n_components) + 5.0
        return {"logits": np.log(weights / weights.sum())}

    def init_theta(self, rng):
        """Random θ near uniform mixing weights: logits ~ N(0, 0.1²)."""
        check_rng(rng)
        return {"logits": 0.1 * rng.standard_normal(self.n_components)}

    def mixing_weights(self, theta):
        """π = softmax(logits), shape (C,)."""
        return softmax(self.check_theta(theta)["logits"], axis=0)

    def summary(self, theta):
        """What training compares with the truth: {"pi": the mixing weights (C,)}."""
        return {"pi": self.mixing_weights(theta)}

    def sample(self, theta, n, rng):
        """Draw (z, x) ~ p_θ: z integer (n,), x float (n,)."""
        pi = self.mixing_weights(theta)
        n = check_count(n, "n")
        check_draws(n, (self.n_components,), f"sampling n = {n} pairs (z, x)")
        check_rng(rng)
        cdf = np.cumsum(pi)                  # inverse CDF, as _categorical does row by row: #{c : cdf_c < u}
        z = np.minimum(np.searchsorted(cdf, rng.random(n), side="left"), self.n_components - 1)
        return z, self.means[z] + self.scale * rng.standard_normal(n)

    def log_joint_vjp(self, theta, z, x):
        """log p_θ(z_kn, x_n) = log π_z + log N(x_n; mu_z, σ²) (K, N), and its pullback
        ω ↦ ∇_logits Σ ω log p = Σ ω (onehot(z) − π), one weighted count.  Trusts its input."""
        log_pi = log_softmax(theta["logits"], axis=0)
        resid = (x - self.means[z]) / self.scale
        log_p = log_pi[z] - 0.5 * resid ** 2 - np.log(self.scale) - 0.5 * LOG_2PI

        def pullback(weights):
            counts = np.bincount(z.reshape(-1), weights=weights.reshape(-1), minlength=self.n_components)
            return {"logits": counts - weights.sum() * np.exp(log_pi)}
        return log_p, pullback

    def joint_quadrature(self, theta, nodes):
        """Points (z_i, x_i) and probabilities P_i with Σ_i P_i f(z_i, x_i) = E_{p_θ(z,x)} f:
        ``nodes`` Gauss–Hermite points per component over x ~ N(mu_z, σ²).  z (P,), x (P,), P (P,)."""
        xi, w = hermegauss(check_count(nodes, "nodes"))
        pi = self.mixing_weights(theta)
        xs = (self.means[:, None] + self.scale * xi[None, :]).reshape(-1)
        return np.repeat(self.support(), nodes), xs, (pi[:, None] * w[None, :] / np.sqrt(2.0 * np.pi)).reshape(-1)

    def log_marginal(self, theta, x):
        """log p_θ(x_n) = logsumexp_c (log π_c + log N(x_n; mu_c, σ²)).  (N,)."""
        return logsumexp(support_log_joint(self, theta, x), axis=0)

    def posterior(self, theta, x):
        """Exact posterior table p_θ(z = c | x_n), shape (N, C), rows summing to 1."""
        return softmax(support_log_joint(self, theta, x), axis=0).T


def _categorical(probs, uniforms):
    """Inverse-CDF draws: probs (N, C), uniforms (K, N) → category indices (K, N)."""
    cdf = np.cumsum(probs, axis=-1)
    z = np.sum(uniforms[..., None] > cdf, axis=-1)
    return np.minimum(z, probs.shape[-1] - 1)        # guard against cdf[-1] = 1 − ε


class _CategoricalGuide(Guide):
    """Shared machinery of guides q_φ(z|x) = softmax(logits_φ(u)), u = (x − loc)/scale."""

    def __init__(self, n_components, loc, scale):
        self.n_components = check_count(n_components, "n_components", minimum=2)
        for name, value, positive in (("loc", loc, False), ("scale", scale, True)):
            if isinstance(value, (bool, str)) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not np.isfinite(value) or (positive and value <= 0):
                raise ValueError(f"{name} must be a {'positive ' if positive else ''}finite number; got {value!r}")
        self.loc, self.scale = float(loc), float(scale)
        self.z_shape = ()
        self.x_shape = ()
        self.z_domain = self.n_components

    def _inputs_u(self, x):
        return (x - self.loc) / self.scale

    def probs(self, phi, x):
        """q_φ(z = c | x_n), shape (N, C)."""
        phi, x = self.check_phi(phi), validate_x(self, x)
        return softmax(self._logits(phi, self._inputs_u(x)), axis=-1)

    def sample(self, phi, x, K, rng):
        """K independent particles per datapoint: integer array (K, N)."""
        probs = self.probs(phi, x)
        K = check_count(K, "K")
        check_draws(K * probs.shape[0], (self.n_components,), f"K = {K} particles for N = {probs.shape[0]} datapoints")
        check_rng(rng)
        return _categorical(probs, rng.random((K, probs.shape[0])))

    def _logits_and_state(self, phi, u):
        # the logits and whatever the backward pass reuses (nothing, by default)
        return self._logits(phi, u), None

    def log_prob_vjp(self, phi, z, x):
        """log q_φ(z_kn | x_n) (K, N) and its pullback, by backpropagation from the logits:
        G_nc = Σ_k ω_kn ([z_kn = c] − q_φ(c | x_n)), pulled back through logits_φ.  Trusts its input."""
        u = self._inputs_u(x)
        logits, state = self._logits_and_state(phi, u)
        log_q = log_softmax(logits, axis=-1)                               # (N, C)
        n, c = x.shape[0], self.n_components

        def pullback(weights):
            flat = (np.arange(n)[None, :] * c + z).reshape(-1)
            counts = np.bincount(flat, weights=weights.reshape(-1), minlength=n * c).reshape(n, c)
            return self._backprop(phi, u, counts - weights.sum(axis=0)[:, None] * np.exp(log_q), state)
        return log_q[np.arange(n)[None, :], z], pullback


class SoftmaxLinearGuide(_CategoricalGuide):
    """q_φ(z|x) = softmax(w·u + b), u = (x − loc)/scale.

    Parameters
    ----------
    n_components : int
    loc, scale : float
        Fixed input standardization (default 0 and 1).

    Notes
    -----
    φ keys: ``w`` (C,), ``b`` (C,).
    """

    def __init__(self, n_components=20, loc=0.0, scale=1.0):
        super().__init__(n_components, loc, scale)
        self.phi_shapes = {"w": (self.n_components,), "b": (self.n_components,)}

    def __repr__(self):
        return f"SoftmaxLinearGuide(n_components={self.n_components}, loc={self.loc}, scale={self.scale})"

    def init_phi(self, rng):
        """Random φ: w, b ~ N(0, 0.1²)."""
        check_rng(rng)
        return {"w": 0.1 * rng.standard_normal(self.n_components),
                "b": 0.1 * rng.standard_normal(self.n_components)}

    def _logits(self, phi, u):
        return u[:, None] * phi["w"] + phi["b"]

    def _backprop(self, phi, u, G, state=None):
        return {"w": u @ G, "b": G.sum(axis=0)}

    def exact_posterior_phi(self, model, theta):
        """The φ with q_φ(z|x) = p_θ(z|x) for every x (exists because the
        posterior logits log π_c + x mu_c/σ² − mu_c²/(2σ²) are affine in x)."""
        if not isinstance(model, GaussianMixture) or model.n_components != self.n_components:
            raise ValueError(f"model must be a GaussianMixture with {self.n_components} components; "
                             f"got {model!r}")
        theta = model.check_theta(theta)
        slope = model.means / model.scale ** 2
        return {"w": self.scale * slope,
                "b": log_softmax(theta["logits"], axis=0) + self.loc * slope
                - 0.5 * model.means ** 2 / model.scale ** 2}


class MLPGuide(_CategoricalGuide):
    """q_φ(z|x) = softmax(MLP(u)), tanh hidden layers, u = (x − loc)/scale.

    Parameters
    ----------
    n_components : int
    hidden : tuple of int
        Hidden-layer widths (default (16, 16)).
    loc, scale : float
        Fixed input standardization.

    Notes
    -----
    φ keys: ``W1``, ``b1``, …, ``W{L+1}``, ``b{L+1}`` with L = len(hidden);
    ``W_l`` has shape (width_l, width_{l−1}) (input width 1, output width C).
    """

    def __init__(self, n_components=20, hidden=(16, 16), loc=0.0, scale=1.0):
        super().__init__(n_components, loc, scale)
        if isinstance(hidden, (int, np.integer)):
            hidden = (hidden,)
        try:
            widths = [check_count(h, "hidden[i]") for h in hidden]
        except TypeError as err:
            raise TypeError(f"hidden must be a tuple of positive integers; got {hidden!r}") from err
        self.hidden = tuple(widths)
        sizes = [1] + widths + [self.n_components]
        self.n_layers = len(sizes) - 1
        self.phi_shapes = {}
        for layer in range(1, self.n_layers + 1):
            self.phi_shapes[f"W{layer}"] = (sizes[layer], sizes[layer - 1])
            self.phi_shapes[f"b{layer}"] = (sizes[layer],)

    def __repr__(self):
        return f"MLPGuide(n_components={self.n_components}, hidden={self.hidden})"

    def init_phi(self, rng):
        """Random φ: W_l ~ N(0, 1/fan_in), b_l = 0."""
        check_rng(rng)
        phi = {}
        for key, shape in self.phi_shapes.items():
            phi[key] = (rng.standard_normal(shape) / np.sqrt(shape[1]) if key[0] == "W"
                        else np.zeros(shape))
        return phi

    def _network(self, phi, u):
        # Activations h_0 = u, h_l = tanh(h_{l−1} W_lᵀ + b_l); returns them and the logits.
        xp = array_module(*phi.values())
        h = [u[:, None]]
        for layer in range(1, self.n_layers):
            h.append(xp.tanh(xp.matmul(h[-1], xp.transpose(phi[f"W{layer}"])) + phi[f"b{layer}"]))
        last = self.n_layers
        return h, xp.matmul(h[-1], xp.transpose(phi[f"W{last}"])) + phi[f"b{last}"]

    def _logits(self, phi, u):
        return self._network(phi, u)[1]

    def _logits_and_state(self, phi, u):
        h, logits = self._network(phi, u)
        return logits, h

    def _backprop(self, phi, u, G, state=None):
        h = state if state is not None else self._network(phi, u)[0]
        grad, delta = {}, G                                   # delta: ∂/∂(pre-activation)
        for layer in range(self.n_layers, 0, -1):
            grad[f"W{layer}"] = delta.T @ h[layer - 1]
            grad[f"b{layer}"] = delta.sum(axis=0)
            if layer > 1:
                delta = (delta @ phi[f"W{layer}"]) * (1.0 - h[layer - 1] ** 2)
        return {key: grad[key] for key in self.phi_shapes}
