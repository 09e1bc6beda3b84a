"""Pyro bridge: a Pyro model and guide as an rws_ref protocol pair, and Pyro's losses checked on
rws_ref's particles.

Write the model and the guide as Pyro's users do — parameters with ``pyro.param``, latent sample
sites and one observed site inside a plate over the data — and hand them over with an example
batch (several latent sites are one rws_ref latent, :class:`~.common.Layout`)::

    bridge = Bridge(model, guide, x)              # x: (N, *x_shape), NumPy or torch
    testing.check_estimator(my_wake_phi, "wake_phi", bridge.model, bridge.guide)
    print(bridge.check_loss(lambda x: elbo.loss_and_grads(model, guide, x), "wake_phi"))

``bridge.model`` and ``bridge.guide`` follow rws_ref's protocol (docs/protocol.md): every layer
of rws_ref runs on them — the estimators, the exact oracle when the latent is discrete, the
sampler checks, the audit.  θ is the model's parameters, φ the guide's, keyed by their Pyro
names, as unconstrained values (what Pyro's optimizers update).

:meth:`Bridge.check_loss` runs a Pyro loss — ``ReweightedWakeSleep``, ``RenyiELBO``,
``Trace_ELBO`` or the user's own RWS code — with rws_ref's particles forced into the latent
site (rws_ref's noise ε, for a reparameterized guide: z = loc + scale · ε), reads the gradients
of its parameters back, and reports what the loss computes in rws_ref's terms
(:func:`rws_ref.losses.check_loss`).

Every call saves the parameter store's values it sets and puts them back, draws from a torch
generator seeded from rws_ref's ``rng`` inside ``torch.random.fork_rng`` (the caller's global
torch state is left as it was), and works in float64.
"""
import contextlib

import numpy as np

from .common import BridgeBase, Layout, check_unscaled, choose, density_shape_error, latent_sites

try:
    import pyro
    import torch
    from pyro import poutine
    from pyro.poutine.messenger import Messenger
    from pyro.poutine.util import site_is_subsample
except ImportError as err:                      # pragma: no cover - the extra is not installed
    raise ImportError("rws_ref.bridges.pyro needs PyTorch and Pyro: pip install 'rws_ref[pyro]'") from err

__all__ = ["Bridge", "Force"]

_PARTICLES = "rws_ref_particles"


class Force(Messenger):
    """Force values into sample sites: ``values`` maps a site name to candidate arrays; a site takes
    the candidate whose shape is the site's (batch + event) shape.  With ``noise`` the candidates are
    ε and the site's value is loc + scale · ε of its Normal distribution, so gradients reach its
    parameters through the value (the reparameterization).  Observed sites are left alone."""

    def __init__(self, values, noise=False):
        super().__init__()
        self.values = {name: [v.to(torch.float64) if torch.is_tensor(v) else torch.tensor(np.array(v, dtype=np.float64))
                              for v in vs] for name, vs in values.items()}
        self.noise = noise
        self.calls = {}

    def _pick(self, name, shape):
        """Sequential particles (an ELBO without vectorize_particles) are handed out in turn."""
        k = self.calls.get(name, 0)
        value, used = choose(name, self.values[name], shape, k)
        if used:
            self.calls[name] = k + 1
        return value

    def _pyro_sample(self, msg):
        if msg["is_observed"] or msg["done"] or msg["name"] not in self.values:
            return                              # observed, or replayed from the guide's trace already
        value = self._pick(msg["name"], tuple(msg["fn"].batch_shape + msg["fn"].event_shape))
        if self.noise:
            base = msg["fn"]
            while hasattr(base, "base_dist"):
                base = base.base_dist
            if not (hasattr(base, "loc") and hasattr(base, "scale")) or type(base).__name__ != "Normal":
                raise TypeError(f"rws_ref forces noise only into Normal sites; site {msg['name']!r} is "
                                f"{type(base).__name__}")
            value = base.loc + base.scale * value
        elif isinstance(_domain(msg["fn"].support), int):
            value = value.long()                # categorical sites take integer indices
        msg["value"] = value
        msg["done"] = True


