"""Numerically stable primitives, written once and used everywhere.

Every function here is float64 in, float64 out, and stays finite and
correct for log weights spread over ±1e5 and for ``-inf`` entries
(particles of weight zero).  The functions are written with
``autograd.numpy`` so that the autograd surrogates of
:mod:`rws_ref.autodiff` can differentiate through them; on plain arrays
they behave exactly like their NumPy counterparts.
"""
import autograd.numpy as anp
import numpy as np
from autograd.tracer import Box, getval

LOG_2PI = float(np.log(2.0 * np.pi))

__all__ = [
    "LOG_2PI",
    "logsumexp",
    "log_mean_exp",
    "softmax",
    "log_softmax",
    "sigmoid",
    "log_sigmoid",
    "log1m_sigmoid",
    "check_log_weights",
    "array_module",
]


def array_module(*arrays):
    """The array module to write a density with: ``autograd.numpy`` while autograd traces
    any of ``arrays`` (so the formula stays differentiable), plain NumPy otherwise (no
    per-call dispatch on plain arrays).  A model of your own that wants the autograd route
    (docs/protocol.md) writes ``xp = array_module(z, *theta.values())`` and then ``xp.exp``,
    ``xp.einsum``, … — the same formula serves both."""
    for a in arrays:
        if isinstance(a, Box):
            return anp
    return np


def logsumexp(a, axis=0):
    """log Σ exp(a) along ``axis``, stable for any finite spread of ``a``.

    Entries equal to ``-inf`` contribute exp(-inf) = 0.  A slice whose
    entries are all ``-inf`` gives ``-inf`` (log 0); callers that need a
    positive total check for that with :func:`check_log_weights`.

    Parameters
    ----------
    a : array_like, float64
    axis : int

    Returns
    -------
    ndarray with ``axis`` removed.
    """
    xp = array_module(a)
    shift = _max_shift(a, axis)
    with np.errstate(divide="ignore"):  # log 0 = -inf is the right answer
        out = xp.log(xp.sum(xp.exp(a - shift), axis=axis, keepdims=True)) + shift
    return xp.squeeze(out, axis=axis)


def _max_shift(a, axis):
    # The slice maximum as a constant (no gradient flows through a shift).
    # A slice of all -inf has max -inf; shift it by 0 instead so that
    # a - shift stays -inf (not NaN).
    a_max = np.max(getval(a), axis=axis, keepdims=True)
    return np.where(np.isfinite(a_max), a_max, 0.0)


def log_mean_exp(a, axis=0):
    """log (1/K) Σ exp(a) along ``axis``, with K = a.shape[axis]."""
    return logsumexp(a, axis=axis) - np.log(a.shape[axis])


def softmax(a, axis=0):
    """exp(a) / Σ exp(a) along ``axis``; ``-inf`` entries get weight 0.

    Computed as exp(a − max) / Σ exp(a − max), not exp(a − logsumexp(a)):
    the difference a − max is exact, so the weights sum to 1 within a few
    ulps even when the log weights are of size 1e5 (where a − logsumexp
    would carry an absolute error of order 1e-11).  A slice of all ``-inf``
    gives NaN; :func:`check_log_weights` refuses it first.
    """
    if type(a) is np.ndarray and np.isfinite(a).all():     # plain finite arrays: the shift needs no guard
        e = np.exp(a - a.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)
    xp = array_module(a)
    e = xp.exp(a - _max_shift(a, axis))
    return e / xp.sum(e, axis=axis, keepdims=True)


def log_softmax(a, axis=0):
    """a − logsumexp(a) along ``axis``."""
    return a - array_module(a).expand_dims(logsumexp(a, axis=axis), axis)


def sigmoid(x):
    """1 / (1 + exp(−x)), without overflow for large |x|."""
    return array_module(x).exp(log_sigmoid(x))


def log_sigmoid(x):
    """log sigmoid(x) = −log(1 + exp(−x)) = min(x, 0) − log(1 + exp(−|x|)), exact in both tails (the
    exponent is never positive; about 2.5 times faster than logaddexp)."""
    xp = array_module(x)
    return xp.minimum(x, 0.0) - xp.log1p(xp.exp(-xp.abs(x)))


def log1m_sigmoid(x):
    """log (1 − sigmoid(x)) = log sigmoid(−x) = −max(x, 0) − log(1 + exp(−|x|))."""
    xp = array_module(x)
    return -xp.maximum(x, 0.0) - xp.log1p(xp.exp(-xp.abs(x)))


def check_log_weights(log_w, name="log_w"):
    """Validate a (K, N) array of log weights and return it as float64.

    Raises
    ------
    TypeError
        if ``log_w`` is not a real numeric array.
    ValueError
        if it is not two-dimensional, has K < 1 or N < 1, holds NaN or
        +inf, or if some datapoint has every particle at weight zero
        (all ``-inf``): its normalized weights would be 0/0.
    """
    arr = np.asarray(log_w)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real float array; got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (K, N); got {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must have K >= 1 particles and N >= 1 datapoints; "
                         f"got shape {arr.shape}")
    if np.isfinite(arr).all():
        return arr
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN (at index {tuple(np.argwhere(np.isnan(arr))[0])})")
    if (arr == np.inf).any():
        raise ValueError(f"{name} contains +inf (at index "
                         f"{tuple(np.argwhere(arr == np.inf)[0])}); a weight must be finite")
    dead = np.all(arr == -np.inf, axis=0)
    if dead.any():
        raise ValueError(f"{name}: every particle of datapoint {int(np.argmax(dead))} has "
                         f"log weight -inf (weight zero); its normalized weights are undefined")
    return arr

