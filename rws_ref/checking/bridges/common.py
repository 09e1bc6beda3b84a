"""What the Pyro and NumPyro bridges share: the protocol pair built from the traced pieces, and a framework
loss run in the signature :func:`rws_ref.losses.check_loss` calls for each kind."""

import inspect
import itertools
from dataclasses import dataclass, field

import numpy as np

from ... import protocol, registry
from .. import adapters, endtoend, losses

__all__ = ["loss_in_signature", "choose", "latent_sites", "Layout", "density_shape_error", "check_unscaled",
           "BridgeBase", "DensityBridge", "EndToEndReport"]


#: signature -> (θ, the batch x, the arrays forced into the latent ("z") and observed ("x") sites, whether they
#: are base noise ε) of a case: what a framework's program runs on
_FORCED = {
    registry.SIGNATURES["particles"]: lambda c: (c.theta, c.x, {"z": [c.z]}, False),
    registry.SIGNATURES["noise"]: lambda c: (c.theta, c.x, {"z": [c.eps]}, True),
    registry.SIGNATURES["dreams"]: lambda c: (None, c.dream_x, {"z": [c.dream_z], "x": [c.dream_x]}, False),
    registry.SIGNATURES["insomnia"]: lambda c: (c.theta, c.x, {"z": [c.z, c.dream_z], "x": [c.dream_x]}, False),
    registry.SIGNATURES["defensive"]: lambda c: (c.theta, c.x, {"z": [c.z]}, False),
}


def loss_in_signature(kind, evaluate):
    """A callable in ``kind``'s signature without the model and guide (registry.SIGNATURES) that
    runs ``evaluate(theta, phi, x, forced, noise)`` → (value, grad_theta, grad_phi).

    ``forced`` lists the arrays to force into the latent (and, for dreams, the observed) sites;
    ``noise`` says they are reparameterization noise ε rather than particles."""
    entry = registry.get(kind)
    sig = entry.signature
    if sig not in _FORCED:
        raise ValueError(f"the bridges check framework losses of the kinds with particles, noise, dreams, "
                         f"insomnia or defensive signatures; {kind!r} has signature {sig.name!r}")
    names = [n for n in sig.names if n not in ("model", "guide")]

    def loss(*args):
        case = registry.Case(None, None)._replace(**dict(zip(names, args)))
        theta, x, forced, noise = _FORCED[sig](case)
        value, g_theta, g_phi = evaluate(theta, case.phi, x, forced, noise)
        return value, (g_theta if theta is not None else None), g_phi
    loss.__signature__ = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                                            for n in names])
    loss.__name__ = loss.__qualname__ = f"framework loss ({kind})"
    return loss


def choose(name, candidates, shape, particle):
    """The forced value for a site of ``shape``: the candidate of that shape; else, for a site without
    the particle dimension (an ELBO that runs its particles one at a time), particle ``particle`` of the
    (K, *shape) candidate.  Returns (value, used_particle); anything else is a clear error."""
    found = [v for v in candidates if tuple(v.shape) == tuple(shape)]
    if len(found) == 1:
        return found[0], False
    per_particle = [v for v in candidates if tuple(v.shape[1:]) == tuple(shape)]
    if not found and len(per_particle) == 1:
        if particle is None and per_particle[0].shape[0] > 1:
            raise ValueError(f"site {name!r} is drawn one particle at a time ({tuple(shape)}) but rws_ref cannot "
                             f"tell which particle: check the ELBO inside Bridge.one_at_a_time(elbo)")
        return per_particle[0][(particle or 0) % per_particle[0].shape[0]], True
    if shape and any(v.ndim == len(shape) and tuple(v.shape[1:]) == tuple(shape[1:]) for v in candidates):
        given = next(v.shape[0] for v in candidates if v.ndim == len(shape) and tuple(v.shape[1:]) == tuple(shape[1:]))
        raise ValueError(f"site {name!r} is drawn with {shape[0]} particles per datapoint and rws_ref forced {given}: "
                         f"pass K={shape[0]} to check_loss (the loss's num_particles)")
    if len(shape) >= 2 and any(tuple(v.shape) == tuple(shape[1:]) for v in candidates):
        raise ValueError(f"site {name!r} is drawn {shape[0]} times per datapoint ({tuple(shape)}: a particle plate "
                         f"of its own, as Pyro's ReweightedWakeSleep draws num_sleep_particles dreams per datapoint, "
                         f"num_particles by default); rws_ref forces one dream per datapoint: build the loss with "
                         f"num_sleep_particles=1 to check it")
    raise ValueError(f"site {name!r} has shape {tuple(shape)}; the forced values have shapes "
                     f"{[tuple(v.shape) for v in candidates]} (exactly one must match, with or without "
                     f"its particle dimension)")


