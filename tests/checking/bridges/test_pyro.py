"""The Pyro bridge against real Pyro: the bridged densities equal rws_ref's closed forms; the bridged
pair passes rws_ref's checks; Pyro's own objects are reported in rws_ref's terms (the conventions
measured in issue 21); a user's hand-written Pyro RWS code with a realistic bug is named; the
bridge leaves the user's parameter store and torch's global generator as it found them."""
import numpy as np
import pytest

pyro = pytest.importorskip("pyro")
torch = pytest.importorskip("torch")

import pyro_programs as P  # noqa: E402  (tests/bridges, after the skip)
from pyro import poutine  # noqa: E402
from two_sites import HIER_PHI, HIER_THETA, MIXED_PHI, MIXED_THETA, hier_densities, mixed_densities  # noqa: E402

import rws_ref  # noqa: E402
from rws_ref import estimators, exact, family  # noqa: E402
from rws_ref.checking import testing  # noqa: E402
from rws_ref.checking.bridges.pyro import Bridge  # noqa: E402

LG = rws_ref.LinearGaussian(P.DZ, P.DX), rws_ref.DiagonalGaussianGuide(P.DZ, P.DX)
MIX_THETA = {"logits": np.array([0.1, -0.2, 0.3]), "means": np.array([-2.0, 0.5, 2.0])}
MIX_PHI = {"w": np.array([0.3, -0.1, 0.2]), "b0": np.array([0.1, 0.0, -0.1])}


def lg_bridge(seed=0, n=3):
    rng = np.random.default_rng(seed)
    theta, phi = LG[0].init_theta(rng), LG[1].init_phi(rng)
    phi["log_s"] = np.array([0.3, -0.2])                    # a scale ≠ 1, so a wrong scale shows
    P.fresh(theta, phi)
    x = LG[0].sample(theta, n, rng)[1]
    return Bridge(P.lg_model, P.lg_guide, x), theta, phi, x


def mixture_bridge(n=3):
    P.fresh(MIX_THETA, MIX_PHI)
    x = np.array([-1.5, 0.2, 2.5][:n])
    return Bridge(P.mixture_model, P.mixture_guide, x), x


def mixture_log_joint(theta, z, x):
    """The Pyro mixture's log joint, typed here from its definition (the oracle for the bridged one)."""
    log_pi = theta["logits"] - np.log(np.sum(np.exp(theta["logits"])))
    zi = z.astype(int)
    return log_pi[zi] - 0.5 * ((x - theta["means"][zi]) / 1.5) ** 2 - np.log(1.5 * np.sqrt(2 * np.pi))


# -- the bridged pair is the user's densities, in rws_ref's protocol ---------------------------------
def test_the_bridged_linear_gaussian_equals_rws_refs_closed_form_densities_and_gradients():
    bridge, theta, phi, x = lg_bridge()
    assert bridge.model.theta_shapes == LG[0].theta_shapes and bridge.guide.phi_shapes == LG[1].phi_shapes
    z = LG[1].sample(phi, x, 5, np.random.default_rng(1))
    w = np.random.default_rng(2).random(z.shape[:2])
    np.testing.assert_allclose(bridge.model.log_joint(theta, z, x), LG[0].log_joint(theta, z, x), atol=1e-12)
    np.testing.assert_allclose(bridge.guide.log_prob(phi, z, x), LG[1].log_prob(phi, z, x), atol=1e-12)
    for key, value in LG[0].grad_log_joint(theta, z, x, w).items():
        np.testing.assert_allclose(bridge.model.grad_log_joint(theta, z, x, w)[key], value, atol=1e-11)
    for key, value in LG[1].grad_log_prob(phi, z, x, w).items():
        np.testing.assert_allclose(bridge.guide.grad_log_prob(phi, z, x, w)[key], value, atol=1e-11)
    eps = np.random.default_rng(3).standard_normal(z.shape)
    np.testing.assert_allclose(bridge.guide.reparameterize(phi, x, eps), LG[1].reparameterize(phi, x, eps), atol=1e-12)


