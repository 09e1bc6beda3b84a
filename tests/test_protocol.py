"""The open protocol: a model written outside rws_ref (tests/outside_models.py) gets every
capability, each checked against brute force, finite differences or the autograd route."""
import itertools
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from scipy import integrate

import rws_ref
from rws_ref import autodiff, exact, family, protocol
from rws_ref.checking import testing
from rws_ref.experiments.train import TrainConfig, train

from _util import assert_tree_close, central_difference
from outside_models import ClusterGuide, Clusters, MixedChoice, MixedChoiceGuide, TwoLayerGuide, TwoLayerNet, clusters

HERE = pathlib.Path(__file__).parent


def _problem(which, n=2, seed=3):
    rng = np.random.default_rng(seed)
    model, guide = (Clusters(3), ClusterGuide(3)) if which == "clusters" else (TwoLayerNet(), TwoLayerGuide())
    theta, phi = model.init_theta(rng), guide.init_phi(rng)
    x = model.sample(theta, n, rng)[1]
    return model, guide, theta, phi, x, rng


PROBLEMS = ["clusters", "two-layer"]


# -- validation from the declarations --------------------------------------------------------


class Refusing(Clusters):
    """Raises if rws_ref ever lets a bad input through to the user's code."""

    def log_joint(self, theta, z, x):
        raise AssertionError("bad input reached the model")

    grad_log_joint = log_joint


@pytest.mark.parametrize("mutate, exc, words", [
    (lambda th, z, x: ({"logits": th["logits"]}, z, x), ValueError, "missing ['means']"),
    (lambda th, z, x: ({**th, "means": np.zeros(4)}, z, x), ValueError, "theta['means'] must have shape (3,)"),
    (lambda th, z, x: ({**th, "means": np.array([0.0, np.nan, 1.0])}, z, x), ValueError, "theta['means']"),
    (lambda th, z, x: (th, z + 3, x), ValueError, "categories in 0..2"),
    (lambda th, z, x: (th, z + 0.5, x), ValueError, "whole-number"),
    (lambda th, z, x: (th, z[0], x), ValueError, "z must have shape (K, N)"),
    (lambda th, z, x: (th, z, x[:, None]), ValueError, "x must have shape (N,)"),
    (lambda th, z, x: (th, z, x.astype(complex)), TypeError, "x must be"),
])
def test_bad_input_is_refused_from_the_declarations_before_the_users_code(mutate, exc, words):
    model, guide, theta, phi, x, rng = _problem("clusters")
    z = guide.sample(phi, x, 4, rng)
    theta, z, x = mutate(theta, z, x)
    for fn in (rws_ref.wake_theta, rws_ref.wake_phi, rws_ref.log_weights):
        with pytest.raises(exc) as info:
            fn(Refusing(3), guide, theta, phi, x, z)
        assert words in str(info.value)


def test_a_guide_of_another_shape_or_domain_is_refused():
    model, guide, theta, phi, x, rng = _problem("clusters")
    z = guide.sample(phi, x, 2, rng)
    with pytest.raises(ValueError, match="does not match"):
        rws_ref.wake_theta(model, ClusterGuide(4), theta, ClusterGuide(4).init_phi(rng), x, z)
    with pytest.raises(ValueError, match="does not match"):
        exact.elbo_is(TwoLayerNet(), ClusterGuide(3), TwoLayerNet().init_theta(rng), phi, x, 2)


def test_an_object_missing_part_of_the_protocol_is_named():
    class Half:
        theta_shapes, z_shape, x_shape = {"a": (1,)}, (), ()

        def log_joint(self, theta, z, x):
            return np.zeros(np.shape(z))
    with pytest.raises(TypeError, match="init_theta, sample, grad_log_joint"):
        protocol.check_model(Half())
    with pytest.raises(TypeError, match="guide must be a guide object"):
        rws_ref.wake_theta(Clusters(3), None, {}, {}, np.zeros(1), np.zeros((1, 1)))


# -- estimators and the family against the autograd route ---------------------------------------


@pytest.mark.parametrize("which", PROBLEMS)
def test_estimators_and_family_equal_the_autograd_route(which):
    model, guide, theta, phi, x, rng = _problem(which, n=3)
    z = guide.sample(phi, x, 4, rng)
    dream_z, dream_x = model.sample(theta, 5, rng)
    pairs = [(rws_ref.wake_theta, autodiff.wake_theta), (rws_ref.wake_phi, autodiff.wake_phi),
             (family.reinforce_phi, autodiff.reinforce_phi), (family.vimco_phi, autodiff.vimco_phi)]
    for manual, auto in pairs:
        assert_tree_close(manual(model, guide, theta, phi, x, z), auto(model, guide, theta, phi, x, z), 1e-10)
    assert_tree_close(rws_ref.sleep_phi(guide, phi, dream_z, dream_x),
                      autodiff.sleep_phi(guide, phi, dream_z, dream_x), 1e-10)
    assert_tree_close(family.insomnia(model, guide, theta, phi, x, z, dream_z, dream_x, 0.3),
                      autodiff.insomnia(model, guide, theta, phi, x, z, dream_z, dream_x, 0.3), 1e-10)
    zd = family.DefensiveGuide(guide, 0.25).sample(phi, x, 4, rng)
    assert_tree_close(family.defensive_wake_phi(model, guide, theta, phi, x, zd, 0.25),
                      autodiff.defensive_wake_phi(model, guide, theta, phi, x, zd, 0.25), 1e-10)


