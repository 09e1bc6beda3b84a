"""The NumPyro bridge against real NumPyro (JAX): the bridged densities equal rws_ref's closed forms;
the bridged pair passes rws_ref's checks; NumPyro's own objects are reported in rws_ref's terms (the
conventions measured in issue 21); a user's hand-written NumPyro RWS code with a realistic bug is
named; an ELBO run under vmap is refused with the way out; the ELBO's own strategy is put back."""
import numpy as np
import pytest

numpyro = pytest.importorskip("numpyro")
jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402
import numpyro_programs as P  # noqa: E402  (tests/bridges, after the skip)
from numpyro import handlers  # noqa: E402
from numpyro.infer import RenyiELBO, Trace_ELBO  # noqa: E402
from two_sites import HIER_PHI, HIER_THETA, MIXED_PHI, MIXED_THETA, hier_densities, mixed_densities  # noqa: E402

import rws_ref  # noqa: E402
from rws_ref import estimators, exact, family  # noqa: E402
from rws_ref.checking import testing  # noqa: E402
from rws_ref.checking.bridges.numpyro import Bridge  # noqa: E402

LG = rws_ref.LinearGaussian(P.DZ, P.DX), rws_ref.DiagonalGaussianGuide(P.DZ, P.DX)
MIX_THETA = {"logits": np.array([0.1, -0.2, 0.3]), "means": np.array([-2.0, 0.5, 2.0])}
MIX_PHI = {"w": np.array([0.3, -0.1, 0.2]), "b0": np.array([0.1, 0.0, -0.1])}
MIX_X = np.array([-1.5, 0.2, 2.5])
KEY = jax.random.PRNGKey(0)


def lg_setting(seed=0, n=3):
    rng = np.random.default_rng(seed)
    theta, phi = LG[0].init_theta(rng), LG[1].init_phi(rng)
    phi["log_s"] = np.array([0.3, -0.2])                    # a scale ≠ 1, so a wrong scale shows
    return Bridge(P.lg_model, P.lg_guide, LG[0].sample(theta, n, rng)[1]), theta, phi


@pytest.fixture(scope="module")
def mixture():
    return Bridge(P.mixture_model, P.mixture_guide, MIX_X)


def check(bridge, elbo, model, guide, kind, **kw):
    with Bridge.one_at_a_time(elbo):
        return bridge.check_loss(lambda p, x: elbo.loss(KEY, p, model, guide, x), kind, **kw)


def test_the_bridged_linear_gaussian_equals_rws_refs_closed_forms_and_estimators():
    bridge, theta, phi = lg_setting()
    x = LG[0].sample(theta, 3, np.random.default_rng(1))[1]
    rng = np.random.default_rng(2)
    z = LG[1].sample(phi, x, 4, rng)
    eps = rng.standard_normal(z.shape)
    np.testing.assert_allclose(bridge.model.log_joint(theta, z, x), LG[0].log_joint(theta, z, x), atol=1e-12)
    np.testing.assert_allclose(bridge.guide.log_prob(phi, z, x), LG[1].log_prob(phi, z, x), atol=1e-12)
    for fn, args in ((estimators.wake_theta, z), (estimators.wake_phi, z), (family.iwae_phi, eps),
                     (family.iwae_dreg_phi, eps)):
        ours, bridged = fn(*LG, theta, phi, x, args), fn(bridge.model, bridge.guide, theta, phi, x, args)
        for key in ours:
            np.testing.assert_allclose(bridged[key], ours[key], atol=1e-10, err_msg=f"{fn.__name__}[{key}]")


def test_a_correct_wake_phi_passes_check_estimator_on_the_bridged_mixture(mixture):
    assert mixture.model.z_domain == 3
    report = testing.check_estimator(estimators.wake_phi, "wake_phi", mixture.model, mixture.guide, seed=0,
                                     max_examples=5)
    report.assert_ok()
    assert any("exact mean" in r.name and r.status == "pass" for r in report.results), str(report)


