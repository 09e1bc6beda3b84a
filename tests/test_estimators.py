"""ELBO_IS and the three RWS estimators on the linear-Gaussian model.

Oracles: autograd surrogates and central differences (fixed particles);
exact expectations by Gauss–Hermite quadrature where the integrand is a
polynomial of degree ≤ 2 (K = 1, and any K when q is the exact posterior);
the closed forms of rws_ref.models.linear_gaussian; and, for a scalar
latent, exact ELBO_IS and the exact mean and variance of wake-φ at any K
(rws_ref.exact.scalar_laplace: quadrature, no Monte Carlo).
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rws_ref
from rws_ref import (
    DiagonalGaussianGuide,
    LinearGaussian,
    autodiff,
    elbo_is,
    exact,
    log_weights,
    normalized_weights,
    sleep_phi,
    wake_phi,
    wake_theta,
)
from rws_ref.models import linear_gaussian as lg

from _util import (
    assert_tree_close,
    assert_within_se,
    batch_means,
    central_difference,
    gauss_hermite_2pt,
    linear_gaussian_problem,
    linear_gaussian_settings,
    mc_rng,
)

RTOL = 1e-9
WAKE = [wake_theta, wake_phi]


def setting(seed=0, dz=2, dx=3, n=3):
    return linear_gaussian_problem(seed, dz, dx, n, log_s_scale=0.2)


def scalar_setting(x_value=1.7):
    """dz = dx = 1; the guide is offset by 0.4 posterior sd and 1.3× too wide."""
    model, guide = LinearGaussian(1, 1), DiagonalGaussianGuide(1, 1)
    theta = {"mu": np.array([0.3]), "W": np.array([[1.5]]), "b": np.array([0.2]),
             "log_sigma": np.array([np.log(0.8)])}
    x = np.array([[x_value]])
    m, S = model.posterior(theta, x)
    phi = {"A": np.array([[0.2]]), "c": m[0] - 0.2 * x_value + 0.4 * np.sqrt(S[0]),
           "log_s": 0.5 * np.log(S[0]) + np.log(1.3)}
    return model, guide, theta, phi, x


# -- 1. manual = autograd = central differences, on fixed particles ---------------


@given(linear_gaussian_settings())
def test_wake_theta_equals_autograd_and_central_differences(s):
    model, guide, theta, phi, x, z = s
    manual = wake_theta(model, guide, theta, phi, x, z)
    assert_tree_close(manual, autodiff.wake_theta(model, guide, theta, phi, x, z), RTOL)
    mean_bound = lambda t: np.mean(elbo_is(log_weights(model, guide, t, phi, x, z)))
    assert_tree_close(manual, central_difference(mean_bound, theta), RTOL, floor=1.0)


@given(linear_gaussian_settings())
def test_wake_phi_equals_autograd_and_central_differences(s):
    model, guide, theta, phi, x, z = s
    manual = wake_phi(model, guide, theta, phi, x, z)
    assert_tree_close(manual, autodiff.wake_phi(model, guide, theta, phi, x, z), RTOL)
    w_bar = normalized_weights(log_weights(model, guide, theta, phi, x, z))  # held fixed
    surrogate = lambda p: -np.sum(w_bar * guide.log_prob(p, z, x)) / x.shape[0]
    assert_tree_close(manual, central_difference(surrogate, phi), RTOL, floor=1.0)


@given(linear_gaussian_settings(max_k=1))
def test_sleep_phi_equals_autograd_and_central_differences(s):
    model, guide, theta, phi, x, z = s
    dream_z = z[0]                                      # (M, dz), as model.sample returns
    manual = sleep_phi(guide, phi, dream_z, x)
    assert_tree_close(manual, sleep_phi(guide, phi, z, x), 0.0)   # (1, M, dz) layout too
    assert_tree_close(manual, autodiff.sleep_phi(guide, phi, dream_z, x), RTOL)
    surrogate = lambda p: -np.mean(guide.log_prob(p, z, x))
    assert_tree_close(manual, central_difference(surrogate, phi), RTOL, floor=1.0)


# -- 2, 3, 5. exact expectations at K = 1 ------------------------------------------


def expect_k1(estimator, model, guide, theta, phi, x):
    """E over z ~ q (one particle per datapoint) of estimator(…, z), exactly.

    Exact for any integrand of degree ≤ 2 in z (2-point Gauss–Hermite per coordinate).
    """
    mean, std = guide.mean(phi, x), np.broadcast_to(np.exp(phi["log_s"]), (x.shape[0], model.dz))
    nodes, weights = gauss_hermite_2pt(mean, std)
    values = [estimator(model, guide, theta, phi, x, node[None]) for node in nodes]
    if isinstance(values[0], dict):
        return {k: sum(w * v[k] for w, v in zip(weights, values)) for k in values[0]}
    return sum(w * v for w, v in zip(weights, values))


@pytest.mark.parametrize("seed, dz, dx", [(0, 1, 1), (1, 2, 3), (2, 3, 2)])
def test_k1_exact_means_are_the_elbo1_gradient_zero_and_elbo1(seed, dz, dx):
    model, guide, theta, phi, x, rng = setting(seed, dz, dx, n=2)
    dtheta, _ = lg.grad_elbo1(model, guide, theta, phi, x)
    assert_tree_close(expect_k1(wake_theta, model, guide, theta, phi, x), dtheta, 1e-12, floor=1.0)
    for value in expect_k1(wake_phi, model, guide, theta, phi, x).values():
        np.testing.assert_allclose(value, 0.0, atol=1e-13)
    bound = expect_k1(lambda *a: elbo_is(log_weights(*a)), model, guide, theta, phi, x)
    np.testing.assert_allclose(bound, lg.elbo1(model, guide, theta, phi, x), rtol=1e-13)


@pytest.mark.statistical
def test_k1_wake_theta_monte_carlo_mean_matches_elbo1_gradient():
    # 200 batches × 500 replicates; 6 SE per entry, 13 entries: false failure < 1.2e-7.
    model, guide, theta, phi, x, rng = setting(3, n=1)
    xs = np.repeat(x, 500, axis=0)
    mean, se = batch_means(lambda r: wake_theta(model, guide, theta, phi, xs, guide.sample(phi, xs, 1, r)),
                           200, mc_rng(3))
    assert_within_se(mean, se, lg.grad_elbo1(model, guide, theta, phi, x)[0])


@pytest.mark.statistical
def test_sleep_phi_monte_carlo_mean_matches_the_closed_form_sleep_target():
    # 200 batches × 500 dreams; 6 SE per entry, 10 entries: false failure < 1e-7.
    model, guide, theta, phi, x, rng = setting(4)

    def batch(r):
        z, xs = model.sample(theta, 500, r)
        return sleep_phi(guide, phi, z, xs)

    mean, se = batch_means(batch, 200, mc_rng(4))
    target = lg.sleep_target(model, guide, theta, phi)
    assert_within_se(mean, se, target)
    assert max(np.max(np.abs(v)) for v in target.values()) > 0.1   # a target that is not ~0


# -- 5. q = exact posterior: every L̂ is log p(x); Fisher's identity at every K ----


def diagonal_posterior_setting():
    """θ with D = σ² I and W = Q diag(λ), Q with orthonormal columns, so S is diagonal
    and the diagonal guide can equal the exact posterior."""
    model, guide = LinearGaussian(2, 3), DiagonalGaussianGuide(2, 3)
    q, _ = np.linalg.qr(np.array([[1.0, 0.2], [0.3, -1.0], [0.5, 0.4]]))
    theta = {"mu": np.array([0.5, -0.3]), "W": q * np.array([1.5, 0.7]),
             "b": np.array([0.1, -0.2, 0.3]), "log_sigma": np.full(3, np.log(0.6))}
    phi = lg.moment_matched_phi(model, theta)
    x = np.array([[0.4, -1.1, 0.9], [2.0, 0.3, -0.5]])
    _, S = model.posterior(theta, x)
    assert abs(S[0, 1]) < 1e-15
    return model, guide, theta, phi, x


def test_exact_posterior_guide_makes_every_bound_estimate_log_p():
    model, guide, theta, phi, x = diagonal_posterior_setting()
    rng = np.random.default_rng(5)
    log_p = model.log_marginal(theta, x)
    for K in (1, 3, 50):
        z = guide.sample(phi, x, K, rng) + 3.0 * rng.standard_normal((K,) + x.shape[:1] + (2,))
        np.testing.assert_allclose(elbo_is(log_weights(model, guide, theta, phi, x, z)), log_p,
                                   rtol=1e-13)


@pytest.mark.parametrize("K", [1, 2, 3])
def test_fisher_identity_exact_mean_of_wake_theta_is_grad_log_marginal(K):
    model, guide, theta, phi, x = diagonal_posterior_setting()
    mean = guide.mean(phi, x)                                   # (N, dz)
    std = np.broadcast_to(np.exp(phi["log_s"]), mean.shape)
    nodes, weights = gauss_hermite_2pt(np.broadcast_to(mean, (K,) + mean.shape),
                                       np.broadcast_to(std, (K,) + mean.shape))
    exact = {}
    for node, weight in zip(nodes, weights):
        for key, value in wake_theta(model, guide, theta, phi, x, node).items():
            exact[key] = exact.get(key, 0.0) + weight * value
    fisher = central_difference(lambda t: np.mean(model.log_marginal(t, x)), theta)
    assert_tree_close(exact, fisher, RTOL, floor=1.0)


# -- 4, 5. finite K: exact ELBO_IS and exact E[wake-φ] for a scalar latent ---------


def test_scalar_oracle_reproduces_the_closed_forms():
    model, guide, theta, phi, x = scalar_setting()
    one = exact.scalar_laplace(model, guide, theta, phi, x, 1, estimator=wake_phi)
    assert one["elbo_is"][0] == pytest.approx(lg.elbo1(model, guide, theta, phi, x)[0], abs=1e-9)
    for value in one["mean"].values():
        np.testing.assert_allclose(value, 0.0, atol=1e-12)
    # at K = 4096 the mean is the closed-form ∇_φ KL(p ‖ q) up to c₁/K (to 1% of it)
    K = 4096
    big = exact.scalar_laplace(model, guide, theta, phi, x, K, estimator=wake_phi)
    target = lg.kl_grad_phi(model, guide, theta, phi, x)
    for key in target:
        np.testing.assert_allclose(K * (big["mean"][key] - target[key]), big["c1"][key], rtol=1e-2)


@pytest.mark.statistical
def test_elbo_is_increases_with_k_towards_log_p_with_gap_chi2_over_2k():
    model, guide, theta, phi, x = scalar_setting()
    log_p = model.log_marginal(theta, x)[0]
    ks = [1, 2, 4, 16, 64, 256]
    results = [exact.scalar_laplace(model, guide, theta, phi, x, k) for k in ks]
    bounds = np.array([r["elbo_is"][0] for r in results])
    assert np.all(np.diff(bounds) > 0) and np.all(bounds < log_p)
    scaled_gap = np.array(ks) * (log_p - bounds)
    # K·gap decreases monotonically to χ²/2 (delta method), within 1% at K = 256
    assert np.all(np.diff(scaled_gap) < 0)
    assert scaled_gap[-1] == pytest.approx(results[0]["chi2"][0] / 2, rel=1e-2)

    # The package's L̂ agrees with the exact bound: 200 batches × 400 replicates,
    # 6 SE, 3 values of K: false failure < 3e-8.
    rng = mc_rng(6)
    xs = np.repeat(x, 400, axis=0)
    for K in (2, 16, 128):
        mean, se = batch_means(
            lambda r: {"L": np.mean(elbo_is(log_weights(model, guide, theta, phi, xs,
                                                        guide.sample(phi, xs, K, r))))}, 200, rng)
        assert_within_se(mean, se, {"L": exact.scalar_laplace(model, guide, theta, phi, x, K)["elbo_is"][0]})


@pytest.mark.statistical
def test_wake_phi_bias_shrinks_like_one_over_k(record_property):
    model, guide, theta, phi, x = scalar_setting()
    target = lg.kl_grad_phi(model, guide, theta, phi, x)
    ks = np.array([4, 8, 16, 32, 64])
    oracle = {int(K): exact.scalar_laplace(model, guide, theta, phi, x, int(K), estimator=wake_phi) for K in ks}
    c1 = oracle[4]["c1"]
    exact_bias = {k: np.array([oracle[int(K)]["mean"][k] - target[k] for K in ks]).reshape(len(ks), -1)
                  for k in target}
    # Exact: K·bias converges monotonically to the delta-method constant c₁.
    for key in target:
        scaled = ks[:, None] * exact_bias[key]
        assert np.all(np.diff(np.abs(scaled - c1[key].ravel()), axis=0) < 0)
        np.testing.assert_allclose(scaled[-1], c1[key].ravel(), rtol=2e-2)

    # Monte Carlo, with error bars: 200 batches × 1,000 replicates per K. Each
    # mean is within 6 SE of the exact mean (15 comparisons, false failure < 2e-7),
    # and the spread of the batch means matches the exact variance: the ratio of the
    # sample variance to var/1000 is a χ²₁₉₉/199 variable, outside [0.5, 1.7] with
    # probability 3e-9 (15 comparisons: 5e-8).
    # The log-log slope is fitted to the measured |bias| of log_s over K = 4, 8, 16,
    # where the true bias is ≥ 11 of its SEs (so log|bias| is well defined and its
    # delta-method SE valid); it must be within 6 of its standard errors of the exact
    # curve's slope over the same K (false failure ≈ 2e-9).
    rng = mc_rng(7)
    xs = np.repeat(x, 1000, axis=0)
    measured, errors = [], []
    for K in ks:
        mean, se = batch_means(lambda r: wake_phi(model, guide, theta, phi, xs,
                                                  guide.sample(phi, xs, int(K), r)), 200, rng)
        assert_within_se(mean, se, oracle[int(K)]["mean"])
        for key in mean:
            ratio = (se[key] ** 2 * 200) / (oracle[int(K)]["var"][key] / 1000)
            assert np.all((ratio > 0.5) & (ratio < 1.7)), (K, key, ratio)
        measured.append(mean["log_s"][0] - target["log_s"][0])
        errors.append(se["log_s"][0])
    fit = slice(0, 3)
    measured, errors, log_k = np.array(measured)[fit], np.array(errors)[fit], np.log(ks[fit])
    sd_log = errors / np.abs(measured)                       # delta method for log|bias|
    design = np.stack([np.ones_like(log_k), log_k], axis=1) / sd_log[:, None]
    coef, *_ = np.linalg.lstsq(design, np.log(np.abs(measured)) / sd_log, rcond=None)
    slope_se = np.sqrt(np.linalg.inv(design.T @ design)[1, 1])
    exact_slope = np.polyfit(log_k, np.log(np.abs(exact_bias["log_s"][fit, 0])), 1)[0]
    record_property("wake_phi_bias_slope", f"{coef[1]:.3f} ± {slope_se:.3f} (exact {exact_slope:.3f})")
    print(f"wake-φ bias slope (log_s, K = 4..16): {coef[1]:.3f} ± {slope_se:.3f}; exact curve {exact_slope:.3f}")
    assert abs(coef[1] - exact_slope) <= 6 * slope_se
    full_exact_slope = np.polyfit(np.log(ks), np.log(np.abs(exact_bias["log_s"][:, 0])), 1)[0]
    assert abs(full_exact_slope + 1) < 0.1                  # the exact curve over K = 4..64


# -- 6. properties ------------------------------------------------------------------


def estimates(model, guide, theta, phi, x, z):
    return {"elbo": elbo_is(log_weights(model, guide, theta, phi, x, z)),
            "w_bar": normalized_weights(log_weights(model, guide, theta, phi, x, z)),
            "theta": wake_theta(model, guide, theta, phi, x, z),
            "phi": wake_phi(model, guide, theta, phi, x, z)}


@given(linear_gaussian_settings(), st.randoms(use_true_random=False))
def test_permuting_particles_changes_nothing(s, random):
    model, guide, theta, phi, x, z = s
    perms = [random.sample(range(z.shape[0]), z.shape[0]) for _ in range(x.shape[0])]
    z_perm = np.stack([z[perm, n] for n, perm in enumerate(perms)], axis=1)
    a, b = estimates(model, guide, theta, phi, x, z), estimates(model, guide, theta, phi, x, z_perm)
    np.testing.assert_allclose(a["elbo"], b["elbo"], rtol=1e-13, atol=1e-13)
    for n, perm in enumerate(perms):
        np.testing.assert_allclose(a["w_bar"][perm, n], b["w_bar"][:, n], rtol=1e-12, atol=1e-15)
    assert_tree_close(b["theta"], a["theta"], 1e-12)
    assert_tree_close(b["phi"], a["phi"], 1e-12)


class ShiftedLinearGaussian(LinearGaussian):
    """log p_θ(z, x) + c(x_n): the same model up to a θ-free constant per datapoint."""

    def log_joint_vjp(self, theta, z, x):
        log_p, pullback = super().log_joint_vjp(theta, z, x)
        return log_p + 1e3 * x[:, 0], pullback


@given(linear_gaussian_settings())
def test_a_constant_per_datapoint_changes_neither_weights_nor_gradients(s):
    model, guide, theta, phi, x, z = s
    shifted = ShiftedLinearGaussian(model.dz, model.dx)
    a, b = estimates(model, guide, theta, phi, x, z), estimates(shifted, guide, theta, phi, x, z)
    np.testing.assert_allclose(b["elbo"] - a["elbo"], 1e3 * x[:, 0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(b["w_bar"], a["w_bar"], rtol=1e-9, atol=1e-12)
    assert_tree_close(b["theta"], a["theta"], 1e-9)
    assert_tree_close(b["phi"], a["phi"], 1e-9)


def batch_and_singles(estimator, model, guide, theta, phi, x, z):
    batch = estimator(model, guide, theta, phi, x, z)
    singles = [estimator(model, guide, theta, phi, x[n:n + 1], z[:, n:n + 1]) for n in range(len(x))]
    return batch, singles


@pytest.mark.parametrize("estimator", WAKE)
@given(s=linear_gaussian_settings())
def test_batch_estimate_is_the_mean_of_single_datapoint_estimates(estimator, s):
    model, guide, theta, phi, x, z = s
    batch, singles = batch_and_singles(estimator, model, guide, theta, phi, x, z)
    assert_tree_close(batch, {k: np.mean([g[k] for g in singles], axis=0) for k in batch}, 1e-12)


@pytest.mark.parametrize("estimator", WAKE)
@given(s=linear_gaussian_settings(), data=st.data())
def test_one_datapoints_particles_never_change_anothers_contribution(estimator, s, data):
    model, guide, theta, phi, x, z = s
    n = data.draw(st.integers(0, x.shape[0] - 1))
    z_new = z.copy()
    z_new[:, n] = z[:, n] * -0.5 + 1.0                           # other particles for datapoint n
    before = estimator(model, guide, theta, phi, x, z)
    after = estimator(model, guide, theta, phi, x, z_new)
    own_before = estimator(model, guide, theta, phi, x[n:n + 1], z[:, n:n + 1])
    own_after = estimator(model, guide, theta, phi, x[n:n + 1], z_new[:, n:n + 1])
    change = {k: (own_after[k] - own_before[k]) / x.shape[0] for k in before}
    assert_tree_close({k: after[k] - before[k] for k in before}, change, 1e-10, floor=1e-3)


def test_extreme_log_weights_give_finite_exact_answers():
    log_w = np.array([[1e5, -1e5], [1e5 - np.log(3.0), -1e5 + 1.0], [-np.inf, -1e5 - 2.0]])
    np.testing.assert_allclose(elbo_is(log_w),
                               [1e5 + np.log(4.0 / 9.0), -1e5 + np.log((1 + np.e + np.e ** -2) / 3)],
                               rtol=1e-15)
    w = normalized_weights(log_w)
    np.testing.assert_allclose(w[:, 0], [0.75, 0.25, 0.0], atol=1e-16)
    np.testing.assert_allclose(w.sum(axis=0), 1.0, rtol=1e-15)


# -- 7. bad input -------------------------------------------------------------------


def _bad_cases():
    model, guide, theta, phi, x, rng = setting()
    z = guide.sample(phi, x, 4, rng)
    gen = np.random.default_rng(0)
    no_W = {k: v for k, v in theta.items() if k != "W"}
    nan_theta = dict(theta, b=np.array([0.0, np.nan, 0.0]))
    inf_phi = dict(phi, log_s=np.array([np.inf, 0.0]))
    x_inf = x.copy()
    x_inf[1, 2] = -np.inf
    return [
        ("z wrong ndim", lambda: wake_theta(model, guide, theta, phi, x, z[0]), ValueError, "z"),
        ("z wrong N", lambda: wake_phi(model, guide, theta, phi, x, z[:, :2]), ValueError, "z"),
        ("z wrong dz", lambda: log_weights(model, guide, theta, phi, x, z[..., :1]), ValueError, "z"),
        ("z with K = 0", lambda: wake_theta(model, guide, theta, phi, x, z[:0]), ValueError, "K >= 1"),
        ("x wrong dx", lambda: wake_theta(model, guide, theta, phi, x[:, :2], z), ValueError, "x"),
        ("x empty", lambda: model.sample(theta, 0, gen), ValueError, "n"),
        ("x not finite", lambda: wake_phi(model, guide, theta, phi, x_inf, z), ValueError, "x"),
        ("x strings", lambda: model.log_joint(theta, z, [["a"] * 3] * 3), TypeError, "x"),
        ("theta missing key", lambda: wake_theta(model, guide, no_W, phi, x, z), ValueError, "theta"),
        ("theta extra key", lambda: wake_theta(model, guide, dict(theta, V=1.0), phi, x, z),
         ValueError, "theta"),
        ("theta wrong shape", lambda: wake_theta(model, guide, dict(theta, mu=np.zeros(3)), phi, x, z),
         ValueError, "theta['mu']"),
        ("theta NaN", lambda: wake_theta(model, guide, nan_theta, phi, x, z), ValueError, "theta['b']"),
        ("theta not a dict", lambda: model.log_joint([1.0], z, x), TypeError, "theta"),
        ("phi inf", lambda: wake_phi(model, guide, theta, inf_phi, x, z), ValueError, "phi['log_s']"),
        ("phi missing key", lambda: sleep_phi(guide, {"A": phi["A"]}, z[0], x), ValueError, "phi"),
        ("K = 0", lambda: guide.sample(phi, x, 0, gen), ValueError, "K"),
        ("K float", lambda: guide.sample(phi, x, 2.0, gen), TypeError, "K"),
        ("n negative", lambda: model.sample(theta, -1, gen), ValueError, "n"),
        ("rng legacy", lambda: model.init_theta(np.random.RandomState(0)), TypeError, "rng"),
        ("rng int", lambda: guide.sample(phi, x, 3, 0), TypeError, "rng"),
        ("rng None", lambda: guide.init_phi(None), TypeError, "rng"),
        ("weights shape", lambda: model.grad_log_joint(theta, z, x, np.ones((4, 2))),
         ValueError, "weights"),
        ("weights NaN", lambda: guide.grad_log_prob(phi, z, x, np.full((4, 3), np.nan)),
         ValueError, "weights"),
        ("sleep z shape", lambda: sleep_phi(guide, phi, z, x), ValueError, "z"),
        ("dz zero", lambda: LinearGaussian(0, 3), ValueError, "dz"),
        ("dx float", lambda: DiagonalGaussianGuide(2, 3.5), TypeError, "dx"),
        ("log_w 1-d", lambda: elbo_is(np.zeros(4)), ValueError, "log_w"),
        ("log_w all -inf", lambda: normalized_weights(np.full((3, 2), -np.inf)), ValueError, "log_w"),
        ("mismatched guide", lambda: lg.kl_grad_phi(model, DiagonalGaussianGuide(1, 3), theta, phi, x),
         ValueError, "guide"),
    ]


@pytest.mark.parametrize("name, call, kind, words", _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_bad_input_raises_a_clear_error_naming_the_argument(name, call, kind, words):
    with pytest.raises(kind) as info:
        call()
    assert words in str(info.value), f"{name}: message {info.value!s} does not name {words!r}"


def test_public_names_are_re_exported():
    for name in ("log_weights", "elbo_is", "normalized_weights", "wake_theta", "wake_phi",
                 "sleep_phi", "LinearGaussian", "DiagonalGaussianGuide"):
        assert getattr(rws_ref, name) is not None
