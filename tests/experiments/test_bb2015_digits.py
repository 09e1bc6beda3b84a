"""rws-ref reproduce bb2015-digits: the data (binarized, a fixed split), the exact held-out log-likelihood
against a brute-force sum written here, and the command at a quick budget (seconds), resumable."""
import itertools
import json

import numpy as np
import pytest

pytest.importorskip("sklearn")

from rws_ref import SigmoidBeliefNet, digits  # noqa: E402
from rws_ref.cli import main  # noqa: E402

BITS = 8        # the brute-force sums below enumerate the states one by one in Python


def test_the_data_are_the_binarized_digits_in_a_fixed_split():
    train, held_out = digits.load_digits()
    assert train.shape == (1500, 64) and held_out.shape == (297, 64)
    assert set(np.unique(train)) == {0.0, 1.0} and 0.25 < train.mean() < 0.4
    again = digits.load_digits()
    assert np.array_equal(again[0], train) and np.array_equal(again[1], held_out)
    from sklearn.datasets import load_digits
    raw = load_digits().data
    order = np.random.default_rng(2015).permutation(len(raw))
    np.testing.assert_array_equal(held_out[0], (raw[order[1500]] >= 8).astype(float))


def log_bernoulli(bits, logits):
    """Σ over the last axis of log Bernoulli(bits; 1 / (1 + exp(−logits)))."""
    p = 1.0 / (1.0 + np.exp(-logits))
    return np.sum(bits * np.log(p) + (1 - bits) * np.log1p(-p), axis=-1)


def brute_force_log_joint(theta, z, image):
    return log_bernoulli(z, theta["b_z"]) + log_bernoulli(image, theta["W"] @ z + theta["b_x"])


def brute_force_log_mean_weight(theta, phi, particles, image):
    """log (1/K) Σ_k p(z_k, x) / q(z_k|x) from the definitions."""
    log_w = (log_bernoulli(particles, theta["b_z"]) + log_bernoulli(image, particles @ theta["W"].T + theta["b_x"])
             - log_bernoulli(particles, phi["A"] @ image + phi["c"]))
    m = max(log_w)
    return m + np.log(np.mean(np.exp(log_w - m)))


def brute_force_log_likelihood(theta, x):
    """log Σ_z p(z) p(x|z) over the 2^dz states, one state at a time, from the definitions."""
    out = []
    for image in x:
        terms = [brute_force_log_joint(theta, np.array(z, float), image)
                 for z in itertools.product((0, 1), repeat=len(theta["b_z"]))]
        m = max(terms)
        out.append(m + np.log(np.sum(np.exp(np.array(terms) - m))))
    return np.array(out)


def held_out_images():
    return digits.load_digits()[1]


def test_the_reconstructions_are_the_guide_weighted_pixel_means_summed_state_by_state():
    """E_{q(z|x)} sigmoid(W z + b_x), one state at a time from the definitions, against the matrix form."""
    model, guide = SigmoidBeliefNet(BITS, 64), digits.BernoulliGuide(BITS, 64)
    theta, phi = model.init_theta(np.random.default_rng(4)), guide.init_phi(np.random.default_rng(5))
    phi["A"] *= 3000.0                            # some bits deterministic in float64: q(z_i = 1|x) is 0.0 or 1.0
    x = held_out_images()[:3]
    expected = np.zeros((3, 64))
    for n, image in enumerate(x):
        with np.errstate(over="ignore"):
            p = 1.0 / (1.0 + np.exp(-(phi["A"] @ image + phi["c"])))
        for z in itertools.product((0, 1), repeat=BITS):
            z = np.array(z, float)
            q = np.prod(np.where(z == 1, p, 1 - p))
            expected[n] += q / (1.0 + np.exp(-(theta["W"] @ z + theta["b_x"])))
    got = digits.reconstructions(model, guide, theta, phi, x)
    with np.errstate(over="ignore"):
        assert np.any(1.0 / (1.0 + np.exp(-(x @ phi["A"].T + phi["c"]))) == 1.0)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_the_importance_estimate_has_the_exact_mean_at_k1_and_stays_below_the_likelihood():
    """At K = 1 the estimate's mean is the ELBO, Σ_z q(z|x) log(p(z, x) / q(z|x)), enumerated here; at larger K
    it rises towards the exact log-likelihood.  Tolerances are 5 of the function's own standard errors
    (a false failure about once in 1.7 million for a normal estimate); the errors are checked against the
    spread of independent repeats."""
    model, guide = SigmoidBeliefNet(BITS, 64), digits.BernoulliGuide(BITS, 64)
    theta, phi = model.init_theta(np.random.default_rng(6)), guide.init_phi(np.random.default_rng(7))
    theta = {k: 0.3 * v for k, v in theta.items()}           # a milder model: an SE near 0.013 nats at R = 1000
    phi = {"A": 10.0 * phi["A"], "c": np.linspace(-2.0, 2.0, BITS)}   # a guide far from uniform
    x = held_out_images()[:20]
    elbo, variance = [], []
    for image in x:
        terms = []
        for z in itertools.product((0, 1), repeat=BITS):
            z = np.array(z, float)
            log_q = log_bernoulli(z, phi["A"] @ image + phi["c"])
            terms.append((np.exp(log_q), brute_force_log_joint(theta, z, image) - log_q))
        elbo.append(sum(q * log_w for q, log_w in terms))
        variance.append(sum(q * log_w ** 2 for q, log_w in terms) - elbo[-1] ** 2)
    rng = np.random.default_rng(8)
    mean, se = digits.importance_estimate(model, guide, theta, phi, x, 1, 1000, rng)
    assert abs(mean - np.mean(elbo)) < 5 * se
    # the standard error against the exact one, sqrt(Σ_n Var_q[log w_n] / R) / N: estimated from 20 × 999 degrees
    # of freedom its relative error is ~1 %, so ±10 % is beyond 5 of it
    assert se == pytest.approx(np.sqrt(np.sum(variance) / 1000) / len(x), rel=0.1)
    # K = 5 against K particles drawn one by one by the guide's own sampler (independent of the counts)
    direct = []
    for _ in range(200):
        z = guide.sample(phi, x, 5, rng)
        direct.append([brute_force_log_mean_weight(theta, phi, z[:, n], image) for n, image in enumerate(x)])
    direct = np.array(direct)
    direct_se = np.sqrt(np.sum(np.var(direct, axis=0, ddof=1)) / len(direct)) / len(x)
    mean_5, se_5 = digits.importance_estimate(model, guide, theta, phi, x, 5, 400, rng)
    assert abs(mean_5 - direct.mean()) < 5 * np.hypot(se_5, direct_se)
    exact = np.mean(model.log_marginal(theta, x))
    mean_100, se_100 = digits.importance_estimate(model, guide, theta, phi, x, 100, 4, rng)
    assert mean < mean_100 < exact + 5 * se_100
    with pytest.raises(ValueError, match="replicates must be at least 2"):
        digits.importance_estimate(model, guide, theta, phi, x, 5, 1, rng)


