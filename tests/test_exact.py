"""The exact oracle, checked against brute force, autograd and sampling.

Every claim here is exact (no Monte Carlo) except the sampling checks,
whose tolerances and false-failure rates are stated where they are made.
"""
import itertools
import math

import numpy as np
import pytest

from rws_ref import (
    BernoulliGuide,
    GaussianMixture,
    MLPGuide,
    SigmoidBeliefNet,
    SoftmaxLinearGuide,
    elbo_is,
    exact,
    log_weights,
    sleep_phi,
    wake_phi,
    wake_theta,
)

from _util import assert_tree_close, flat, mc_rng


def mixture(c=4, mlp=False, seed=0, n=2):
    rng = np.random.default_rng(seed)
    model = GaussianMixture(c, scale=6.0)
    guide = (MLPGuide(c, hidden=(3, 2), loc=5.0 * (c - 1), scale=10.0) if mlp
             else SoftmaxLinearGuide(c, loc=5.0 * (c - 1), scale=10.0))
    theta, phi = model.init_theta(rng), guide.init_phi(rng)
    _, x = model.sample(theta, n, rng)
    return model, guide, theta, phi, x


def belief_net(dz=2, dx=3, seed=0, n=2):
    rng = np.random.default_rng(seed)
    model, guide = SigmoidBeliefNet(dz, dx), BernoulliGuide(dz, dx)
    theta, phi = model.init_theta(rng), guide.init_phi(rng)
    phi["A"] = rng.standard_normal(phi["A"].shape)
    _, x = model.sample(theta, n, rng)
    return model, guide, theta, phi, x


CASES = {"mixture": mixture, "mixture-mlp": lambda **kw: mixture(mlp=True, **kw),
         "belief-net": belief_net}


def brute_force(estimator, model, guide, theta, phi, x, K):
    """Mean and variance over all S^K ordered particle tuples, one call each."""
    states = model.support()
    means, variances = [], []
    for n in range(len(x)):
        log_q = guide.log_prob(phi, np.repeat(states[:, None], 1, axis=1), x[n:n + 1])[:, 0]
        first = second = None
        for tup in itertools.product(range(len(states)), repeat=K):
            z = states[list(tup)][:, None]
            p = math.exp(sum(log_q[list(tup)]))
            value = flat(estimator(model, guide, theta, phi, x[n:n + 1], z))
            first = p * value if first is None else first + p * value
            second = p * value ** 2 if second is None else second + p * value ** 2
        means.append(first)
        variances.append(second - first ** 2)
    return np.mean(means, axis=0), np.sum(variances, axis=0) / len(x) ** 2


def bound(model, guide, theta, phi, x, z):
    return {"L": np.mean(elbo_is(log_weights(model, guide, theta, phi, x, z)))}


# -- 1. multisets = brute force --------------------------------------------------------