def test_numpyros_renyi_elbo_alpha_zero_is_n_times_iwae_with_a_reparameterized_guide():
    bridge, theta, phi = lg_setting()
    report = check(bridge, RenyiELBO(alpha=0.0, num_particles=4), P.lg_model, P.lg_guide, "iwae_phi",
                   theta=theta, phi=phi)
    text = str(report)
    assert report.ok and "value = −N × mean ELBO_IS" in text and "φ-gradient = −N × iwae-φ" in text, text


def test_numpyros_renyi_elbo_misses_the_score_function_term_of_a_discrete_guide(mixture):
    elbo = RenyiELBO(alpha=0.0, num_particles=4)
    report = check(mixture, elbo, P.mixture_model, P.mixture_guide, "reinforce_phi", theta=MIX_THETA, phi=MIX_PHI)
    assert "φ-gradient = −N × reinforce-φ with a known mistake: score-function term missing" in str(report), \
        str(report)
    report = check(mixture, elbo, P.mixture_model, P.mixture_guide, "wake_phi", theta=MIX_THETA, phi=MIX_PHI)
    assert "φ-gradient = −N × wake-φ: its sign makes minimizing the loss move the wrong way" in str(report), \
        str(report)


def test_an_elbo_under_vmap_is_refused_and_its_strategy_put_back(mixture):
    elbo = RenyiELBO(alpha=0.0, num_particles=4)
    own = elbo.vectorize_particles_fn
    with pytest.raises(ValueError, match=r"Bridge.one_at_a_time\(elbo\)"):
        mixture.check_loss(lambda p, x: elbo.loss(KEY, p, P.mixture_model, P.mixture_guide, x), "wake_phi")
    with Bridge.one_at_a_time(elbo):
        assert elbo.vectorize_particles_fn is Bridge.particles
    assert elbo.vectorize_particles_fn is own


def test_numpyros_trace_elbo_at_one_particle_is_n_times_wake_theta(mixture):
    elbo = Trace_ELBO(num_particles=1)
    run = mixture.loss(lambda p, x: elbo.loss(KEY, p, P.mixture_model, P.mixture_guide, x), "reinforce_phi")
    z = np.array([[0.0, 2.0, 1.0]])
    with Bridge.one_at_a_time(elbo):
        value, g_theta, _ = run(MIX_THETA, MIX_PHI, MIX_X, z)
    wake = estimators.wake_theta(mixture.model, mixture.guide, MIX_THETA, MIX_PHI, MIX_X, z)
    for key in wake:
        np.testing.assert_allclose(g_theta[key], -3 * wake[key], atol=1e-12)
    log_w = mixture.model.log_joint(MIX_THETA, z, MIX_X) - mixture.guide.log_prob(MIX_PHI, z, MIX_X)
    assert value == pytest.approx(-np.sum(log_w), abs=1e-12)


# -- a user's own NumPyro RWS code ------------------------------------------------------------------
def user_rws(model, guide, K=4, bug=None):
    """RWS as a NumPyro user writes it by hand: traces of the vectorized programs under the parameters,
    log weights, a θ loss and a φ loss averaged over the data.  ``bug`` plants one realistic mistake."""
    def vectorized(fn):
        def run(x):
            with numpyro.plate("particles", K, dim=-2):
                return fn(x)
        return run

    def loss(params, x):
        guide_trace = handlers.trace(handlers.seed(handlers.substitute(vectorized(guide), data=params),
                                                   KEY)).get_trace(x)
        model_trace = handlers.trace(handlers.replay(handlers.substitute(vectorized(model), data=params),
                                                     guide_trace)).get_trace(x)
        log_p = sum(s["fn"].log_prob(s["value"]) for s in model_trace.values() if s["type"] == "sample")
        log_q = sum(s["fn"].log_prob(s["value"]) for name, s in guide_trace.items()        # every latent site
                    if s["type"] == "sample" and (bug != "one site's log q" or name == "z"))
        log_w = log_p - log_q
        sg = jax.lax.stop_gradient
        if bug == "weights over the batch":
            w = jax.nn.softmax(sg(log_w).reshape(-1)).reshape(log_w.shape)
        elif bug == "no detach":
            w = jax.nn.softmax(log_w, axis=0)
        elif bug == "unnormalized":
            w = jnp.exp(sg(log_w))
        else:
            w = jax.nn.softmax(sg(log_w), axis=0)
        theta_loss = -(jax.nn.logsumexp(log_p - sg(log_q), axis=0) - np.log(K)).mean()
        phi_loss = -(w * log_q).sum(0).mean()
        if bug == "phi sign":
            phi_loss = -phi_loss
        if bug == "sum reduction":
            theta_loss = theta_loss * x.shape[0]
        return theta_loss, phi_loss
    return loss