def test_the_exact_held_out_log_likelihood_is_the_brute_force_sum():
    _, held_out = digits.load_digits()
    model = SigmoidBeliefNet(BITS, 64)
    theta = model.init_theta(np.random.default_rng(3))
    got = model.log_marginal(theta, held_out[:5])
    np.testing.assert_allclose(got, brute_force_log_likelihood(theta, held_out[:5]), rtol=0, atol=1e-9)


@pytest.mark.parametrize("w_scale, a_scale", [(1.0, 1.0), (3.0, 3000.0)])
def test_the_exact_measures_are_the_brute_force_sums_one_state_at_a_time(w_scale, a_scale):
    """exact_measures (the model's posterior table and the guide's logits as products, in chunks) against
    log Σ_z p(z, x) and ‖q − p(·|x)‖₂ summed state by state from the definitions; a sharp guide and model so
    some probabilities underflow in float64."""
    model, guide = SigmoidBeliefNet(BITS, 64), digits.BernoulliGuide(BITS, 64)
    theta, phi = model.init_theta(np.random.default_rng(9)), guide.init_phi(np.random.default_rng(10))
    theta["W"] *= w_scale                          # a sharper model (its logits stay where the brute force is exact)
    phi["A"] *= a_scale                            # at 3000 some bits are deterministic: q(z_i = 1|x) is 0.0 or 1.0
    x = held_out_images()[:7]
    log_p, errors = brute_force_log_likelihood(theta, x), []
    for n, image in enumerate(x):
        error = 0.0
        for z in itertools.product((0, 1), repeat=BITS):
            z = np.array(z, float)
            with np.errstate(over="ignore"):
                p = 1.0 / (1.0 + np.exp(-(phi["A"] @ image + phi["c"])))
            q = np.prod(np.where(z == 1, p, 1 - p))
            error += (q - np.exp(brute_force_log_joint(theta, z, image) - log_p[n])) ** 2
        errors.append(np.sqrt(error))
    for chunk in (None, 3):
        got = digits.exact_measures(model, guide, theta, phi, x, chunk=chunk)
        assert got[0] == pytest.approx(np.mean(log_p), abs=1e-9)
        assert got[1] == pytest.approx(np.mean(errors), abs=1e-12)


def test_training_sees_the_belief_net_without_its_enumerations():
    """The model training runs on has no support, log_marginal, posterior or data_support (so train's generic
    evaluation does not pair 65,536 states with every image), and the same densities and gradients."""
    from rws_ref import protocol
    model, seen = SigmoidBeliefNet(3, 4), digits._Trained(3, 4)
    for name in ("support", "log_marginal", "posterior", "data_support"):
        assert callable(getattr(model, name)) and getattr(seen, name) is None
    assert protocol.support(seen) is None and seen.theta_shapes == model.theta_shapes
    rng = np.random.default_rng(0)
    theta, z, x = model.init_theta(rng), rng.integers(0, 2, (2, 5, 3)).astype(float), rng.integers(0, 2, (5, 4))
    for a, b in zip(model.log_joint_vjp(theta, z, x)[1](np.ones((2, 5))).values(),
                    seen.log_joint_vjp(theta, z, x.astype(float))[1](np.ones((2, 5))).values()):
        np.testing.assert_array_equal(a, b)