def test_rws_refs_estimators_on_the_bridged_pair_equal_them_on_rws_refs_own_models():
    bridge, theta, phi, x = lg_bridge(seed=4)
    rng = np.random.default_rng(5)
    z = LG[1].sample(phi, x, 4, rng)
    eps = rng.standard_normal(z.shape)
    for fn, args in ((estimators.wake_theta, z), (estimators.wake_phi, z), (family.iwae_phi, eps),
                     (family.iwae_dreg_phi, eps)):
        ours, bridged = fn(*LG, theta, phi, x, args), fn(bridge.model, bridge.guide, theta, phi, x, args)
        for key in ours:
            np.testing.assert_allclose(bridged[key], ours[key], atol=1e-10, err_msg=f"{fn.__name__}[{key}]")


def test_the_bridged_mixture_has_the_categorical_support_and_its_log_joint():
    bridge, x = mixture_bridge()
    assert bridge.model.z_domain == 3
    np.testing.assert_array_equal(bridge.model.support(), [0.0, 1.0, 2.0])
    z = np.array([[0, 1, 2], [2, 2, 0]], dtype=float)
    np.testing.assert_allclose(bridge.model.log_joint(MIX_THETA, z, x), mixture_log_joint(MIX_THETA, z, x),
                               atol=1e-12)


def test_a_correct_wake_phi_passes_check_estimator_on_the_bridged_mixture_with_its_samplers():
    bridge, _ = mixture_bridge()
    report = testing.check_estimator(estimators.wake_phi, "wake_phi", bridge.model, bridge.guide, seed=0,
                                     max_examples=5)
    report.assert_ok()
    names = [r.name for r in report.results if r.status == "pass"]
    assert any("exact mean" in n for n in names) and any("guide.sample" in n for n in names), names


def test_a_missing_site_is_refused_naming_the_sites_there_are():
    P.fresh(MIX_THETA, MIX_PHI)
    with pytest.raises(ValueError, match=r"the guide has no latent sample site 'u'; its latent sites: \['z'\]"):
        Bridge(P.mixture_model, P.mixture_guide, np.zeros(3), latent="u")


# -- Pyro's own objects, in rws_ref's terms ----------------------------------------------------------
def rws(**kw):
    return pyro.infer.ReweightedWakeSleep(max_plate_nesting=1, **kw)


def test_pyros_reweighted_wake_sleep_uses_whole_run_weights_at_n_above_one():
    bridge, _ = mixture_bridge()
    elbo = rws(num_particles=4)
    report = bridge.check_loss(lambda x: elbo.loss_and_grads(P.mixture_model, P.mixture_guide, x), "wake_phi")
    text = str(report)
    assert report.ok and "known mistake" not in text, text                # Pyro's documented convention
    assert "θ-gradient = −1 × wake-θ, Pyro's ReweightedWakeSleep convention: one weight per run" in text, text
    assert "φ-gradient = 1 × wake-φ, Pyro's ReweightedWakeSleep convention" in text, text


def test_pyros_reweighted_wake_sleep_is_rws_summed_at_one_datapoint():
    bridge, x = mixture_bridge(n=1)
    elbo = rws(num_particles=4)
    # the bridge's own batch (N = 1) is checked when no x is given, not a batch drawn anew
    report = bridge.check_loss(lambda x: elbo.loss_and_grads(P.mixture_model, P.mixture_guide, x), "wake_phi")
    assert report.ok and "convention" not in str(report), str(report)
    assert "θ-gradient = −1 × wake-θ" in str(report) and "φ-gradient = 1 × wake-φ" in str(report), str(report)


def test_pyros_sleep_phase_sums_sleep_phi_over_the_dreams():
    bridge, _ = mixture_bridge()
    elbo = rws(num_particles=2, insomnia=0.0, model_has_params=False, num_sleep_particles=1)
    report = bridge.check_loss(lambda x: elbo.loss_and_grads(P.mixture_model, P.mixture_guide, x), "sleep_phi")
    assert report.ok and "φ-gradient = N × sleep-φ" in str(report), str(report)


