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
import numpy as np
from autograd.tracer import Box, getval

from ._checks import as_float_array, check_finite

__all__ = ["MODEL_METHODS", "GUIDE_METHODS", "Model", "Guide", "check_model", "check_guide",
           "check_pair", "copy_declarations", "validate_inputs", "validate_params", "validate_x", "validate_z",
           "validate_weights", "all_finite", "model_forward", "guide_forward", "support", "support_log_joint",
           "domain", "describe_shape", "MissingCapability", "readonly", "sample_model", "sample_guide",
           "init_params", "check_gradient", "PerCopyGradient", "finite_states", "latent_states", "MAX_STATES"]

MODEL_METHODS = ("init_theta", "sample", "log_joint", "grad_log_joint")


class MissingCapability(TypeError):
    """A method the object has but cannot serve (an adapter built without ``sample=``): layers that can do
    without it say "not applicable"."""
GUIDE_METHODS = ("init_phi", "sample", "log_prob", "grad_log_prob")


# -- declarations -----------------------------------------------------------------------


def domain(obj, which):
    """The declared ``z_domain`` or ``x_domain`` of a model or guide: "real", "binary" or an int C."""
    value = getattr(obj, f"{which}_domain", "real")
    if value in ("real", "binary"):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 2:
        return int(value)
    raise TypeError(f"{obj!r}: {which}_domain must be 'real', 'binary' or an integer number of "
                    f"categories >= 2; got {value!r}")


def _shape(obj, attr):
    value = getattr(obj, attr, None)
    try:
        shape = tuple(int(d) for d in value)
    except TypeError:
        raise TypeError(f"{obj!r} must declare {attr} as a tuple of dimensions; got {value!r}") from None
    if any(d < 1 for d in shape):
        raise TypeError(f"{obj!r}: {attr} must hold positive dimensions; got {value!r}")
    return shape


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
    _shape(obj, "z_shape"), _shape(obj, "x_shape"), domain(obj, "z"), domain(obj, "x")
    return obj


def check_model(model):
    """TypeError unless ``model`` declares and defines what the model protocol requires."""
    return _check(model, "model", "theta_shapes", MODEL_METHODS)


def check_guide(guide):
    """TypeError unless ``guide`` declares and defines what the guide protocol requires."""
    return _check(guide, "guide", "phi_shapes", GUIDE_METHODS)


_PAIRS_CHECKED = {}


def check_pair(model, guide):
    """Both follow the protocol and agree on z_shape, x_shape and the domains; else a clear error.

    A pair that passed is remembered by identity, type and declarations, so the check
    costs one dictionary lookup on the hot path."""
    try:
        key = (id(model), id(guide), type(model), type(guide),
               getattr(model, "z_shape", None), getattr(model, "x_shape", None), getattr(model, "z_domain", None),
               getattr(model, "x_domain", None), getattr(guide, "z_shape", None), getattr(guide, "x_shape", None),
               getattr(guide, "z_domain", None), getattr(guide, "x_domain", None))
        if key in _PAIRS_CHECKED:
            return model, guide
    except TypeError:                      # unhashable declarations: check every time
        key = None
    check_model(model), check_guide(guide)
    mine = [(_shape(model, a), _shape(guide, a)) for a in ("z_shape", "x_shape")]
    mine += [(domain(model, w), domain(guide, w)) for w in ("z", "x")]
    if any(m != g for m, g in mine):
        raise ValueError(f"guide {guide!r} does not match model {model!r}: guide (z_shape, x_shape, "
                         f"z_domain, x_domain) = {tuple(g for _, g in mine)}, model {tuple(m for m, _ in mine)}")
    if key is not None:
        if len(_PAIRS_CHECKED) > 4096:
            _PAIRS_CHECKED.clear()
        _PAIRS_CHECKED[key] = True
    return model, guide


def copy_declarations(target, inner, shapes_attr):
    """Give a wrapper the declarations of the model or guide it wraps (its parameter shapes under
    ``shapes_attr``, z_shape, x_shape and the domains), as attributes of its own."""
    setattr(target, shapes_attr, getattr(inner, shapes_attr))
    target.z_shape, target.x_shape = inner.z_shape, inner.x_shape
    target.z_domain, target.x_domain = domain(inner, "z"), domain(inner, "x")
    return target