def test_multisets_are_all_count_vectors_once_with_multinomial_coefficients():
    for S, K in [(1, 4), (3, 1), (4, 3), (5, 5)]:
        seen = []
        for a, counts, log_coef in exact.multisets(S, K, chunk_rows=7):
            assert np.all(np.diff(a, axis=1) >= 0) and np.all(counts.sum(1) == K)
            np.testing.assert_allclose(np.exp(log_coef), [math.factorial(K) / np.prod(
                [math.factorial(c) for c in row]) for row in counts], rtol=1e-12)
            seen += [tuple(r) for r in counts]
        want = {tuple(np.bincount(t, minlength=S)) for t in itertools.combinations_with_replacement(range(S), K)}
        assert len(seen) == len(set(seen)) == exact.n_multisets(S, K) == len(want)
        assert set(seen) == want


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("K", [1, 2, 3])
@pytest.mark.parametrize("estimator", [wake_theta, wake_phi, bound], ids=["wake_theta", "wake_phi", "L"])
@pytest.mark.parametrize("method", ["tables", "direct"])
def test_multiset_moments_equal_brute_force(case, K, estimator, method):
    model, guide, theta, phi, x = CASES[case]()
    if estimator is bound and method == "tables":
        # a batch-mean value is not assembled from gradient tables: a clear refusal
        with pytest.raises(RuntimeError, match="method='direct'"):
            exact.moments(estimator, model, guide, theta, phi, x, K, method=method)
        return
    mean, var = exact.moments(estimator, model, guide, theta, phi, x, K, method=method)
    want_mean, want_var = brute_force(estimator, model, guide, theta, phi, x, K)
    np.testing.assert_allclose(flat(mean), want_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(flat(var), want_var, rtol=1e-10, atol=1e-12)


def test_full_covariance_has_the_variances_on_its_diagonal_and_is_psd():
    model, guide, theta, phi, x = belief_net()
    mean, var = exact.moments(wake_phi, model, guide, theta, phi, x, 3)
    mean2, cov = exact.moments(wake_phi, model, guide, theta, phi, x, 3, covariance=True)
    np.testing.assert_allclose(np.diag(cov), flat(var), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(cov, cov.T, atol=1e-15)
    assert np.linalg.eigvalsh(cov).min() > -1e-13


def test_exact_elbo_is_equals_the_mean_of_the_estimate():
    model, guide, theta, phi, x = mixture()
    for K in (1, 2, 4):
        mean_per_point = [exact.moments(bound, model, guide, theta, phi, x[n:n + 1], K, method="direct")[0]["L"]
                          for n in range(len(x))]
        np.testing.assert_allclose(exact.elbo_is(model, guide, theta, phi, x, K), mean_per_point,
                                   rtol=1e-12)


# -- 2. unbiasedness of wake-θ, exactly -------------------------------------------------


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("K", [1, 2, 5, 8])
def test_exact_mean_of_wake_theta_is_the_autograd_gradient_of_the_exact_bound(case, K):
    model, guide, theta, phi, x = CASES[case]()
    mean, _ = exact.moments(wake_theta, model, guide, theta, phi, x, K)
    dtheta, _ = exact.grad_elbo_is(model, guide, theta, phi, x, K)
    assert_tree_close(mean, dtheta, 1e-10)


def test_grad_elbo_is_at_k1_is_the_gradient_of_the_exact_elbo1_sum():
    # At K = 1 the bound is Σ_s q_s (log p_s − log q_s): check both gradients by differences.
    from _util import central_difference
    model, guide, theta, phi, x = mixture()
    dtheta, dphi = exact.grad_elbo_is(model, guide, theta, phi, x, 1)
    f = lambda t, p: np.mean(exact.elbo_is(model, guide, t, p, x, 1))
    assert_tree_close(dtheta, central_difference(lambda t: f(t, phi), theta), 1e-9, floor=1.0)
    assert_tree_close(dphi, central_difference(lambda p: f(theta, p), phi), 1e-9, floor=1.0)


# -- 3. wake-φ: zero at K = 1, bias O(1/K) -----------------------------------------------


def near_mixture(seed=0, n=2):
    """The mixture with a guide near the exact posterior (logits perturbed by N(0, 0.5²))."""
    rng = np.random.default_rng(seed)
    model, guide = GaussianMixture(4, scale=6.0), SoftmaxLinearGuide(4, loc=15.0, scale=10.0)
    theta = model.init_theta(rng)
    phi = {k: v + 0.5 * rng.standard_normal(v.shape)
           for k, v in guide.exact_posterior_phi(model, theta).items()}
    _, x = model.sample(theta, n, rng)
    return model, guide, theta, phi, x


ASYMPTOTIC = {"near-mixture": near_mixture, "belief-net": belief_net}


@pytest.mark.parametrize("case", CASES)
def test_wake_phi_mean_is_zero_at_k1(case):
    model, guide, theta, phi, x = CASES[case]()
    mean1, _ = exact.moments(wake_phi, model, guide, theta, phi, x, 1)
    np.testing.assert_allclose(flat(mean1), 0.0, atol=1e-15)           # score-function identity


@pytest.mark.parametrize("case", ASYMPTOTIC)
def test_wake_phi_bias_shrinks_like_c1_over_k(case):
    # Exact: K·bias_K = c₁ + O(1/K), with c₁ = −E_q[ω²(f − E_p f)] from its own sum.
    # The relative error |K·bias_K − c₁| / |c₁| falls by at least a quarter per
    # doubling of K (it halves asymptotically) and is below 5% at K = 64.
    model, guide, theta, phi, x = ASYMPTOTIC[case]()
    target = flat(exact.kl_grad_phi(model, guide, theta, phi, x))
    c1 = flat(exact.wake_phi_bias_constant(model, guide, theta, phi, x))
    ks = [4, 8, 16, 32, 64]
    bias = np.array([flat(exact.moments(wake_phi, model, guide, theta, phi, x, K)[0]) - target for K in ks])
    assert np.all(np.diff(np.linalg.norm(bias, axis=1)) < 0)
    rel = np.linalg.norm(np.array(ks)[:, None] * bias - c1, axis=1) / np.linalg.norm(c1)
    assert np.all(rel[1:] < 0.75 * rel[:-1]) and rel[-1] < 0.05


# -- 4. ELBO_IS in K -------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_exact_elbo_is_increases_with_k_and_stays_below_log_p(case):
    model, guide, theta, phi, x = CASES[case]()
    bounds = np.array([exact.elbo_is(model, guide, theta, phi, x, K) for K in (1, 2, 4, 8, 16)])
    assert np.all(np.diff(bounds, axis=0) > 0) and np.all(bounds < model.log_marginal(theta, x))


@pytest.mark.parametrize("case", ASYMPTOTIC)
def test_exact_elbo_is_gap_is_chi2_over_2k(case):
    # log p − ELBO_IS(K) = χ²/(2K) + O(1/K²): the relative error of K·gap against
    # χ²/2 falls by a quarter or more per doubling and is below 5% at K = 64.
    model, guide, theta, phi, x = ASYMPTOTIC[case]()
    half_chi2 = exact.chi2(model, guide, theta, phi, x) / 2
    ks = np.array([4, 8, 16, 32, 64])
    gap = model.log_marginal(theta, x) - np.array([exact.elbo_is(model, guide, theta, phi, x, K) for K in ks])
    rel = np.abs(ks[:, None] * gap - half_chi2) / half_chi2
    assert np.all(rel[1:] < 0.75 * rel[:-1]) and np.all(rel[-1] < 0.05)


# -- 5. exact variance = sample variance --------------------------------------------------


@pytest.mark.statistical
@pytest.mark.parametrize("case", ["mixture", "belief-net"])
def test_exact_variance_agrees_with_the_sample_variance(case):
    # R = 20,000 independent single-datapoint estimates at K = 4. The sample
    # variance s² has Var(s²) ≈ (m4 − s⁴ (R−3)/(R−1)) / R with m4 the sample
    # fourth central moment; |s² − exact| < 6 of its SE per entry, and the
    # sample mean within 6 SE of the exact mean. Entries ≤ 12, 24 comparisons:
    # false failure < 1e-7 (normal approximation; checked over 30 seeds).
    model, guide, theta, phi, x = CASES[case](n=1)
    K, R = 4, 20_000
    mean, var = exact.moments(wake_phi, model, guide, theta, phi, x, K)
    rng = mc_rng(11)
    xs = np.repeat(x, R, axis=0)
    z = guide.sample(phi, xs, K, rng)
    # per-replicate estimates: each replicate is its own datapoint in a batch of R,
    # so the batch output times R splits into per-datapoint terms via the tables route
    samples = np.stack([flat(wake_phi(model, guide, theta, phi, xs[r:r + 1], z[:, r:r + 1]))
                        for r in range(R)])
    s2 = samples.var(axis=0, ddof=1)
    m4 = np.mean((samples - samples.mean(0)) ** 4, axis=0)
    se_s2 = np.sqrt(np.maximum(m4 - s2 ** 2 * (R - 3) / (R - 1), 0) / R)
    live = flat(var) > 1e-12
    assert np.all(np.abs(s2 - flat(var))[live] < 6 * se_s2[live])
    assert np.all(np.abs(samples.mean(0) - flat(mean)) <= 6 * np.sqrt(flat(var) / R) + 1e-15)


# -- 6. sleep -----------------------------------------------------------------------------


@pytest.mark.statistical
@pytest.mark.parametrize("case", ["mixture", "belief-net"])
def test_sleep_phi_monte_carlo_mean_matches_the_exact_sleep_target(case):
    # 200,000 dreams in 200 batches; 6 SE per entry (t, 199 df), ≤ 29 entries:
    # false failure < 3e-7.
    model, guide, theta, phi, x = CASES[case]()
    target = exact.sleep_target(model, guide, theta, phi)
    mean_exact, var_exact = exact.sleep_moments(model, guide, theta, phi, M=1000)
    assert_tree_close(mean_exact, target, 1e-13)
    rng = mc_rng(12)
    draws = [flat(sleep_phi(guide, phi, *model.sample(theta, 1000, rng))) for _ in range(200)]
    se = np.std(draws, axis=0, ddof=1) / np.sqrt(200)
    assert np.all(np.abs(np.mean(draws, axis=0) - flat(target)) < 6 * se)
    # the batch means' spread matches the exact per-batch variance (chi-square, 199 df:
    # P(ratio outside [0.5, 1.7]) = 3e-9 per entry, < 1e-7 over 29 entries)
    ratio = np.var(draws, axis=0, ddof=1) / flat(var_exact)
    assert np.all((ratio > 0.5) & (ratio < 1.7))


def test_sleep_target_quadrature_has_converged_and_vanishes_at_the_exact_posterior():
    model = GaussianMixture()
    guide = SoftmaxLinearGuide(20, loc=95.0, scale=60.0)
    theta = model.true_theta()
    phi = {"w": np.linspace(-1.0, 1.0, 20), "b": np.linspace(0.5, -0.5, 20)}
    coarse = exact.sleep_target(model, guide, theta, phi, nodes=32)
    fine = exact.sleep_target(model, guide, theta, phi, nodes=128)
    assert_tree_close(coarse, fine, 1e-6)
    exact_phi = guide.exact_posterior_phi(model, theta)
    # at the exact posterior the integrand p(·|x) − q(·|x) is zero at every x: what
    # remains is the rounding of 1,280 terms of size ≤ 4
    for value in exact.sleep_target(model, guide, theta, exact_phi, nodes=64).values():
        np.testing.assert_allclose(value, 0.0, atol=1e-11)


def test_sleep_target_is_exact_for_the_belief_net():
    model, guide, theta, phi, x = belief_net()
    # E_{p(z,x)}[−∇ log q(z|x)] written as Σ_x p(x) · (−Σ_s p(s|x) ∇ log q(s|x)) = Σ_x p(x) ∇KL(x)
    xs = model.data_support()
    p_x = np.exp(model.log_marginal(theta, xs))
    per_x = [flat(exact.kl_grad_phi(model, guide, theta, phi, xs[i:i + 1])) for i in range(len(xs))]
    np.testing.assert_allclose(flat(exact.sleep_target(model, guide, theta, phi)), p_x @ np.array(per_x),
                               rtol=1e-12, atol=1e-14)


# -- 7. the size guard --------------------------------------------------------------------


def test_requests_over_the_limit_fail_before_any_work(monkeypatch):
    model, guide = GaussianMixture(), SoftmaxLinearGuide(20)
    theta, phi = model.true_theta(), guide.init_phi(np.random.default_rng(0))

    def no_enumeration(*args, **kwargs):
        raise AssertionError("enumeration started before the size check")

    monkeypatch.setattr(exact.enumeration, "multisets", no_enumeration)
    for call in (lambda: exact.moments(wake_phi, model, guide, theta, phi, np.zeros(3), 100),
                 lambda: exact.elbo_is(model, guide, theta, phi, np.zeros(1), 30),
                 lambda: exact.grad_elbo_is(model, guide, theta, phi, np.zeros(1), 12)):
        with pytest.raises(ValueError, match="max_terms") as info:
            call()
        assert "multisets" in str(info.value)
    with pytest.raises(ValueError, match=r"2,220,075 multisets"):      # C(27, 19)
        exact.elbo_is(model, guide, theta, phi, np.zeros(1), 8, max_terms=1_000_000)


def test_oracle_rejects_bad_arguments():
    model, guide, theta, phi, x = mixture()
    with pytest.raises(ValueError, match="method"):
        exact.moments(wake_phi, model, guide, theta, phi, x, 2, method="fast")
    with pytest.raises(ValueError, match="K"):
        exact.elbo_is(model, guide, theta, phi, x, 0)
    from rws_ref import DiagonalGaussianGuide, LinearGaussian
    with pytest.raises(TypeError, match="finite latent support"):
        exact.elbo_is(LinearGaussian(1, 1), DiagonalGaussianGuide(1, 1), {}, {}, np.zeros((1, 1)), 2)


# -- the Laplace route: exact at any K without enumeration ----------------------------


@pytest.mark.parametrize("case", ["mixture", "belief-net", "near-mixture"])
@pytest.mark.parametrize("estimator", [wake_theta, wake_phi], ids=["wake_theta", "wake_phi"])
def test_laplace_moments_equal_multiset_enumeration(case, estimator):
    model, guide, theta, phi, x = {**CASES, **ASYMPTOTIC}[case]()
    for K in (1, 2, 5, 12):
        m1, v1 = exact.moments(estimator, model, guide, theta, phi, x, K)
        m2, v2 = exact.moments(estimator, model, guide, theta, phi, x, K, method="laplace")
        assert_tree_close(m2, m1, 1e-11, floor=1e-3)
        assert_tree_close(v2, v1, 1e-10)
    _, c1 = exact.moments(estimator, model, guide, theta, phi, x, 3, covariance=True)
    _, c2 = exact.moments(estimator, model, guide, theta, phi, x, 3, covariance=True, method="laplace")
    np.testing.assert_allclose(c2, c1, rtol=1e-10, atol=1e-12 * np.abs(c1).max())


def test_laplace_moments_hold_for_weights_spread_over_hundreds_of_orders():
    # A tempered guide on the C = 20 mixture: weights of far components fall to
    # ~1e-200 of the largest, the case that breaks a naive infinite-range quadrature.
    model, guide = GaussianMixture(), SoftmaxLinearGuide(20, loc=95.0, scale=60.0)
    theta = model.true_theta()
    phi = {k: 0.5 * v for k, v in guide.exact_posterior_phi(model, theta).items()}
    x = np.array([3.0, 101.0])
    for K in (2, 3):
        m1, v1 = exact.moments(wake_phi, model, guide, theta, phi, x, K)
        m2, v2 = exact.moments(wake_phi, model, guide, theta, phi, x, K, method="laplace")
        assert_tree_close(m2, m1, 1e-11)
        assert_tree_close(v2, v1, 1e-10)


def test_laplace_reaches_k_beyond_enumeration_and_keeps_the_1_over_k_law():
    # K = 500 on 20 states would be C(519, 19) ≈ 4e33 multisets.
    model, guide = GaussianMixture(), SoftmaxLinearGuide(20, loc=95.0, scale=60.0)
    theta = model.true_theta()
    phi = guide.exact_posterior_phi(model, {"logits": np.zeros(20)})   # posterior under uniform π
    x = np.array([47.0, 123.0])
    target = flat(exact.kl_grad_phi(model, guide, theta, phi, x))
    c1 = flat(exact.wake_phi_bias_constant(model, guide, theta, phi, x))
    scaled = [K * (flat(exact.moments(wake_phi, model, guide, theta, phi, x, K, method="laplace")[0]) - target)
              for K in (125, 250, 500)]
    rel = [np.linalg.norm(s - c1) / np.linalg.norm(c1) for s in scaled]
    assert rel[2] < 0.75 * rel[1] < 0.75 ** 2 * rel[0] and rel[2] < 0.01


@pytest.mark.parametrize("span", [100, 300, 450, 600, 690])
def test_laplace_keeps_the_event_that_every_particle_has_a_small_weight(span):
    """Two states, q = (½, ½), weights 1 and e^{−span}, F = (1, −1), K = 2: the second moment is
    ¼·1 + ¼·1 + ½·g² with g = (1 − ε)/(1 + ε), written here by hand.  The pair term of two small weights used
    to underflow (w_s w_r < 1e-308) from a span of about 355 nats on, dropping the ¼ of the (ε, ε) pair: the
    variance was off by 0.125 at spans 450 and 600."""
    from rws_ref.exact.laplace import _moments
    eps = np.exp(-span)
    mean, var = _moments(np.array([0.5, 0.5]), np.array([1.0, eps]), np.array([[1.0], [-1.0]]), 2, False)
    g = (1 - eps) / (1 + eps)
    assert mean[0] == pytest.approx(0.5 * g, abs=1e-13)
    assert var[0] == pytest.approx(0.5 + 0.5 * g * g - (0.5 * g) ** 2, abs=1e-13)


def test_laplace_equals_enumeration_on_the_mixture_with_weights_spread_over_600_nats():
    """The mixture at its truth, a uniform guide, a datapoint far from component 0 (log-weights spanning 451 and
    650 nats): the Laplace route against enumeration and the direct route — its variance was 0.2–0.6 % off."""
    model, guide = GaussianMixture(), SoftmaxLinearGuide(20, loc=95.0, scale=60.0)
    theta = model.true_theta()
    phi = {k: np.zeros_like(v) for k, v in guide.exact_posterior_phi(model, theta).items()}   # uniform q
    for value in (150.0, 180.0):
        x = np.array([value])
        m1, v1 = exact.moments(wake_phi, model, guide, theta, phi, x, 3)
        m2, v2 = exact.moments(wake_phi, model, guide, theta, phi, x, 3, method="laplace")
        assert_tree_close(m2, m1, 1e-11)
        assert_tree_close(v2, v1, 1e-10)


def test_laplace_refuses_weights_spread_beyond_float64_instead_of_returning_nan():
    """A datapoint so far from component 0 that the weights span over 700 nats, where the route's range in t
    would overflow: it used to return NaN silently; now it names the datapoint, the span and the way forward."""
    model, guide = GaussianMixture(), SoftmaxLinearGuide(20, loc=95.0, scale=60.0)
    theta = model.true_theta()
    phi = {k: np.zeros_like(v) for k, v in guide.exact_posterior_phi(model, theta).items()}
    with pytest.raises(ValueError, match=r"datapoint 1: the weights p/q .* span \d+ nats, more than the 700"):
        exact.moments(wake_phi, model, guide, theta, phi, np.array([3.0, 190.0]), 3, method="laplace")


def test_laplace_sets_negligible_far_weights_to_zero_and_refuses_the_rest():
    """Weights 1 and e^{−800} (beyond the 700-nat span): with the guide's mass on the far state 1e-6 and K = 3,
    all three particles land there with probability 1e-18 ≤ NEGLIGIBLE, so the far state gets weight 0 — the
    mean Σ w̄ F with F = (1, −1) is then 1 − 2·1e-18 and the variance 4·1e-18, by hand; with mass ½ there the
    datapoint is refused, naming the mass and the probability."""
    from rws_ref.exact.laplace import NEGLIGIBLE, _moments, _scaled_weights
    log_w, F = np.array([0.0, -800.0]), np.array([[1.0], [-1.0]])
    log_q = np.log([1 - 1e-6, 1e-6])
    w = _scaled_weights(log_w, log_q, 3, 0)
    assert list(w) == [1.0, 0.0] and 1e-18 <= NEGLIGIBLE
    mean, var = _moments(np.exp(log_q), w, F, 3, False)
    assert abs(mean[0] - 1.0) < 1e-14 and abs(var[0]) < 1e-14
    with pytest.raises(ValueError, match=r"datapoint 4: .* puts 0.5 of its mass beyond that .* probability 0.125"):
        _scaled_weights(log_w, np.log([0.5, 0.5]), 3, 4)
    np.testing.assert_allclose(_scaled_weights(np.array([0.0, -600.0]), np.log([0.5, 0.5]), 3, 0),
                               [1.0, np.exp(-600.0)], rtol=1e-15)      # within the span: kept as they are


def test_scalar_laplace_gives_a_finite_estimator_mean_when_far_nodes_weights_underflow():
    # At these settings the outermost of the default 120 Gauss–Hermite nodes have weights p/q that underflow to a
    # subnormal: 45 / w overflowed the Laplace integral's range to inf and the mean came back NaN, silently (at
    # K = 1 and 2; with 100 nodes it did not).  Oracle: the K = 2 mean as the direct double sum over node pairs,
    # Σ_{s,r} q_s q_r (w_s F_s + w_r F_r) / (w_s + w_r).
    import warnings

    from numpy.polynomial.hermite_e import hermegauss

    import rws_ref
    model, guide = rws_ref.LinearGaussian(1, 1), rws_ref.DiagonalGaussianGuide(1, 1)
    theta = {"mu": np.array([0.0]), "W": np.array([[1.0]]), "b": np.array([0.0]), "log_sigma": np.array([0.0])}
    phi = {"A": np.array([[0.3]]), "c": np.array([0.1]), "log_s": np.array([0.4])}
    x = np.array([[1.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        two = exact.scalar_laplace(model, guide, theta, phi, x, 2, estimator=wake_phi)["mean"]
    xi, gh = hermegauss(120)
    q = gh / gh.sum()
    z = (guide.mean(phi, x)[0, 0] + np.exp(phi["log_s"][0]) * xi).reshape(1, -1, 1)     # the nodes, as N = 120
    xs = np.repeat(x, 120, axis=0)
    log_w = (model.log_joint(theta, z, xs) - guide.log_prob(phi, z, xs))[0]
    w = np.exp(log_w - log_w.max())
    pair = w[:, None] + w[None, :]                              # 0 only where both underflow: probability ~1e-300
    share = np.divide(w[:, None], pair, out=np.full(pair.shape, 0.5), where=pair > 0) @ q   # Σ_r q_r w_s/(w_s+w_r)
    rows = [wake_phi(model, guide, theta, phi, x, z[:, s:s + 1]) for s in range(120)]
    for key in phi:
        F = np.array([r[key].ravel()[0] for r in rows])
        np.testing.assert_allclose(np.ravel(two[key])[0], 2.0 * np.sum(q * F * share), atol=1e-9, err_msg=key)