def density_shape_error(name, shape, kn):
    """The error for a site whose log density per particle is not (K, N): a global latent (outside the data
    plate) is named as such, with the way forward."""
    if tuple(shape) in ((kn[0],), ()):
        return ValueError(f"site {name!r} is outside the data plate: a global latent, one value per run of the "
                          f"program shared by the whole batch, while rws_ref's estimators take one latent per "
                          f"datapoint; put it inside the data plate (one value per datapoint), or make it a "
                          f"parameter (pyro.param / numpyro.param) to check the rest of the program")
    return ValueError(f"site {name!r} has log density shape {tuple(shape)}; the bridge needs (K, N) = {tuple(kn)}: "
                      f"every sample site inside the data plate")


def check_unscaled(sites):
    """Refuse a program whose sample sites are scaled — a subsampled plate (``subsample_size``) multiplies each
    log density in it by N_total/N_batch — in one sentence with the way forward.  ``sites``: (name, scale,
    (plate, size, subsample size) or None) of each sample site."""
    for name, scale, plate in sites:
        if scale is not None and float(scale) != 1.0:
            why = (f"the plate {plate[0]!r} subsamples {plate[2]} of its {plate[1]} datapoints (subsample_size), "
                   f"so the framework multiplies every log density in it by N_total/N_batch = {float(scale):g}"
                   if plate else f"its log density is multiplied by {float(scale):g} (poutine.scale / handlers.scale)")
            raise ValueError(f"site {name!r} is scaled: {why}; rws_ref's densities are the model's own, so build the "
                             f"bridge on the program without the scaling (the plate over the batch you give). A loss "
                             f"on the subsampled program is N_total/N_batch × its convention on that batch only at "
                             f"K = 1: at K > 1 the scaling also tempers the importance weights (w to that power), "
                             f"which is no multiple of an rws_ref estimator")


def latent_sites(model_latents, guide_latents, latent):
    """The latent sites the bridge forces, in order: ``latent`` (a name or a list of names), or every latent
    sample site of the guide when None.  Model and guide must have exactly these latent sites: one drawn
    but not forced would enter the weights unseen.  ``*_latents``: each program's unobserved sample sites,
    in the order it draws them."""
    names = list(guide_latents) if latent is None else [latent] if isinstance(latent, str) else list(latent)
    if not names:
        raise ValueError("the guide has no latent sample site: nothing for rws_ref to infer")
    for who, sites in (("guide", guide_latents), ("model", model_latents)):
        missing = [n for n in names if n not in sites]
        if missing:
            raise ValueError(f"the {who} has no latent sample site {missing[0]!r}; its latent sites: {list(sites)}")
        others = [n for n in sites if n not in names]
        if others and latent is None:
            raise ValueError(f"the model has latent sites {others} that the guide does not draw: the guide must "
                             f"propose every latent of the model")
        if others:
            raise ValueError(f"the {who} has latent sites {others} besides {names if len(names) > 1 else names[0]!r}; "
                             f"name them all in latent= (the bridge forces every latent site), or leave latent= "
                             f"out to take the guide's")
    return names