def describe_shape(lead, shape):
    """'(K, N, 3)' from lead ('K', 'N') and shape (3,); '(N,)' from 'N' and ()."""
    parts = list(lead) + [str(d) for d in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


# -- validation from the declarations ------------------------------------------------------


def all_finite(arr):
    """True if every entry of the float array ``arr`` is finite, decided by one reduction.

    A dot product decides the common case (NaN and ±inf propagate); a square that overflows
    returns False for a finite array, so callers follow a False with an exact search that
    names the culprit (``_checks.check_finite``)."""
    if arr.flags.c_contiguous:
        return np.isfinite(np.vdot(arr, arr))
    return np.isfinite(np.add.reduce(arr, axis=None))       # strided: no copy


def readonly(a):
    """A read-only view of ``a`` (``a`` itself if it is read-only already).  Every array rws_ref validates
    and hands on — to an estimator, to a user's density, sampler or estimator — is such a view, so a
    function that writes into its inputs fails with NumPy's "assignment destination is read-only" instead
    of changing the caller's θ, φ, x or z (docs/protocol.md)."""
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


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


def validate_params(params, shapes, name):
    """A parameter dict checked against ``{key: shape}``: float64 arrays, finite.

    Values being traced by autograd pass through unchanged after their shape
    and finiteness are checked, so a model's public methods stay differentiable.
    """
    if isinstance(params, Box) and isinstance(getval(params), dict):    # a dict traced as a whole
        params = {key: params[key] for key in getval(params)}
    if not isinstance(params, dict):
        raise TypeError(f"{name} must be a dict of arrays with keys {sorted(shapes)}; "
                        f"got {type(params).__name__}")
    if params.keys() != shapes.keys():
        missing, extra = sorted(set(shapes) - set(params)), sorted(set(params) - set(shapes))
        raise ValueError(f"{name} must have keys {sorted(shapes)}; missing {missing}, unexpected {extra}")
    out, total = {}, 0.0
    for key, shape in shapes.items():
        value = params[key]
        if type(value) is np.ndarray and value.dtype == np.float64:        # the common case, cheaply
            arr = value
        else:
            arr = as_float_array(getval(value), f"{name}[{key!r}]")
        if arr.shape != shape and arr.shape != tuple(shape):
            raise ValueError(f"{name}[{key!r}] must have shape {tuple(shape)}; got {arr.shape}")
        total += np.vdot(arr, arr)
        out[key] = value if isinstance(value, Box) else readonly(arr)
    if not np.isfinite(total):             # NaN or ±inf somewhere (or an overflowing square): find it
        for key in shapes:
            check_finite(np.asarray(getval(out[key])), f"{name}[{key!r}]")
    return out


def _convert(a, obj, which, name):
    """``a`` (already of the right shape) as a float64 (int64 for categories) array in the
    declared domain of ``obj``'s ``which`` ("z" or "x"); the common case costs one reduction."""
    dom = getattr(obj, f"{which}_domain", "real")
    if dom == "real" and type(a) is np.ndarray and a.dtype == np.float64:      # the common case
        if not all_finite(a):
            check_finite(a, name)
        return readonly(a)
    dom = domain(obj, which)
    if a.dtype == object or not (a.dtype == bool or np.issubdtype(a.dtype, np.number)) \
            or a.dtype.kind == "c":
        kind = {"real": "a real float", "binary": "a 0/1"}.get(dom, "an integer category")
        raise TypeError(f"{name} must be {kind} array; got dtype {a.dtype}")
    if dom == "real":
        a = a.astype(np.float64, copy=False)
        if not all_finite(a):
            check_finite(a, name)
        return readonly(a)
    # discrete domains: the value checks below refuse NaN and ±inf too
    if dom == "binary":
        a = a.astype(np.float64, copy=False)
        bad = (a != 0) & (a != 1)
        if bad.any():
            raise ValueError(f"{name} must hold only 0 and 1 ({which}_domain); got {a[bad][0]}")
        return readonly(a)
    if a.dtype.kind == "f" and np.any(a != np.round(a)):
        raise ValueError(f"{name} must hold whole-number category indices; got {a[a != np.round(a)][0]}")
    if a.size and (a.min() < 0 or a.max() >= dom):
        bad = (a < 0) | (a >= dom)
        raise ValueError(f"{name} must hold categories in 0..{dom - 1}; got {a[bad][0]}")
    return readonly(a.astype(np.int64, copy=False))


def _as_array(value, name, lead, shape):
    if isinstance(value, (str, bytes, dict)) or value is None:
        raise TypeError(f"{name} must be an array of shape {describe_shape(lead, shape)}; "
                        f"got {type(value).__name__}")
    return np.asarray(value)


def validate_x(obj, x, name="x"):
    """Data of shape (N, *x_shape), N >= 1, in the declared x_domain.  A value autograd is
    tracing is checked through its plain value and returned as it is."""
    if isinstance(x, Box):
        validate_x(obj, getval(x), name)
        return x
    shape = obj.x_shape if type(getattr(obj, "x_shape", None)) is tuple else _shape(obj, "x_shape")
    a = x if type(x) is np.ndarray else _as_array(x, name, "N", shape)
    if a.ndim != 1 + len(shape) or a.shape[1:] != shape:
        raise ValueError(f"{name} must have shape {describe_shape('N', shape)}; got {a.shape}")
    if a.shape[0] < 1:
        raise ValueError(f"{name} must hold at least one datapoint (N >= 1); got shape {a.shape}")
    return _convert(a, obj, "x", name)


def validate_z(obj, z, n, name="z"):
    """Particles of shape (K, N, *z_shape), K >= 1, in the declared z_domain (traced values
    as in :func:`validate_x`)."""
    if isinstance(z, Box):
        validate_z(obj, getval(z), n, name)
        return z
    shape = obj.z_shape if type(getattr(obj, "z_shape", None)) is tuple else _shape(obj, "z_shape")
    a = z if type(z) is np.ndarray else _as_array(z, name, "KN", shape)
    if a.ndim != 2 + len(shape) or a.shape[1] != n or a.shape[2:] != shape:
        raise ValueError(f"{name} must have shape {describe_shape('KN', shape)} with N = {n}; got {a.shape}")
    if a.shape[0] < 1:
        raise ValueError(f"{name} must hold K >= 1 particles; got shape {a.shape}")
    return _convert(a, obj, "z", name)


def validate_weights(weights, shape, name="weights"):
    """Finite float64 weights of exactly ``shape`` (K, N)."""
    arr = as_float_array(weights, name)
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape (K, N) = {tuple(shape)}; got {arr.shape}")
    if not all_finite(arr):
        check_finite(arr, name)
    return arr


# -- one forward pass, by capability -----------------------------------------------------------


def _log_density(value, kn, obj, method):
    if isinstance(value, Box):
        return value
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{obj!r}.{method} returned {type(value).__name__} of dtype {arr.dtype}; the protocol "
                        f"asks for real log densities, float64 of shape (K, N) = {kn}")
    arr = arr.astype(np.float64)
    if arr.shape != kn:
        raise ValueError(f"{obj!r}.{method} returned shape {arr.shape}; the protocol asks for (K, N) = {kn}")
    return arr


