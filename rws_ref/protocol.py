"""The model and guide protocol, in code: what rws_ref asks of a model, by name.

docs/protocol.md is the page a user reads; this module is what every layer of
rws_ref calls.  Nothing here looks at a model's class: a model is its
declarations and its methods.

Required of a model: ``theta_shapes`` (dict name -> shape), ``z_shape``,
``x_shape``, ``init_theta(rng)``, ``sample(theta, n, rng)``,
``log_joint(theta, z, x)``, ``grad_log_joint(theta, z, x, weights)``.
Required of a guide: ``phi_shapes``, ``z_shape``, ``x_shape``,
``init_phi(rng)``, ``sample(phi, x, K, rng)``, ``log_prob(phi, z, x)``,
``grad_log_prob(phi, z, x, weights)``.

Optional declarations: ``z_domain`` / ``x_domain``: ``"real"`` (the default),
``"binary"`` (0/1 values, float64) or an int C (category indices 0..C−1,
int64).  rws_ref validates θ, φ, x and z from these declarations before it
calls the model, and hands the model float64 (or int64) arrays of the
declared shapes.

Optional capabilities, each looked up by this name and no other:

    log_joint_vjp(theta, z, x) -> (log_p (K, N), pullback)   one forward pass;
    log_prob_vjp(phi, z, x)    -> (log_q (K, N), pullback)   pullback(weights) is
                                                              the weighted-sum gradient
    support()                  -> (S, *z_shape)     finite latent: exact enumeration
    data_support()             -> (X, *x_shape)     finite data: exact sleep targets
    joint_quadrature(theta, nodes) -> (z, x, prob)  points with Σ prob f = E_{p_θ(z,x)} f
    log_marginal(theta, x)     -> (N,)              exact log p_θ(x)
    kl_grad_phi(guide, theta, phi, x), sleep_target(guide, theta, phi)
                               closed-form targets of the φ estimators
    summary(theta)             -> dict of arrays    quantities training compares with the truth
"""
import weakref
from typing import NamedTuple

import numpy as np

from .validation import (
    PerCopyGradient,
    all_finite,
    as_array,
    check_gradient,
    declared_shape,
    describe_shape,
    domain,
    log_density,
    readonly,
    validate_params,
    validate_weights,
    validate_x,
    validate_z,
    z_entries,
)

__all__ = ["MODEL_METHODS", "GUIDE_METHODS", "Model", "Guide", "check_model", "check_guide",
           "check_pair", "copy_declarations", "validate_inputs", "validate_params", "validate_x", "validate_z",
           "validate_weights", "all_finite", "forward", "MODEL", "GUIDE", "model_forward", "guide_forward",
           "support", "support_log_joint",
           "domain", "z_entries", "describe_shape", "MissingCapability", "readonly", "sample_model", "sample_guide",
           "init_params", "check_gradient", "PerCopyGradient", "finite_states", "latent_states", "MAX_STATES",
           "serves"]

MODEL_METHODS = ("init_theta", "sample", "log_joint", "grad_log_joint")


class MissingCapability(TypeError):
    """A method the object has but cannot serve (an adapter built without ``sample=``): layers that can do
    without it say "not applicable"."""


def serves(obj, method):
    """Whether ``obj`` can serve ``method``: it has it, callable, and does not list it in its optional
    declaration ``unserved`` (the protocol methods an object must define but cannot serve — an adapter built
    without ``sample=`` lists "sample"; docs/protocol.md)."""
    return callable(getattr(obj, method, None)) and method not in getattr(obj, "unserved", ())
GUIDE_METHODS = ("init_phi", "sample", "log_prob", "grad_log_prob")


# -- declarations -----------------------------------------------------------------------


def _check(obj, role, shapes_attr, methods):
    if obj is None or isinstance(obj, (str, bytes, int, float, dict, list, tuple)):
        raise TypeError(f"{role} must be a {role} object following rws_ref's protocol "
                        f"(docs/protocol.md); got {type(obj).__name__}")
    missing = [m for m in methods if not callable(getattr(obj, m, None))]
    if missing:
        raise TypeError(f"{role} {obj!r} lacks the protocol method(s) {', '.join(missing)} "
                        f"(docs/protocol.md)")
    shapes = getattr(obj, shapes_attr, None)
    if not isinstance(shapes, dict):             # {} is a model (or guide) without parameters
        raise TypeError(f"{role} {obj!r} must declare {shapes_attr} as a dict name -> shape; got {shapes!r}")
    declared_shape(obj, "z_shape"), declared_shape(obj, "x_shape"), domain(obj, "z"), domain(obj, "x")
    return obj