class Layout:
    """The protocol's one latent vector for the bridge's latent sites.  One site: the site's own value
    (z_shape its event shape, z_domain its domain).  Several: their values flattened and joined in
    order, z_shape (D,); z_domain "real" if any site is continuous (a discrete entry then holds its
    value as a float), else the largest number of values of a site ("binary" if all are binary), and the
    support the product of the sites' own supports — so an entry out of its own site's range is off the
    canonical form and gets log density −inf (docs/protocol.md, 'Variable-length latents').

    ``sites``: (name, event shape, domain) of each site, in order."""

    def __init__(self, sites):
        self.names = [name for name, _, _ in sites]
        self.shapes = {name: tuple(shape) for name, shape, _ in sites}
        self.domains = {name: domain for name, _, domain in sites}
        self.sizes = {name: int(np.prod(shape, dtype=np.int64)) for name, shape, _ in sites}
        self.entries = None
        if len(sites) == 1:
            (name, shape, domain), = sites
            self.z_shape, self.z_domain = tuple(shape), domain
            return
        values = [None if d == "real" else 2 if d == "binary" else int(d) for d in self.domains.values()]
        self.z_shape = (sum(self.sizes.values()),)
        self.z_domain = ("real" if None in values else "binary" if all(d == "binary" for d in self.domains.values())
                         else max(values))
        #: the number of values of each entry of the joined vector (NaN: real), and which entries the
        #: declared domain alone does not keep in their site's range
        self._ranges = np.array([np.nan if v is None else v for v, n in zip(values, self.names)
                                 for _ in range(self.sizes[n])])
        joint = np.nan if self.z_domain == "real" else 2 if self.z_domain == "binary" else self.z_domain
        self._checked = ~np.isnan(self._ranges) & (self._ranges != joint)
        if self.z_domain == "real" and not np.isnan(self._ranges).all():
            #: the protocol's per-entry domains (docs/protocol.md): validation keeps each discrete entry in range
            self.entries = tuple("real" if d == "real" else d for d, n in zip(self.domains.values(), self.names)
                                 for _ in range(self.sizes[n]))

    @property
    def single(self):
        return len(self.names) == 1

    def split(self, z):
        """site name → its value, from ``z`` (..., *z_shape) — NumPy, torch or JAX."""
        if self.single:
            return {self.names[0]: z}
        out, start = {}, 0
        lead = tuple(z.shape[:-1])
        for name in self.names:
            out[name] = z[..., start:start + self.sizes[name]].reshape(lead + self.shapes[name])
            start += self.sizes[name]
        return out

    def join(self, values, cat):
        """The protocol's z from each site's value (..., *event shape); ``cat`` joins along the last axis
        (np.concatenate, torch.cat, jnp.concatenate)."""
        if self.single:
            return values[self.names[0]]
        parts = []
        for name in self.names:
            v = values[name]
            parts.append(v.reshape(tuple(v.shape[:len(v.shape) - len(self.shapes[name])]) + (self.sizes[name],)))
        return cat(parts, -1)

    def numpy(self, values):
        """The protocol's z (NumPy, in z_domain's dtype) from the sites' framework values."""
        z = self.join({k: np.asarray(v, dtype=np.float64) for k, v in values.items()}, np.concatenate)
        return z.astype(np.int64) if isinstance(self.z_domain, int) else z

    def states(self, limit):
        """The support: every canonical value, (S, *z_shape); None for a continuous latent or too many."""
        if self.single:
            return protocol.finite_states(self.z_shape, self.z_domain, limit)
        if self.z_domain == "real":
            return None
        ranges = [int(r) for r in self._ranges]
        if np.prod(np.array(ranges, dtype=float)) > limit:
            return None
        grid = np.array(list(itertools.product(*(range(r) for r in ranges))), dtype=np.int64).reshape(-1, len(ranges))
        return grid.astype(np.float64) if self.z_domain == "binary" else grid

    def clean(self, z):
        """(z with every entry off its site's range set to 0, the (K, N) mask of canonical particles), or
        (z, None) when every value of the declared domain is canonical."""
        if self.single or not self._checked.any():
            return z, None
        z = np.asarray(z)
        entries = np.broadcast_to(self._checked, z.shape)
        ok = ~entries | ((z >= 0) & (z < self._ranges) & (z == np.round(z)))
        return np.where(ok, z, 0).astype(z.dtype), ok.all(axis=-1)


