"""NumPyro bridge: a NumPyro model and guide as an rws_ref protocol pair, and NumPyro's losses checked
on rws_ref's particles.

Write the model and the guide as NumPyro's users do — parameters with ``numpyro.param``, latent
sample sites and one observed site inside a plate over the data — and hand them over with an
example batch (several latent sites are one rws_ref latent, :class:`~.common.Layout`)::

    bridge = Bridge(model, guide, x)
    testing.check_estimator(my_wake_phi, "wake_phi", bridge.model, bridge.guide)
    elbo = RenyiELBO(alpha=0, num_particles=4)
    with Bridge.one_at_a_time(elbo):
        print(bridge.check_loss(lambda params, x: elbo.loss(key, params, model, guide, x), "iwae_phi"))

θ is the model's parameters and φ the guide's, keyed by their NumPyro names, with the values an
ELBO's ``param_map`` holds.  NumPyro runs an ELBO's particles under ``jax.vmap``, where a forced
value cannot differ from particle to particle: check an ELBO inside ``Bridge.one_at_a_time(elbo)``
(or build it with ``vectorize_particles=Bridge.particles``), a loop over the particles that tells
the bridge which one runs — the same numbers, without the vectorization.  The densities are jitted; draws take a
key seeded from rws_ref's ``rng``.
"""
import contextlib

import numpy as np

from .common import BridgeBase, Layout, check_unscaled, choose, density_shape_error, latent_sites

try:
    import jax
    import jax.numpy as jnp
    import numpyro
    from numpyro import handlers
    from numpyro.primitives import Messenger
except ImportError as err:                      # pragma: no cover - the extra is not installed
    raise ImportError("rws_ref.bridges.numpyro needs JAX and NumPyro: pip install 'rws_ref[numpyro]'") from err

jax.config.update("jax_enable_x64", True)

__all__ = ["Bridge", "Force"]

_PARTICLES = "rws_ref_particles"
_CURRENT = []                                   # the particle an ELBO is running, under Bridge.particles


class Force(Messenger):
    """Force values into sample sites (as the Pyro bridge's Force): ``values`` maps a site name to
    candidate arrays; with ``noise`` they are ε and the value is loc + scale · ε of the site's Normal."""

    def __init__(self, values, noise=False):
        super().__init__()
        self.values = {name: [jnp.asarray(v, dtype=jnp.float64) for v in vs] for name, vs in values.items()}
        self.noise = noise

    def process_message(self, msg):
        if msg["type"] != "sample" or msg["is_observed"] or msg["value"] is not None \
                or msg["name"] not in self.values:
            return                              # observed, or replayed from the guide's trace already
        fn = msg["fn"]
        value, _ = choose(msg["name"], self.values[msg["name"]], tuple(fn.batch_shape + fn.event_shape),
                          _CURRENT[-1] if _CURRENT else None)
        if self.noise:
            base = fn
            while hasattr(base, "base_dist"):
                base = base.base_dist
            if type(base).__name__ != "Normal":
                raise TypeError(f"rws_ref forces noise only into Normal sites; site {msg['name']!r} is "
                                f"{type(base).__name__}")
            value = base.loc + base.scale * value
        elif isinstance(_domain(fn.support), int):
            value = value.astype(jnp.int32)     # categorical sites take integer indices
        msg["value"] = value


def _domain(support):
    """rws_ref's domain of a NumPyro constraint: "binary", C categories, or "real"."""
    if not support.is_discrete:
        return "real"
    name = type(support).__name__
    if name == "_Boolean":
        return "binary"
    lower, upper = getattr(support, "lower_bound", None), getattr(support, "upper_bound", None)
    if lower is not None and int(np.asarray(lower)) == 0 and upper is not None:
        return int(np.asarray(upper)) + 1
    raise TypeError(f"rws_ref supports real, binary and categorical {{0..C-1}} sites; got the constraint {support}")


def _np(value):
    return np.array(value, dtype=np.float64)


