"""rws_ref.checking.testing: every property catches a deliberately wrong implementation,
and the correct implementation passes all of them."""
import numpy as np
import pytest
from hypothesis import given, settings

import rws_ref
from rws_ref import BernoulliGuide, GaussianMixture, SigmoidBeliefNet, SoftmaxLinearGuide, family, registry, testing
from rws_ref.estimators import log_weights, normalized_weights

MIX, CAT = GaussianMixture(4, scale=6.0), SoftmaxLinearGuide(4, loc=15.0, scale=10.0)


def batch_normalized_wake_theta(model, guide, theta, phi, x, z):
    log_w = log_weights(model, guide, theta, phi, x, z)
    w = np.exp(log_w - log_w.max())
    return model.grad_log_joint(theta, z, x, w / w.sum())


def unnormalized_wake_theta(model, guide, theta, phi, x, z):
    return model.grad_log_joint(theta, z, x, np.exp(log_weights(model, guide, theta, phi, x, z)) / x.shape[0])


def sign_flipped_wake_theta(theta, phi, x, z):
    return {k: -v for k, v in rws_ref.wake_theta(MIX, CAT, theta, phi, x, z).items()}


def gradient_through_weights_wake_phi(model, guide, theta, phi, x, z):
    # MISTAKE: the gradient also flows through w̄ (autograd of −Σ w̄(φ) log q_φ / N), written independently
    import autograd.numpy as anp
    from autograd import grad

    from rws_ref.numerics import softmax
    log_p = model.log_joint(theta, z, x)

    def surrogate(ph):
        log_q = guide.log_prob(ph, z, x)
        return -anp.sum(softmax(log_p - log_q, axis=0) * log_q) / x.shape[0]
    return grad(surrogate)({k: np.asarray(v, dtype=np.float64) for k, v in phi.items()})


def first_particle_only_vimco(model, guide, theta, phi, x, z):
    # not symmetric in the particles: only the first particle's score is used
    out = family.vimco_phi(model, guide, theta, phi, x, z)
    if z.shape[0] == 1:
        return out
    return family.vimco_phi(model, guide, theta, phi, x, np.concatenate([z[:1], z[:1]], axis=0))


def statuses(report):
    return {r.name: r.status for r in report.results}


@pytest.mark.parametrize("kind, fn", [("wake_theta", rws_ref.wake_theta), ("wake_phi", rws_ref.wake_phi),
                                      ("reinforce_phi", family.reinforce_phi), ("vimco_phi", family.vimco_phi)])
def test_correct_implementations_pass_every_property(kind, fn):
    report = testing.check_estimator(fn, kind, MIX, CAT, max_examples=15)
    report.assert_ok()
    assert statuses(report)["exact mean (oracle)"] == "pass"


def test_the_correct_linear_gaussian_and_belief_net_estimators_pass():
    testing.check_estimator(rws_ref.wake_phi, "wake_phi", max_examples=15).assert_ok()
    testing.check_estimator(rws_ref.wake_theta, "wake_theta", SigmoidBeliefNet(2, 3), BernoulliGuide(2, 3),
                            max_examples=15).assert_ok()


AGREE = {"agreement with rws_ref", "agreement, extreme log weights"}
STABLE = "numerical stability: log weights shifted by ±10³ and ±10⁵"


@pytest.mark.parametrize("kind, fn, caught_by", [
    ("wake_theta", batch_normalized_wake_theta,
     AGREE | {"per-datapoint shift invariance", STABLE, "batch = mean of single datapoints"}),
    ("wake_theta", unnormalized_wake_theta, AGREE | {"per-datapoint shift invariance", STABLE,
                                                     "exact mean (oracle)"}),
    ("wake_theta", sign_flipped_wake_theta, AGREE | {"exact mean (oracle)"}),
    ("wake_phi", gradient_through_weights_wake_phi, AGREE | {STABLE, "exact mean (oracle)"}),
    ("vimco_phi", first_particle_only_vimco, AGREE | {"permutation invariance", STABLE, "exact mean (oracle)"}),
])
def test_each_deliberate_mistake_is_caught_by_the_expected_properties(kind, fn, caught_by):
    report = testing.check_estimator(fn, kind, MIX, CAT, max_examples=15)
    assert not report.ok
    failed = {r.name for r in report.failed()}
    assert failed == caught_by, str(report)
    for r in report.failed():
        assert "difference" in r.detail or "K =" in r.detail                  # the numbers are reported


