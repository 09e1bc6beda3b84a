"""Exact ELBO_IS and exact E[wake-φ] at any K for a one-dimensional latent.

A test oracle that needs no Monte Carlo.  With normalized weights
ω(z) = p_θ(z|x) / q_φ(z|x) (so E_q ω = 1) and the Laplace transform
L(t) = E_q exp(−t ω), for K independent particles:

  ELBO_IS(K) − log p_θ(x) = E log((1/K) Σ_k ω_k)
                          = ∫_0^∞ (e^{−t} − L(t/K)^K) / t dt       (Frullani)

  E[Σ_k w̄_k f(z_k)]      = K E_{z_1}[ω_1 f(z_1) J(ω_1)],
  J(ω_1)                  = E[1 / (ω_1 + Σ_{k≥2} ω_k)] = ∫_0^∞ e^{−t ω_1} L(t)^{K−1} dt,

using 1/a = ∫_0^∞ e^{−ta} dt and independence.  Expectations over q are
Gauss–Hermite sums (``nodes`` points); the t-integrals are adaptive
quadrature.  The guide must be wider than the posterior (s² > S) so that
ω is bounded and every integrand is smooth.
"""
import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy import integrate


class OneDimensionalOracle:
    def __init__(self, model, guide, theta, phi, x, nodes=120):
        assert model.dz == 1 and x.shape[0] == 1
        xi, weights = hermegauss(nodes)
        mean = guide.mean(phi, x)[0, 0]
        s = float(np.exp(phi["log_s"][0]))
        self.z = (mean + s * xi).reshape(-1, 1, 1)                  # (G, 1, 1) particles
        self.prob = weights / np.sqrt(2 * np.pi)                    # Gauss–Hermite weights
        self.log_p_x = float(model.log_marginal(theta, x)[0])
        log_w = np.array([model.log_joint(theta, z[None], x)[0, 0] - guide.log_prob(phi, z[None], x)[0, 0]
                          for z in self.z])
        self.omega = np.exp(log_w - self.log_p_x)
        self.model, self.guide, self.theta, self.phi, self.x = model, guide, theta, phi, x

    def laplace(self, t):
        return np.exp(-np.multiply.outer(np.atleast_1d(t), self.omega)) @ self.prob

    def elbo_is(self, K):
        def integrand(t):
            return (np.exp(-t) - self.laplace(t / K)[0] ** K) / t if t > 0 else K - 1.0
        value, _ = integrate.quad(integrand, 0, np.inf, limit=500, epsabs=1e-13, epsrel=1e-12)
        return self.log_p_x + value

    def chi2(self):
        """χ²(p ‖ q) = E_q ω² − 1; K (log p − ELBO_IS(K)) → χ²/2 as K → ∞."""
        return float(self.prob @ self.omega ** 2 - 1.0)

    def _wake_phi_integrand(self):
        # f(z) = −∇_φ log q_φ(z|x) at every node, as a dict of (G, *shape) arrays
        grads = [self.guide.grad_log_prob(self.phi, z[None], self.x, np.ones((1, 1))) for z in self.z]
        return {key: -np.array([g[key] for g in grads]) for key in grads[0]}

    def wake_phi_mean(self, K):
        """Exact E[wake-φ] with K particles (a dict)."""
        f = self._wake_phi_integrand()
        if K == 1:
            J = 1.0 / self.omega
        else:
            J, _ = integrate.quad_vec(lambda t: np.exp(-t * self.omega) * self.laplace(t)[0] ** (K - 1),
                                      0, np.inf, epsabs=1e-14, epsrel=1e-12)
        c = K * self.prob * self.omega * J
        return {key: np.tensordot(c, value, axes=1) for key, value in f.items()}

    def wake_phi_leading_bias(self):
        """c₁ with E[wake-φ] − target = c₁ / K + O(1/K²): c₁ = −E_q[ω² (f − target)]."""
        f = self._wake_phi_integrand()
        out = {}
        for key, value in f.items():
            target = np.tensordot(self.prob * self.omega, value, axes=1)
            out[key] = -np.tensordot(self.prob * self.omega ** 2, value - target, axes=1)
        return out