def _parts(parts):
    """("theta", "phi") or one of them, from a name or a sequence of names."""
    parts = (parts,) if isinstance(parts, str) else tuple(parts)
    if not parts or any(p not in ("theta", "phi") for p in parts):
        raise ValueError(f"parts must name 'theta', 'phi' or both (the parameters the loss is for); got {parts!r}")
    return parts


_CONTROL_FLOW = ("whether it runs depends on another latent (stochastic control flow), and a plate over the data "
                 "cannot draw a site for some datapoints and not others; write the pair to rws_ref's protocol with "
                 "a padded latent vector (docs/protocol.md, 'Variable-length latents')")


@dataclass
class EndToEndReport:
    """:meth:`BridgeBase.check_end_to_end`'s findings: the loss on given particles (``loss``), and for each
    gradient that is a plain multiple of its estimator, check_stochastic's report of its own draws (``runs``)."""
    kind: str
    loss: object
    runs: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)

    @property
    def ok(self):
        return self.loss.ok and bool(self.runs) and not self.skipped and all(r.ok for r in self.runs.values())

    def __str__(self):
        lines = [f"check_end_to_end({self.kind!r}): {'consistent' if self.ok else 'NOT consistent'}",
                 "on given particles: " + str(self.loss)]
        lines += [f"{part}, end to end with the loss's own draws: {report}" for part, report in self.runs.items()]
        return "\n".join(lines + self.skipped)

    def assert_ok(self):
        if not self.ok:
            raise AssertionError(str(self))