@settings(max_examples=30, deadline=None)
@given(testing.log_weight_arrays())
def test_log_weight_strategy_gives_valid_extreme_arrays(log_w):
    w = normalized_weights(log_w)
    assert np.all(np.isfinite(w)) and np.allclose(w.sum(axis=0), 1.0, rtol=1e-12)


def test_check_estimator_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        testing.check_estimator(rws_ref.wake_theta, "sleep")
    with pytest.raises(TypeError, match="fn"):
        testing.check_estimator(42, "wake_theta")
    with pytest.raises(ValueError, match="guide"):
        testing.check_estimator(rws_ref.wake_theta, "wake_theta", model=MIX)


def test_the_diagnosis_names_the_mistake_in_the_report():
    report = testing.check_estimator(batch_normalized_wake_theta, "wake_theta", MIX, CAT, max_examples=10)
    detail = next(r.detail for r in report.results if r.name == "agreement with rws_ref")
    assert "looks like: weights normalized over the whole batch" in detail and "expected" in detail


def test_a_near_miss_fails_agreement_at_the_default_tolerance():
    near = lambda *a: {k: v * (1 + 1e-6) for k, v in rws_ref.wake_theta(*a).items()}
    report = testing.check_estimator(near, "wake_theta", MIX, CAT, max_examples=10)
    assert {"agreement with rws_ref", "exact mean (oracle)"} <= {r.name for r in report.failed()}


def test_the_users_own_exception_is_reported_with_its_traceback():
    def pyro_like(model, guide, theta, phi, x, z):
        assert z.shape[0] > 1, "RWS requires K > 1"
        return rws_ref.wake_theta(model, guide, theta, phi, x, z)
    report = testing.check_estimator(pyro_like, "wake_theta", MIX, CAT, max_examples=10)
    detail = next(r.detail for r in report.results if r.name == "agreement with rws_ref")
    assert "AssertionError: RWS requires K > 1" in detail and "Traceback" in detail and "pyro_like" in detail


def test_a_property_that_cannot_apply_is_not_applicable_never_passed():
    own = lambda model, guide, theta, phi, x, z: rws_ref.wake_theta(MIX, CAT, theta, phi, x, z)   # ignores `model`
    report = testing.check_estimator(own, "wake_theta", MIX, CAT, max_examples=5)
    assert statuses(report)["per-datapoint shift invariance"] == "not applicable"
    report = testing.check_estimator(sign_flipped_wake_theta, "wake_theta", MIX, CAT, max_examples=5)
    assert statuses(report)["per-datapoint shift invariance"] == "not applicable"
    report = testing.check_estimator(rws_ref.wake_phi, "wake_phi", max_examples=5)     # continuous latent
    assert statuses(report)["exact mean (oracle)"] == "not applicable"


def test_the_exact_mean_leaves_out_a_k_whose_enumeration_exceeds_the_call_budget_and_says_so():
    # S = 40 states, 2 datapoints: K = 2 needs C(41, 2)·2 = 1,640 calls (in), K = 3 needs C(42, 3)·2 = 22,960
    from rws_ref.checking import exact_mean
    assert exact_mean.MAX_CALLS == 4000
    report = testing.check_estimator(rws_ref.wake_theta, "wake_theta", GaussianMixture(40),
                                     SoftmaxLinearGuide(40), max_examples=2, samplers=False, exact_ks=(2, 3))
    result = next(r for r in report.results if r.name == "exact mean (oracle)")
    assert result.status == "pass" and result.detail.startswith("K in (2,);")
    assert "K = 3 left out: 22,960 calls" in result.detail and "S = 40 states × 2 datapoints" in result.detail
    # S = 2001: even K = 1 needs 4,002 calls
    report = testing.check_estimator(rws_ref.wake_theta, "wake_theta", GaussianMixture(2001),
                                     SoftmaxLinearGuide(2001), max_examples=2, samplers=False, exact_ks=(1,))
    result = next(r for r in report.results if r.name == "exact mean (oracle)")
    assert result.status == "not applicable" and "K = 1 left out: 4,002 calls" in result.detail