@pytest.mark.parametrize("which", PROBLEMS)
def test_wake_step_is_bit_identical_to_the_separate_calls(which):
    model, guide, theta, phi, x, rng = _problem(which, n=3)
    z = guide.sample(phi, x, 5, rng)
    bound, g_theta, g_phi = rws_ref.wake_step(model, guide, theta, phi, x, z)
    assert np.array_equal(bound, rws_ref.elbo_is(rws_ref.log_weights(model, guide, theta, phi, x, z)))
    for got, want in ((g_theta, rws_ref.wake_theta(model, guide, theta, phi, x, z)),
                      (g_phi, rws_ref.wake_phi(model, guide, theta, phi, x, z))):
        assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in got)


# -- the exact oracle against brute force ---------------------------------------------------------


def _brute(model, guide, theta, phi, x, K, estimator=None):
    """Σ over all S^K ordered particle tuples, per datapoint; the bound and (optionally)
    the estimator's mean and variance of the batch estimate."""
    states = model.support()
    bounds, means, seconds = [], [], []
    for n in range(len(x)):
        b, m, s = 0.0, 0.0, 0.0
        for tup in itertools.product(range(len(states)), repeat=K):
            z = states[list(tup)][:, None]
            log_q = guide.log_prob(phi, z, x[n:n + 1])
            prob = np.exp(log_q.sum())
            log_w = model.log_joint(theta, z, x[n:n + 1]) - log_q
            b += prob * (np.logaddexp.reduce(log_w[:, 0]) - np.log(K))
            if estimator is not None:
                g = estimator(model, guide, theta, phi, x[n:n + 1], z)
                flat = np.concatenate([np.ravel(g[k]) for k in sorted(g)])
                m, s = m + prob * flat, s + prob * flat ** 2
        bounds.append(b)
        means.append(m)
        seconds.append(s - m ** 2)
    return np.array(bounds), np.mean(means, axis=0), np.sum(seconds, axis=0) / len(x) ** 2