@pytest.mark.parametrize("bug, said", [
    (None, "φ-gradient = 1 × wake-φ: consistent"),
    ("weights over the batch", "× wake-φ with a known mistake: weights normalized over the whole batch"),
    ("no detach", "φ-gradient = 1 × wake-φ with a known mistake: gradient through the weights"),
    ("unnormalized", "φ-gradient = 1 × wake-φ with a known mistake: unnormalized weights"),
    ("phi sign", "φ-gradient = −1 × wake-φ: its sign makes minimizing the loss move the wrong way"),
    ("sum reduction", "θ-gradient = −N × wake-θ"),
])
def test_hand_written_numpyro_rws_is_checked_and_a_bug_named(mixture, bug, said):
    report = mixture.check_loss(user_rws(P.mixture_model, P.mixture_guide, bug=bug), "wake_phi",
                                theta=MIX_THETA, phi=MIX_PHI)
    assert said in str(report), str(report)
    assert report.ok == (bug in (None, "sum reduction")), str(report)


def test_the_bridges_samplers_are_reproducible_from_rws_refs_rng(mixture):
    a = mixture.guide.sample(MIX_PHI, MIX_X, 50, np.random.default_rng(11))
    b = mixture.guide.sample(MIX_PHI, MIX_X, 50, np.random.default_rng(11))
    c = mixture.guide.sample(MIX_PHI, MIX_X, 50, np.random.default_rng(12))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    z, x = mixture.model.sample(MIX_THETA, 5, np.random.default_rng(3))
    assert z.shape == (5,) and x.shape == (5,) and set(np.unique(z)) <= {0.0, 1.0, 2.0}


# -- several latent sites: the joint latent, its support, and NumPyro's objects on it -----------------------
X3 = np.array([-1.5, 0.2, 2.5])


def test_a_discrete_hierarchy_is_one_latent_on_the_product_support_and_checked_exactly():
    bridge = Bridge(P.hier_model, P.hier_guide, X3)
    assert (bridge.model.z_shape, bridge.model.z_domain) == ((2,), 3)
    states = bridge.model.support()
    np.testing.assert_array_equal(states, [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]])
    z = np.broadcast_to(states[:, None], (6, 3, 2))
    want_p, want_q = hier_densities(HIER_THETA, HIER_PHI, z, X3)
    np.testing.assert_allclose(bridge.model.log_joint(HIER_THETA, z, X3), want_p, atol=1e-12)
    np.testing.assert_allclose(bridge.guide.log_prob(HIER_PHI, z, X3), want_q, atol=1e-12)
    assert np.isneginf(bridge.model.log_joint(HIER_THETA, np.array([[[2, 0], [0, 1], [1, 2]]]), X3)[0, 0])
    q = np.exp(want_q)
    np.testing.assert_allclose(exact.elbo_is(bridge.model, bridge.guide, HIER_THETA, HIER_PHI, X3, 1),
                               np.sum(q * (want_p - want_q), 0), atol=1e-12)
    report = testing.check_estimator(estimators.wake_phi, "wake_phi", bridge.model, bridge.guide, seed=0,
                                     max_examples=5)
    report.assert_ok()
    assert any("exact mean" in r.name and r.status == "pass" for r in report.results), str(report)
    report = bridge.check_loss(user_rws(P.hier_model, P.hier_guide), "wake_phi", theta=HIER_THETA, phi=HIER_PHI)
    assert report.ok and "φ-gradient = 1 × wake-φ: consistent" in str(report), str(report)