@pytest.mark.parametrize("seed", range(4))
def test_a_correct_implementation_passes_under_many_seeds_on_the_benchmark_mixture(seed):
    mix, mlp = GaussianMixture(), rws_ref.MLPGuide(20, (4,), loc=95.0, scale=60.0)
    report = testing.check_estimator(rws_ref.wake_theta, "wake_theta", mix, mlp, max_examples=8, seed=seed,
                                     exact_ks=(1, 2))
    report.assert_ok()


def test_the_seed_chooses_the_examples():
    seen = {}
    for seed in (0, 0, 1):
        calls = []
        testing.check_estimator(lambda *a: calls.append(a[-1].tolist()) or rws_ref.wake_theta(*a), "wake_theta",
                                MIX, CAT, max_examples=6, seed=seed)
        seen.setdefault(seed, []).append(calls)
    assert seen[0][0] == seen[0][1] and seen[0][0] != seen[1][0]


# -- every kind of the registry --------------------------------------------------------------------

PAIRS = {"linear-gaussian": (rws_ref.LinearGaussian(2, 3), rws_ref.DiagonalGaussianGuide(2, 3)),
         "mixture": (GaussianMixture(4, scale=6.0), SoftmaxLinearGuide(4, loc=15.0, scale=10.0)),
         "belief net": (SigmoidBeliefNet(2, 3), BernoulliGuide(2, 3))}
APPLICABLE = [(kind, pair) for kind in registry.KINDS for pair in PAIRS
              if registry.applies(registry.get(kind), *PAIRS[pair]) is None]


def _flipped(entry):
    def flipped(*args):
        out = entry.function(*args)
        return -out if entry.output == "bound" else {k: -v for k, v in out.items()}
    return flipped


def test_every_kind_applies_somewhere_and_most_pairs_apply():
    assert {k for k, _ in APPLICABLE} == set(registry.KINDS) and len(APPLICABLE) >= 25


@pytest.mark.parametrize("kind, pair", APPLICABLE, ids=[f"{k} on {p}" for k, p in APPLICABLE])
def test_rws_refs_own_estimator_passes_and_its_sign_flip_fails_with_the_sign_named(kind, pair):
    entry = registry.get(kind)
    report = testing.check_estimator(entry.function, kind, *PAIRS[pair], max_examples=4, exact_ks=(1, 2))
    report.assert_ok()
    assert sum(r.status == "pass" for r in report.results) >= 5, str(report)
    flipped = testing.check_estimator(_flipped(entry), kind, *PAIRS[pair], max_examples=4, exact_ks=(1, 2))
    agreement = statuses(flipped)["agreement with rws_ref"]
    detail = next(r.detail for r in flipped.results if r.name == "agreement with rws_ref")
    assert agreement == "fail" and "looks like: sign flip" in detail, str(flipped)


def test_an_estimator_that_does_not_apply_is_not_applicable_with_the_reason():
    report = testing.check_estimator(family.iwae_phi, "iwae_phi", *PAIRS["mixture"], max_examples=4)
    assert [r.status for r in report.results] == ["not applicable"]
    assert "reparameterized pair" in report.results[0].detail
    # nothing checked is not a pass: the fixture and assert_ok fail on it, saying so
    assert not report.ok and not report.checked and "NOTHING CHECKED" in str(report)


def test_a_function_with_densities_of_its_own_takes_the_signature_without_model_and_guide():
    model, guide = PAIRS["linear-gaussian"]
    own = lambda phi, dream_z, dream_x: rws_ref.sleep_phi(guide, phi, dream_z, dream_x)
    testing.check_estimator(own, "sleep_phi", model, guide, max_examples=4).assert_ok()
    with pytest.raises(TypeError, match="fn must take"):
        testing.check_estimator(lambda phi, z: None, "sleep_phi", model, guide)


def test_a_misbehaving_output_is_reported_as_what_the_function_returned():
    model, guide = PAIRS["mixture"]
    for bad, words in [(lambda *a: None, "returned NoneType"), (lambda *a: {"w": 1.0}, "returned keys"),
                       (lambda *a: {k: v + 0j for k, v in rws_ref.wake_phi(*a).items()}, "complex"),
                       (lambda *a: {k: v * np.nan for k, v in rws_ref.wake_phi(*a).items()}, "non-finite")]:
        report = testing.check_estimator(bad, "wake_phi", model, guide, max_examples=3)
        detail = next(r.detail for r in report.results if r.name == "agreement with rws_ref")
        assert not report.ok and "your function returned" in detail and words in detail, detail


