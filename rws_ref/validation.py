"""Validation from a model's or guide's declarations, written once: the declared shapes and domains, and θ,
φ, x, z, weights and what a model's or guide's gradient returns checked against them.

rws_ref.protocol re-exports every name here (``protocol.validate_x`` …), so a reader finds the protocol in
one place; this module holds the checks themselves.  Messages name the argument, what was expected and what
came, e.g. ``ValueError: z must have shape (K, N, 3) with N = 4; got (5, 3)``.
"""
import numpy as np
from autograd.tracer import Box, getval

from ._checks import as_float_array, check_finite

__all__ = ["domain", "z_entries", "declared_shape", "describe_shape", "all_finite", "readonly", "as_array",
           "validate_params", "validate_x", "validate_z", "validate_weights", "log_density", "check_gradient",
           "PerCopyGradient"]


def domain(obj, which):
    """The declared ``z_domain`` or ``x_domain`` of a model or guide: "real", "binary" or an int C."""
    value = getattr(obj, f"{which}_domain", "real")
    if value in ("real", "binary"):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 2:
        return int(value)
    raise TypeError(f"{obj!r}: {which}_domain must be 'real', 'binary' or an integer number of "
                    f"categories >= 2; got {value!r}")


def z_entries(obj):
    """The optional ``z_entries`` of a model or guide — one domain per entry of a vector latent whose
    entries mix domains (a discrete choice beside a continuous value), with ``z_domain = "real"`` — as a
    tuple, or None when not declared."""
    value = getattr(obj, "z_entries", None)
    if value is None:
        return None
    shape = declared_shape(obj, "z_shape")
    entries = tuple(value) if isinstance(value, (tuple, list)) else None
    if entries is None or len(shape) != 1 or len(entries) != shape[0] or domain(obj, "z") != "real":
        raise TypeError(f"{obj!r}: z_entries declares one domain per entry of a vector latent (z_shape (D,) "
                        f"with D entries, z_domain 'real'); got {value!r} with z_shape {shape} and z_domain "
                        f"{getattr(obj, 'z_domain', 'real')!r}")
    for e in entries:
        if not (e in ("real", "binary") or isinstance(e, (int, np.integer)) and not isinstance(e, bool) and e >= 2):
            raise TypeError(f"{obj!r}: each of z_entries must be 'real', 'binary' or an integer number of "
                            f"categories >= 2; got {e!r}")
    return tuple(e if isinstance(e, str) else int(e) for e in entries)


def _check_entries(obj, a, name):
    """The discrete entries of a latent that declares ``z_entries`` hold whole numbers in their range."""
    entries = z_entries(obj)
    for j, e in enumerate(entries or ()):
        if e == "real":
            continue
        v = a[..., j]
        top = 2 if e == "binary" else e
        bad = (v != np.round(v)) | (v < 0) | (v >= top)
        if bad.any():
            what = "0 or 1" if e == "binary" else f"a category in 0..{top - 1}"
            raise ValueError(f"{name}[..., {j}] must hold {what} (z_entries[{j}] = {e!r}); got {v[bad][0]}")


def declared_shape(obj, attr):
    """The declared ``z_shape`` or ``x_shape`` of a model or guide, a tuple of positive dimensions."""
    value = getattr(obj, attr, None)
    try:
        shape = tuple(int(d) for d in value)
    except TypeError:
        raise TypeError(f"{obj!r} must declare {attr} as a tuple of dimensions; got {value!r}") from None
    if any(d < 1 for d in shape):
        raise TypeError(f"{obj!r}: {attr} must hold positive dimensions; got {value!r}")
    return shape


def describe_shape(lead, shape):
    """'(K, N, 3)' from lead ('K', 'N') and shape (3,); '(N,)' from 'N' and ()."""
    parts = list(lead) + [str(d) for d in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


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
        if which == "z" and getattr(obj, "z_entries", None) is not None:
            _check_entries(obj, a, name)
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
        if which == "z":
            _check_entries(obj, a, name)
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


def as_array(value, name, lead, shape):
    """``value`` as an ndarray (its shape checked by the caller); TypeError naming the argument for a string,
    a dict or None."""
    if isinstance(value, (str, bytes, dict)) or value is None:
        raise TypeError(f"{name} must be an array of shape {describe_shape(lead, shape)}; "
                        f"got {type(value).__name__}")
    return np.asarray(value)


def validate_x(obj, x, name="x"):
    """Data of shape (N, *x_shape), N >= 1, in the declared x_domain.  A value autograd is
    tracing is checked through its plain value and returned as it is."""
    return _validate(obj, x, "x", ("N",), name)


def validate_z(obj, z, n, name="z"):
    """Particles of shape (K, N, *z_shape), K >= 1, in the declared z_domain (traced values
    as in :func:`validate_x`)."""
    return _validate(obj, z, "z", ("K", "N"), name, n)


def _validate(obj, value, which, lead, name, n=None):
    """``value`` of shape (*lead, *{which}_shape) — lead ("N",) for data, ("K", "N") for particles with N = n
    given — every leading axis at least 1, in the declared domain of ``which``."""
    if isinstance(value, Box):
        _validate(obj, getval(value), which, lead, name, n)
        return value
    attr = f"{which}_shape"
    shape = getattr(obj, attr) if type(getattr(obj, attr, None)) is tuple else declared_shape(obj, attr)
    a = value if type(value) is np.ndarray else as_array(value, name, "".join(lead), shape)
    if a.ndim != len(lead) + len(shape) or a.shape[len(lead):] != shape or (n is not None and a.shape[1] != n):
        with_n = f" with N = {n}" if n is not None else ""
        raise ValueError(f"{name} must have shape {describe_shape(lead, shape)}{with_n}; got {a.shape}")
    if a.shape[0] < 1:
        raise ValueError(f"{name} must hold at least one datapoint (N >= 1); got shape {a.shape}" if n is None else
                         f"{name} must hold K >= 1 particles; got shape {a.shape}")
    return _convert(a, obj, which, name)


def validate_weights(weights, shape, name="weights"):
    """Finite float64 weights of exactly ``shape`` (K, N)."""
    arr = as_float_array(weights, name)
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape (K, N) = {tuple(shape)}; got {arr.shape}")
    if not all_finite(arr):
        check_finite(arr, name)
    return arr


def log_density(value, kn, obj, method):
    """What a model's or guide's log density returned, as a float64 (K, N) array; a clear error naming
    ``obj.method`` for anything else (values autograd traces pass through)."""
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
