"""What the Pyro and NumPyro bridges share: the protocol pair built from the traced pieces, and a framework
loss run in the signature :func:`rws_ref.losses.check_loss` calls for each kind."""

import inspect

import numpy as np

from ... import protocol, registry
from .. import adapters, losses

__all__ = ["loss_in_signature", "choose", "one_latent", "density_shape_error", "check_unscaled", "BridgeBase"]


#: signature -> (θ, the batch x, the arrays forced into the latent ("z") and observed ("x") sites, whether they
#: are base noise ε) of a case: what a framework's program runs on
_FORCED = {
    registry.SIGNATURES["particles"]: lambda c: (c.theta, c.x, {"z": [c.z]}, False),
    registry.SIGNATURES["noise"]: lambda c: (c.theta, c.x, {"z": [c.eps]}, True),
    registry.SIGNATURES["dreams"]: lambda c: (None, c.dream_x, {"z": [c.dream_z], "x": [c.dream_x]}, False),
    registry.SIGNATURES["insomnia"]: lambda c: (c.theta, c.x, {"z": [c.z, c.dream_z], "x": [c.dream_x]}, False),
}


def loss_in_signature(kind, evaluate):
    """A callable in ``kind``'s signature without the model and guide (registry.SIGNATURES) that
    runs ``evaluate(theta, phi, x, forced, noise)`` → (value, grad_theta, grad_phi).

    ``forced`` lists the arrays to force into the latent (and, for dreams, the observed) sites;
    ``noise`` says they are reparameterization noise ε rather than particles."""
    entry = registry.get(kind)
    sig = entry.signature
    if sig not in _FORCED:
        raise ValueError(f"the bridges check framework losses of the kinds with particles, noise, dreams or "
                         f"insomnia signatures; {kind!r} has signature {sig.name!r}")
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
                             f"bridge on the program without the scaling (the plate over the batch you give); a loss "
                             f"on the subsampled program is then N_total/N_batch × its convention on that batch")


def one_latent(model_sites, guide_sites, latent, is_sample):
    """The bridges handle one latent site: every unobserved sample site of the model, and every sample
    site of the guide, must be ``latent`` (another would be drawn, not forced, and its density would
    enter the weights unseen)."""
    for who, sites in (("model", model_sites), ("guide", guide_sites)):
        others = [name for name, site in sites.items() if is_sample(site) and not site["is_observed"]
                  and name != latent]
        if others:
            raise ValueError(f"the {who} has latent sites {others} besides {latent!r}; the bridge handles one "
                             f"latent site (stack several into one vector site)")


class BridgeBase:
    """What both bridges are once their programs are traced: the protocol pair built from a framework's
    densities, gradients and samplers (the subclass's methods), and the check of a framework loss.
    A subclass defines the ``_log_joint`` … ``_pull_back`` callables of :class:`rws_ref.adapters.Model` /
    ``Guide`` and ``_run(run, theta, phi, x, forced, noise)``; ``RUN`` says what its ``run`` takes."""

    RUN = "the batch x"

    def _build(self, framework, programs, theta0, phi0, shapes, domains, reparameterized, x):
        """``self.model``, ``self.guide``, ``self.theta``, ``self.phi``, ``self.x`` from the traced pieces:
        initial θ and φ (NumPy dicts), (z_shape, x_shape), (z_domain, x_domain), whether the guide
        reparameterizes, and the batch the bridge was built with."""
        (model, guide), (z_shape, x_shape), (z_domain, x_domain) = programs, shapes, domains
        states = protocol.finite_states(z_shape, z_domain)
        self.theta_names, self.phi_names = list(theta0), list(phi0)
        self.model = adapters.Model(
            {k: v.shape for k, v in theta0.items()}, z_shape, x_shape, self._log_joint, self._grad_log_joint,
            sample=self._sample_model, init_theta=lambda rng: {k: v.copy() for k, v in theta0.items()},
            z_domain=z_domain, x_domain=x_domain, support=None if states is None else (lambda: states.copy()),
            name=f"{framework} model {getattr(model, '__name__', model)!s}",
            grad_z_log_joint=self._grad_z_log_joint if reparameterized else None)
        self.guide = adapters.Guide(
            {k: v.shape for k, v in phi0.items()}, z_shape, x_shape, self._log_prob, self._grad_log_prob,
            sample=self._sample_guide, init_phi=lambda rng: {k: v.copy() for k, v in phi0.items()},
            z_domain=z_domain, x_domain=x_domain, name=f"{framework} guide {getattr(guide, '__name__', guide)!s}",
            **({} if not reparameterized else {"reparameterize": self._reparameterize,
                                                "grad_z_log_prob": self._grad_z_log_prob,
                                                "pull_back": self._pull_back}))
        self.theta, self.phi, self.x = theta0, phi0, np.array(x, dtype=np.float64)

    def loss(self, run, kind):
        """``run`` — a framework loss (see the bridge's docstring for what it takes) — as a callable in
        ``kind``'s signature (registry.SIGNATURES, without model and guide) for
        :func:`rws_ref.losses.check_loss`."""
        if not callable(run):
            raise TypeError(f"run must be a callable taking {self.RUN}; got {type(run).__name__}")
        return loss_in_signature(kind, lambda theta, phi, x, forced, noise: self._run(run, theta, phi, x,
                                                                                       forced, noise))

    def check_loss(self, run, kind, **kwargs):
        """:func:`rws_ref.losses.check_loss` of :meth:`loss` on this bridge's model and guide — its θ, φ and
        the batch x it was built with, unless given; keywords pass through (x, z, K, M, seed, ...)."""
        kwargs.setdefault("theta", self.theta)
        kwargs.setdefault("phi", self.phi)
        kwargs.setdefault("x", self.x)
        return losses.check_loss(self.loss(run, kind), kind, self.model, self.guide, **kwargs)

    def _forced(self, theta, phi, forced):
        """(site name → forced arrays, θ ∪ φ) for one framework run."""
        names = {"z": self._latent, "x": self._observed}
        params = dict(phi)
        if theta is not None:
            params.update(theta)
        return {names[role]: arrays for role, arrays in forced.items()}, params

    def _split(self, theta, grads):
        """(θ-gradient or None, φ-gradient) from one dict over θ ∪ φ."""
        return (None if theta is None else {k: grads[k] for k in self.theta_names},
                {k: grads[k] for k in self.phi_names})
