"""Plain JAX bridge: RWS code written with ``jax.numpy`` and ``jax.random`` — no probabilistic-programming
framework — as an rws_ref protocol pair, and its losses checked on rws_ref's particles and end to end.

Hand over your densities, θ and φ (dicts name → array) and a batch::

    bridge = Bridge(log_joint, log_prob, theta, phi, x, z_domain=C, sample_guide=sample_guide)
    print(bridge.check_loss(lambda theta, phi, x, key: my_rws_loss(theta, phi, x, key, K), "wake_phi", K=K))

``log_joint(theta, z, x)`` and ``log_prob(phi, z, x)`` return (K, N) log densities for particles
(K, N, *z_shape).  A loss ``run(theta, phi, x, key)`` draws its particles itself; :meth:`Bridge.check_loss`
runs it inside :class:`Draws`, where every ``jax.random.categorical``, ``jax.random.bernoulli`` or
``jax.random.normal`` draw whose result has the shape of rws_ref's particles returns them (a real latent
reaches your code as noise ε through ``jax.random.normal``: rws_ref forces ε, found from the particles
through your ``reparameterize``), with JIT off so that a loss compiled before is traced anew.  Call the
functions through the module (``jax.random.categorical`` or ``random.categorical``), not names imported
from it, which the block cannot reach.
"""
import contextlib

import numpy as np

from .common import DensityBridge, Layout

try:
    import jax
    import jax.numpy as jnp
except ImportError as err:                      # pragma: no cover - the extra is not installed
    raise ImportError("rws_ref.checking.bridges.plain_jax needs JAX: pip install jax") from err

jax.config.update("jax_enable_x64", True)

__all__ = ["Bridge", "Draws"]

_FORCEABLE = ("categorical", "bernoulli", "normal")
_NO_NOISE = ("a real latent reaches plain JAX code as jax.random.normal noise, so rws_ref forces the noise: give the "
             "Bridge reparameterize=(phi, x, eps) -> z (your code's loc + scale · eps)")


class Draws:
    """Within the block, ``jax.random.categorical``, ``bernoulli`` and ``normal`` draws whose result has the
    shape of one of ``values`` ((role, array) pairs) return that array, in the draw's dtype; two of one
    shape are handed out in turn.  JIT is off inside the block; :attr:`drawn` lists the shapes of the
    draws left alone; the module's functions are put back when it ends."""

    def __init__(self, values):
        self.values = [(role, np.asarray(v)) for role, v in values]
        self.used = [0] * len(self.values)
        self.drawn, self._saved = [], {}
        self._stack = contextlib.ExitStack()

    def _wrap(self, name, original):
        def draw(*args, **kwargs):
            out = jax.eval_shape(lambda key: original(key, *args[1:], **kwargs), args[0])   # the shape it would have
            matches = [i for i, (_, v) in enumerate(self.values) if v.shape == tuple(out.shape)]
            if not matches:
                self.drawn.append((name, tuple(out.shape)))
                return original(*args, **kwargs)
            i = min(matches, key=lambda j: (self.used[j], j))
            self.used[i] += 1
            return jnp.asarray(self.values[i][1]).astype(out.dtype)
        return draw

    def __enter__(self):
        self._stack.enter_context(jax.disable_jit())
        for name in _FORCEABLE:
            self._saved[name] = getattr(jax.random, name)
            setattr(jax.random, name, self._wrap(name, self._saved[name]))
        return self

    def __exit__(self, *exc):
        for name, fn in self._saved.items():
            setattr(jax.random, name, fn)
        self._saved = {}
        self._stack.close()
        return False

    def unused(self):
        return [role for (role, _), n in zip(self.values, self.used) if n == 0]


def _arrays(params, what):
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise TypeError(f"{what} must be a dict name -> array; got {type(params).__name__}")
    out = {}
    for k, v in params.items():
        a = np.asarray(v)
        if a.dtype.kind not in "fiu":
            raise TypeError(f"{what}[{k!r}] must be a real array; got dtype {a.dtype}")
        out[k] = np.array(a, dtype=np.float64)
    return out