def check_model(model):
    """TypeError unless ``model`` declares and defines what the model protocol requires."""
    return _check(model, "model", "theta_shapes", MODEL_METHODS)


def check_guide(guide):
    """TypeError unless ``guide`` declares and defines what the guide protocol requires."""
    return _check(guide, "guide", "phi_shapes", GUIDE_METHODS)


#: model -> {guide -> the declarations the pair passed with}, by weak reference (a pair that is freed leaves)
_PAIRS_CHECKED = weakref.WeakKeyDictionary()


def _declarations(obj):
    return tuple(getattr(obj, a, None) for a in ("z_shape", "x_shape", "z_domain", "x_domain", "z_entries"))


def check_pair(model, guide):
    """Both follow the protocol and agree on z_shape, x_shape and the domains; else a clear error.

    A pair that passed is remembered (by weak reference, with its declarations), so the check costs two
    dictionary lookups on the hot path; objects that cannot be weakly referenced or hashed are checked
    every time."""
    declared = (_declarations(model), _declarations(guide))
    try:
        if _PAIRS_CHECKED.get(model, {}).get(guide) == declared:
            return model, guide
    except TypeError:                      # unhashable, or no weak reference: check every time
        pass
    check_model(model), check_guide(guide)
    entries = z_entries(model), z_entries(guide)
    mine = [(declared_shape(model, a), declared_shape(guide, a)) for a in ("z_shape", "x_shape")]
    mine += [(domain(model, w), domain(guide, w)) for w in ("z", "x")]
    if any(m != g for m, g in mine):
        raise ValueError(f"guide {guide!r} does not match model {model!r}: guide (z_shape, x_shape, "
                         f"z_domain, x_domain) = {tuple(g for _, g in mine)}, model {tuple(m for m, _ in mine)}")
    if entries[0] != entries[1]:
        raise ValueError(f"guide {guide!r} does not match model {model!r}: guide z_entries = {entries[1]}, "
                         f"model {entries[0]}")
    try:
        _PAIRS_CHECKED.setdefault(model, weakref.WeakKeyDictionary())[guide] = declared
    except TypeError:
        pass
    return model, guide


def copy_declarations(target, inner, shapes_attr):
    """Give a wrapper the declarations of the model or guide it wraps (its parameter shapes under
    ``shapes_attr``, z_shape, x_shape and the domains), as attributes of its own."""
    setattr(target, shapes_attr, getattr(inner, shapes_attr))
    target.z_shape, target.x_shape = inner.z_shape, inner.x_shape
    target.z_domain, target.x_domain = domain(inner, "z"), domain(inner, "x")
    if z_entries(inner) is not None:
        target.z_entries = z_entries(inner)
    return target


# -- validation of a pair's inputs ---------------------------------------------------------------


def validate_inputs(model, guide, theta, phi, x, z):
    """The inputs of an estimator, validated from the pair's declarations in one step.

    Checks that model and guide follow the protocol and agree, θ and φ against
    ``theta_shapes`` / ``phi_shapes``, x of shape (N, *x_shape) and z of shape
    (K, N, *z_shape) in their declared domains.  Returns (θ, φ, x, z) as float64 (int64
    for category indices) arrays; raises TypeError or ValueError naming the argument."""
    check_pair(model, guide)
    theta = validate_params(theta, model.theta_shapes, "theta")
    phi = validate_params(phi, guide.phi_shapes, "phi")
    x = validate_x(model, x)
    return theta, phi, x, validate_z(model, z, x.shape[0])


# -- one forward pass, by capability -----------------------------------------------------------


class Role(NamedTuple):
    """The names one side of the pair has in the protocol: the model's or the guide's."""
    vjp: str            # the one-pass capability, (log density, pullback)
    density: str        # the log density
    gradient: str       # its weighted-sum gradient
    shapes: str         # the parameter declaration


MODEL = Role("log_joint_vjp", "log_joint", "grad_log_joint", "theta_shapes")
GUIDE = Role("log_prob_vjp", "log_prob", "grad_log_prob", "phi_shapes")