class BridgeBase:
    """What both bridges are once their programs are traced: the protocol pair built from a framework's
    densities, gradients and samplers (the subclass's methods), and the check of a framework loss.
    A subclass defines the ``_log_joint`` … ``_pull_back`` callables of :class:`rws_ref.adapters.Model` /
    ``Guide`` and ``_run(run, theta, phi, x, forced, noise)``; ``RUN`` says what its ``run`` takes."""

    RUN = "the batch x"
    END_TO_END = True                   # its _run can reseed the loss's own draws (seed=)

    def _build(self, framework, programs, params, layout, x_site, reparameterized, x, samplers=(True, True)):
        """``self.model``, ``self.guide``, ``self.theta``, ``self.phi``, ``self.x`` from the traced pieces:
        ``params`` the initial (θ, φ) (NumPy dicts), ``layout`` the latent sites' :class:`Layout`, ``x_site``
        (x_shape, x_domain), whether the guide reparameterizes, the batch the bridge was built with, and whether
        the model and the guide have samplers."""
        (model, guide), (theta0, phi0), (x_shape, x_domain) = programs, params, x_site
        self.layout = layout
        z_shape, z_domain = layout.z_shape, layout.z_domain
        states = layout.states(protocol.MAX_STATES)
        self.theta_names, self.phi_names = list(theta0), list(phi0)
        self.model = adapters.Model(
            {k: v.shape for k, v in theta0.items()}, z_shape, x_shape, self._canonical(self._log_joint),
            self._canonical(self._grad_log_joint), sample=self._sample_model if samplers[0] else None,
            init_theta=lambda rng: {k: v.copy() for k, v in theta0.items()},
            z_domain=z_domain, x_domain=x_domain, support=None if states is None else (lambda: states.copy()),
            name=f"{framework} model {getattr(model, '__name__', model)!s}",
            grad_z_log_joint=self._grad_z_log_joint if reparameterized else None)
        self.guide = adapters.Guide(
            {k: v.shape for k, v in phi0.items()}, z_shape, x_shape, self._canonical(self._log_prob),
            self._canonical(self._grad_log_prob), sample=self._sample_guide if samplers[1] else None,
            init_phi=lambda rng: {k: v.copy() for k, v in phi0.items()},
            z_domain=z_domain, x_domain=x_domain, name=f"{framework} guide {getattr(guide, '__name__', guide)!s}",
            **({} if not reparameterized else {"reparameterize": self._reparameterize,
                                                "grad_z_log_prob": self._grad_z_log_prob,
                                                "pull_back": self._pull_back}))
        if layout.entries is not None:                  # a discrete choice beside a continuous value
            self.model.z_entries = self.guide.z_entries = layout.entries
        self.theta, self.phi, self.x = theta0, phi0, np.array(x, dtype=np.float64)

    def _canonical(self, density):
        """``density(params, z, x[, weights])`` evaluated only on canonical particles (each entry in its
        own site's range): −inf for the others, and weight 0 in a gradient."""
        def run(params, z, x, *weights):
            z, ok = self.layout.clean(z)
            if ok is None:
                return density(params, z, x, *weights)
            if weights:
                return density(params, z, x, weights[0] * ok)
            return np.where(ok, density(params, z, x), -np.inf)
        return run

    def _check_ran(self, latents, who):
        """Every run of a program draws exactly the bridge's latent sites: one that runs only sometimes
        depends on another latent (stochastic control flow), which a plate over the data cannot vectorize."""
        latents = list(latents)
        for name in self.layout.names:
            if name not in latents:
                raise ValueError(f"the {who}'s site {name!r} did not run this time: {_CONTROL_FLOW}")
        for name in latents:
            if name not in self.layout.names:
                raise ValueError(f"the {who}'s site {name!r} ran this time but not when the bridge was built: "
                                 f"{_CONTROL_FLOW}")

    def loss(self, run, kind, parts=("theta", "phi")):
        """``run`` — a framework loss (see the bridge's docstring for what it takes) — as a callable in
        ``kind``'s signature (registry.SIGNATURES, without model and guide) for
        :func:`rws_ref.losses.check_loss`, returning the gradients of the ``parts`` the loss is for."""
        if not callable(run):
            raise TypeError(f"run must be a callable taking {self.RUN}; got {type(run).__name__}")
        parts = _parts(parts)

        def evaluate(theta, phi, x, forced, noise):
            value, g_theta, g_phi = self._run(run, theta, phi, x, forced, noise)
            return value, g_theta if "theta" in parts else None, g_phi if "phi" in parts else None
        return loss_in_signature(kind, evaluate)

    def check_loss(self, run, kind, parts=("theta", "phi"), **kwargs):
        """:func:`rws_ref.losses.check_loss` of :meth:`loss` on this bridge's model and guide — its θ, φ and
        the batch x it was built with, unless given; keywords pass through (x, z, K, M, seed, ...).

        ``parts``: the parameters the loss is for — ("theta", "phi") by default; "phi" for a φ loss that
        a training loop steps φ with alone (its θ-gradient is then not checked), "theta" for a θ loss."""
        kwargs.setdefault("theta", self.theta)
        kwargs.setdefault("phi", self.phi)
        kwargs.setdefault("x", self.x)
        return losses.check_loss(self.loss(run, kind, parts), kind, self.model, self.guide, **kwargs)

    def check_end_to_end(self, run, kind, K, parts=("theta", "phi"), replicates=2000, seed=0, alpha=1e-3, **kwargs):
        """``run`` end to end, drawing its own particles: first :meth:`check_loss` on forced particles finds the
        multiple of ``kind`` its φ-gradient is (and of wake-θ its θ-gradient); then
        :func:`rws_ref.checking.endtoend.check_stochastic` runs it ``replicates`` times with its own draws
        (torch's generator seeded from rws_ref's) and tests the mean of each gradient, divided by that
        multiple, against the exact mean of the estimator — at this bridge's θ, φ and batch, with ``K``
        particles (the number ``run`` draws); ``parts`` as in :meth:`check_loss`.  Keywords go to
        check_stochastic (iota, delta, M, timeout …)."""
        if not self.END_TO_END:
            raise ValueError(f"{type(self).__module__}: the end-to-end check reseeds the loss's draws for every run, "
                             f"which this bridge cannot do (a NumPyro loss takes its key from your own code)")
        kwargs.setdefault("theta", self.theta)
        kwargs.setdefault("phi", self.phi)
        kwargs.setdefault("x", self.x)
        given = {k: kwargs[k] for k in ("theta", "phi", "x", "iota", "delta", "M") if kwargs.get(k) is not None}
        loss = self.check_loss(run, kind, parts, K=K, seed=seed, **given)
        report = EndToEndReport(kind, loss)
        for part, target, name in (("φ-gradient", kind, kind.replace("_phi", "-φ").replace("_", " ")),
                                   ("θ-gradient", "wake_theta", "wake-θ")):
            found = next((p for p in loss.parts if p.part == part), None)
            if found is None:
                continue
            if found.of != name or not np.isfinite(found.factor) or found.factor == 0:
                report.skipped.append(f"{part}: not run end to end, as on given particles it is no plain multiple of "
                                      f"{name} (above)")
                continue
            kw = dict(kwargs) if target == kind else {k: v for k, v in kwargs.items() if k in
                                                       ("theta", "phi", "x", "timeout", "progress")}
            report.runs[part] = endtoend.check_stochastic(
                self._end_to_end(run, part, found.factor, registry.get(target)), target, self.model, self.guide,
                K=K, replicates=replicates, seed=seed, alpha=alpha, **kw)
        return report

    def _end_to_end(self, run, part, factor, entry):
        """``run`` as check_stochastic's ``fn``: one run with its own draws, seeded from rws_ref's rng, the gradient
        ``part`` divided by ``factor``."""
        def fn(theta, phi, *rest):
            x, rng = (rest[0], rest[1]) if len(rest) == 2 else (self.x, rest[0])
            _, g_theta, g_phi = self._run(run, theta, phi, x, {}, False, seed=int(rng.integers(2 ** 62)))
            grads = g_phi if part == "φ-gradient" else g_theta
            return {k: np.asarray(v) / factor for k, v in grads.items()}
        names = list(entry.signature.stochastic)
        fn.__signature__ = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                                              for n in names])
        fn.__name__ = fn.__qualname__ = f"your loss's {part} ÷ {factor:.6g}, with its own draws"
        return fn

    def _forced(self, theta, phi, forced):
        """(site name → forced arrays, θ ∪ φ) for one framework run: the latent's arrays split into its sites."""
        values = {self._observed: forced["x"]} if "x" in forced else {}
        for name in self.layout.names if "z" in forced else ():
            values[name] = [self.layout.split(np.asarray(z))[name] for z in forced["z"]]
        params = dict(phi)
        if theta is not None:
            params.update(theta)
        return values, params

    def _split(self, theta, grads):
        """(θ-gradient or None, φ-gradient) from one dict over θ ∪ φ."""
        return (None if theta is None else {k: grads[k] for k in self.theta_names},
                {k: grads[k] for k in self.phi_names})


class DensityBridge(BridgeBase):
    """A bridge over the user's density callables by role (plain PyTorch, plain JAX): the subclass defines
    ``_values(who, params, z, x)`` and ``_weighted(who, params, z, x, weights)`` with who "model" or "guide"."""

    def _log_joint(self, theta, z, x):
        return self._values("model", theta, z, x)

    def _grad_log_joint(self, theta, z, x, weights):
        return self._weighted("model", theta, z, x, weights)

    def _log_prob(self, phi, z, x):
        return self._values("guide", phi, z, x)

    def _grad_log_prob(self, phi, z, x, weights):
        return self._weighted("guide", phi, z, x, weights)
