"""Shared test helpers: hypothesis strategies, finite differences, comparisons."""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rws_ref import DiagonalGaussianGuide, LinearGaussian


def floats_array(draw, shape, lo=-2.0, hi=2.0):
    elements = st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    return draw(hnp.arrays(np.float64, shape, elements=elements))


@st.composite
def linear_gaussian_settings(draw, max_dz=3, max_dx=3, max_n=3, max_k=4):
    """(model, guide, theta, phi, x, z) with bounded, well-conditioned entries."""
    dz, dx = draw(st.integers(1, max_dz)), draw(st.integers(1, max_dx))
    n, k = draw(st.integers(1, max_n)), draw(st.integers(1, max_k))
    theta = {"mu": floats_array(draw, dz), "W": floats_array(draw, (dx, dz)),
             "b": floats_array(draw, dx), "log_sigma": floats_array(draw, dx, -1.0, 1.0)}
    phi = {"A": floats_array(draw, (dz, dx)), "c": floats_array(draw, dz),
           "log_s": floats_array(draw, dz, -1.0, 1.0)}
    x = floats_array(draw, (n, dx), -4.0, 4.0)
    z = floats_array(draw, (k, n, dz), -4.0, 4.0)
    return LinearGaussian(dz, dx), DiagonalGaussianGuide(dz, dx), theta, phi, x, z


class Differences(dict):
    """Central differences, with ``rounding``: a bound on their rounding error."""
    rounding = 0.0


def central_difference(f, params, h=1e-4):
    """Five-point central differences of the scalar f(params) for every entry.

    Truncation error h⁴ f⁽⁵⁾ / 30. Rounding: if each evaluation of f is off by
    δ, the stencil (−1, 8, −8, 1)/12h is off by up to 18 δ / 12h. The functions
    differenced here are sums of ≤ 16 same-sign particle terms, whose rounding
    grows like √n ε |f| in practice, so δ = 4 ε max|f| (ε the float64 unit
    roundoff); the bound is returned as ``.rounding`` and
    :func:`assert_tree_close` allows it on top of its rtol.
    It matters when |f| is large beside the gradient (e.g. a mixture with x
    many σ from the means, |f| ≈ 10³, where 1.5 ε |f| / h alone is 1e-9).
    """
    out, biggest = Differences(), 0.0
    for key, value in params.items():
        value = np.asarray(value, dtype=np.float64)
        grad = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            def at(step):
                shifted = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
                shifted[key][idx] += step
                return float(f(shifted))
            values = [at(2 * h), at(h), at(-h), at(-2 * h)]
            biggest = max(biggest, max(abs(v) for v in values))
            grad[idx] = (-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * h)
        out[key] = grad
    out.rounding = 18.0 / (12.0 * h) * 4.0 * np.finfo(np.float64).eps * biggest
    return out


def max_abs(tree):
    return max(float(np.max(np.abs(v))) if np.size(v) else 0.0 for v in tree.values())


def relative_error(got, want, floor=0.0):
    """max |got − want| over all entries, over max(max |want|, floor)."""
    assert set(got) == set(want), f"keys differ: {sorted(got)} vs {sorted(want)}"
    for key in want:
        assert np.shape(got[key]) == np.shape(want[key]), key
    diff = max(float(np.max(np.abs(np.asarray(got[k]) - want[k]))) for k in want)
    scale = max(max_abs(want), floor)
    return diff / scale if scale > 0 else diff


def assert_tree_close(got, want, rtol, floor=0.0):
    """Relative error ≤ rtol, plus the rounding bound of ``want`` if it is a
    :class:`Differences` (the scale is max(max |want|, floor))."""
    err = relative_error(got, want, floor)
    scale = max(max_abs(want), floor)
    allowed = rtol + (getattr(want, "rounding", 0.0) / scale if scale > 0 else 0.0)
    assert err <= allowed, f"relative error {err:.3e} > {allowed:.1e}"
    return err


def gauss_hermite_2pt(mean, std):
    """Nodes and weights of the tensor-product 2-point Gauss–Hermite rule.

    For independent coordinates u_i ~ N(mean_i, std_i²) (any array shape),
    the nodes mean ± std with equal weights integrate exactly every
    polynomial of degree ≤ 3 in each coordinate, so every polynomial of
    total degree ≤ 2.  Returns nodes of shape (2^d, *mean.shape) and
    weights (2^d,) with d = mean.size.
    """
    mean, std = np.asarray(mean, float), np.broadcast_to(np.asarray(std, float), np.shape(mean))
    d = mean.size
    signs = ((np.arange(2 ** d)[:, None] >> np.arange(d)) & 1) * 2.0 - 1.0   # (2^d, d)
    nodes = mean.reshape(-1) + signs * std.reshape(-1)
    return nodes.reshape((2 ** d,) + mean.shape), np.full(2 ** d, 0.5 ** d)