class Bridge(BridgeBase):
    """A NumPyro ``model(x)`` and ``guide(x)`` as rws_ref's protocol pair (``.model``, ``.guide``).

    Parameters
    ----------
    model, guide : NumPyro programs called with the data batch (N, *x_shape)
    x : an example batch, used to discover the sites and the shapes
    latent : the latent sample site(s): a name or a list of names; None (the default) takes every latent
        site of the guide, in the order it draws them
    observed : the name of the observed site
    max_plate_nesting : the plates the programs nest (1: a plate over the data)
    seed : the key of the parameters' initial values (the programs' ``numpyro.param`` initializers)

    :meth:`check_loss` / :meth:`loss` take ``run(params, x)``: a NumPyro loss of θ and φ in one dict (an
    ELBO's param_map) and the batch, a scalar or a tuple of scalars (their sum is differentiated by
    ``jax.grad``).
    """

    RUN = "(params, x)"
    END_TO_END = False                  # the loss's key is the user's own

    def __init__(self, model, guide, x, latent=None, observed="x", max_plate_nesting=1, seed=0):
        for name, fn in (("model", model), ("guide", guide)):
            if not callable(fn):
                raise TypeError(f"{name} must be a NumPyro program (a callable); got {type(fn).__name__}")
        self._model, self._guide = model, guide
        self._observed = observed
        self._dim = -(int(max_plate_nesting) + 1)
        x = jnp.asarray(np.asarray(x, dtype=np.float64))
        key = jax.random.PRNGKey(seed)
        guide_trace = handlers.trace(handlers.seed(self._particles(guide, 1), key)).get_trace(x)
        model_trace = handlers.trace(handlers.seed(handlers.replay(self._particles(model, 1), guide_trace),
                                                   key)).get_trace(x)
        x_site = self._site(model_trace, observed, "model")
        if not x_site["is_observed"]:
            raise ValueError(f"the model's site {observed!r} must be observed (obs=x)")
        names = latent_sites(self._latents(model_trace), self._latents(guide_trace), latent)
        for name in names:
            site = guide_trace[name]
            shape = tuple(site["fn"].batch_shape)
            if not any(f.name != _PARTICLES and f.dim > self._dim for f in site["cond_indep_stack"]):
                shape = ()                      # in no plate but rws_ref's: a global latent
            if shape != (1, x.shape[0]):
                raise density_shape_error(name, shape, (1, x.shape[0]))
        for trace in (model_trace, guide_trace):
            plates = {s["name"]: (s["name"], *s["args"]) for s in trace.values() if s["type"] == "plate"}
            check_unscaled([(name, s.get("scale"), next((plates[f.name] for f in s["cond_indep_stack"]
                                                         if f.name in plates and plates[f.name][1] !=
                                                         plates[f.name][2]), None))
                            for name, s in trace.items() if s["type"] == "sample"])
        sites = [guide_trace[name]["fn"] for name in names]
        layout = Layout([(name, tuple(fn.event_shape), _domain(fn.support)) for name, fn in zip(names, sites)])
        theta0 = {k: _np(v["value"]) for k, v in model_trace.items() if v["type"] == "param"}
        phi0 = {k: _np(v["value"]) for k, v in guide_trace.items() if v["type"] == "param"}
        self._compiled = {}
        self._build("NumPyro", (model, guide), (theta0, phi0), layout,
                    (tuple(x.shape[1:]), _domain(x_site["fn"].support)),
                    layout.z_domain == "real" and all(fn.has_rsample for fn in sites), np.asarray(x))

    def __repr__(self):
        return f"numpyro Bridge({self.model!r}, {self.guide!r})"

    @staticmethod
    def particles(fn, keys):
        """A ``vectorize_particles`` strategy for NumPyro's ELBOs: the particles one after another, each
        told to the bridge, the outputs stacked as ``jax.vmap`` would stack them."""
        outputs = []
        for k in range(keys.shape[0]):
            _CURRENT.append(k)
            try:
                outputs.append(fn(keys[k]))
            finally:
                _CURRENT.pop()
        return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *outputs)

    @staticmethod
    @contextlib.contextmanager
    def one_at_a_time(*elbos):
        """Within the block, the given NumPyro ELBOs run their particles through :meth:`particles`
        (RenyiELBO takes no ``vectorize_particles`` argument); their own strategy is put back after."""
        saved = [elbo.vectorize_particles_fn for elbo in elbos]
        try:
            for elbo in elbos:
                elbo.vectorize_particles_fn = Bridge.particles
            yield
        finally:
            for elbo, fn in zip(elbos, saved):
                elbo.vectorize_particles_fn = fn

    # -- the programs on forced values -------------------------------------------------------------
    def _particles(self, fn, K):
        def run(*args, **kwargs):
            with numpyro.plate(_PARTICLES, K, dim=self._dim):
                return fn(*args, **kwargs)
        return run

    @staticmethod
    def _latents(trace):
        return [k for k, v in trace.items() if v["type"] == "sample" and not v["is_observed"]]

    @staticmethod
    def _site(trace, name, who):
        if name not in trace or trace[name]["type"] != "sample":
            sites = [k for k, v in trace.items() if v["type"] == "sample"]
            raise ValueError(f"the {who} has no sample site {name!r}; its sample sites: {sites}")
        return trace[name]

    def _log_density(self, fn, params, z, x, noise=False):
        """(Σ over sample sites of the log density per particle (K, N), the latent's value)."""
        K = z.shape[0]
        values = {name: [v] for name, v in self.layout.split(z).items()}
        program = handlers.substitute(Force(values, noise)(self._particles(fn, K)), data=params)
        trace = handlers.trace(handlers.seed(program, jax.random.PRNGKey(0))).get_trace(x)   # nothing is drawn
        self._check_ran(self._latents(trace), "model" if fn is self._model else "guide")
        total = 0.0
        for name, site in trace.items():
            if site["type"] == "sample":
                lp = site["fn"].log_prob(site["value"])
                if tuple(lp.shape) != tuple(z.shape[:2]):
                    raise density_shape_error(name, lp.shape, z.shape[:2])
                total = total + lp
        return total, self.layout.join({name: trace[name]["value"] for name in self.layout.names}, jnp.concatenate)

    def _jitted(self, what, fn):
        """One compiled function per (what, program): jax.jit retraces on new shapes by itself."""
        key = (what, id(fn))
        if key not in self._compiled:
            density = lambda p, z, x, noise=False: self._log_density(fn, p, z, x, noise)   # noqa: E731
            self._compiled[key] = jax.jit({
                "value": lambda p, z, x: density(p, z, x)[0],
                "weighted": jax.grad(lambda p, z, x, w: jnp.sum(w * density(p, z, x)[0])),
                "grad_z": jax.grad(lambda p, z, x: jnp.sum(density(p, z, x)[0]), argnums=1),
                "noised": lambda p, eps, x: density(p, eps, x, True)[1],
                "pull_back": jax.grad(lambda p, eps, x, v: jnp.sum(v * density(p, eps, x, True)[1])),
            }[what])
        return self._compiled[key]

    @staticmethod
    def _arrays(params, *arrays):
        return ({k: jnp.asarray(np.asarray(v, dtype=np.float64)) for k, v in params.items()},
                *(jnp.asarray(np.asarray(a, dtype=np.float64)) for a in arrays))

    def _call(self, what, fn, params, *arrays):
        out = self._jitted(what, fn)(*self._arrays(params, *arrays))
        return {k: _np(v) for k, v in out.items()} if isinstance(out, dict) else _np(out)

    def _log_joint(self, theta, z, x):
        return self._call("value", self._model, theta, z, x)

    def _grad_log_joint(self, theta, z, x, weights):
        return self._call("weighted", self._model, theta, z, x, weights)

    def _grad_z_log_joint(self, theta, z, x):
        return self._call("grad_z", self._model, theta, z, x)

    def _log_prob(self, phi, z, x):
        return self._call("value", self._guide, phi, z, x)

    def _grad_log_prob(self, phi, z, x, weights):
        return self._call("weighted", self._guide, phi, z, x, weights)

    def _grad_z_log_prob(self, phi, z, x):
        return self._call("grad_z", self._guide, phi, z, x)

    def _reparameterize(self, phi, x, eps):
        return self._call("noised", self._guide, phi, eps, x)

    def _pull_back(self, phi, x, eps, v):
        return self._call("pull_back", self._guide, phi, eps, x, v)

    @staticmethod
    def _key(rng):
        return jax.random.PRNGKey(int(rng.integers(2 ** 31)))

    def _sample_model(self, theta, n, rng):
        placeholder = jnp.zeros((n,) + self.model.x_shape)
        params = self._arrays(theta)[0]
        program = handlers.seed(handlers.substitute(_Uncondition(self._model), data=params), self._key(rng))
        trace = handlers.trace(program).get_trace(placeholder)
        return self._z(trace), _np(trace[self._observed]["value"])

    def _sample_guide(self, phi, x, K, rng):
        params, x = self._arrays(phi, x)
        program = handlers.seed(handlers.substitute(self._particles(self._guide, K), data=params), self._key(rng))
        return self._z(handlers.trace(program).get_trace(x))

    def _z(self, trace):
        return self.layout.numpy({name: np.asarray(trace[name]["value"]) for name in self.layout.names})

    # -- a framework loss on rws_ref's particles ---------------------------------------------------
    def _run(self, run, theta, phi, x, forced, noise, seed=0):
        values, params = self._forced(theta, phi, forced)
        params, x = self._arrays(params, x)

        def total(p):
            with Force(values, noise):
                out = run(p, x)
            parts = out if isinstance(out, (tuple, list)) else (out,)
            return sum(jnp.sum(q) for q in parts), parts[0] if len(parts) == 1 else None

        (_, value), grads = jax.value_and_grad(total, has_aux=True)(params)
        grads = {k: _np(g) for k, g in grads.items()}
        return ((None if value is None else float(value)), *self._split(theta, grads))


class _Uncondition(Messenger):
    """Observed sites sampled instead (the model run for (z, x) ~ p_θ)."""

    def process_message(self, msg):
        if msg["type"] == "sample" and msg["is_observed"]:
            msg["is_observed"] = False
            msg["value"] = None

