"""Parameter dicts ("trees") as flat vectors and back, written once."""
import numpy as np


def flatten(tree, keys=None):
    """The entries of ``tree`` as one float64 vector: each value raveled in C order,
    in the order of ``keys`` (any iterable of keys, a dict included; default sorted)."""
    keys = sorted(tree) if keys is None else keys
    parts = [np.ravel(np.asarray(tree[k], dtype=np.float64)) for k in keys]
    return np.concatenate(parts) if parts else np.zeros(0)           # a model without parameters: θ = {}


def unflatten(vector, like):
    """The inverse of ``flatten(tree, like)``: a dict shaped like ``like``."""
    out, start = {}, 0
    for key, value in like.items():
        size = np.size(value)
        out[key] = np.asarray(vector[start:start + size]).reshape(np.shape(value))
        start += size
    return out


def negate(tree):
    """−tree: every entry negated (a descent direction from an ascent one, and back)."""
    return {key: -value for key, value in tree.items()}
