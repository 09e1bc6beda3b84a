"""rws_ref.checking.adapters: every route of an adapted model and guide — weighted and per-particle gradients,
reparameterization — equals the built-in pair it wraps, with N ≥ 2 datapoints and non-uniform weights."""
import numpy as np
import pytest

import rws_ref
from rws_ref import family
from rws_ref.checking import adapters, testing

from _util import assert_tree_close

LG, DG = rws_ref.LinearGaussian(2, 3), rws_ref.DiagonalGaussianGuide(2, 3)


def per_particle(density_vjp, params, z, x):
    """∇ log density per particle, (K, N, *shape), by pulling back one-hot weights (built-in pair)."""
    k, n = z.shape[:2]
    rows = {key: np.zeros((k, n) + np.shape(v)) for key, v in params.items()}
    pull = density_vjp(params, z, x)[1]
    for i in range(k):
        for j in range(n):
            onehot = np.zeros((k, n))
            onehot[i, j] = 1.0
            for key, g in pull(onehot).items():
                rows[key][i, j] = g
    return rows


def adapted(route, mutate=None):
    """LinearGaussian and its guide through the adapters, by ``route`` ("weighted" or "per-particle")."""
    mutate = mutate or (lambda grads, weights: grads)
    if route == "weighted":
        model_grad = dict(grad_log_joint=lambda th, z, x, w: mutate(LG.grad_log_joint(th, z, x, w), w))
        guide_grad = dict(grad_log_prob=lambda ph, z, x, w: mutate(DG.grad_log_prob(ph, z, x, w), w))
    else:
        model_grad = dict(per_particle_grad=lambda th, z, x: per_particle(LG.log_joint_vjp, th, z, x))
        guide_grad = dict(per_particle_grad=lambda ph, z, x: per_particle(DG.log_prob_vjp, ph, z, x))
    model = adapters.Model(LG.theta_shapes, (2,), (3,), lambda th, z, x: LG.log_joint(th, z, x),
                           sample=LG.sample, grad_z_log_joint=LG.grad_z_log_joint, **model_grad)
    guide = adapters.Guide(DG.phi_shapes, (2,), (3,), lambda ph, z, x: DG.log_prob(ph, z, x), sample=DG.sample,
                           reparameterize=DG.reparameterize, grad_z_log_prob=DG.grad_z_log_prob,
                           pull_back=DG.pull_back, **guide_grad)
    return model, guide


def _inputs(seed=0, n=3, k=4):
    rng = np.random.default_rng(seed)
    theta, phi = LG.init_theta(rng), DG.init_phi(rng)
    phi["log_s"] = np.array([0.3, -0.2])
    x = LG.sample(theta, n, rng)[1]
    return theta, phi, x, DG.sample(phi, x, k, rng), rng.standard_normal((k, n, 2)), rng


@pytest.mark.parametrize("route", ["weighted", "per-particle"])
def test_every_route_equals_the_built_in_pair(route):
    model, guide = adapted(route)
    theta, phi, x, z, eps, rng = _inputs()
    weights = rng.uniform(0.1, 2.0, size=(4, 3))                        # non-uniform, N = 3
    assert_tree_close(model.grad_log_joint(theta, z, x, weights), LG.grad_log_joint(theta, z, x, weights), 1e-12)
    assert_tree_close(guide.grad_log_prob(phi, z, x, weights), DG.grad_log_prob(phi, z, x, weights), 1e-12)
    for fn in (rws_ref.wake_theta, rws_ref.wake_phi, family.reinforce_phi, family.vimco_phi):
        assert_tree_close(fn(model, guide, theta, phi, x, z), fn(LG, DG, theta, phi, x, z), 1e-12)
    for fn in (family.iwae_phi, family.stl_phi, family.iwae_dreg_phi, family.rws_dreg_phi):
        assert_tree_close(fn(model, guide, theta, phi, x, eps), fn(LG, DG, theta, phi, x, eps), 1e-12)
    np.testing.assert_array_equal(guide.reparameterize(phi, x, eps), DG.reparameterize(phi, x, eps))


@pytest.mark.parametrize("kind", ["wake_theta", "wake_phi", "iwae_phi", "iwae_dreg_phi"])
def test_the_reparameterized_adapter_gets_the_iwae_family_checked(kind):
    model, guide = adapted("per-particle")
    entry = rws_ref.registry.get(kind)
    testing.check_estimator(entry.function, kind, model, guide, max_examples=4).assert_ok()


@pytest.mark.parametrize("mutation", [
    lambda grads, w: {k: v * w.size / w.sum() for k, v in grads.items()},            # the weights ignored
    lambda grads, w: {k: v / w.shape[1] for k, v in grads.items()},                  # 1/N applied twice
])
def test_a_mutated_adapter_route_is_caught(mutation):
    model, guide = adapted("weighted", mutation)
    theta, phi, x, z, _, rng = _inputs()
    weights = rng.uniform(0.1, 2.0, size=(4, 3))
    got = model.grad_log_joint(theta, z, x, weights)
    want = LG.grad_log_joint(theta, z, x, weights)
    assert max(np.max(np.abs(got[k] - want[k])) for k in want) > 1e-3


def test_a_partial_reparameterization_or_a_bad_callable_is_refused():
    with pytest.raises(TypeError, match="all of reparameterize"):
        adapters.Guide(DG.phi_shapes, (2,), (3,), DG.log_prob, DG.grad_log_prob, reparameterize=DG.reparameterize)
    with pytest.raises(TypeError, match="support must be a callable"):
        adapters.Model(LG.theta_shapes, (2,), (3,), LG.log_joint, LG.grad_log_joint, support=np.arange(3))
    model, guide = adapted("weighted")
    bad = adapters.Guide(DG.phi_shapes, (2,), (3,), DG.log_prob, DG.grad_log_prob,
                         reparameterize=lambda ph, x, eps: eps[:1], grad_z_log_prob=DG.grad_z_log_prob,
                         pull_back=DG.pull_back)
    theta, phi, x, z, eps, _ = _inputs()
    with pytest.raises(ValueError, match="reparameterize output must have shape"):
        bad.reparameterize(phi, x, eps)