def test_pyros_insomnia_is_rws_refs_insomnia_at_one_datapoint():
    bridge, x = mixture_bridge(n=1)
    elbo = rws(num_particles=4, insomnia=0.5, num_sleep_particles=1)
    report = bridge.check_loss(lambda x: elbo.loss_and_grads(P.mixture_model, P.mixture_guide, x), "insomnia",
                               x=x, iota=0.5)
    assert report.ok and "φ-gradient = 1 × insomnia" in str(report), str(report)


def test_a_guide_that_ignores_pyros_observations_in_the_sleep_phase_is_caught():
    """Pyro's RWS hands the dreamt x to the guide as observations=; a guide that keeps scoring the data
    batch gives a φ-gradient that is no multiple of insomnia (ι = ½, N = 1)."""
    def deaf_guide(x, observations=None):
        w, b0 = pyro.param("w", torch.zeros(3)), pyro.param("b0", torch.zeros(3))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", pyro.distributions.Categorical(logits=x[..., None] * w + b0))
    P.fresh(MIX_THETA, MIX_PHI)
    x = np.array([-1.5])
    bridge = Bridge(P.mixture_model, deaf_guide, x)
    elbo = rws(num_particles=4, insomnia=0.5, num_sleep_particles=1)
    report = bridge.check_loss(lambda x: elbo.loss_and_grads(P.mixture_model, deaf_guide, x), "insomnia",
                               x=x, iota=0.5)
    assert not report.ok and "φ-gradient is no multiple of insomnia" in str(report), str(report)


def test_pyros_renyi_elbo_alpha_zero_is_n_times_iwae_with_a_reparameterized_guide():
    bridge, *_ = lg_bridge()
    elbo = pyro.infer.RenyiELBO(alpha=0.0, num_particles=4, vectorize_particles=True, max_plate_nesting=1)
    report = bridge.check_loss(lambda x: elbo.loss_and_grads(P.lg_model, P.lg_guide, x), "iwae_phi")
    text = str(report)
    assert report.ok, text
    assert "value = −N × mean ELBO_IS" in text and "θ-gradient = −N × wake-θ" in text, text
    assert "φ-gradient = −N × iwae-φ" in text, text


def test_pyros_renyi_elbo_gives_a_discrete_guide_exactly_zero_gradient():
    bridge, _ = mixture_bridge()
    elbo = pyro.infer.RenyiELBO(alpha=0.0, num_particles=4, max_plate_nesting=1)
    report = bridge.check_loss(lambda x: elbo.loss_and_grads(P.mixture_model, P.mixture_guide, x), "reinforce_phi")
    assert not report.ok and "φ-gradient is exactly zero" in str(report), str(report)


def test_pyros_trace_elbo_drops_the_zero_mean_term_of_reinforce_at_one_particle():
    """Trace_ELBO (K = 1) on a discrete guide: −Σ_n log w_n ∇ log q (REINFORCE without −∇ log q, whose
    mean is zero): no multiple of rws_ref's reinforce-φ, and exactly −N × this score-function estimator."""
    bridge, x = mixture_bridge()
    elbo = pyro.infer.Trace_ELBO(num_particles=1, max_plate_nesting=1)
    run = bridge.loss(lambda x: elbo.loss_and_grads(P.mixture_model, P.mixture_guide, x), "reinforce_phi")
    z = np.array([[0.0, 2.0, 1.0]])
    _, g_theta, g_phi = run(MIX_THETA, MIX_PHI, x, z)
    log_w = bridge.model.log_joint(MIX_THETA, z, x) - bridge.guide.log_prob(MIX_PHI, z, x)
    expected = bridge.guide.grad_log_prob(MIX_PHI, z, x, -log_w)
    for key in expected:
        np.testing.assert_allclose(g_phi[key], expected[key], atol=1e-12)
    wake = estimators.wake_theta(bridge.model, bridge.guide, MIX_THETA, MIX_PHI, x, z)
    for key in wake:
        np.testing.assert_allclose(g_theta[key], -len(x) * wake[key], atol=1e-12)


