"""Bring your own model: densities written in any framework, as a protocol model and guide.

Your log densities are callables that take NumPy arrays and return anything
``numpy.asarray`` turns into a float64 array of shape (K, N) — a NumPy array,
a JAX array, or a PyTorch tensor after ``.detach().numpy()``.  Their parameter
gradients come either as the weighted sum the protocol asks for, or per
particle (dict of (K, N, *param_shape) arrays), which the adapter contracts
with the weights.  The result follows the protocol (docs/protocol.md), so every
layer of rws_ref — the estimators, the exact oracle on a finite support,
training, the audit, ``check_estimator`` — works on it::

    model = adapters.Model(theta_shapes={"means": (3,)}, z_shape=(), x_shape=(), z_domain=3,
                           log_joint=my_log_joint, per_particle_grad=my_grads, support=lambda: np.arange(3))
"""
import numpy as np
from autograd.tracer import Box

from .. import protocol

__all__ = ["Model", "Guide"]


def _as_log_density(value, kn, who):
    if isinstance(value, Box):                  # densities written in autograd.numpy stay traceable
        return value
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != kn:
        raise ValueError(f"{who} returned shape {arr.shape}; rws_ref needs (K, N) = {kn}")
    return arr


def _as_gradient(value, shapes, who):
    if not isinstance(value, dict):
        raise TypeError(f"{who} must return a dict keyed like the parameters; got {type(value).__name__}")
    return protocol.validate_params({k: np.asarray(v, dtype=np.float64) for k, v in value.items()}, shapes,
                                    f"{who} output")


def _contract(per_particle, shapes, weights, who):
    """Σ_{k,n} weights[k, n] · g[k, n] for per-particle gradients g (K, N, *shape)."""
    if not isinstance(per_particle, dict) or per_particle.keys() != shapes.keys():
        raise ValueError(f"{who} must return a dict with keys {sorted(shapes)}")
    out = {}
    for key, shape in shapes.items():
        g = np.asarray(per_particle[key], dtype=np.float64)
        if g.shape != weights.shape + tuple(shape):
            raise ValueError(f"{who}[{key!r}] must have shape (K, N, *{tuple(shape)}) = "
                             f"{weights.shape + tuple(shape)}; got {g.shape}")
        out[key] = np.tensordot(weights, g, axes=([0, 1], [0, 1]))
    return out


