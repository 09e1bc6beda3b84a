"""Optimizers on parameter dicts, ascending the direction they are given.

Training (rws_ref.train) hands θ's optimizer the wake-θ gradient (an ascent direction
of the bound) and φ's optimizer the φ-gradient with the sign that makes it an ascent
direction of the method's objective (−1 × a descent direction of the KL).  Each
optimizer's ``state()`` is what a checkpoint stores (rws_ref.checkpoints).
"""
import numpy as np

from .. import protocol
from .._checks import check_positive

__all__ = ["SGD", "Adam"]


class SGD:
    """params ← params + lr · direction (pass an ascent direction)."""

    def __init__(self, lr):
        self.lr = check_positive(lr, "lr")

    def step(self, params, direction):
        """One step along ``direction`` (an ascent direction); returns new params."""
        return {k: params[k] + self.lr * direction[k] for k in params}

    def state(self):
        """(arrays, json-able metadata) to checkpoint: SGD has none."""
        return {}, {}

    def load(self, arrays, meta, shapes=None, name="optimizer"):
        """Restore from :meth:`state`'s output (nothing to restore for SGD)."""
        if arrays:
            raise ValueError(f"{name}: SGD keeps no state, but the checkpoint holds {sorted(arrays)}")


class Adam:
    """Adam (Kingma & Ba 2015) on dicts, ascending the given direction.

    autograd.misc.optimizers.adam keeps its moments inside a closure over a
    flattened vector; this class keeps them as dicts so checkpoints can hold them.
    """

    def __init__(self, lr, b1=0.9, b2=0.999, eps=1e-8):
        self.lr = check_positive(lr, "lr")
        self.b1, self.b2, self.eps = b1, b2, eps
        self.m, self.v, self.t = None, None, 0

    def step(self, params, direction):
        """One Adam step ascending ``direction``; returns new params."""
        m0 = self.m or {k: np.zeros_like(v) for k, v in params.items()}
        v0 = self.v or {k: np.zeros_like(v) for k, v in params.items()}
        t = self.t + 1
        m = {k: self.b1 * m0[k] + (1 - self.b1) * direction[k] for k in params}
        v = {k: self.b2 * v0[k] + (1 - self.b2) * direction[k] ** 2 for k in params}
        out = {k: params[k] + self.lr * (m[k] / (1 - self.b1 ** t)) / (np.sqrt(v[k] / (1 - self.b2 ** t)) + self.eps)
               for k in params}
        self.m, self.v, self.t = m, v, t
        return out

    def state(self):
        """(arrays, json-able metadata) to checkpoint: the moments m, v and the step count t."""
        arrays = {}
        if self.m is not None:
            arrays.update({f"m/{k}": v for k, v in self.m.items()})
            arrays.update({f"v/{k}": v for k, v in self.v.items()})
        return arrays, {"t": self.t}

    def load(self, arrays, meta, shapes=None, name="optimizer"):
        """Restore the moments and step count from :meth:`state`'s output, checked against
        the parameters' ``shapes`` (keys, shapes, finite; v ≥ 0) when given."""
        t = meta.get("t") if isinstance(meta, dict) else None
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise ValueError(f"{name}: step count t must be an integer >= 0; got {t!r}")
        m = {k[2:]: v for k, v in arrays.items() if k.startswith("m/")}
        v = {k[2:]: v for k, v in arrays.items() if k.startswith("v/")}
        if t and shapes is not None:
            m = protocol.validate_params(m, shapes, f"{name} moment m")
            v = protocol.validate_params(v, shapes, f"{name} moment v")
            if any(np.any(a < 0) for a in v.values()):
                raise ValueError(f"{name} moment v must be >= 0 (it is a mean of squares)")
        self.t, self.m, self.v = t, (m if t else None), (v if t else None)