# -- a user's own Pyro RWS code --------------------------------------------------------------------
def user_rws(model, guide, K=4, bug=None):
    """RWS as a Pyro user writes it by hand: traces of the vectorized programs, log weights, a θ loss
    and a φ loss averaged over the data.  ``bug`` plants one realistic mistake."""
    def vectorized(fn):
        def run(x):
            with pyro.plate("particles", K, dim=-2):
                return fn(x)
        return run

    def loss(x):
        guide_trace = poutine.trace(vectorized(guide)).get_trace(x)
        model_trace = poutine.trace(poutine.replay(vectorized(model), trace=guide_trace)).get_trace(x)
        log_p = sum(s["fn"].log_prob(s["value"]) for n, s in model_trace.nodes.items()
                    if s["type"] == "sample" and n != "data")
        log_q = sum(s["fn"].log_prob(s["value"]) for n, s in guide_trace.nodes.items()      # every latent site
                    if s["type"] == "sample" and n != "data" and (bug != "one site's log q" or n == "z"))
        log_w = log_p - log_q
        if bug == "weights over the batch":
            w = torch.softmax(log_w.detach().reshape(-1), 0).reshape(log_w.shape)
        elif bug == "no detach":
            w = torch.softmax(log_w, 0)
        elif bug == "unnormalized":
            w = log_w.detach().exp()
        else:
            w = torch.softmax(log_w.detach(), 0)
        theta_loss = -(torch.logsumexp(log_p - log_q.detach(), 0) - np.log(K)).mean()
        phi_loss = -(w * log_q).sum(0).mean()
        if bug == "phi sign":
            phi_loss = -phi_loss
        if bug == "sum reduction":
            theta_loss = theta_loss * x.shape[0]
        return theta_loss, phi_loss
    return loss


def test_a_correct_hand_written_pyro_rws_is_consistent_with_mean_reductions():
    bridge, _ = mixture_bridge()
    report = bridge.check_loss(user_rws(P.mixture_model, P.mixture_guide), "wake_phi")
    assert report.ok, str(report)
    assert "θ-gradient = −1 × wake-θ" in str(report) and "φ-gradient = 1 × wake-φ" in str(report), str(report)


@pytest.mark.parametrize("bug, said", [
    ("weights over the batch", "× wake-φ with a known mistake: weights normalized over the whole batch"),
    ("no detach", "φ-gradient = 1 × wake-φ with a known mistake: gradient through the weights"),
    ("unnormalized", "φ-gradient = 1 × wake-φ with a known mistake: unnormalized weights"),
    ("phi sign", "φ-gradient = −1 × wake-φ: its sign makes minimizing the loss move the wrong way"),
    ("sum reduction", "θ-gradient = −N × wake-θ"),
])
def test_a_bug_in_hand_written_pyro_rws_is_named(bug, said):
    bridge, _ = mixture_bridge()
    report = bridge.check_loss(user_rws(P.mixture_model, P.mixture_guide, bug=bug), "wake_phi")
    assert said in str(report), str(report)
    if bug != "sum reduction":                 # a sum over the data is a consistent scale, reported as N ×
        assert not report.ok, str(report)


# -- the bridge leaves the user's state alone ----------------------------------------------------------
def test_the_bridge_restores_the_parameter_store_and_torchs_global_generator():
    bridge, theta, phi, x = lg_bridge(seed=6)
    before = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    other = {k: v + 1.0 for k, v in theta.items()}
    bridge.model.log_joint(other, LG[1].sample(phi, x, 2, np.random.default_rng(0)), x)
    bridge.guide.sample(phi, x, 3, np.random.default_rng(0))
    bridge.model.sample(other, 4, np.random.default_rng(0))
    np.testing.assert_array_equal(torch.rand(3), expected_next)
    for k, v in pyro.get_param_store().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


def test_the_bridges_samplers_are_reproducible_from_rws_refs_rng():
    bridge, theta, phi, x = lg_bridge(seed=7)
    a = bridge.guide.sample(phi, x, 3, np.random.default_rng(11))
    b = bridge.guide.sample(phi, x, 3, np.random.default_rng(11))
    c = bridge.guide.sample(phi, x, 3, np.random.default_rng(12))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_a_second_latent_is_refused_naming_the_site():
    def global_model(x):
        s = pyro.sample("s", pyro.distributions.Normal(pyro.param("m", torch.zeros(())), 1.0))
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", pyro.distributions.Normal(s, 1.0))
            pyro.sample("x", pyro.distributions.Normal(z, 1.0), obs=x)

    def guide(x, observations=None):
        loc = pyro.param("loc", torch.zeros(()))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", pyro.distributions.Normal(loc, 1.0))
    pyro.clear_param_store()
    with pytest.raises(ValueError, match=r"the model has latent sites \['s'\] that the guide does not draw"):
        Bridge(global_model, guide, np.zeros(3))