def forward(obj, role, params, z, x):
    """(log density (K, N), pullback) of a model (``role`` MODEL) or a guide (GUIDE): the one-pass capability
    if the object has it, else the log density with its weighted gradient as the pullback.  Inputs already
    validated; what the object returns is checked (shape, dtype; the pullback's gradient)."""
    vjp = getattr(obj, role.vjp, None)
    if vjp is not None:
        value, pullback = vjp(params, z, x)
    else:
        value = getattr(obj, role.density)(params, z, x)
        gradient = getattr(obj, role.gradient)
        pullback = lambda weights: gradient(params, z, x, weights)        # noqa: E731
    if type(value) is not np.ndarray or value.shape != z.shape[:2] or value.dtype != np.float64:
        value = log_density(value, z.shape[:2], obj, role.density)
    shapes = getattr(obj, role.shapes)
    return value, lambda weights: check_gradient(pullback(weights), shapes, obj, role.gradient)


def model_forward(model, theta, z, x):
    """(log p_θ(z, x) (K, N), pullback): :func:`forward` of a model."""
    return forward(model, MODEL, theta, z, x)


def guide_forward(guide, phi, z, x):
    """(log q_φ(z|x) (K, N), pullback): :func:`forward` of a guide."""
    return forward(guide, GUIDE, phi, z, x)


def sample_model(model, theta, n, rng):
    """(z (n, *z_shape), x (n, *x_shape)) from ``model.sample``, validated: a clear error naming the sampler
    for anything but a pair of that shape in the declared domains."""
    out = model.sample(theta, n, rng)
    if not isinstance(out, tuple) or len(out) != 2:
        what = f"a tuple of {len(out)}" if isinstance(out, tuple) else type(out).__name__
        raise TypeError(f"{model!r}.sample(theta, n, rng) must return (z, x); got {what}")
    z, x = out
    x = validate_x(model, x, name=f"{model!r}.sample output x")
    if x.shape[0] != n:
        raise ValueError(f"{model!r}.sample output x must hold n = {n} datapoints; got {x.shape[0]}")
    z = as_array(z, f"{model!r}.sample output z", "N", declared_shape(model, "z_shape"))
    return validate_z(model, z[None], n, name=f"{model!r}.sample output z")[0], x


def sample_guide(guide, phi, x, K, rng):
    """Particles (K, N, *z_shape) from ``guide.sample``, validated, a clear error naming the sampler."""
    z = guide.sample(phi, x, K, rng)
    name = f"{guide!r}.sample output"
    z = validate_z(guide, as_array(z, name, "KN", declared_shape(guide, "z_shape")), np.shape(x)[0], name=name)
    if z.shape[0] != K:
        raise ValueError(f"{name} must hold K = {K} particles per datapoint; got {z.shape[0]}")
    return z


def init_params(obj, rng):
    """θ from ``model.init_theta(rng)`` or φ from ``guide.init_phi(rng)``, validated against the declared
    shapes with the method named in any error."""
    if callable(getattr(obj, "init_theta", None)):
        return validate_params(obj.init_theta(rng), obj.theta_shapes, f"{obj!r}.init_theta output")
    return validate_params(obj.init_phi(rng), obj.phi_shapes, f"{obj!r}.init_phi output")


def support(model):
    """The model's finite latent support (S, *z_shape), validated — every state in the declared z_domain,
    no state twice — or None if it declares none."""
    fn = getattr(model, "support", None)
    if fn is None:
        return None
    if not callable(fn):
        raise TypeError(f"{model!r}.support must be a method returning the states; got {type(fn).__name__}")
    states = np.asarray(fn())
    if states.ndim < 1 or states.shape[0] < 1:
        raise ValueError(f"{model!r}.support() must return (S, *z_shape) with S >= 1; got {states.shape}")
    states = validate_z(model, states[:, None], 1, name=f"{model!r}.support()")[:, 0]
    flat = states.reshape(len(states), -1)
    _, first, counts = np.unique(flat, axis=0, return_index=True, return_counts=True)
    if np.any(counts > 1):
        twice = int(first[np.argmax(counts > 1)])
        raise ValueError(f"{model!r}.support() lists state {states[twice].tolist()} {int(counts.max())} times; "
                         f"each state must appear once")
    return states


#: the most states rws_ref enumerates from a declared finite domain (2^16: sixteen binary latents)
MAX_STATES = 65_536