def _shape(value, name):
    """A shape: a tuple (or list) of non-negative integers; an int or anything else is a clear error."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a tuple of dimensions, e.g. (3,) or () for a scalar; got "
                        f"{type(value).__name__} {value!r}")
    dims = tuple(value)
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in dims):
        raise TypeError(f"{name} must hold positive integer dimensions; got {value!r}")
    return tuple(int(d) for d in dims)


def _checked_callable(fn, name):
    if not callable(fn):
        raise TypeError(f"{name} must be a callable; got {type(fn).__name__}")
    return fn


def _as_particle_array(value, shape, who):
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{who} returned dtype {arr.dtype}; expected a real array of shape {shape}")
    arr = arr.astype(np.float64)
    if arr.shape != tuple(shape):
        raise ValueError(f"{who} returned shape {arr.shape}; expected {tuple(shape)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{who} returned non-finite values")
    return arr


def _normal(shapes, rng):
    return {k: 0.5 * rng.standard_normal(shape) for k, shape in shapes.items()}


class _Adapter:
    def __init__(self, shapes_attr, shapes, z_shape, x_shape, density, grad, per_particle_grad, sample, init,
                 z_domain, x_domain, name, extra):
        if not callable(density):
            raise TypeError(f"the log density must be a callable; got {type(density).__name__}")
        if (grad is None) == (per_particle_grad is None):
            raise TypeError("give exactly one of the weighted gradient (grad) and per_particle_grad")
        if not isinstance(shapes, dict):          # {}: a model (or guide) without parameters
            raise TypeError(f"{shapes_attr} must be a dict name -> shape (a tuple); got {type(shapes).__name__}")
        setattr(self, shapes_attr, {k: _shape(v, f"{shapes_attr}[{k!r}]") for k, v in shapes.items()})
        self.z_shape, self.x_shape = _shape(z_shape, "z_shape"), _shape(x_shape, "x_shape")
        self.z_domain, self.x_domain = z_domain, x_domain
        self._density, self._grad, self._per_particle = density, grad, per_particle_grad
        self._sample, self._init, self._name = sample, init, name
        self.unserved = () if sample is not None else ("sample",)     # protocol.serves: a method it cannot serve
        for key, fn in extra.items():
            if fn is not None:
                if not callable(fn):
                    raise TypeError(f"{key} must be a callable; got {type(fn).__name__}")
                setattr(self, key, fn)

    def __repr__(self):
        return self._name

    def _value(self, params, z, x):
        return _as_log_density(self._density(params, z, x), np.shape(z)[:2], f"{self._name} log density")

    def _weighted_grad(self, params, z, x, weights, shapes):
        if self._grad is not None:
            return _as_gradient(self._grad(params, z, x, weights), shapes, f"{self._name} gradient")
        return _contract(self._per_particle(params, z, x), shapes, np.asarray(weights, dtype=np.float64),
                         f"{self._name} per_particle_grad")

    def _missing(self, what):
        raise protocol.MissingCapability(f"{self._name} was built without {what}=; give it to use this capability")


class Model(_Adapter, protocol.Model):
    """A protocol model from callables.

    Parameters
    ----------
    theta_shapes : dict name -> shape
    z_shape, x_shape : tuples
    log_joint : callable (theta, z, x) -> (K, N) array-like, log p_θ(z_kn, x_n)
    grad_log_joint : callable (theta, z, x, weights) -> dict, ∇_θ Σ weights · log p, or
    per_particle_grad : callable (theta, z, x) -> dict of (K, N, *shape) arrays, ∇_θ log p per particle
    sample : callable (theta, n, rng) -> (z, x), optional (sleep-φ, training data, strategies)
    init_theta : callable (rng) -> theta, optional (default: every entry ~ N(0, 0.5²))
    z_domain, x_domain : "real", "binary" or an int C (categories)
    support, log_marginal : optional capabilities (docs/protocol.md), passed through
    grad_z_log_joint : callable (theta, z, x) -> (K, N, *z_shape), ∇_z log p_θ(z, x) per particle,
        optional: with a reparameterized guide it enables IWAE, STL and the DReG estimators
    name : str, for messages
    """

    def __init__(self, theta_shapes, z_shape, x_shape, log_joint, grad_log_joint=None, per_particle_grad=None,
                 sample=None, init_theta=None, z_domain="real", x_domain="real", support=None, log_marginal=None,
                 name="adapted model", grad_z_log_joint=None):
        super().__init__("theta_shapes", theta_shapes, z_shape, x_shape, log_joint, grad_log_joint,
                         per_particle_grad, sample, init_theta, z_domain, x_domain, name,
                         {"support": support, "log_marginal": log_marginal})
        if grad_z_log_joint is not None:
            self._grad_z = _checked_callable(grad_z_log_joint, "grad_z_log_joint")
            self.grad_z_log_joint = self._grad_z_log_joint

    def _grad_z_log_joint(self, theta, z, x):
        """The user's ∇_z log p per particle, validated: (K, N, *z_shape), finite."""
        theta, z, x = self._inputs(theta, z, x)
        return _as_particle_array(self._grad_z(theta, z, x), z.shape, f"{self._name} grad_z_log_joint")

    def init_theta(self, rng):
        """θ from the init_theta callable; without one, every entry ~ N(0, 0.5²)."""
        return self._init(rng) if self._init is not None else _normal(self.theta_shapes, rng)

    def sample(self, theta, n, rng):
        """(z, x) from the sample callable."""
        return self._sample(theta, n, rng) if self._sample is not None else self._missing("sample")

    def log_joint_vjp(self, theta, z, x):
        """The user's log joint, and the pullback from their gradient callable."""
        return self._value(theta, z, x), lambda w: self._weighted_grad(theta, z, x, w, self.theta_shapes)