# -- several latent sites: the joint latent, its support, and Pyro's objects on it --------------------------
def hier_bridge(n=3):
    P.fresh(HIER_THETA, HIER_PHI)
    return Bridge(P.hier_model, P.hier_guide, np.array([-1.5, 0.2, 2.5][:n]))


def mixed_bridge(n=3):
    P.fresh(MIXED_THETA, MIXED_PHI)
    return Bridge(P.mixed_model, P.mixed_guide, np.array([-1.5, 0.2, 2.5][:n]))


def test_a_discrete_hierarchy_is_one_latent_whose_support_is_the_product_of_its_sites():
    bridge = hier_bridge()
    x = bridge.x
    assert (bridge.model.z_shape, bridge.model.z_domain) == ((2,), 3)            # binary z1, three-valued z2
    states = bridge.model.support()
    np.testing.assert_array_equal(states, [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]])   # 2 × 3, not 3²
    z = np.broadcast_to(states[:, None], (6, 3, 2))
    want_p, want_q = hier_densities(HIER_THETA, HIER_PHI, z, x)
    np.testing.assert_allclose(bridge.model.log_joint(HIER_THETA, z, x), want_p, atol=1e-12)
    np.testing.assert_allclose(bridge.guide.log_prob(HIER_PHI, z, x), want_q, atol=1e-12)
    off = np.array([[[2, 0], [0, 1], [1, 2]]])                                     # z1 = 2 is no value of z1
    assert np.isneginf(bridge.model.log_joint(HIER_THETA, off, x)[0, 0])
    assert np.isneginf(bridge.guide.log_prob(HIER_PHI, off, x)[0, 0])
    np.testing.assert_allclose(bridge.model.log_joint(HIER_THETA, off, x)[0, 1:], want_p[[1, 5], [1, 2]], atol=1e-12)
    # the exact oracle enumerates the product support: ELBO_IS at K = 1 is E_q[log p − log q], summed here by hand
    q = np.exp(want_q)
    np.testing.assert_allclose(q.sum(0), 1.0, atol=1e-12)
    np.testing.assert_allclose(exact.elbo_is(bridge.model, bridge.guide, HIER_THETA, HIER_PHI, x, 1),
                               np.sum(q * (want_p - want_q), 0), atol=1e-12)


def test_a_two_site_program_passes_check_estimator_with_the_exact_mean_and_its_samplers():
    bridge = hier_bridge()
    report = testing.check_estimator(estimators.wake_phi, "wake_phi", bridge.model, bridge.guide, seed=0,
                                     max_examples=5)
    report.assert_ok()
    names = [r.name for r in report.results if r.status == "pass"]
    assert any("exact mean" in n for n in names) and any("guide.sample" in n for n in names), names


def test_pyros_reweighted_wake_sleep_on_a_two_site_hierarchy_is_rws():
    bridge = hier_bridge(n=1)
    elbo = rws(num_particles=4)
    report = bridge.check_loss(lambda x: elbo.loss_and_grads(P.hier_model, P.hier_guide, x), "wake_phi")
    assert report.ok and "θ-gradient = −1 × wake-θ" in str(report) and "φ-gradient = 1 × wake-φ" in str(report), \
        str(report)
    bridge = hier_bridge()
    sleep = rws(num_particles=2, insomnia=0.0, model_has_params=False, num_sleep_particles=1)
    report = bridge.check_loss(lambda x: sleep.loss_and_grads(P.hier_model, P.hier_guide, x), "sleep_phi")
    assert report.ok and "φ-gradient = N × sleep-φ" in str(report), str(report)