def batch_means(draw_batch, batches, rng):
    """Mean and standard error of an estimator from independent batch means.

    ``draw_batch(rng)`` returns one dict: the estimator averaged over a batch
    of independent replicates (e.g. a wake estimator on a batch of copies of
    one datapoint).  The SE is the sample standard deviation of the batch
    means over sqrt(batches); with 200 batches a 6-SE deviation has
    probability about 9e-9 per entry (two-sided t tail, 199 degrees of freedom).
    """
    draws = [draw_batch(rng) for _ in range(batches)]
    mean = {k: np.mean([d[k] for d in draws], axis=0) for k in draws[0]}
    se = {k: np.std([d[k] for d in draws], axis=0, ddof=1) / np.sqrt(batches) for k in draws[0]}
    return mean, se


def assert_within_se(mean, se, want, z=6.0):
    for key in want:
        dev = np.abs(np.asarray(mean[key]) - want[key])
        assert np.all(dev <= z * se[key]), (
            f"{key}: |mean − target| = {dev.ravel()} exceeds {z} SE = {(z * se[key]).ravel()}")


@st.composite
def mixture_settings(draw, mlp=False, max_k=4, max_n=3):
    """(model, guide, theta, phi, x, z) for a small Gaussian mixture."""
    from rws_ref import GaussianMixture, MLPGuide, SoftmaxLinearGuide
    c = draw(st.integers(2, 5))
    n, k = draw(st.integers(1, max_n)), draw(st.integers(1, max_k))
    model = GaussianMixture(c, scale=draw(st.floats(2.0, 8.0)))
    guide = (MLPGuide(c, hidden=(3, 2), loc=10.0 * (c - 1) / 2, scale=10.0) if mlp
             else SoftmaxLinearGuide(c, loc=10.0 * (c - 1) / 2, scale=10.0))
    theta = {"logits": floats_array(draw, c)}
    phi = {key: floats_array(draw, shape, -1.5, 1.5) for key, shape in guide.phi_shapes.items()}
    x = floats_array(draw, n, -10.0, 10.0 * c)
    z = draw(hnp.arrays(np.int64, (k, n), elements=st.integers(0, c - 1)))
    return model, guide, theta, phi, x, z


@st.composite
def belief_net_settings(draw, max_dz=3, max_dx=3, max_k=4, max_n=3):
    """(model, guide, theta, phi, x, z) for a small sigmoid belief net."""
    from rws_ref import BernoulliGuide, SigmoidBeliefNet
    dz, dx = draw(st.integers(1, max_dz)), draw(st.integers(1, max_dx))
    n, k = draw(st.integers(1, max_n)), draw(st.integers(1, max_k))
    model, guide = SigmoidBeliefNet(dz, dx), BernoulliGuide(dz, dx)
    theta = {key: floats_array(draw, shape, -3.0, 3.0) for key, shape in model.theta_shapes.items()}
    phi = {key: floats_array(draw, shape, -3.0, 3.0) for key, shape in guide.phi_shapes.items()}
    bits = lambda shape: draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([0.0, 1.0])))
    return model, guide, theta, phi, bits((n, dx)), bits((k, n, dz))


def mc_rng(seed):
    """The Monte Carlo stream of a statistical test.

    RWS_TEST_SEED (default 0) shifts every such stream at once, so the whole
    set of statistical tests can be rerun under other seeds
    (benchmarks/seed_sweep.py); problem instances keep their own fixed seeds.
    """
    import os
    return np.random.default_rng([seed, int(os.environ.get("RWS_TEST_SEED", "0"))])


def linear_gaussian_problem(seed=0, dz=2, dx=3, n=3, log_s_scale=0.2):
    """(model, guide, theta, phi, x, rng): a random linear-Gaussian problem from a fixed seed,
    the guide's A and c ~ N(0, 0.3²), log_s ~ N(0, log_s_scale²); rng continues the stream."""
    from rws_ref import DiagonalGaussianGuide, LinearGaussian
    rng = np.random.default_rng(seed)
    model, guide = LinearGaussian(dz, dx), DiagonalGaussianGuide(dz, dx)
    theta = model.init_theta(rng)
    phi = {"A": 0.3 * rng.standard_normal((dz, dx)), "c": 0.3 * rng.standard_normal(dz),
           "log_s": log_s_scale * rng.standard_normal(dz)}
    _, x = model.sample(theta, n, rng)
    return model, guide, theta, phi, x, rng


def flat(tree):
    """A gradient dict as one vector, keys sorted."""
    return np.concatenate([np.ravel(tree[k]) for k in sorted(tree)])
