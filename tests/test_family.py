"""The estimator family: insomnia, defensive wake-φ, IWAE / STL / DReG, REINFORCE, VIMCO.

Oracles: autograd surrogates; the identities of DESIGN.md on fixed noise;
the exact oracle (REINFORCE and VIMCO unbiased for ∇_φ ELBO_IS, defensive
wake-φ consistent for ∇_φ KL); paired Monte Carlo for the DReG estimators.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rws_ref import (
    BernoulliGuide,
    DefensiveGuide,
    GaussianMixture,
    SigmoidBeliefNet,
    SoftmaxLinearGuide,
    autodiff,
    defensive_wake_phi,
    exact,
    family,
    insomnia,
    iwae_dreg_phi,
    iwae_phi,
    reinforce_phi,
    rws_dreg_phi,
    sleep_phi,
    stl_phi,
    vimco_phi,
    wake_phi,
)

from _util import assert_tree_close, belief_net_settings, flat, linear_gaussian_settings, mc_rng, mixture_settings

RTOL = 1e-9
REPARAMETERIZED = [iwae_phi, stl_phi, iwae_dreg_phi, rws_dreg_phi]


def sub(a, b):
    return {k: a[k] - b[k] for k in a}


# -- manual = autograd ----------------------------------------------------------------


@pytest.mark.parametrize("estimator", REPARAMETERIZED, ids=lambda f: f.__name__)
@given(s=linear_gaussian_settings())
def test_reparameterized_estimators_equal_autograd(estimator, s):
    model, guide, theta, phi, x, eps = s                    # the drawn "particles" serve as ε
    # floor 1e-6: when terms of size O(1) cancel to a gradient of 1e-7 (seen at
    # K = 1), both routes carry ~1e-16 absolute rounding; 1e-9 of 1e-6 covers it
    assert_tree_close(estimator(model, guide, theta, phi, x, eps),
                      getattr(autodiff, estimator.__name__)(model, guide, theta, phi, x, eps), RTOL, floor=1e-6)


@pytest.mark.parametrize("strategy", [mixture_settings(max_k=4), mixture_settings(mlp=True),
                                      belief_net_settings()], ids=["mixture", "mlp", "belief-net"])
@pytest.mark.parametrize("estimator", [reinforce_phi, vimco_phi], ids=lambda f: f.__name__)
def test_score_function_estimators_equal_autograd(strategy, estimator):
    @given(strategy)
    def check(s):
        model, guide, theta, phi, x, z = s
        if estimator is vimco_phi and z.shape[0] < 2:
            z = np.concatenate([z, z[::-1]], axis=0)
        assert_tree_close(estimator(model, guide, theta, phi, x, z),
                          getattr(autodiff, estimator.__name__)(model, guide, theta, phi, x, z), RTOL)
    check()


@given(s=linear_gaussian_settings(), iota=st.floats(0.0, 1.0))
def test_insomnia_equals_autograd(s, iota):
    model, guide, theta, phi, x, z = s
    dream_z, dream_x = z[0] + 0.5, x - 1.0
    assert_tree_close(insomnia(model, guide, theta, phi, x, z, dream_z, dream_x, iota),
                      autodiff.insomnia(model, guide, theta, phi, x, z, dream_z, dream_x, iota), RTOL)


@given(s=mixture_settings(), delta=st.floats(0.0, 1.0))
def test_defensive_wake_phi_equals_autograd(s, delta):
    model, guide, theta, phi, x, z = s
    assert_tree_close(defensive_wake_phi(model, guide, theta, phi, x, z, delta),
                      autodiff.defensive_wake_phi(model, guide, theta, phi, x, z, delta), RTOL)


# -- identities and limits, exactly -----------------------------------------------------


@given(s=linear_gaussian_settings())
def test_design_identities_on_fixed_noise(s):
    model, guide, theta, phi, x, eps = s
    z = guide.reparameterize(phi, x, eps)
    iwae, stl = iwae_phi(model, guide, theta, phi, x, eps), stl_phi(model, guide, theta, phi, x, eps)
    dreg, rdreg = (iwae_dreg_phi(model, guide, theta, phi, x, eps),
                   rws_dreg_phi(model, guide, theta, phi, x, eps))
    wake = wake_phi(model, guide, theta, phi, x, z)                       # descent sign
    assert_tree_close(sub(iwae, wake), stl, 1e-10, floor=1e-6)           # STL = IWAE + wake (ascent)
    assert_tree_close(sub(dreg, rdreg), stl, 1e-10, floor=1e-6)          # IWAE-DReG + RWS-DReG = STL
    if eps.shape[0] == 1:
        assert all(np.all(v == 0.0) for v in rdreg.values())            # RWS-DReG ≡ 0 at K = 1


def test_vimco_signals_match_the_design_example():
    log_w = np.array([[-1.0], [-2.0], [-0.5], [-3.0]])
    np.testing.assert_allclose(family.vimco_signals(log_w)[:, 0],
                               [0.197698, -0.072986, 0.521493, -0.203449], atol=5e-7)
    from rws_ref import elbo_is
    assert elbo_is(log_w)[0] == pytest.approx(-1.238277, abs=5e-7)


@given(s=linear_gaussian_settings())
def test_insomnia_endpoints_are_sleep_and_wake_exactly(s):
    model, guide, theta, phi, x, z = s
    dream_z, dream_x = z[0] * 0.5, x + 0.25
    wake = wake_phi(model, guide, theta, phi, x, z)
    sleep = sleep_phi(guide, phi, dream_z, dream_x)
    for iota, want in ((1.0, wake), (0.0, sleep), (1, wake), (0, sleep)):
        got = insomnia(model, guide, theta, phi, x, z, dream_z, dream_x, iota)
        assert all(np.array_equal(got[k], want[k]) for k in want)


@given(s=mixture_settings())
def test_defensive_wake_with_delta_zero_is_wake_exactly(s):
    model, guide, theta, phi, x, z = s
    got = defensive_wake_phi(model, guide, theta, phi, x, z, 0.0)
    want = wake_phi(model, guide, theta, phi, x, z)
    assert all(np.array_equal(got[k], want[k]) for k in want)


@pytest.mark.statistical
def test_defensive_guide_samples_the_mixture():
    # 200,000 particles; 6 binomial SE per class: false failure < 1e-7.
    guide = SoftmaxLinearGuide(5, loc=20.0, scale=10.0)
    phi = {"w": np.array([3.0, 1.0, 0.0, -1.0, -3.0]), "b": np.zeros(5)}
    x = np.array([-5.0])
    mix = DefensiveGuide(guide, 0.3)
    want = 0.7 * guide.probs(phi, x)[0] + 0.3 / 5
    np.testing.assert_allclose(np.exp(mix.log_prob(phi, np.arange(5)[:, None], x))[:, 0], want, rtol=1e-13)
    freq = np.bincount(mix.sample(phi, x, 200_000, mc_rng(13))[:, 0], minlength=5) / 200_000
    assert np.all(np.abs(freq - want) < 6 * np.sqrt(want * (1 - want) / 200_000))


# -- exact oracle ------------------------------------------------------------------------


def discrete_case(kind, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "mixture":
        model, guide = GaussianMixture(4, scale=6.0), SoftmaxLinearGuide(4, loc=15.0, scale=10.0)
    else:
        model, guide = SigmoidBeliefNet(2, 3), BernoulliGuide(2, 3)
    theta, phi = model.init_theta(rng), guide.init_phi(rng)
    phi = {k: v + rng.standard_normal(v.shape) for k, v in phi.items()}
    return model, guide, theta, phi, model.sample(theta, 2, rng)[1]


@pytest.mark.parametrize("kind", ["mixture", "belief-net"])
@pytest.mark.parametrize("K", [2, 3, 6])
def test_reinforce_and_vimco_are_exactly_unbiased_and_vimco_has_less_variance(kind, K):
    model, guide, theta, phi, x = discrete_case(kind)
    _, dphi = exact.grad_elbo_is(model, guide, theta, phi, x, K)
    m_r, v_r = exact.moments(reinforce_phi, model, guide, theta, phi, x, K)
    m_v, v_v = exact.moments(vimco_phi, model, guide, theta, phi, x, K)
    assert_tree_close(m_r, dphi, 1e-10)
    assert_tree_close(m_v, dphi, 1e-10)
    total = lambda v: sum(np.sum(a) for a in v.values())
    assert total(v_v) < total(v_r)


def test_defensive_wake_phi_exact_mean_converges_to_the_kl_gradient():
    model, guide, theta, phi, x = discrete_case("mixture")
    target = flat(exact.kl_grad_phi(model, guide, theta, phi, x))
    mix = DefensiveGuide(guide, 0.2)
    bias = []
    # the public estimator, evaluated per multiset under q_mix, is wake-φ with the mixture proposal
    as_public = lambda m, g, t, p, xx, z: defensive_wake_phi(m, g.guide, t, p, xx, z, 0.2)
    for K in (1, 2, 3):
        assert_tree_close(exact.moments(as_public, model, mix, theta, phi, x, K, method="direct")[0],
                          exact.moments(wake_phi, model, mix, theta, phi, x, K)[0], 1e-12)
    for K in (1, 2, 4, 8, 16, 32):
        mean, _ = exact.moments(wake_phi, model, mix, theta, phi, x, K)   # multisets under q_mix
        bias.append(np.linalg.norm(flat(mean) - target))
    bias = np.array(bias)
    assert np.all(np.diff(bias) < 0)
    scaled = bias * np.array([1, 2, 4, 8, 16, 32])
    assert abs(scaled[-1] - scaled[-2]) < 0.1 * scaled[-1]                # K·bias settles: O(1/K)


# -- DReG means, by paired Monte Carlo ----------------------------------------------------


@pytest.mark.statistical
def test_dreg_estimators_have_the_means_of_iwae_and_wake_phi():
    # Paired differences on common noise, 200 batches × 400 replicates at K = 4:
    # E[IWAE-DReG − IWAE] = 0 and E[RWS-DReG − wake-φ] = 0. 6 SE per entry
    # (t, 199 df), 14 entries × 2: false failure < 3e-7.
    from rws_ref import DiagonalGaussianGuide, LinearGaussian
    rng = np.random.default_rng(8)
    model, guide = LinearGaussian(2, 2), DiagonalGaussianGuide(2, 2)
    theta = model.init_theta(rng)
    phi = {"A": 0.3 * rng.standard_normal((2, 2)), "c": rng.standard_normal(2), "log_s": np.array([0.3, -0.2])}
    x = np.repeat(model.sample(theta, 1, rng)[1], 400, axis=0)

    def batch(r):
        eps = r.standard_normal((4, 400, 2))
        z = guide.reparameterize(phi, x, eps)
        d1 = sub(iwae_dreg_phi(model, guide, theta, phi, x, eps), iwae_phi(model, guide, theta, phi, x, eps))
        d2 = sub(rws_dreg_phi(model, guide, theta, phi, x, eps), wake_phi(model, guide, theta, phi, x, z))
        return np.concatenate([flat(d1), flat(d2)])

    stream = mc_rng(14)
    draws = np.array([batch(stream) for _ in range(200)])
    se = draws.std(axis=0, ddof=1) / np.sqrt(200)
    assert np.all(np.abs(draws.mean(axis=0)) < 6 * se)
    assert np.all(se > 0)


def test_iwae_bias_gradient_is_odd_in_the_noise_when_the_mean_map_is_exact():
    # Why the IWAE φ-gradient's SNR on c is tiny in the Rainforth toy: when the
    # guide mean equals the posterior mean, log w is even in ε and the c-gradient
    # odd, so ε and −ε give exactly opposite gradients and the mean is 0 at every K.
    from rws_ref.experiments.analysis import rainforth_toy
    model, guide, theta, phi, x = rainforth_toy(np.random.default_rng(0), dim=5, perturbation=0.0)
    eps = np.random.default_rng(1).standard_normal((7, 1, 5))
    for estimator in (iwae_phi, iwae_dreg_phi, stl_phi):
        plus, minus = (estimator(model, guide, theta, phi, x, e)["c"] for e in (eps, -eps))
        np.testing.assert_allclose(plus, -minus, atol=1e-14)


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize("call, kind, words", [
    (lambda m, g, t, p, x, z: insomnia(m, g, t, p, x, z, z[0], x, 1.5), ValueError, "iota"),
    (lambda m, g, t, p, x, z: insomnia(m, g, t, p, x, z, z[0], x, float("nan")), ValueError, "iota"),
    (lambda m, g, t, p, x, z: insomnia(m, g, t, p, x, z, z[0], x, "0.5"), TypeError, "iota"),
    (lambda m, g, t, p, x, z: DefensiveGuide(g, -0.1), ValueError, "delta"),
    (lambda m, g, t, p, x, z: DefensiveGuide(g, True), TypeError, "delta"),
    (lambda m, g, t, p, x, z: DefensiveGuide(g, 0.1, defensive=object()), TypeError, "defensive"),
    (lambda m, g, t, p, x, z: vimco_phi(m, g, t, p, x, z[:1]), ValueError, "K >= 2"),
    (lambda m, g, t, p, x, z: family.vimco_signals(np.array([[0.0], [-np.inf]])), ValueError, "-inf"),
    (lambda m, g, t, p, x, z: DefensiveGuide(g, 0.2).sample(p, x, 0, np.random.default_rng()),
     ValueError, "K"),
])
def test_family_rejects_bad_arguments_by_name(call, kind, words):
    model, guide = GaussianMixture(3), SoftmaxLinearGuide(3)
    rng = np.random.default_rng(0)
    theta, phi = model.init_theta(rng), guide.init_phi(rng)
    x = np.array([1.0, 12.0])
    z = np.array([[0, 1], [2, 2]])
    with pytest.raises(kind) as info:
        call(model, guide, theta, phi, x, z)
    assert words in str(info.value)


def test_reparameterized_estimators_refuse_discrete_guides():
    model, guide = GaussianMixture(3), SoftmaxLinearGuide(3)
    with pytest.raises(TypeError, match="reparameterizable"):
        iwae_phi(model, guide, model.init_theta(np.random.default_rng()), {}, np.zeros(1), np.zeros((1, 1)))


def _vimco_decimal(column):
    """VIMCO's signals in 60-digit decimal arithmetic: the independent oracle."""
    from decimal import Decimal, getcontext
    getcontext().prec = 60
    w = [Decimal(repr(float(v))) for v in column]
    top = max(w)
    w = [v - top for v in w]                # exact in 60 digits; the signals do not depend on the shift
    K = len(w)

    def log_mean_exp(values):
        top = max(values)
        return top + (sum((v - top).exp() for v in values) / len(values)).ln()
    bound = log_mean_exp(w)
    out = []
    for k in range(K):
        others = w[:k] + w[k + 1:]
        out.append(float(bound - log_mean_exp(others + [sum(others) / (K - 1)])))
    return out