def test_the_grid_is_the_papers_ws_at_one_particle_and_every_rws_at_several():
    assert digits._pairs(digits.METHODS, digits.KS) == [("WS", 1)] + [
        (m, K) for m in digits.METHODS if m != "WS" for K in (5, 20)]
    assert digits.METHODS["RWS"] == {"method": "insomnia", "iota": 0.5, "dreams": digits.BATCH}
    assert digits.METHODS["RWS-sleep"]["dreams"] == digits.METHODS["WS"]["dreams"] == digits.BATCH
    with pytest.raises(ValueError, match="no run in the grid"):
        digits.bb2015_digits("unused", methods=("WS",), ks=(5,))
    with pytest.raises(ValueError, match="latent_bits must be one of"):
        digits.bb2015_digits("unused", latent_bits=12)


def test_a_quick_budget_runs_and_resumes(tmp_path):
    """Two methods at two K (the whole grid runs the same code path; .ci/run's time stays near a minute);
    8 latent bits, and one run at 16."""
    out = tmp_path / "bb2015"
    kw = dict(budget=0.0005, methods=("WS", "RWS", "RWS-wake"), ks=(1, 5), jobs=1, seeds=2, latent_bits=8)
    rows, summary, _ = digits.bb2015_digits(out, **kw)
    assert {(r["method"], r["K"]) for r in rows} == {("WS", 1), ("RWS", 5), ("RWS-wake", 5)}
    start = [r["log_likelihood"] for r in rows if r["iteration"] == 0]
    end = [r["log_likelihood"] for r in rows if r["iteration"] == 10]
    assert all(-60 < v < -30 for v in start) and np.mean(end) > np.mean(start)       # it learns, exactly measured
    assert all(r["is_estimate"] <= r["log_likelihood"] + 1.0 for r in rows)
    assert summary["iterations"] == 10 and len(summary["final"]) == 3
    assert (out / "bb2015_digits.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "bb2015_digits_images.png").read_bytes()[:4] == b"\x89PNG"
    run = json.loads((out / "runs" / "RWS-K5-seed1.json").read_text())  # the final θ is the one evaluated
    theta = {k: np.array(v) for k, v in run["parameters"]["theta"].items()}
    final = {(r["method"], r["K"], r["seed"]): r["log_likelihood"] for r in rows if r["iteration"] == 10}
    assert np.mean(brute_force_log_likelihood(theta, held_out_images())) == pytest.approx(final["RWS", 5, 1],
                                                                                          abs=1e-9)
    # the paired part: the differences seed by seed, against the reference at its K
    pair = summary["paired"]["WS K=1 − RWS K=5"]
    d = [final["WS", 1, s] - final["RWS", 5, s] for s in (0, 1)]
    assert pair["seeds"] == 2 and pair["mean"] == pytest.approx(np.mean(d), abs=1e-12)
    assert pair["sd"] == pytest.approx(np.std(d, ddof=1), abs=1e-12)
    assert set(summary["paired"]) == {"WS K=1 − RWS K=5", "RWS-wake K=5 − RWS K=5"}
    assert "paired by seed" in digits.summary_table(summary)
    assert run["seconds"] > 0
    before = (out / "results.csv").read_bytes()
    digits.bb2015_digits(out, **kw)                                 # every run is found finished
    assert (out / "results.csv").read_bytes() == before
    rows16 = digits.bb2015_digits(tmp_path / "sixteen", budget=0.0005, methods=("RWS",), ks=(5,))[0]
    run = json.loads((tmp_path / "sixteen" / "runs" / "RWS-K5-seed0.json").read_text())
    assert len(run["parameters"]["theta"]["b_z"]) == 16
    theta = {k: np.array(v) for k, v in run["parameters"]["theta"].items()}
    model = SigmoidBeliefNet(16, 64)
    assert rows16[-1]["log_likelihood"] == pytest.approx(np.mean(model.log_marginal(theta, held_out_images())),
                                                         abs=1e-9)


def test_the_command_line_takes_the_experiment_and_refuses_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:                         # argparse: one line, exit status 2
        main(["reproduce", "bb2015-digits", "--budget", "2", "--out", str(tmp_path / "x")])
    assert stop.value.code == 2 and "--budget" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert main(["reproduce", "bb2015-digits", "--methods", "RWS", "NOPE", "--out", str(tmp_path / "y")]) != 0
    assert "NOPE" in capsys.readouterr().err and not (tmp_path / "y").exists()