def model_forward(model, theta, z, x):
    """(log p_θ(z, x) (K, N), pullback): ``log_joint_vjp`` if the model has it, else
    ``log_joint`` with ``grad_log_joint`` as the pullback.  Inputs already validated."""
    vjp = getattr(model, "log_joint_vjp", None)
    if vjp is not None:
        log_p, pullback = vjp(theta, z, x)
    else:
        log_p = model.log_joint(theta, z, x)
        pullback = lambda weights: model.grad_log_joint(theta, z, x, weights)   # noqa: E731
    if type(log_p) is not np.ndarray or log_p.shape != z.shape[:2] or log_p.dtype != np.float64:
        log_p = _log_density(log_p, z.shape[:2], model, "log_joint")
    return log_p, lambda weights: check_gradient(pullback(weights), model.theta_shapes, model, "grad_log_joint")


def guide_forward(guide, phi, z, x):
    """(log q_φ(z|x) (K, N), pullback), as :func:`model_forward` for a guide."""
    vjp = getattr(guide, "log_prob_vjp", None)
    if vjp is not None:
        log_q, pullback = vjp(phi, z, x)
    else:
        log_q = guide.log_prob(phi, z, x)
        pullback = lambda weights: guide.grad_log_prob(phi, z, x, weights)      # noqa: E731
    if type(log_q) is not np.ndarray or log_q.shape != z.shape[:2] or log_q.dtype != np.float64:
        log_q = _log_density(log_q, z.shape[:2], guide, "log_prob")
    return log_q, lambda weights: check_gradient(pullback(weights), guide.phi_shapes, guide, "grad_log_prob")


class PerCopyGradient(dict):
    """Gradients with a leading axis of copies, (M, *shape) per key: what the exact oracle's per-state
    tables return for M copies of one datapoint at once (rws_ref/exact/tables.py).  Passed through
    :func:`check_gradient` as they are."""