def _number(value):
    return value.detach().numpy() if torch.is_tensor(value) else value


def _domain(support):
    """rws_ref's domain of a torch constraint: "binary", C categories, or "real"."""
    if not support.is_discrete:
        return "real"
    base = getattr(support, "base_constraint", support)
    upper, lower = getattr(base, "upper_bound", None), getattr(base, "lower_bound", None)
    if upper is None and type(base).__name__ == "_Boolean":
        return "binary"
    if lower == 0 and upper is not None:
        return int(upper) + 1
    raise TypeError(f"rws_ref supports real, binary and categorical {{0..C-1}} sites; got the constraint {support}")


class Bridge(BridgeBase):
    """A Pyro ``model(x)`` and ``guide(x)`` as rws_ref's protocol pair (``.model``, ``.guide``).

    Parameters
    ----------
    model, guide : Pyro programs called with the data batch (a torch tensor (N, *x_shape)); their
        parameters are ``pyro.param`` sites, created on the first call if needed
    x : an example batch (N, *x_shape), used to discover the sites and the shapes
    latent : the latent sample site(s) in both programs: a name or a list of names; None (the default)
        takes every latent site of the guide, in the order it draws them
    observed : the name of the observed site
    max_plate_nesting : the plates the programs nest (1: a plate over the data); rws_ref's particles
        are a plate at the next dimension to the left

    :meth:`check_loss` / :meth:`loss` take ``run(x)``, a Pyro loss on the batch (a torch tensor): it
    returns a scalar tensor (differentiated here), a tuple of them (their sum is differentiated: Pyro's
    RWS returns the θ loss and the φ loss), or plain numbers after calling ``backward`` itself
    (``elbo.loss_and_grads``: the gradients are read from the parameters).
    """

    def __init__(self, model, guide, x, latent=None, observed="x", max_plate_nesting=1):
        for name, fn in (("model", model), ("guide", guide)):
            if not callable(fn):
                raise TypeError(f"{name} must be a Pyro program (a callable); got {type(fn).__name__}")
        self._model, self._guide = model, guide
        self._observed = observed
        self._dim = -(int(max_plate_nesting) + 1)
        x = self._tensor(x)
        with torch.no_grad():
            guide_trace = poutine.trace(self._particles(guide, 1)).get_trace(x)
            model_trace = poutine.trace(poutine.replay(self._particles(model, 1), guide_trace)).get_trace(x)
        x_site = self._site(model_trace, observed, "model")
        if not x_site["is_observed"]:
            raise ValueError(f"the model's site {observed!r} must be observed (obs=x)")
        names = latent_sites(self._latents(model_trace), self._latents(guide_trace), latent)
        for name in names:
            site = guide_trace.nodes[name]
            shape = tuple(site["fn"].batch_shape)
            if not any(f.name != _PARTICLES and f.dim is not None and f.dim > self._dim
                       for f in site["cond_indep_stack"]):
                shape = ()                      # in no plate but rws_ref's: a global latent
            if shape != (1, x.shape[0]):
                raise density_shape_error(name, shape, (1, x.shape[0]))
        for trace in (model_trace, guide_trace):
            plates = {s["name"]: (s["name"], s["fn"].size, s["fn"].subsample_size)
                      for s in trace.nodes.values() if s["type"] == "sample" and site_is_subsample(s)
                      and s["fn"].subsample_size not in (None, s["fn"].size)}
            check_unscaled([(name, s["scale"], next((plates[f.name] for f in s["cond_indep_stack"]
                                                     if f.name in plates), None))
                            for name, s in trace.nodes.items() if s["type"] == "sample" and not site_is_subsample(s)])
        sites = [guide_trace.nodes[name]["fn"] for name in names]
        layout = Layout([(name, tuple(fn.event_shape), _domain(fn.support)) for name, fn in zip(names, sites)])
        store = pyro.get_param_store()
        theta0 = {k: store.get_param(k).unconstrained().detach().numpy().copy() for k in self._params(model_trace)}
        phi0 = {k: store.get_param(k).unconstrained().detach().numpy().copy() for k in self._params(guide_trace)}
        self._build("Pyro", (model, guide), (theta0, phi0), layout,
                    (tuple(x.shape[1:]), _domain(x_site["fn"].support)),
                    layout.z_domain == "real" and all(fn.has_rsample for fn in sites), x.numpy())

    def __repr__(self):
        return f"pyro Bridge({self.model!r}, {self.guide!r})"

    # -- the programs on forced values -------------------------------------------------------------
    @staticmethod
    def _tensor(a):
        return a.to(torch.float64) if torch.is_tensor(a) else torch.tensor(np.array(a, dtype=np.float64))

    def _particles(self, fn, K):
        def run(*args, **kwargs):
            with pyro.plate(_PARTICLES, K, dim=self._dim):
                return fn(*args, **kwargs)
        return run

    @staticmethod
    def _site(trace, name, who):
        if name not in trace.nodes or trace.nodes[name]["type"] != "sample" or site_is_subsample(trace.nodes[name]):
            sites = [k for k, v in trace.nodes.items() if v["type"] == "sample" and not site_is_subsample(v)]
            raise ValueError(f"the {who} has no sample site {name!r}; its sample sites: {sites}")
        return trace.nodes[name]

    @staticmethod
    def _latents(trace):
        return [k for k, v in trace.nodes.items() if v["type"] == "sample" and not v["is_observed"]
                and not site_is_subsample(v)]

    @staticmethod
    def _params(trace):
        return [k for k, v in trace.nodes.items() if v["type"] == "param"]

    @contextlib.contextmanager
    def _parameters(self, values, requires_grad=False):
        """The store's unconstrained parameters set to ``values`` (a dict), yielded as leaf tensors;
        the previous values are put back afterwards."""
        store = pyro.get_param_store()
        missing = [k for k in values if k not in store]
        if missing:
            raise ValueError(f"Pyro's parameter store no longer holds {missing}: the model or guide cleared or "
                             f"replaced it (pyro.clear_param_store() inside a program?); the bridge reads θ and φ "
                             f"from the store the programs were traced with — clear it before building the Bridge, "
                             f"never inside the programs")
        leaves = {k: store.get_param(k).unconstrained() for k in values}
        saved = {k: p.detach().clone() for k, p in leaves.items()}
        try:
            with torch.no_grad():
                for k, p in leaves.items():
                    p.copy_(self._tensor(values[k]).reshape(p.shape))
            for p in leaves.values():
                p.grad = None
            yield leaves
        finally:
            with torch.no_grad():
                for k, p in leaves.items():
                    p.copy_(saved[k])
                    p.grad = None

    def _log_density(self, fn, params, z, x, noise=False):
        """Σ over sample sites of the program's log density per particle: (K, N)."""
        z_t = self._tensor(z)
        K = z_t.shape[0]
        values = {name: [v] for name, v in self.layout.split(z_t).items()}
        trace = poutine.trace(Force(values, noise)(self._particles(fn, K))).get_trace(self._tensor(x))
        self._check_ran(self._latents(trace), "model" if fn is self._model else "guide")
        trace.compute_log_prob()
        total = 0.0
        for name, site in trace.nodes.items():
            if site["type"] == "sample" and not site_is_subsample(site):
                lp = site["log_prob"]
                if tuple(lp.shape) != tuple(z_t.shape[:2]):
                    raise density_shape_error(name, lp.shape, z_t.shape[:2])
                total = total + lp
        return total, trace

    def _values(self, fn, params, z, x):
        with torch.no_grad(), self._parameters(params):
            return self._log_density(fn, params, z, x)[0].numpy().copy()

    def _weighted(self, fn, params, z, x, weights):
        if not params:                          # a program without parameters: its gradient is {}
            return {}
        with self._parameters(params) as leaves:
            lp = self._log_density(fn, params, z, x)[0]
            grads = torch.autograd.grad((self._tensor(weights) * lp).sum(), list(leaves.values()), allow_unused=True)
        return {k: np.zeros(np.shape(params[k])) if g is None else g.numpy().copy() for k, g in zip(leaves, grads)}

    def _grad_z(self, fn, params, z, x):
        with self._parameters(params):
            z_t = self._tensor(z).clone().requires_grad_(True)
            lp = self._log_density(fn, params, z_t, x)[0]
            return torch.autograd.grad(lp.sum(), z_t)[0].numpy().copy()

    def _log_joint(self, theta, z, x):
        return self._values(self._model, theta, z, x)

    def _grad_log_joint(self, theta, z, x, weights):
        return self._weighted(self._model, theta, z, x, weights)

    def _grad_z_log_joint(self, theta, z, x):
        return self._grad_z(self._model, theta, z, x)

    def _log_prob(self, phi, z, x):
        return self._values(self._guide, phi, z, x)

    def _grad_log_prob(self, phi, z, x, weights):
        return self._weighted(self._guide, phi, z, x, weights)

    def _grad_z_log_prob(self, phi, z, x):
        return self._grad_z(self._guide, phi, z, x)

    def _noised(self, phi, x, eps):
        """z = loc + scale · ε at the guide's latent site, as a tensor on the parameters' graph."""
        nodes = self._log_density(self._guide, phi, eps, x, noise=True)[1].nodes
        return self.layout.join({name: nodes[name]["value"] for name in self.layout.names}, torch.cat)

    def _reparameterize(self, phi, x, eps):
        with torch.no_grad(), self._parameters(phi):
            return self._noised(phi, x, eps).numpy().copy()

    def _pull_back(self, phi, x, eps, v):
        if not phi:
            return {}
        with self._parameters(phi) as leaves:
            z = self._noised(phi, x, eps)
            grads = torch.autograd.grad((z * self._tensor(v)).sum(), list(leaves.values()), allow_unused=True)
        return {k: np.zeros(np.shape(phi[k])) if g is None else g.numpy().copy() for k, g in zip(leaves, grads)}

    @staticmethod
    @contextlib.contextmanager
    def _seeded(rng):
        with torch.random.fork_rng():
            torch.manual_seed(int(rng.integers(2 ** 62)))
            yield

    def _sample_model(self, theta, n, rng):
        placeholder = torch.zeros((n,) + self.model.x_shape, dtype=torch.float64)
        with torch.no_grad(), self._parameters(theta), self._seeded(rng):
            trace = poutine.trace(poutine.uncondition(self._model)).get_trace(placeholder)
        return (self._z(trace), trace.nodes[self._observed]["value"].numpy().copy())

    def _sample_guide(self, phi, x, K, rng):
        with torch.no_grad(), self._parameters(phi), self._seeded(rng):
            trace = poutine.trace(self._particles(self._guide, K)).get_trace(self._tensor(x))
        return self._z(trace)

    def _z(self, trace):
        return self.layout.numpy({name: trace.nodes[name]["value"].numpy() for name in self.layout.names})

    # -- a framework loss on rws_ref's particles ---------------------------------------------------
    def _run(self, run, theta, phi, x, forced, noise, seed=0):
        values, params = self._forced(theta, phi, forced)
        # the loss's own draws (a sleep phase, a guide site not forced) come from a torch generator of their own,
        # seeded here; the caller's global torch state is put back afterwards
        with torch.random.fork_rng(), self._parameters(params) as leaves, Force(values, noise):
            torch.manual_seed(seed)
            out = run(self._tensor(x))
            parts = out if isinstance(out, (tuple, list)) else (out,)
            live = [p for p in parts if torch.is_tensor(p) and p.requires_grad]
            if live and leaves:
                grads = torch.autograd.grad(sum(live), list(leaves.values()), allow_unused=True)
            else:
                grads = [p.grad for p in leaves.values()]
            grads = {k: np.zeros(tuple(p.shape)) if g is None else g.detach().numpy().copy()
                     for (k, p), g in zip(leaves.items(), grads)}
        value = float(parts[0]) if len(parts) == 1 and np.size(np.asarray(_number(parts[0]))) == 1 else None
        return (value, *self._split(theta, grads))