def test_a_discrete_choice_with_a_continuous_value_is_one_real_latent_checked_like_any_other():
    bridge = mixed_bridge()
    x = bridge.x
    assert (bridge.model.z_shape, bridge.model.z_domain) == ((2,), "real") and not hasattr(bridge.model, "support")
    assert not hasattr(bridge.guide, "reparameterize")                     # its discrete part has no noise
    rng = np.random.default_rng(3)
    z = bridge.guide.sample(MIXED_PHI, x, 4, rng)
    assert set(np.unique(z[..., 0])) <= {0.0, 1.0, 2.0}
    log_p, log_q = mixed_densities(MIXED_THETA, MIXED_PHI, z, x)
    np.testing.assert_allclose(bridge.model.log_joint(MIXED_THETA, z, x), log_p, atol=1e-12)
    np.testing.assert_allclose(bridge.guide.log_prob(MIXED_PHI, z, x), log_q, atol=1e-12)
    assert bridge.model.z_entries == bridge.guide.z_entries == (3, "real")      # the choice, then the value
    for bad, said in ((0.5, "0.5"), (3.0, "3.0")):            # no category: 0.5, and 3 of three
        off = z.copy()
        off[0, 1, 0] = bad
        said = rf"z\[\.\.\., 0\] must hold a category in 0\.\.2 \(z_entries\[0\] = 3\); got {said}"
        with pytest.raises(ValueError, match=said):
            rws_ref.wake_theta(bridge.model, bridge.guide, MIXED_THETA, MIXED_PHI, x, off)
    testing.check_estimator(estimators.wake_theta, "wake_theta", bridge.model, bridge.guide, seed=0,
                            max_examples=5).assert_ok()
    elbo = rws(num_particles=4)
    report = mixed_bridge(n=1).check_loss(lambda x: elbo.loss_and_grads(P.mixed_model, P.mixed_guide, x),
                                          "wake_phi")
    assert report.ok and "θ-gradient = −1 × wake-θ" in str(report) and "φ-gradient = 1 × wake-φ" in str(report), \
        str(report)


def test_two_continuous_sites_in_a_chain_are_reparameterized_through_the_chain():
    import autograd
    import autograd.numpy as anp
    from autograd.scipy.special import logsumexp
    phi = {"a": np.array(0.4), "b": np.array(0.2), "s1": np.array(-0.3), "s2": np.array(-0.2)}
    theta = {"m": np.array(0.3)}
    P.fresh(theta, phi)
    x = np.array([-1.5, 0.2, 2.5])
    bridge = Bridge(P.chain_model, P.chain_guide, x)
    assert (bridge.model.z_shape, bridge.model.z_domain) == ((2,), "real") and hasattr(bridge.guide, "pull_back")
    eps = np.random.default_rng(4).standard_normal((4, 3, 2))

    def particles(p):                            # typed here: z1 = a x + e^{s1} ε1, z2 = b z1 + x/2 + e^{s2} ε2
        z1 = p["a"] * x + anp.exp(p["s1"]) * eps[..., 0]
        return z1, p["b"] * z1 + 0.5 * x + anp.exp(p["s2"]) * eps[..., 1]

    def bound(p):                                            # (1/N) Σ_n ELBO_IS at these ε, as a function of φ
        z1, z2 = particles(p)
        norm = lambda v, mean, sd: -0.5 * ((v - mean) / sd) ** 2 - anp.log(sd) - 0.5 * np.log(2 * np.pi)  # noqa: E731
        log_p = norm(z1, theta["m"], 1.0) + norm(z2, 0.5 * z1, 1.0) + norm(x, z2, 0.5)
        log_q = norm(z1, p["a"] * x, anp.exp(p["s1"])) + norm(z2, p["b"] * z1 + 0.5 * x, anp.exp(p["s2"]))
        return anp.mean(logsumexp(log_p - log_q, axis=0) - np.log(4))
    np.testing.assert_allclose(bridge.guide.reparameterize(phi, x, eps), np.stack(particles(phi), -1), atol=1e-12)
    want = autograd.grad(bound)(phi)
    got = family.iwae_phi(bridge.model, bridge.guide, theta, phi, x, eps)
    for key in phi:
        np.testing.assert_allclose(got[key], want[key], atol=1e-10, err_msg=key)
    elbo = pyro.infer.RenyiELBO(alpha=0.0, num_particles=4, vectorize_particles=True, max_plate_nesting=1)
    report = bridge.check_loss(lambda x: elbo.loss_and_grads(P.chain_model, P.chain_guide, x), "iwae_phi")
    assert report.ok and "φ-gradient = −N × iwae-φ" in str(report), str(report)