def test_a_function_drawing_from_the_global_generator_is_not_deterministic():
    model, guide = PAIRS["mixture"]
    noisy = lambda *a: {k: v + 1e-3 * np.random.standard_normal(np.shape(v))      # the global NumPy RNG
                        for k, v in rws_ref.wake_phi(*a).items()}
    state = np.random.get_state()
    try:
        report = testing.check_estimator(noisy, "wake_phi", model, guide, max_examples=3)
    finally:
        np.random.set_state(state)
    assert statuses(report)["deterministic"] == "fail"
    assert "global or unseeded random number generator" in next(r.detail for r in report.failed()
                                                                if r.name == "deterministic")


def _no_max_shift_elbo(log_w):
    return np.log(np.mean(np.exp(log_w), axis=0))


def _no_max_shift_wake_theta(model, guide, theta, phi, x, z):
    w = np.exp(model.log_joint(theta, z, x) - guide.log_prob(phi, z, x))
    return model.grad_log_joint(theta, z, x, w / w.sum(axis=0) / x.shape[0])


@pytest.mark.parametrize("kind, fn", [("elbo_is", _no_max_shift_elbo), ("wake_theta", _no_max_shift_wake_theta)])
def test_exponentiating_log_weights_without_their_max_fails_only_the_stability_property(kind, fn):
    with np.errstate(all="ignore"):
        report = testing.check_estimator(fn, kind, MIX, CAT, max_examples=10, samplers=False)
    assert [r.name for r in report.failed()] == [STABLE], str(report)
    assert "no max shift" in report.failed()[0].detail


def test_the_stability_shifts_leave_exps_range_both_ways():
    from rws_ref.checking.properties import stability_shift
    up, down = stability_shift(3, 1.0), stability_shift(3, -1.0)
    assert np.all(np.exp(up) == np.inf) and np.all(np.exp(down) == 0.0)      # past overflow and underflow
    assert list(up) == [1e3, 1e5, 1e3] and list(down) == [-1e3, -1e5, -1e3]


# -- each property pinned by a wrong implementation only it catches (issue 37) -------------------------------


def _one_example(kind, fn, model, guide, n=3, k=4):
    from rws_ref.checking.properties import Check, Example, UserFunction
    entry = registry.get(kind)
    check = Check(UserFunction(fn, entry), entry, model, guide, 1e-8)
    rng = np.random.default_rng(7)
    theta, phi = model.init_theta(rng), guide.init_phi(rng)
    phi = {key: v + 0.5 * rng.standard_normal(np.shape(v)) for key, v in phi.items()}
    case = entry.signature.draw(model, guide, theta, phi, rng, n, k)
    return check, Example(check, case, case)


def test_the_permutation_property_permutes_each_datapoints_particles_differently():
    # particle k of datapoint 0 coupled with particle k of datapoint 1: invariant when every datapoint's
    # particles are permuted the same way, not when each datapoint has its own permutation
    def coupled(model, guide, theta, phi, x, z):
        out = rws_ref.wake_theta(model, guide, theta, phi, x, z)
        pair = float(np.sum(np.asarray(z[:, 0], float) * np.asarray(z[:, 1], float)))
        return {key: v + 1e-3 * pair for key, v in out.items()}
    from rws_ref.checking import properties
    check, ex = _one_example("wake_theta", coupled, MIX, CAT)
    assert not properties.permutation(check, ex).ok
    check, ex = _one_example("wake_theta", rws_ref.wake_theta, MIX, CAT)
    assert properties.permutation(check, ex).ok


def _level_dependent_vimco(model, guide, theta, phi, x, z):
    """VIMCO, wrong only while the log weights sit between 40 and 500 nats: only the shift property (which
    adds 50–150 per datapoint) sees it — not agreement, not the stability property's ±10³, ±10⁵."""
    out = family.vimco_phi(model, guide, theta, phi, x, z)
    top = float(np.max(rws_ref.log_weights(model, guide, theta, phi, x, z)))
    return {key: v * (1.01 if 40.0 < top < 500.0 else 1.0) for key, v in out.items()}