@pytest.mark.parametrize("spread", [1.0, 30.0, 1e4, 1e300])
def test_vimco_signals_are_exact_to_rounding_at_any_spread_in_linear_memory(spread):
    rng = np.random.default_rng(int(np.log10(spread)))
    log_w = spread * rng.standard_normal((7, 3))
    log_w[:, 2] = log_w[0, 2]                                    # equal log weights: signals 0
    want = np.array([_vimco_decimal(log_w[:, n]) for n in range(3)]).T
    got = family.vimco_signals(log_w)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=4 * np.finfo(float).eps * max(1.0, np.abs(want).max()))
    np.testing.assert_allclose(got[:, 2], 0.0, atol=1e-15)


@pytest.mark.parametrize("name", ["iwae_phi", "stl_phi", "iwae_dreg_phi", "rws_dreg_phi"])
def test_reparameterized_estimators_on_a_scalar_latent_without_model_parameters_equal_autograd(name):
    # z_shape = () and theta_shapes = {}: the path derivative's per-particle coefficients broadcast over no
    # latent axis (once a crash), and wake-θ is an empty dict
    from outside_models import ScalarNormal, ScalarNormalGuide
    model, guide = ScalarNormal(), ScalarNormalGuide()
    rng = np.random.default_rng(3)
    phi = guide.init_phi(rng)
    x = model.sample({}, 3, rng)[1]
    eps = rng.standard_normal((4, 3))
    mine = getattr(family, name)(model, guide, {}, phi, x, eps)
    want = getattr(autodiff, name)(model, guide, {}, phi, x, eps)
    assert_tree_close(mine, want, rtol=1e-10)
    from rws_ref import wake_theta
    assert wake_theta(model, guide, {}, phi, x, guide.reparameterize(phi, x, eps)) == {}
