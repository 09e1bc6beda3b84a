"""rws_ref.models.control_flow: the scene model with stochastic control flow, against a brute-force run of the
program written here in plain Python (loops over the objects, math.log, no NumPy broadcasting), and its gradients
against the autograd route.  The user's own control-flow pair (tests/outside_models.Branching) through every check."""
import itertools
import math

import numpy as np
import pytest

import rws_ref
from rws_ref import Scene1D, SceneGuide, autodiff, exact
from rws_ref.checking import audit, testing
from rws_ref.checking.sampling import check_guide_sampler, check_samplers

from outside_models import Branching, BranchingGuide

SMALL = dict(n_max=2, positions=5, pixels=8)


def _log_softmax(values):
    top = max(values)
    total = sum(math.exp(v - top) for v in values)
    return [v - top - math.log(total) for v in values]


def program_log_joint(model, theta, state, x):
    """log p_θ(n, p_1..p_n, x), running the program: one count, then one position per object, then the pixels."""
    n, positions = int(state[0]), [int(p) for p in state[1:1 + int(state[0])]]
    log_p = _log_softmax(list(theta["count_logits"]))[n]
    for p in positions:
        log_p += _log_softmax(list(theta["position_logits"]))[p]
    brightness = math.exp(float(theta["log_brightness"]))
    for d in range(model.pixels):
        mean = 0.0
        for p in positions:
            centre = (p + 0.5) * model.pixels / model.positions - 0.5
            mean += brightness * math.exp(-0.5 * ((d - centre) / model.width) ** 2)
        log_p += -0.5 * ((x[d] - mean) / model.noise) ** 2 - math.log(model.noise) - 0.5 * math.log(2 * math.pi)
    return log_p


def program_log_q(guide, phi, state, x):
    """log q_φ(n, p_1..p_n | x): the count's softmax on a tanh layer, then each object's given the data and the one
    before."""
    u = [(v - guide.loc) / guide.scale for v in x]
    n = int(state[0])
    h = [math.tanh(sum(w * ui for w, ui in zip(phi["hid_w"][j], u)) + phi["hid_b"][j]) for j in range(guide.hidden)]
    count = [sum(w * hj for w, hj in zip(phi["count_w"][c], h)) + phi["count_b"][c] for c in range(guide.n_max + 1)]
    log_q = _log_softmax(count)[n]
    prev = guide.positions
    for p in state[1:1 + n]:
        logits = [sum(w * ui for w, ui in zip(phi["pos_w"][j], u)) + phi["pos_b"][j] + phi["pos_prev"][prev][j]
                  for j in range(guide.positions)]
        log_q += _log_softmax(logits)[int(p)]
        prev = int(p)
    return log_q


@pytest.fixture(scope="module")
def scene():
    model, guide = Scene1D(**SMALL), SceneGuide(**SMALL)
    rng = np.random.default_rng(3)
    theta, phi = model.init_theta(rng), guide.init_phi(rng)
    theta["log_brightness"] = np.array(np.log(1.7))
    x = model.sample(model.true_theta(), 3, rng)[1]
    return model, guide, theta, phi, x


def test_the_support_is_every_canonical_state_once_in_order():
    states = Scene1D(**SMALL).support()
    want = [(0, 0, 0)] + [(1, p, 0) for p in range(5)] + [(2, a, b) for a in range(5) for b in range(5)]
    assert [tuple(s) for s in states] == want and states.dtype == np.int64          # 1 + 5 + 25 = 31
    assert Scene1D().support().shape == (1 + 8 + 64 + 512, 4)                        # the default: 585 states