@pytest.mark.parametrize("bug", [None, "one site's log q"])
def test_a_discrete_choice_with_a_continuous_value_is_checked_and_a_forgotten_site_caught(bug):
    bridge = Bridge(P.mixed_model, P.mixed_guide, X3)
    assert (bridge.model.z_shape, bridge.model.z_domain, bridge.model.z_entries) == ((2,), "real", (3, "real"))
    z = bridge.guide.sample(MIXED_PHI, X3, 4, np.random.default_rng(3))
    want_p, want_q = mixed_densities(MIXED_THETA, MIXED_PHI, z, X3)
    np.testing.assert_allclose(bridge.model.log_joint(MIXED_THETA, z, X3), want_p, atol=1e-12)
    np.testing.assert_allclose(bridge.guide.log_prob(MIXED_PHI, z, X3), want_q, atol=1e-12)
    report = bridge.check_loss(user_rws(P.mixed_model, P.mixed_guide, bug=bug), "wake_phi", theta=MIXED_THETA,
                               phi=MIXED_PHI)
    if bug is None:
        assert report.ok and "φ-gradient = 1 × wake-φ: consistent" in str(report), str(report)
        testing.check_estimator(estimators.wake_theta, "wake_theta", bridge.model, bridge.guide, seed=0,
                                max_examples=5).assert_ok()
    else:
        assert not report.ok and "φ-gradient is no multiple of wake-φ" in str(report), str(report)


# -- programs beyond one latent inside one plate: named, or handled --------------------------------------


def _normal_normal_model(x):
    """NumPyro's RenyiELBO docstring model: z ~ N(0, 1), x | z ~ N(z, 1), no parameters."""
    import numpyro.distributions as dist
    with numpyro.plate("data", x.shape[0]):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        numpyro.sample("x", dist.Normal(z, 1.0), obs=x)


def _normal_normal_guide(x):
    import numpyro.distributions as dist
    a, b = numpyro.param("a", 0.3), numpyro.param("b", 0.1)
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("z", dist.Normal(a * x + b, 0.8))


def test_a_model_without_parameters_is_bridged_and_checked():
    x = np.array([0.4, -1.2, 2.0])
    bridge = Bridge(_normal_normal_model, _normal_normal_guide, x)
    assert bridge.model.theta_shapes == {} and set(bridge.guide.phi_shapes) == {"a", "b"}
    z = np.array([[0.1, 0.2, -0.3]])
    want = -0.5 * z ** 2 - 0.5 * (x - z) ** 2 - np.log(2 * np.pi)             # typed here
    np.testing.assert_allclose(bridge.model.log_joint({}, z, x), want, rtol=1e-12)
    testing.check_estimator(rws_ref.wake_phi, "wake_phi", bridge.model, bridge.guide, max_examples=3).assert_ok()
    report = check(bridge, RenyiELBO(alpha=0.0, num_particles=4), _normal_normal_model, _normal_normal_guide,
                   "iwae_phi")
    assert report.ok and "θ-gradient" not in str(report), str(report)


def test_a_global_latent_and_a_subsampled_plate_are_refused_in_one_sentence_with_the_way_forward():
    import numpyro.distributions as dist

    def global_model(x):
        shift = numpyro.sample("shift", dist.Normal(0.0, 1.0))                  # outside the data plate
        with numpyro.plate("data", x.shape[0]):
            z = numpyro.sample("z", dist.Normal(shift, 1.0))
            numpyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def global_guide(x):
        numpyro.sample("shift", dist.Normal(numpyro.param("m", 0.0), 1.0))
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("z", dist.Normal(x, 1.0))

    def subsampled_model(x):
        with numpyro.plate("data", 10, subsample_size=x.shape[0]):
            z = numpyro.sample("z", dist.Normal(0.0, 1.0))
            numpyro.sample("x", dist.Normal(z, 1.0), obs=x)

    x = np.array([0.4, -1.2])
    with pytest.raises(ValueError, match="outside the data plate"):
        Bridge(global_model, global_guide, x)
    with pytest.raises(ValueError, match=r"subsamples 2 of its 10 datapoints .* N_total/N_batch = 5.* only at K = 1: "
                                         r"at K > 1 the scaling also tempers the importance weights"):
        Bridge(subsampled_model, _normal_normal_guide, x)