def finite_states(z_shape, z_domain, limit=MAX_STATES):
    """Every value of a latent of shape ``z_shape`` in the finite domain ``z_domain`` ("binary": 0/1 as
    float64, or C categories as int64), shape (S, *z_shape) in lexicographic order; None for "real" or for
    more than ``limit`` states.  The one enumeration of a finite domain in rws_ref."""
    if z_domain == "real":
        return None
    values = 2 if z_domain == "binary" else int(z_domain)
    size = int(np.prod(z_shape, dtype=np.int64))
    if values ** size > limit:
        return None
    grid = np.indices((values,) * size).reshape(size, -1).T if size else np.zeros((1, 0), dtype=np.int64)
    states = grid.reshape((-1,) + tuple(z_shape))
    return states.astype(np.float64) if z_domain == "binary" else states.astype(np.int64)


def latent_states(*objs):
    """The finite latent domain of a model and guide, (S, *z_shape), or None for a continuous latent: the
    first ``support()`` declared among ``objs`` (pass the model, then the guide), else every value of their
    declared finite ``z_domain`` (at most :data:`MAX_STATES`).  A check of a pair asks here, so a density is
    never evaluated outside the domain the pair declares (docs/protocol.md)."""
    for obj in objs:
        states = support(obj)
        if states is not None:
            return states
    for obj in objs:
        dom = domain(obj, "z")
        if dom != "real":
            return finite_states(declared_shape(obj, "z_shape"), dom)
    return None


def support_log_joint(model, theta, x):
    """log p_θ(s, x_n) for every state s of the model's finite support and every datapoint:
    shape (S, N), through the model's own (validated) ``log_joint``."""
    x = validate_x(model, x)
    states = support(model)
    if states is None:
        raise TypeError(f"model {model!r} declares no finite support()")
    return model.log_joint(theta, np.repeat(states[:, None], x.shape[0], axis=1), x)


# -- an optional base: declarations plus log_joint_vjp give the validated methods ---------------


class _Density:
    """What :class:`Model` and :class:`Guide` share: the validated log density and weighted gradient from
    declarations plus the one-pass capability, for the side of the pair ``ROLE`` names."""

    z_domain = "real"
    x_domain = "real"
    ROLE = MODEL

    def _inputs(self, params, z, x):
        params = validate_params(params, getattr(self, self.ROLE.shapes), "theta" if self.ROLE is MODEL else "phi")
        x = validate_x(self, x)
        return params, validate_z(self, z, x.shape[0]), x

    def _value(self, params, z, x):
        return getattr(self, self.ROLE.vjp)(*self._inputs(params, z, x))[0]

    def _gradient(self, params, z, x, weights):
        params, z, x = self._inputs(params, z, x)
        return getattr(self, self.ROLE.vjp)(params, z, x)[1](validate_weights(weights, z.shape[:2]))


class Model(_Density):
    """Optional base class for a model.  Declare ``theta_shapes``, ``z_shape``, ``x_shape``
    (and domains), write ``init_theta``, ``sample`` and ``log_joint_vjp``; this gives the
    validated ``log_joint``, ``grad_log_joint`` and ``check_theta``.  The built-in models use it;
    nothing in rws_ref requires it."""

    ROLE = MODEL

    def check_theta(self, theta):
        """θ validated against ``theta_shapes``: float64, finite."""
        return validate_params(theta, self.theta_shapes, "theta")

    def log_joint(self, theta, z, x):
        """log p_θ(z_kn, x_n) for z (K, N, *z_shape), x (N, *x_shape).  Returns (K, N)."""
        return self._value(theta, z, x)

    def grad_log_joint(self, theta, z, x, weights):
        """∇_θ Σ_{k,n} weights[k,n] · log p_θ(z_kn, x_n): the plain gradient (ascent of the sum)."""
        return self._gradient(theta, z, x, weights)


class Guide(_Density):
    """Optional base class for a guide, as :class:`Model`: write ``log_prob_vjp`` and get the
    validated ``log_prob``, ``grad_log_prob`` and ``check_phi``."""

    ROLE = GUIDE

    def check_phi(self, phi):
        """φ validated against ``phi_shapes``: float64, finite."""
        return validate_params(phi, self.phi_shapes, "phi")

    def log_prob(self, phi, z, x):
        """log q_φ(z_kn | x_n) for z (K, N, *z_shape), x (N, *x_shape).  Returns (K, N)."""
        return self._value(phi, z, x)

    def grad_log_prob(self, phi, z, x, weights):
        """∇_φ Σ_{k,n} weights[k,n] · log q_φ(z_kn | x_n): the plain gradient (ascent of the sum)."""
        return self._gradient(phi, z, x, weights)