def check_gradient(grad, shapes, obj, method):
    """A gradient a model or guide returned: a dict of finite float64 arrays of the declared shapes, else a
    clear error naming ``obj.method`` and what it returned.  The common case costs one pass over the keys."""
    if type(grad) is dict and grad.keys() == shapes.keys():
        total = 0.0
        for key, value in grad.items():
            if type(value) is not np.ndarray or value.dtype != np.float64 or (
                    value.shape != shapes[key] and value.shape != tuple(shapes[key])):
                break
            total += np.vdot(value, value)
        else:
            if np.isfinite(total):
                return grad
    if isinstance(grad, (Box, PerCopyGradient)) or (
            isinstance(grad, dict) and any(isinstance(v, Box) for v in grad.values())):
        return grad
    if not isinstance(grad, dict):
        raise TypeError(f"{obj!r}.{method} returned {type(grad).__name__}; the protocol asks for a dict "
                        f"keyed like the parameters ({', '.join(sorted(shapes))})")
    for key, value in grad.items():
        if np.asarray(value).dtype.kind == "c":
            raise TypeError(f"{obj!r}.{method} returned a complex {key!r}; gradients are real")
    return validate_params(grad, shapes, f"{obj!r}.{method} output")


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
    z = _as_array(z, f"{model!r}.sample output z", "N", _shape(model, "z_shape"))
    return validate_z(model, z[None], n, name=f"{model!r}.sample output z")[0], x


def sample_guide(guide, phi, x, K, rng):
    """Particles (K, N, *z_shape) from ``guide.sample``, validated, a clear error naming the sampler."""
    z = guide.sample(phi, x, K, rng)
    name = f"{guide!r}.sample output"
    z = validate_z(guide, _as_array(z, name, "KN", _shape(guide, "z_shape")), np.shape(x)[0], name=name)
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
            return finite_states(_shape(obj, "z_shape"), dom)
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


class Model:
    """Optional base class for a model.  Declare ``theta_shapes``, ``z_shape``, ``x_shape``
    (and domains), write ``init_theta``, ``sample`` and ``log_joint_vjp``; this gives the
    validated ``log_joint``, ``grad_log_joint`` and ``check_theta``.  The built-in models use it;
    nothing in rws_ref requires it."""

    z_domain = "real"
    x_domain = "real"

    def check_theta(self, theta):
        """θ validated against ``theta_shapes``: float64, finite."""
        return validate_params(theta, self.theta_shapes, "theta")

    def _inputs(self, theta, z, x):
        theta = self.check_theta(theta)
        x = validate_x(self, x)
        return theta, validate_z(self, z, x.shape[0]), x

    def log_joint(self, theta, z, x):
        """log p_θ(z_kn, x_n) for z (K, N, *z_shape), x (N, *x_shape).  Returns (K, N)."""
        return self.log_joint_vjp(*self._inputs(theta, z, x))[0]

    def grad_log_joint(self, theta, z, x, weights):
        """∇_θ Σ_{k,n} weights[k,n] · log p_θ(z_kn, x_n): the plain gradient (ascent of the sum)."""
        theta, z, x = self._inputs(theta, z, x)
        return self.log_joint_vjp(theta, z, x)[1](validate_weights(weights, z.shape[:2]))


class Guide:
    """Optional base class for a guide, as :class:`Model`: write ``log_prob_vjp`` and get the
    validated ``log_prob``, ``grad_log_prob`` and ``check_phi``."""

    z_domain = "real"
    x_domain = "real"

    def check_phi(self, phi):
        """φ validated against ``phi_shapes``: float64, finite."""
        return validate_params(phi, self.phi_shapes, "phi")

    def _inputs(self, phi, z, x):
        phi = self.check_phi(phi)
        x = validate_x(self, x)
        return phi, validate_z(self, z, x.shape[0]), x

    def log_prob(self, phi, z, x):
        """log q_φ(z_kn | x_n) for z (K, N, *z_shape), x (N, *x_shape).  Returns (K, N)."""
        return self.log_prob_vjp(*self._inputs(phi, z, x))[0]

    def grad_log_prob(self, phi, z, x, weights):
        """∇_φ Σ_{k,n} weights[k,n] · log q_φ(z_kn | x_n): the plain gradient (ascent of the sum)."""
        phi, z, x = self._inputs(phi, z, x)
        return self.log_prob_vjp(phi, z, x)[1](validate_weights(weights, z.shape[:2]))