class Bridge(DensityBridge):
    """Your JAX model and guide densities as rws_ref's protocol pair (``.model``, ``.guide``).

    Parameters
    ----------
    log_joint, log_prob : ``(theta, z, x) -> (K, N)`` and ``(phi, z, x) -> (K, N)``, written with jax.numpy
    theta, phi : dicts name -> array, their values (θ and φ)
    x : a batch (N, *x_shape)
    z_shape, z_domain : your latent's shape and domain ("real", "binary" or C categories, as indices)
    sample_model : optional ``(theta, key, n) -> (z, x)``; sample_guide : optional ``(phi, key, x, K) -> z``
        (default, with reparameterize: reparameterize(phi, x, ε) with ε ~ N(0, I))
    reparameterize : optional ``(phi, x, eps) -> z``, a real latent as your code makes it from
        ``jax.random.normal`` noise, elementwise loc + scale · ε: it enables IWAE, STL and DReG, and lets
        rws_ref force given particles into a loss through their noise

    :meth:`check_loss` takes ``run(theta, phi, x, key)``, your loss (a scalar, or a tuple of scalars whose sum
    is differentiated by ``jax.grad``).
    """

    RUN = "(theta, phi, x, key)"

    def __init__(self, log_joint, log_prob, theta, phi, x, z_shape=(), z_domain="real", sample_model=None,
                 sample_guide=None, reparameterize=None):
        for name, fn in (("log_joint", log_joint), ("log_prob", log_prob)):
            if not callable(fn):
                raise TypeError(f"{name} must be a callable (params, z, x) -> (K, N); got {type(fn).__name__}")
        for name, fn in (("sample_model", sample_model), ("sample_guide", sample_guide),
                         ("reparameterize", reparameterize)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be a callable or None; got {type(fn).__name__}")
        if reparameterize is not None and z_domain != "real":
            raise ValueError(f"reparameterize needs a real latent (z_domain 'real'); got z_domain {z_domain!r}")
        if sample_guide is None and reparameterize is not None:
            def sample_guide(phi, key, x, K):
                return reparameterize(phi, x, jax.random.normal(key, (K, x.shape[0]) + tuple(z_shape)))
        self._densities = {"model": log_joint, "guide": log_prob}
        self._compiled = {}
        self._samplers, self._reparam = (sample_model, sample_guide), reparameterize
        self._observed = "x"
        x = np.array(x, dtype=np.float64)
        self._build("JAX", (log_joint, log_prob), (_arrays(theta, "theta"), _arrays(phi, "phi")),
                    Layout([("z", tuple(z_shape), z_domain)]), (tuple(x.shape[1:]), "real"),
                    reparameterize is not None, x, (sample_model is not None, sample_guide is not None))

    def __repr__(self):
        return f"plain_jax Bridge({self.model!r}, {self.guide!r})"

    # -- your densities on rws_ref's particles --------------------------------------------------------
    @staticmethod
    def _jnp(params, *arrays):
        return ({k: jnp.asarray(v, dtype=jnp.float64) for k, v in params.items()},
                *(jnp.asarray(a) for a in arrays))

    def _density(self, who, params, z, x):
        lp = self._densities[who](params, z, x)
        if tuple(jnp.shape(lp)) != tuple(jnp.shape(z)[:2]):
            raise ValueError(f"your log {'joint' if who == 'model' else 'prob'} returned shape {tuple(jnp.shape(lp))} "
                             f"for particles of shape {tuple(jnp.shape(z))}; rws_ref needs (K, N)")
        return lp

    def _jitted(self, what, who):
        """One compiled function per (what, who): jax.jit retraces on new shapes by itself."""
        if (what, who) not in self._compiled:
            density = lambda p, z, x: self._density(who, p, z, x)             # noqa: E731
            self._compiled[what, who] = jax.jit({
                "value": density,
                "weighted": jax.grad(lambda p, z, x, w: jnp.sum(w * density(p, z, x))),
                "grad_z": jax.grad(lambda p, z, x: jnp.sum(density(p, z, x)), argnums=1),
            }[what])
        return self._compiled[what, who]

    def _values(self, who, params, z, x):
        return np.array(self._jitted("value", who)(*self._jnp(params, z, x)), dtype=np.float64)

    def _weighted(self, who, params, z, x, weights):
        if not params:
            return {}
        grads = self._jitted("weighted", who)(*self._jnp(params, z, x, weights))
        return {k: np.array(g, dtype=np.float64) for k, g in grads.items()}

    def _grad_z(self, who, params, z, x):
        return np.array(self._jitted("grad_z", who)(*self._jnp(params, z, x)), dtype=np.float64)

    def _grad_z_log_joint(self, theta, z, x):
        return self._grad_z("model", theta, z, x)

    def _grad_z_log_prob(self, phi, z, x):
        return self._grad_z("guide", phi, z, x)

    def _reparameterize(self, phi, x, eps):
        return np.array(self._reparam(*self._jnp(phi, x, eps)), dtype=np.float64)

    def _pull_back(self, phi, x, eps, v):
        if not phi:
            return {}
        p, x, eps, v = self._jnp(phi, x, eps, v)
        grads = jax.grad(lambda q: jnp.sum(v * self._reparam(q, x, eps)))(p)
        return {k: np.array(g, dtype=np.float64) for k, g in grads.items()}

    @staticmethod
    def _key(rng):
        return jax.random.PRNGKey(int(rng.integers(2 ** 31)))

    def _sample_model(self, theta, n, rng):
        z, x = self._samplers[0](self._jnp(theta)[0], self._key(rng), n)
        return self.layout.numpy({"z": np.asarray(z)}), np.array(x, dtype=np.float64)

    def _sample_guide(self, phi, x, K, rng):
        p, x = self._jnp(phi, x)
        return self.layout.numpy({"z": np.asarray(self._samplers[1](p, self._key(rng), x, K))})

    # -- your loss on rws_ref's particles -----------------------------------------------------------
    def loss(self, run, kind, parts=("theta", "phi")):
        if self.layout.z_domain == "real" and self._reparam is None:
            raise ValueError(_NO_NOISE)
        return super().loss(run, kind, parts)

    def _noise_of(self, phi, x, z):
        """The noise ε with reparameterize(φ, x, ε) = z, for an elementwise loc + scale · ε; a clear error when
        the particles are real but there is no such reparameterization to invert."""
        if self._reparam is None:
            raise ValueError(_NO_NOISE)
        zero, one = (self._reparameterize(phi, x, np.full(np.shape(z), c)) for c in (0.0, 1.0))
        eps = (np.asarray(z) - zero) / (one - zero)
        if not np.allclose(self._reparameterize(phi, x, eps), z, rtol=1e-9, atol=1e-9):
            raise ValueError("your reparameterize is not elementwise loc + scale · eps, so rws_ref cannot find the "
                             "noise of given particles: check the reparameterized kinds (iwae_phi, stl_phi, …)")
        return eps

    def _run(self, run, theta, phi, x, forced, noise, seed=0):
        values = []
        for role, arrays in forced.items():
            for a in arrays:
                dream = role == "x" or np.ndim(a) == 1 + len(self.layout.z_shape)
                if role == "z" and self.layout.z_domain == "real" and not noise:
                    if dream:
                        raise ValueError("rws_ref cannot force real dreams into plain JAX code: your model turns "
                                         "jax.random.normal noise into z in a way it does not know; check your "
                                         "sleep-φ on given dreams with rws_ref.checking.testing.check_estimator")
                    a = self._noise_of(phi, x, a)
                values.append((("rws_ref's dreamt " + role) if dream else "rws_ref's particles", np.asarray(a)))
        p_theta, p_phi = self._jnp(self.theta if theta is None else theta)[0], self._jnp(phi)[0]
        args = (p_theta, p_phi, jnp.asarray(x), jax.random.PRNGKey(seed))
        if not values:                          # the loss's own draws (end to end): compiled once per loss
            (_, value), (g_theta, g_phi) = self._graded(run, True)(*args)
            return self._outputs(value, theta, g_theta, g_phi)
        with Draws(values) as draws:
            (_, value), (g_theta, g_phi) = self._graded(run, False)(*args)
        missing = draws.unused()
        if missing:
            raise ValueError(f"your code drew nothing of the shape of {missing[0]} "
                             f"{dict(values)[missing[0]].shape}; its jax.random.{'/'.join(_FORCEABLE)} draws had "
                             f"shapes {[s for _, s in draws.drawn] or 'none'} (rws_ref forces values into draws of "
                             f"exactly that shape: pass check_loss the K your loss draws)")
        return self._outputs(value, theta, g_theta, g_phi)

    def _graded(self, run, compiled):
        """(value, aux), (∇θ, ∇φ) of ``run``'s loss (a tuple's sum), as a function of (θ, φ, x, key); jitted and
        kept per loss when ``compiled``."""
        def total(t, f, x, key):
            out = run(t, f, x, key)
            parts = out if isinstance(out, (tuple, list)) else (out,)
            return sum(jnp.sum(q) for q in parts), (parts[0] if len(parts) == 1 else None)
        graded = jax.value_and_grad(total, argnums=(0, 1), has_aux=True)
        if not compiled:
            return graded
        if self._compiled.get("run", (None,))[0] is not run:
            self._compiled["run"] = (run, jax.jit(graded))
        return self._compiled["run"][1]

    @staticmethod
    def _outputs(value, theta, g_theta, g_phi):
        as_np = lambda g: {k: np.array(v, dtype=np.float64) for k, v in g.items()}        # noqa: E731
        return None if value is None else float(value), None if theta is None else as_np(g_theta), as_np(g_phi)