@pytest.mark.parametrize("which", PROBLEMS)
@pytest.mark.parametrize("K", [1, 2, 3])
def test_exact_bound_and_moments_equal_brute_force(which, K):
    model, guide, theta, phi, x, _ = _problem(which)
    bound, mean, var = _brute(model, guide, theta, phi, x, K, rws_ref.wake_phi)
    np.testing.assert_allclose(exact.elbo_is(model, guide, theta, phi, x, K), bound, rtol=1e-12, atol=1e-12)
    for method in ("tables", "direct"):
        m, v = exact.moments(rws_ref.wake_phi, model, guide, theta, phi, x, K, method=method)
        np.testing.assert_allclose(np.concatenate([np.ravel(m[k]) for k in sorted(m)]), mean, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.concatenate([np.ravel(v[k]) for k in sorted(v)]), var, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("which", PROBLEMS)
def test_exact_gradient_of_the_bound_both_routes_equal_finite_differences(which):
    model, guide, theta, phi, x, _ = _problem(which)
    K = 2
    fd_theta = central_difference(lambda th: np.mean(_brute(model, guide, th, phi, x, K)[0]), theta)
    fd_phi = central_difference(lambda ph: np.mean(_brute(model, guide, theta, ph, x, K)[0]), phi)
    for method in ("autograd", "tables"):
        d_theta, d_phi = exact.grad_elbo_is(model, guide, theta, phi, x, K, method=method)
        assert_tree_close(d_theta, fd_theta, 1e-7)
        assert_tree_close(d_phi, fd_phi, 1e-7)
    # and E[wake-θ] (tables) is the autograd gradient to rounding
    mean, _ = exact.moments(rws_ref.wake_theta, model, guide, theta, phi, x, K)
    assert_tree_close(mean, exact.grad_elbo_is(model, guide, theta, phi, x, K)[0], 1e-11)


@pytest.mark.parametrize("which", PROBLEMS)
def test_kl_target_and_bias_constants_equal_brute_force(which):
    model, guide, theta, phi, x, _ = _problem(which)
    states = model.support()
    z_all = np.repeat(states[:, None], len(x), axis=1)

    def mean_kl(ph):
        log_p = model.log_joint(theta, z_all, x)
        log_post = log_p - np.logaddexp.reduce(log_p, axis=0)
        return np.mean(np.sum(np.exp(log_post) * (log_post - guide.log_prob(ph, z_all, x)), axis=0))
    assert_tree_close(exact.kl_grad_phi(model, guide, theta, phi, x), central_difference(mean_kl, phi), 1e-7)
    log_p = model.log_joint(theta, z_all, x)
    omega = np.exp(log_p - np.logaddexp.reduce(log_p, axis=0) - guide.log_prob(phi, z_all, x))
    q = np.exp(guide.log_prob(phi, z_all, x))
    np.testing.assert_allclose(exact.chi2(model, guide, theta, phi, x), np.sum(q * omega ** 2, axis=0) - 1, rtol=1e-12)


def test_sleep_target_of_the_two_layer_net_equals_a_sum_over_every_z_and_x():
    model, guide, theta, phi, _, _ = _problem("two-layer")
    total = None
    for z in model.support():
        for xv in model.data_support():
            p = float(np.exp(model.log_joint(theta, z[None, None], xv[None])[0, 0]))
            g = autodiff.grad_log_prob(guide, phi, z[None, None], xv[None], np.ones((1, 1)))
            total = {k: -p * v for k, v in g.items()} if total is None else {k: total[k] - p * g[k] for k in g}
    assert_tree_close(exact.sleep_target(model, guide, theta, phi), total, 1e-12)


def test_sleep_target_of_clusters_by_its_quadrature_equals_adaptive_integration():
    model, guide, theta, phi, _, _ = _problem("clusters")
    pi = np.exp(theta["logits"] - np.logaddexp.reduce(theta["logits"]))

    def score(z, x):                     # −∇_φ log q(z|x) for q = softmax(a x² + b x + c), by hand
        logits = phi["a"] * x ** 2 + phi["b"] * x + phi["c"]
        d = np.exp(logits - np.logaddexp.reduce(logits))
        d = np.eye(3)[z] - d
        return -np.concatenate([x ** 2 * d, x * d, d])           # keys a, b, c
    want = np.zeros(9)
    for z in range(3):
        for i in range(9):
            f = lambda x: np.exp(-0.5 * ((x - theta["means"][z]) / model.scale) ** 2) / (
                np.sqrt(2 * np.pi) * model.scale) * score(z, x)[i]
            want[i] += pi[z] * integrate.quad(f, -np.inf, np.inf, epsabs=1e-13, epsrel=1e-12)[0]
    got = exact.sleep_target(model, guide, theta, phi)
    np.testing.assert_allclose(np.concatenate([got[k] for k in ("a", "b", "c")]), want, rtol=1e-9, atol=1e-11)


# -- training, audit, check_estimator and the command line ------------------------------------


def test_training_the_outside_model_learns_its_means_and_posterior():
    spec = clusters()
    model, guide, truth = spec["model"], spec["guide"], spec["true_theta"]
    rng = np.random.default_rng(0)
    data = model.sample(truth, 500, rng)[1]
    for method in ("wake", "defensive", "sleep"):
        cfg = TrainConfig(method=method, K=5, iters=600, batch_size=50, lr_theta=0.05, lr_phi=0.05, tol=0.0,
                          eval_every=100, grad_replicates=0)
        result = train(model, guide, data, cfg, true_theta=truth)
        first, last = result.history[0], result.history[-1]
        # measured: means error 1.40 → 0.11 (wake), 0.33 (defensive), 0.20 (sleep);
        # posterior error 0.76 → 0.014–0.022; |log p − ELBO_IS| ≤ 0.0014
        assert last["means_error"] < 0.3 * first["means_error"], (method, first, last)
        assert last["posterior_error"] < 0.3 * first["posterior_error"], (method, first, last)
        assert abs(last["log_p"] - last["elbo_is"]) < 0.05


def test_check_estimator_and_cases_work_from_the_declarations():
    model, guide = TwoLayerNet(), TwoLayerGuide()

    @settings(max_examples=10, deadline=None, database=None)
    @given(testing.cases(model, guide))
    def drawn_cases_are_valid(case):
        theta, phi, x, z = case
        rws_ref.wake_theta(model, guide, theta, phi, x, z)
        assert set(np.unique(z)) <= {0.0, 1.0} and set(np.unique(x)) <= {0.0, 1.0}
    drawn_cases_are_valid()
    assert testing.check_estimator(rws_ref.wake_theta, "wake_theta", model, guide, max_examples=5).ok
    flipped = lambda *a: {k: -v for k, v in rws_ref.wake_phi(*a).items()}
    report = testing.check_estimator(flipped, "wake_phi", Clusters(3), ClusterGuide(3), max_examples=5)
    assert {r.name for r in report.failed()} >= {"agreement with rws_ref", "exact mean (oracle)"}


def test_command_line_trains_and_audits_a_model_by_import_path(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    run = lambda *args: subprocess.run([sys.executable, "-m", "rws_ref.cli", *args], capture_output=True,
                                       text=True, cwd=tmp_path, env=env)
    result = run("audit", "--model", "outside_models:two_layer")
    assert result.returncode == 0 and "14 of 14 checks passed" in result.stdout, result.stderr
    result = run("train", "--model", "outside_models:clusters", "--K", "5", "--iters", "100",
                 "--n-data", "200", "--eval-every", "50", "--no-progress")
    assert result.returncode == 0 and "means_error" in result.stdout, result.stderr
    for args, words in ((("train", "--model", "outside_models:missing"), "no attribute 'missing'"),
                        (("train", "--model", "no_such_module:x"), "cannot import"),
                        (("train", "--model", "outside_models:clusters", "--guide", "mlp"), "no such choice"),
                        (("train", "--model", "outside_models:two_layer", "--method", "iwae"), "reparameterizable")):
        result = run(*args, "--no-progress")
        assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr


def test_no_layer_inspects_classes_or_calls_private_model_methods():
    source = "\n".join(p.read_text() for p in (HERE.parent / "rws_ref").rglob("*.py"))
    for banned in ("__mro__", "._forward(", "._backward(", "._log_joint(", "._log_prob(", "check_batch(",
                   "__getattr__(self"):
        assert banned not in source, banned


# -- z_entries: one latent whose entries mix a category and a real value ---------------------------------
def _mixed_setting(seed=0):
    model, guide = MixedChoice(), MixedChoiceGuide()
    rng = np.random.default_rng(seed)
    theta, phi = model.init_theta(rng), guide.init_phi(rng)
    x = model.sample(theta, 3, rng)[1]
    return model, guide, theta, phi, x, guide.sample(phi, x, 4, rng)


def test_a_mixed_latent_passes_check_estimator_and_a_wrong_estimator_fails_it():
    # the extreme-case particles are drawn in each entry's domain (a category where z_entries says 3): were
    # they drawn in [−4, 4] everywhere, the correct estimator would meet a non-category and fail
    model, guide = MixedChoice(), MixedChoiceGuide()
    for kind, fn in (("wake_phi", rws_ref.wake_phi), ("wake_theta", rws_ref.wake_theta)):
        testing.check_estimator(fn, kind, model, guide, seed=0, max_examples=8).assert_ok()
    flipped = lambda *a: {k: -v for k, v in rws_ref.wake_phi(*a).items()}       # noqa: E731
    assert not testing.check_estimator(flipped, "wake_phi", model, guide, seed=0, max_examples=8).ok


def test_a_mixed_latents_discrete_entry_is_validated_against_its_own_domain():
    model, guide, theta, phi, x, z = _mixed_setting()
    for bad, said in ((0.5, "0.5"), (3.0, "3.0"), (-1.0, "-1.0")):
        off = z.copy()
        off[1, 2, 0] = bad
        with pytest.raises(ValueError, match=rf"z\[\.\.\., 0\] must hold a category in 0\.\.2 \(z_entries\[0\] = 3\); "
                                             rf"got {said}"):
            rws_ref.wake_phi(model, guide, theta, phi, x, off)
    off = z.copy()
    off[1, 2, 1] = 17.3                                       # the real entry takes any real value
    assert np.all(np.isfinite(rws_ref.wake_phi(model, guide, theta, phi, x, off)["w"]))


def test_z_entries_must_fit_the_latent_and_agree_between_model_and_guide():
    model, guide, theta, phi, x, z = _mixed_setting()
    for entries, z_domain, said in (((3,), "real", "one domain per entry"), ((3, "real"), 3, "one domain per entry"),
                                    ((3, "complex"), "real", "'real', 'binary' or an integer"),
                                    ((1, "real"), "real", "'real', 'binary' or an integer")):
        odd = MixedChoice()
        odd.z_entries, odd.z_domain = entries, z_domain
        with pytest.raises(TypeError, match=said):
            rws_ref.wake_phi(odd, guide, theta, phi, x, z)
    other = MixedChoiceGuide()
    other.z_entries = ("binary", "real")
    with pytest.raises(ValueError, match=r"guide z_entries = \('binary', 'real'\), model \(3, 'real'\)"):
        rws_ref.wake_phi(model, other, theta, phi, x, z)


@settings(max_examples=15, deadline=None)
@given(testing.cases(MixedChoice(), MixedChoiceGuide()))
def test_the_cases_strategy_draws_a_mixed_latents_category_entry_as_a_category(case):
    z = case[3]
    assert set(np.unique(z[..., 0])) <= {0.0, 1.0, 2.0}
    rws_ref.wake_theta(MixedChoice(), MixedChoiceGuide(), *case)            # valid input: no error