class Guide(_Adapter, protocol.Guide):
    """A protocol guide from callables, as :class:`Model` with φ: ``log_prob(phi, z, x)``,
    ``grad_log_prob(phi, z, x, weights)`` or ``per_particle_grad(phi, z, x)``,
    ``sample(phi, x, K, rng)`` and ``init_phi(rng)``.

    A reparameterized guide z = z(ε, φ, x) gives three more callables, all or none:
    ``reparameterize(phi, x, eps) -> z`` (K, N, *z_shape), ``grad_z_log_prob(phi, z, x)``
    (∇_z log q_φ(z|x) at fixed φ, per particle) and ``pull_back(phi, x, eps, v) -> dict``
    (Σ_{k,n} (∂z_kn/∂φ)ᵀ v_kn: the chain rule through the particles, a vector-Jacobian product
    your framework's autodiff gives).  Then IWAE, STL and the DReG estimators run on it."""

    def __init__(self, phi_shapes, z_shape, x_shape, log_prob, grad_log_prob=None, per_particle_grad=None,
                 sample=None, init_phi=None, z_domain="real", x_domain="real", name="adapted guide",
                 reparameterize=None, grad_z_log_prob=None, pull_back=None):
        super().__init__("phi_shapes", phi_shapes, z_shape, x_shape, log_prob, grad_log_prob, per_particle_grad,
                         sample, init_phi, z_domain, x_domain, name, {})
        given = [f is not None for f in (reparameterize, grad_z_log_prob, pull_back)]
        if any(given) and not all(given):
            raise TypeError("a reparameterized guide needs all of reparameterize, grad_z_log_prob and pull_back")
        if all(given):
            self._reparam = _checked_callable(reparameterize, "reparameterize")
            self._grad_z = _checked_callable(grad_z_log_prob, "grad_z_log_prob")
            self._pull = _checked_callable(pull_back, "pull_back")
            self.reparameterize, self.grad_z_log_prob = self._reparameterize, self._grad_z_log_prob
            self.pull_back = self._pull_back

    def _reparameterize(self, phi, x, eps):
        """z = z(ε, φ, x) from the user's callable, validated (K, N, *z_shape) in the z domain."""
        phi, x = self.check_phi(phi), protocol.validate_x(self, x)
        eps = protocol.validate_z(self, eps, x.shape[0], name="eps")
        z = np.asarray(self._reparam(phi, x, eps), dtype=np.float64)
        if z.shape != eps.shape:
            raise ValueError(f"{self._name} reparameterize output must have shape {eps.shape} (that of eps); "
                             f"got {z.shape}")
        return protocol.validate_z(self, z, x.shape[0], name=f"{self._name} reparameterize output")

    def _grad_z_log_prob(self, phi, z, x):
        phi, z, x = self._inputs(phi, z, x)
        return _as_particle_array(self._grad_z(phi, z, x), z.shape, f"{self._name} grad_z_log_prob")

    def _pull_back(self, phi, x, eps, v):
        phi, x = self.check_phi(phi), protocol.validate_x(self, x)
        eps = protocol.validate_z(self, eps, x.shape[0], name="eps")
        v = _as_particle_array(v, eps.shape, "v")
        return _as_gradient(self._pull(phi, x, eps, v), self.phi_shapes, f"{self._name} pull_back")

    def init_phi(self, rng):
        """φ from the init_phi callable; without one, every entry ~ N(0, 0.5²)."""
        return self._init(rng) if self._init is not None else _normal(self.phi_shapes, rng)

    def sample(self, phi, x, K, rng):
        """Particles (K, N, *z_shape) from the sample callable."""
        return self._sample(phi, x, K, rng) if self._sample is not None else self._missing("sample")

    def log_prob_vjp(self, phi, z, x):
        """The user's log density, and the pullback from their gradient callable."""
        return self._value(phi, z, x), lambda w: self._weighted_grad(phi, z, x, w, self.phi_shapes)