def test_the_shift_property_applies_to_vimco_and_is_the_one_that_sees_a_level_dependent_bug():
    report = testing.check_estimator(_level_dependent_vimco, "vimco_phi", MIX, CAT, max_examples=8, samplers=False)
    assert [r.name for r in report.failed()] == ["per-datapoint shift invariance"], str(report)


# -- no false failure on the documented protocol (issue 29): every kind on every pair and variant --------------

from protocol_variants import VARIANTS, own_densities  # noqa: E402

_BUILT = {name: make() for name, make in VARIANTS.items()}
MATRIX = [(kind, name, form) for kind in registry.KINDS for name, pair in {**PAIRS, **_BUILT}.items()
          for form in ("model, guide", "own densities")
          if registry.applies(registry.get(kind), *pair) is None
          and (form == "model, guide" or own_densities(registry.get(kind), *pair) is not None)]


def test_the_matrix_holds_every_kind_and_every_variant():
    assert {k for k, _, _ in MATRIX} == set(registry.KINDS) and {n for _, n, _ in MATRIX} >= set(VARIANTS)
    assert len(MATRIX) >= 100


@pytest.mark.parametrize("kind, pair, form", MATRIX, ids=[f"{k} on {p}, fn({f}, …)" for k, p, f in MATRIX])
def test_a_correct_implementation_passes_on_every_pair_and_protocol_variant(kind, pair, form):
    # deterministic properties (no false failure but rounding); the sampler checks run in
    # benchmarks/false_failures.py, which measures their false-failure rate over many seeds
    model, guide = {**PAIRS, **_BUILT}[pair]
    entry = registry.get(kind)
    fn = entry.function if form == "model, guide" else own_densities(entry, model, guide)
    data = None
    if pair == "densities only":                            # no sampler: the user's observations instead
        data = rws_ref.GaussianMixture(4, scale=6.0).sample(PAIRS["mixture"][0].true_theta(), 20,
                                                            np.random.default_rng(1))[1]
    report = testing.check_estimator(fn, kind, model, guide, max_examples=3, exact_ks=(2,), samplers=False,
                                     data=data)
    assert report.ok, str(report)


def test_a_pair_without_a_sampler_needs_data_and_says_so_rather_than_failing():
    from protocol_variants import densities_only
    model, guide = densities_only()
    report = testing.check_estimator(rws_ref.wake_theta, "wake_theta", model, guide, max_examples=3)
    assert [r.status for r in report.results] == ["not applicable"] and "give data=" in report.results[0].detail
    dreams = testing.check_estimator(rws_ref.sleep_phi, "sleep_phi", model, guide, max_examples=3)
    assert [r.status for r in dreams.results] == ["not applicable"] and "sample()" in dreams.results[0].detail


def _shift_only_above_zero_elbo(log_w):
    """A max shift applied only when the max is positive: safe from overflow, not from underflow (log 0 at
    log weights near −10³)."""
    m = np.maximum(log_w.max(axis=0), 0.0)
    return m + np.log(np.mean(np.exp(log_w - m), axis=0))


def test_the_stability_property_shifts_down_as_well_as_up():
    with np.errstate(all="ignore"):
        report = testing.check_estimator(_shift_only_above_zero_elbo, "elbo_is", MIX, CAT, max_examples=10,
                                         samplers=False)
    assert [r.name for r in report.failed()] == [STABLE], str(report)


def _mean_shifted_elbo(log_w):
    """log-mean-exp shifted by the *mean* log weight, not the max: exact on moderate log weights and under any
    common shift, but exp overflows once a datapoint's log weights spread by more than about 700 nats."""
    m = log_w.mean(axis=0)
    return m + np.log(np.mean(np.exp(log_w - m), axis=0))


def test_log_weights_spread_past_exps_range_catch_a_shift_by_the_mean():
    with np.errstate(all="ignore"):
        report = testing.check_estimator(_mean_shifted_elbo, "elbo_is", MIX, CAT, max_examples=15, samplers=False)
    assert [r.name for r in report.failed()] == [STABLE], str(report)
    assert "first particle's log weight raised" in report.failed()[0].detail and \
        "no max shift" in report.failed()[0].detail
