"""The plain JAX bridge against real JAX (tests/checking/bridges/plain_jax_programs.py): the bridged
densities and reparameterization equal rws_ref's own models; a user's losses are checked on rws_ref's
particles forced into their own jax.random draws (a categorical latent directly, a real latent through
its noise) and end to end; a bug in the arithmetic and one in the sampling are each caught where they
can be seen; jax.random is left as it was."""
import numpy as np
import pytest

jax = pytest.importorskip("jax")

import plain_jax_programs as P  # noqa: E402  (tests/checking/bridges, after the skip)

import rws_ref  # noqa: E402
from rws_ref import family  # noqa: E402
from rws_ref.checking import testing  # noqa: E402
from rws_ref.checking.bridges.plain_jax import Bridge, Draws  # noqa: E402

LG = rws_ref.LinearGaussian(P.DZ, P.DX), rws_ref.DiagonalGaussianGuide(P.DZ, P.DX)
MIX_THETA = {"logits": np.array([0.1, -0.2, 0.3]), "means": np.array([-2.0, 0.5, 2.0])}
MIX_PHI = {"w": np.array([0.3, -0.1, 0.2]), "b0": np.array([0.1, 0.0, -0.1])}
MIX_X = np.array([-1.5, 0.2, 2.5])


def lg_bridge():
    rng = np.random.default_rng(0)
    theta, phi = LG[0].init_theta(rng), LG[1].init_phi(rng)
    phi["log_s"] = np.array([0.3, -0.2])
    x = LG[0].sample(theta, 3, rng)[1]
    return Bridge(P.lg_log_joint, P.lg_log_prob, theta, phi, x, z_shape=(P.DZ,),
                  reparameterize=P.lg_reparameterize), theta, phi, x


def mixture_bridge():
    return Bridge(P.mixture_log_joint, P.mixture_log_prob, MIX_THETA, MIX_PHI, MIX_X, z_domain=P.C,
                  sample_model=P.mixture_sample_model, sample_guide=P.mixture_sample_guide)


def test_the_bridged_pair_is_rws_refs_own_models():
    bridge, theta, phi, x = lg_bridge()
    rng = np.random.default_rng(1)
    z = LG[1].sample(phi, x, 4, rng)
    eps = rng.standard_normal(z.shape)
    np.testing.assert_allclose(bridge.model.log_joint(theta, z, x), LG[0].log_joint(theta, z, x), atol=1e-12)
    np.testing.assert_allclose(bridge.guide.log_prob(phi, z, x), LG[1].log_prob(phi, z, x), atol=1e-12)
    for fn, args in ((rws_ref.wake_theta, z), (rws_ref.wake_phi, z), (family.iwae_phi, eps),
                     (family.iwae_dreg_phi, eps)):
        ours, bridged = fn(*LG, theta, phi, x, args), fn(bridge.model, bridge.guide, theta, phi, x, args)
        for key in ours:
            np.testing.assert_allclose(bridged[key], ours[key], atol=1e-10, err_msg=f"{fn.__name__}[{key}]")
    mix = mixture_bridge()
    report = testing.check_estimator(rws_ref.wake_phi, "wake_phi", mix.model, mix.guide, seed=0, max_examples=5)
    report.assert_ok()
    assert any("exact mean" in r.name and r.status == "pass" for r in report.results), str(report)


@pytest.mark.parametrize("loss, kind, parts, said", [
    (P.lg_iwae_loss, "iwae_phi", ("theta", "phi"),
     ["θ-gradient = −1 × wake-θ: consistent", "φ-gradient = −1 × iwae-φ: consistent"]),
    (P.lg_wake_phi_loss, "wake_phi", "phi", ["φ-gradient = 1 × wake-φ: consistent"]),
])
def test_a_real_latent_is_forced_through_its_noise(loss, kind, parts, said):
    bridge, *_ = lg_bridge()
    report = bridge.check_loss(loss, kind, parts, K=4)
    assert report.ok and all(s in str(report) for s in said), str(report)


@pytest.mark.parametrize("bug, said, ok", [
    (None, ["θ-gradient = −1 × wake-θ: consistent", "φ-gradient = 1 × wake-φ: consistent"], True),
    ("no stop_gradient", ["φ-gradient = 1 × wake-φ with a known mistake: gradient through the weights"], False),
])
def test_a_categorical_latent_is_forced_into_jax_random_categorical(bug, said, ok):
    report = mixture_bridge().check_loss(lambda t, p, x, key: P.mixture_rws_loss(t, p, x, key, bug=bug), "wake_phi",
                                         K=4)
    assert report.ok == ok and all(s in str(report) for s in said), str(report)


def test_a_sampling_bug_passes_on_forced_particles_and_is_caught_end_to_end():
    # check_stochastic's false-failure rate is 1e-3 (Bonferroni); both verdicts pinned at seed 0
    bridge = mixture_bridge()
    good = bridge.check_end_to_end(lambda t, p, x, key: P.mixture_rws_loss(t, p, x, key), "wake_phi", K=4,
                                   replicates=500)
    assert good.ok and set(good.runs) == {"φ-gradient", "θ-gradient"}, str(good)
    buggy = lambda t, p, x, key: P.mixture_rws_loss(t, p, x, key, bug="uniform proposal")     # noqa: E731
    assert bridge.check_loss(buggy, "wake_phi", K=4).ok
    bad = bridge.check_end_to_end(buggy, "wake_phi", K=4, replicates=500)
    assert not bad.ok and bad.loss.ok and not bad.runs["φ-gradient"].ok, str(bad)


def test_a_loss_that_draws_another_number_of_particles_is_told_what_it_drew():
    with pytest.raises(ValueError, match=r"drew nothing of the shape of rws_ref's particles \(5, 3\); its "
                                         r"jax.random.categorical/bernoulli/normal draws had shapes \[\(4, 3\)\]"):
        mixture_bridge().check_loss(lambda t, p, x, key: P.mixture_rws_loss(t, p, x, key, K=4), "wake_phi", K=5)


def test_draws_puts_jax_random_back_even_when_the_users_code_raises():
    before = jax.random.categorical
    with pytest.raises(KeyError, match="the user's own error"):
        with Draws([("z", np.zeros((2, 3), dtype=int))]):
            assert jax.random.categorical is not before
            raise KeyError("the user's own error")
    assert jax.random.categorical is before


def test_a_real_latent_without_reparameterize_is_refused_with_the_way_forward():
    bridge = Bridge(P.lg_log_joint, P.lg_log_prob, *lg_bridge()[1:], z_shape=(P.DZ,))
    with pytest.raises(ValueError, match=r"give the Bridge reparameterize="):
        bridge.check_loss(P.lg_wake_phi_loss, "wake_phi", "phi", K=4)