def test_both_densities_equal_the_program_run_by_hand_on_every_state(scene):
    model, guide, theta, phi, x = scene
    states = model.support()
    z = np.repeat(states[:, None], x.shape[0], axis=1)
    log_p, log_q = model.log_joint(theta, z, x), guide.log_prob(phi, z, x)
    for s, state in enumerate(states):
        for n in range(x.shape[0]):
            assert log_p[s, n] == pytest.approx(program_log_joint(model, theta, state, x[n]), rel=1e-12, abs=1e-12)
            assert log_q[s, n] == pytest.approx(program_log_q(guide, phi, state, x[n]), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(np.exp(log_q).sum(axis=0), 1.0, rtol=1e-12)       # q is normalized on the support


def test_the_exact_marginal_posterior_and_count_posterior_agree_with_the_program(scene):
    model, guide, theta, phi, x = scene
    for n in range(x.shape[0]):
        table = [program_log_joint(model, theta, s, x[n]) for s in model.support()]
        top = max(table)
        log_px = top + math.log(sum(math.exp(t - top) for t in table))
        assert model.log_marginal(theta, x)[n] == pytest.approx(log_px, rel=1e-12)
        post = [math.exp(t - log_px) for t in table]
        counts = [sum(p for p, s in zip(post, model.support()) if s[0] == c) for c in range(3)]
        np.testing.assert_allclose(model.posterior(theta, x)[n], post, rtol=1e-10, atol=1e-300)
        np.testing.assert_allclose(model.count_posterior(theta, x)[n], counts, rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("bad", [(3, 0, 0), (4, 1, 1), (1, 2, 3), (0, 1, 0)])   # n > n_max, pad ≠ 0
def test_a_vector_off_the_canonical_form_has_probability_zero_under_both(scene, bad):
    model, guide, theta, phi, x = scene
    z = np.array(bad)[None, None].repeat(x.shape[0], axis=1)
    assert np.all(model.log_joint(theta, z, x) == -np.inf) and np.all(guide.log_prob(phi, z, x) == -np.inf)


def test_both_samplers_draw_only_canonical_states_and_the_padding_is_zero(scene):
    model, guide, theta, phi, x = scene
    codes = {tuple(s) for s in model.support()}
    z, _ = model.sample(model.true_theta(), 2000, np.random.default_rng(0))
    zq = guide.sample(phi, x, 500, np.random.default_rng(1))
    assert {tuple(s) for s in z} <= codes and {tuple(s) for s in zq.reshape(-1, 3)} <= codes
    assert len({tuple(s) for s in z}) > 20                       # and most of the 31 states are reached


def test_the_manual_gradients_equal_the_autograd_route(scene):
    model, guide, theta, phi, x = scene
    rng = np.random.default_rng(4)
    z = np.concatenate([guide.sample(phi, x, 6, rng), np.repeat(model.support()[[0, 3, 30]][:, None], 3, axis=1)])
    weights = rng.standard_normal(z.shape[:2])
    for ours, theirs in ((model.grad_log_joint(theta, z, x, weights), autodiff.grad_log_joint(model, theta, z, x,
                                                                                                weights)),
                         (guide.grad_log_prob(phi, z, x, weights), autodiff.grad_log_prob(guide, phi, z, x, weights))):
        assert sorted(ours) == sorted(theirs)
        for key in ours:
            np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-10, atol=1e-12, err_msg=key)


def test_a_gradient_with_the_count_term_dropped_is_caught_by_the_autograd_route(scene):
    # the test above can fail: the position gradient without the −n·softmax term differs from autograd's
    model, guide, theta, phi, x = scene
    z = guide.sample(phi, x, 4, np.random.default_rng(5))
    weights = np.ones(z.shape[:2])
    ours = model.grad_log_joint(theta, z, x, weights)["position_logits"]
    n_total = z[..., 0].sum()
    wrong = ours + n_total * np.exp(theta["position_logits"]) / np.exp(theta["position_logits"]).sum()
    assert not np.allclose(wrong, autodiff.grad_log_joint(model, theta, z, x, weights)["position_logits"])


def test_the_audit_passes_every_row_by_two_routes():
    model, guide = Scene1D(**SMALL), SceneGuide(**SMALL)
    rows = audit.audit_model(model, guide, ks=(1, 2), k_score=2, seed=1, name="scene")
    assert len(rows) >= 12 and all(r.passed for r in rows), audit.format_table(rows)


@pytest.mark.parametrize("kind", ["wake_theta", "wake_phi", "vimco_phi", "defensive_wake_phi"])
def test_check_estimator_passes_rws_refs_own_estimators_on_the_scene(kind):
    report = testing.check_estimator(rws_ref.registry.get(kind).function, kind, Scene1D(**SMALL),
                                     SceneGuide(**SMALL), max_examples=6)
    report.assert_ok()
    assert all(r.status == "pass" for r in report.results if "sampler" not in r.name)


def test_wake_phi_with_the_weights_left_unnormalized_fails_on_the_scene_and_is_named():
    def unnormalized(model, guide, theta, phi, x, z):
        log_w = rws_ref.log_weights(model, guide, theta, phi, x, z)
        return guide.grad_log_prob(phi, z, x, -np.exp(log_w) / x.shape[0])
    report = testing.check_estimator(unnormalized, "wake_phi", Scene1D(**SMALL), SceneGuide(**SMALL),
                                     max_examples=6, samplers=False)
    assert not report.ok
    verdict = next(r.verdict for r in report.failed() if r.verdict is not None)
    assert "unnormalized" in " ".join(verdict.mistakes)


# -- a user's own control-flow program (tests/outside_models.py), written to the protocol only -------------


def _branching_problem():
    model, guide = Branching(), BranchingGuide()
    rng = np.random.default_rng(2)
    theta, phi = model.init_theta(rng), guide.init_phi(rng)
    return model, guide, theta, phi, model.sample(theta, 3, rng)[1]


def test_the_users_branching_program_by_hand():
    # the model's support is the 3 + 9 canonical states, the guide normalized on them, and nothing else reachable
    model, guide, theta, phi, x = _branching_problem()
    states = model.support()
    assert len(states) == 12
    everything = np.array(list(itertools.product(range(3), repeat=3)))
    z = np.repeat(everything[:, None], x.shape[0], axis=1)
    on = np.array([tuple(s) in {tuple(t) for t in states} for s in everything])
    log_p = model.log_joint(theta, z, x)
    assert np.all(np.isfinite(log_p[on])) and np.all(log_p[~on] == -np.inf)
    np.testing.assert_allclose(np.exp(guide.log_prob(phi, z, x)[on]).sum(axis=0), 1.0, rtol=1e-12)
    b = float(1 / (1 + np.exp(-theta["b_logit"])))
    pi = np.exp(theta["c_logits"]) / np.exp(theta["c_logits"]).sum()
    prior = [(1 - b) * pi[c] for c in range(3)] + [b * pi[c1] * pi[c2] for c1 in range(3) for c2 in range(3)]
    like = np.exp(model.log_joint(theta, np.repeat(states[:, None], 3, axis=1), x))
    means = np.array([(-2.0, 0.5, 3.0)[s[1]] + s[0] * (-2.0, 0.5, 3.0)[s[2]] for s in states])
    gauss = np.exp(-0.5 * (x[None, :] - means[:, None]) ** 2) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(like, np.array(prior)[:, None] * gauss, rtol=1e-12)


@pytest.mark.parametrize("kind", ["wake_theta", "wake_phi", "reinforce_phi", "vimco_phi", "defensive_wake_phi",
                                  "sleep_phi", "insomnia", "elbo_is"])
def test_every_capability_checks_the_users_control_flow_pair(kind):
    report = testing.check_estimator(rws_ref.registry.get(kind).function, kind, Branching(), BranchingGuide(),
                                     max_examples=6)
    report.assert_ok()


def test_the_audit_and_the_exact_oracle_take_the_users_control_flow_pair():
    model, guide, theta, phi, x = _branching_problem()
    rows = audit.audit_model(model, guide, seed=1, name="branching")
    assert all(r.passed for r in rows), audit.format_table(rows)
    # the exact ELBO_IS at K = 1 is E_q[log p − log q], enumerated by hand over the 12 states
    states = model.support()
    z = np.repeat(states[:, None], x.shape[0], axis=1)
    log_p, log_q = model.log_joint(theta, z, x), guide.log_prob(phi, z, x)
    np.testing.assert_allclose(exact.elbo_is(model, guide, theta, phi, x, 1),
                               np.sum(np.exp(log_q) * (log_p - log_q), axis=0), rtol=1e-12)


def test_the_samplers_of_both_pairs_pass_and_a_guide_that_forgets_the_previous_object_fails():
    for model, guide in ((Scene1D(**SMALL), SceneGuide(**SMALL)), (Branching(), BranchingGuide())):
        assert all(r.status == "pass" for r in check_samplers(model, guide, seed=0)), (model, guide)

    class Forgetful(SceneGuide):
        # samples each object as if it were the first (row P of pos_prev) but scores it as the protocol says
        def sample(self, phi, x, K, rng):
            phi = dict(phi, pos_prev=np.repeat(phi["pos_prev"][-1:], self.positions + 1, axis=0))
            return super().sample(phi, x, K, rng)
    rng = np.random.default_rng(0)
    guide = Forgetful(**SMALL)
    phi = guide.init_phi(rng)
    phi["pos_prev"] = 3.0 * rng.standard_normal(phi["pos_prev"].shape)
    model = Scene1D(**SMALL)
    x = model.sample(model.true_theta(), 3, rng)[1]
    report = check_guide_sampler(guide, phi, x, seed=0, states=model.support())
    assert any(r.status == "fail" and "χ²" in r.name for r in report.results), report
    report = check_guide_sampler(SceneGuide(**SMALL), phi, x, seed=0, states=model.support())
    assert report.ok and not report.failed(), report


def test_the_users_control_flow_program_through_the_adapters_gets_the_same_answers_and_checks():
    """The branching program handed over as bare callables (rws_ref.checking.adapters), as a user with densities
    in another framework would: the exact oracle gives the protocol pair's numbers, check_estimator passes and
    a short training run on it lowers the posterior error."""
    from rws_ref.checking import adapters
    from rws_ref.experiments.train import TrainConfig, train
    model, guide, theta, phi, x = _branching_problem()
    m = adapters.Model(model.theta_shapes, model.z_shape, model.x_shape, model.log_joint,
                       grad_log_joint=model.grad_log_joint, sample=model.sample, init_theta=model.init_theta,
                       z_domain=3, support=model.support, name="adapted branching")
    g = adapters.Guide(guide.phi_shapes, guide.z_shape, guide.x_shape, guide.log_prob,
                       grad_log_prob=guide.grad_log_prob, sample=guide.sample, init_phi=guide.init_phi, z_domain=3)
    for K in (1, 3):
        np.testing.assert_allclose(exact.elbo_is(m, g, theta, phi, x, K), exact.elbo_is(model, guide, theta, phi, x, K),
                                   rtol=1e-13)
        mean, var = exact.moments(rws_ref.wake_phi, m, g, theta, phi, x, K)
        mean0, var0 = exact.moments(rws_ref.wake_phi, model, guide, theta, phi, x, K)
        for key in mean:
            np.testing.assert_allclose(mean[key], mean0[key], rtol=1e-12, atol=1e-15)
    testing.check_estimator(rws_ref.wake_theta, "wake_theta", m, g, max_examples=4).assert_ok()
    data = model.sample(theta, 200, np.random.default_rng(5))[1]
    cfg = TrainConfig(method="wake", K=5, iters=150, batch_size=50, lr_theta=1e-9, lr_phi=0.05, eval_every=150,
                      grad_replicates=0, early_stop=False)
    result = train(m, g, data, cfg, theta=theta, phi=phi)
    first, last = result.history[0]["posterior_error"], result.history[-1]["posterior_error"]
    # measured: 0.48 → 0.25 (the protocol pair itself gives the same run: the adapters add no arithmetic)
    assert last < 0.75 * first, (first, last)


def test_check_stochastic_passes_a_users_whole_wake_phi_on_the_scene_and_fails_one_that_drops_the_last_object():
    """End to end on a control-flow pair: the user's function draws its own particles. A correct one passes;
    one whose sampler loses the last object of a full scene (a classic off-by-one in the loop) fails.
    False-failure rate of the passing case: alpha = 1e-3 (Bonferroni over the entries), fixed seed."""
    from rws_ref.checking.endtoend import check_stochastic
    model = Scene1D(n_max=2, positions=3, pixels=6)
    guide = SceneGuide(n_max=2, positions=3, pixels=6, hidden=4)
    rng = np.random.default_rng(3)
    theta, phi = model.true_theta(), guide.init_phi(rng)
    x = model.sample(theta, 2, rng)[1]

    def mine(theta, phi, x, rng, off_by_one=False):
        z = guide.sample(phi, x, 3, rng)
        if off_by_one:                                   # the loop stops one object early on a full scene
            full = z[..., 0] == model.n_max
            z[..., 0] = np.where(full, model.n_max - 1, z[..., 0])
            z[..., -1] = np.where(full, 0, z[..., -1])
        return rws_ref.wake_phi(model, guide, theta, phi, x, z)

    good = check_stochastic(mine, "wake_phi", model, guide, theta, phi, x, K=3, replicates=2000, seed=1)
    assert good.ok, good
    def wrong(theta, phi, x, rng):
        return mine(theta, phi, x, rng, off_by_one=True)
    bad = check_stochastic(wrong, "wake_phi", model, guide, theta, phi, x, K=3, replicates=2000, seed=1)
    assert not bad.ok and bad.disagree, bad                  # entries whose mean is off, not a reproducibility verdict