@pytest.mark.parametrize("bug", [None, "one site's log q"])
def test_hand_written_rws_on_two_sites_passes_and_forgetting_one_sites_log_q_is_caught(bug):
    bridge = mixed_bridge()
    report = bridge.check_loss(user_rws(P.mixed_model, P.mixed_guide, bug=bug), "wake_phi")
    if bug is None:
        assert report.ok and "φ-gradient = 1 × wake-φ" in str(report), str(report)
    else:
        assert not report.ok and "φ-gradient" in str(report) and "1 × wake-φ" not in str(report), str(report)


def test_a_site_that_runs_only_on_some_draws_is_refused_as_stochastic_control_flow():
    def model(x):
        with pyro.plate("data", x.shape[0]):
            b = pyro.sample("b", pyro.distributions.Bernoulli(logits=torch.tensor(20.0)))
            if b.sum() > 0:                                                       # whether "c" exists depends on b
                pyro.sample("c", pyro.distributions.Normal(0.0, 1.0))
            pyro.sample("x", pyro.distributions.Normal(b, 1.0), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            b = pyro.sample("b", pyro.distributions.Bernoulli(logits=torch.tensor(20.0)))
            if b.sum() > 0:
                pyro.sample("c", pyro.distributions.Normal(0.0, 1.0))
    pyro.clear_param_store()
    x = np.array([0.4, -1.2])
    bridge = Bridge(model, guide, x)                          # built on a run where b = 1, so c ran
    z = np.zeros((1, 2, 2))                                   # b = 0 everywhere: c does not run
    with pytest.raises(ValueError, match=r"the guide's site 'c' did not run this time: .*stochastic control flow"):
        bridge.guide.log_prob({}, z, x)


# -- programs beyond one latent inside one plate: named, or handled --------------------------------------


def test_pyros_default_sleep_particles_are_named_with_the_fix():
    bridge, _ = mixture_bridge()
    elbo = rws(num_particles=2, insomnia=0.0, model_has_params=False)          # num_sleep_particles = 2
    with pytest.raises(ValueError, match="drawn 2 times per datapoint .*num_sleep_particles=1"):
        bridge.check_loss(lambda x: elbo.loss_and_grads(P.mixture_model, P.mixture_guide, x), "sleep_phi")


def normal_normal_model(x):
    """Pyro's own RWS test model written as its users write it: z ~ N(0, 1), x | z ~ N(z, 1), no parameters."""
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", pyro.distributions.Normal(0.0, 1.0))
        pyro.sample("x", pyro.distributions.Normal(z, 1.0), obs=x)


def normal_normal_guide(x, observations=None):
    if observations is not None:
        x = observations["x"]
    a, b = pyro.param("a", torch.tensor(0.3)), pyro.param("b", torch.tensor(0.1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", pyro.distributions.Normal(a * x + b, 0.8))


def test_a_model_without_parameters_is_bridged_and_checked():
    pyro.clear_param_store()
    x = np.array([0.4, -1.2, 2.0])
    bridge = Bridge(normal_normal_model, normal_normal_guide, x)
    assert bridge.model.theta_shapes == {} and set(bridge.guide.phi_shapes) == {"a", "b"}
    testing.check_estimator(rws_ref.wake_phi, "wake_phi", bridge.model, bridge.guide, max_examples=3).assert_ok()
    # log p(z, x) = log N(z; 0, 1) + log N(x; z, 1), typed here
    z = np.array([[0.1, 0.2, -0.3]])
    want = -0.5 * z ** 2 - 0.5 * (x - z) ** 2 - np.log(2 * np.pi)
    np.testing.assert_allclose(bridge.model.log_joint({}, z, x), want, rtol=1e-12)
    elbo = rws(num_particles=3, model_has_params=False, insomnia=1.0)
    run = lambda x: elbo.loss_and_grads(normal_normal_model, normal_normal_guide, x)      # noqa: E731
    with pytest.raises(ValueError, match="drawn with 3 particles per datapoint and rws_ref forced 4: pass K=3"):
        bridge.check_loss(run, "wake_phi", x=x[:1])
    report = bridge.check_loss(run, "wake_phi", x=x[:1], K=3)
    assert report.ok and "φ-gradient = 1 × wake-φ" in str(report), str(report)


def test_a_global_latent_and_a_subsampled_plate_are_refused_in_one_sentence_with_the_way_forward():
    def global_model(x):
        shift = pyro.sample("shift", pyro.distributions.Normal(0.0, 1.0))          # outside the data plate
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", pyro.distributions.Normal(shift, 1.0))
            pyro.sample("x", pyro.distributions.Normal(z, 1.0), obs=x)

    def global_guide(x, observations=None):
        pyro.sample("shift", pyro.distributions.Normal(pyro.param("m", torch.tensor(0.0)), 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", pyro.distributions.Normal(x, 1.0))

    def subsampled_model(x):
        with pyro.plate("data", 10, subsample_size=x.shape[0]):
            z = pyro.sample("z", pyro.distributions.Normal(0.0, 1.0))
            pyro.sample("x", pyro.distributions.Normal(z, 1.0), obs=x)

    pyro.clear_param_store()
    x = np.array([0.4, -1.2])
    with pytest.raises(ValueError, match="outside the data plate"):
        Bridge(global_model, global_guide, x)
    with pytest.raises(ValueError, match=r"subsamples 2 of its 10 datapoints .* N_total/N_batch = 5.* only at K = 1: "
                                         r"at K > 1 the scaling also tempers the importance weights"):
        Bridge(subsampled_model, normal_normal_guide, x)


def test_an_elbo_that_runs_its_particles_one_at_a_time_gets_each_particle_in_turn():
    # vectorize_particles=False: Pyro runs the program K times; the bridge hands out particle 0, 1, 2, 3 in turn
    # (were it to force particle 0 every time, the gradient would be no multiple of IWAE's)
    bridge, *_ = lg_bridge()
    elbo = pyro.infer.RenyiELBO(alpha=0.0, num_particles=4, vectorize_particles=False, max_plate_nesting=1)
    report = bridge.check_loss(lambda x: elbo.loss_and_grads(P.lg_model, P.lg_guide, x), "iwae_phi")
    assert report.ok and "φ-gradient = −N × iwae-φ" in str(report), str(report)


def test_check_loss_leaves_torchs_global_generator_as_it_was():
    bridge, _ = mixture_bridge(n=1)
    elbo = rws(num_particles=4, insomnia=0.5, num_sleep_particles=1)        # the sleep phase draws dreams
    torch.manual_seed(123)
    before = torch.random.get_rng_state().clone()
    bridge.check_loss(lambda x: elbo.loss_and_grads(P.mixture_model, P.mixture_guide, x), "insomnia", iota=0.5)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_a_program_that_clears_the_parameter_store_is_named():
    bridge, x = mixture_bridge(n=1)

    def clearing_model(x):
        pyro.clear_param_store()
        return P.mixture_model(x)
    elbo = rws(num_particles=4)
    run = lambda x: elbo.loss_and_grads(clearing_model, P.mixture_guide, x)         # noqa: E731
    with pytest.raises(ValueError, match="parameter store no longer holds .* cleared or replaced it"):
        for _ in range(3):
            bridge.check_loss(run, "wake_phi")


def test_pyros_reweighted_wake_sleep_end_to_end_with_its_own_draws():
    # Pyro's own particles, reseeded per run; check_stochastic's false-failure rate is 1e-3 (Bonferroni), seed 0
    bridge, _ = mixture_bridge(n=1)
    elbo = rws(num_particles=4)
    report = bridge.check_end_to_end(lambda x: elbo.loss_and_grads(P.mixture_model, P.mixture_guide, x), "wake_phi",
                                     K=4, replicates=500)
    assert report.ok and set(report.runs) == {"φ-gradient", "θ-gradient"}, str(report)
