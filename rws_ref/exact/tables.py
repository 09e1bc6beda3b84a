"""Per-state tables: an estimator evaluated on a whole chunk of multisets in one call.

The default route of :func:`rws_ref.exact.moments` ("tables"): for one datapoint x_n, the
model's and guide's S values and S gradients are computed once; the estimator is then
called on M copies of x_n, one multiset per copy, with the model and guide replaced by
protocol objects that look values up and assemble per-copy gradients from the tables.
This needs only that the estimator be a batch mean of per-datapoint terms that combines
gradient dicts entry-wise (sums, scalings, negations) — true of every estimator in rws_ref.
"""
import numpy as np

from .. import protocol
from .._trees import flatten

__all__ = ["tables_evaluator", "small_dot"]


def small_dot(subscripts, *operands):
    """A product of the oracle's tall, thin arrays, on NumPy's own loops (einsum without
    BLAS): their cost is then the same on one thread or many, under load or not,
    where a threaded BLAS spends more on synchronizing than on the arithmetic."""
    return np.einsum(subscripts, *operands, optimize=False)


class _Tables:
    """Per-state tables of one density for one datapoint x_n: its S values and its S
    gradients (one row per state, flattened), looked up for a chunk of multisets.

    Estimators see it through :class:`_TableModel` / :class:`_TableGuide`, which follow
    the protocol: ``log_joint`` looks the values up, and ``grad_log_joint`` returns
    per-copy gradients (leading axis M) assembled from the table — the numbers the model
    computes, without recomputing them for every particle.
    """

    def __init__(self, density, gradient, params, x_n, states):
        self.params = params
        self.values = density(params, states[:, None], x_n[None])[:, 0]          # (S,)
        one = np.ones((1, 1))
        rows = [gradient(params, s[None, None], x_n[None], one) for s in states]
        self.keys = list(rows[0])
        self.shapes = [np.shape(rows[0][k]) for k in self.keys]
        self.table = np.stack([flatten(r, self.keys) for r in rows])             # (S, P)
        self.z = self.idx = None

    def bind(self, z, idx):
        self.z, self.idx = z, idx                      # particles (K, M, …) and state indices (K, M)

    def _check_same(self, params, z):
        if z is not self.z and not np.array_equal(z, self.z):
            raise RuntimeError("the estimator evaluated the model or guide at particles other than the ones it "
                               "was given; use method='direct'")
        if any(not np.array_equal(params[k], self.params[k]) for k in self.params):
            raise RuntimeError("the estimator evaluated the model or guide at other parameters; "
                               "use method='direct'")

    def lookup(self, params, z):
        self._check_same(params, z)
        return self.values[self.idx]

    def per_copy(self, params, z, weights):
        self._check_same(params, z)
        weights = np.asarray(weights, dtype=np.float64)
        m, s = self.idx.shape[1], self.table.shape[0]
        flat = (np.arange(m)[None, :] * s + self.idx).reshape(-1)
        omega = np.bincount(flat, weights=weights.reshape(-1), minlength=m * s).reshape(m, s)
        values = small_dot("ms,sp->mp", omega, self.table)                        # (M, P)
        out, start = protocol.PerCopyGradient(), 0
        for key, shape in zip(self.keys, self.shapes):
            size = int(np.prod(shape))
            out[key] = values[:, start:start + size].reshape((m,) + shape)
            start += size
        return out


class _TableModel:
    """The model, for one datapoint and one chunk of multisets, as per-state tables."""

    def __init__(self, inner, theta, x_n, states):
        self.inner, self.tables = inner, _Tables(inner.log_joint, inner.grad_log_joint, theta, x_n, states)
        protocol.copy_declarations(self, inner, "theta_shapes")

    def __repr__(self):
        return f"tables of {self.inner!r}"

    def init_theta(self, rng):
        return self.inner.init_theta(rng)

    def sample(self, theta, n, rng):
        return self.inner.sample(theta, n, rng)

    def log_joint(self, theta, z, x):
        return self.tables.lookup(theta, z)

    def grad_log_joint(self, theta, z, x, weights):
        return self.tables.per_copy(theta, z, weights)


class _TableGuide:
    """The guide, for one datapoint and one chunk of multisets, as per-state tables."""

    def __init__(self, inner, phi, x_n, states):
        self.inner, self.tables = inner, _Tables(inner.log_prob, inner.grad_log_prob, phi, x_n, states)
        protocol.copy_declarations(self, inner, "phi_shapes")

    def __repr__(self):
        return f"tables of {self.inner!r}"

    def init_phi(self, rng):
        return self.inner.init_phi(rng)

    def sample(self, phi, x, K, rng):
        return self.inner.sample(phi, x, K, rng)

    def log_prob(self, phi, z, x):
        return self.tables.lookup(phi, z)

    def grad_log_prob(self, phi, z, x, weights):
        return self.tables.per_copy(phi, z, weights)


def tables_evaluator(estimator, e, n, like):
    """evaluate(a): the estimator called once per chunk of multisets ``a`` (M, K), on M copies of x_n
    with one multiset per copy, through per-state tables; returns (M, P) rows (keys in ``like``)."""
    x_n = e.x[n]
    t_model, t_guide = _TableModel(e.model, e.theta, x_n, e.states), _TableGuide(e.guide, e.phi, x_n, e.states)

    def evaluate(a):
        z, m = np.moveaxis(e.states[a], 1, 0), a.shape[0]                 # (K, M, *z_shape)
        t_model.tables.bind(z, a.T)
        t_guide.tables.bind(z, a.T)
        out = estimator(t_model, t_guide, e.theta, e.phi, np.repeat(x_n[None], m, axis=0), z)
        like.update({k: np.zeros(np.shape(v)[1:]) for k, v in out.items() if k not in like})
        for key, value in out.items():
            if np.shape(value) != (m,) + np.shape(like[key]):
                raise RuntimeError(f"estimator output {key!r} has shape {np.shape(value)}, not "
                                   f"per-datapoint; use method='direct'")
        return m * np.concatenate([np.reshape(out[k], (m, -1)) for k in like], axis=1)
    return evaluate


