"""The user's code cannot break the oracle: a catalogue of misbehaving callables, tolerances, files and
folders, each with its exact error class and words, and nothing of the user's changed in memory or on disk.

Classes (each case names its class): verdict (no silently wrong verdict), data (the user's data neither
changed nor lost), error (the user's own error shown as it is), message (errors that say what is wrong),
long (long work announces itself, hangs are bounded), determinism.
"""
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import rws_ref
from rws_ref import exact, protocol
from rws_ref.checking import adapters, diagnose, endtoend, limits, sampling, testing, vectors
from rws_ref.cli import main
from rws_ref.estimators import NonFiniteLogWeights
from rws_ref.experiments import le2019_gmm as reproduce
from rws_ref.experiments import runner
from rws_ref.experiments.train import TrainConfig, train

LG, DG = rws_ref.LinearGaussian(2, 3), rws_ref.DiagonalGaussianGuide(2, 3)
MIX, CAT = rws_ref.GaussianMixture(4, scale=6.0), rws_ref.SoftmaxLinearGuide(4, loc=15.0, scale=10.0)
_R = np.random.default_rng(0)
TH, PH = LG.init_theta(_R), DG.init_phi(_R)
X = LG.sample(TH, 3, _R)[1]
Z = DG.sample(PH, X, 4, _R)
TH_M, PH_M = MIX.true_theta(), CAT.init_phi(_R)
X_M = np.array([3.0, 12.0])
RIGHT = rws_ref.wake_theta(LG, DG, TH, PH, X, Z)
FLIPPED = {k: -v for k, v in RIGHT.items()}


class Writer(rws_ref.LinearGaussian):
    """A density that writes into its arguments (θ, z and x)."""

    def log_joint_vjp(self, theta, z, x):
        theta["W"] *= 16.0
        z[...] = np.sort(z, axis=0)
        x *= 16.0
        return super().log_joint_vjp(theta, z, x)


class Duplicated(rws_ref.GaussianMixture):
    def support(self):
        return np.array([0, 1, 1, 2, 3])


class Missing(rws_ref.GaussianMixture):
    def support(self):
        return np.arange(3)                                  # the guide samples all four states


class NaNAtOneState(rws_ref.GaussianMixture):
    def log_joint_vjp(self, theta, z, x):
        log_p, pullback = super().log_joint_vjp(theta, z, x)
        return np.where(np.asarray(z) == 2, np.nan, log_p), pullback


class Raising(rws_ref.GaussianMixture):
    """A density that raises the user's own ValueError at the 10th call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def log_joint_vjp(self, theta, z, x):
        self.calls += 1
        if self.calls == 10:
            raise ValueError("my density cannot handle this batch")
        return super().log_joint_vjp(theta, z, x)


def sampler(returns):
    class Sampler(rws_ref.GaussianMixture):
        def sample(self, theta, n, rng):
            return returns(super().sample(theta, n, rng))
    return Sampler(4, scale=6.0)


class Other(rws_ref.GaussianMixture):
    def init_theta(self, rng):
        return {"logits": np.zeros(5)}


def _adapted(**changes):
    args = dict(theta_shapes={"logits": (4,)}, z_shape=(), x_shape=(), log_joint=MIX.log_joint,
                grad_log_joint=MIX.grad_log_joint, z_domain=4)
    args.update(changes)
    return lambda t: lambda: adapters.Model(**args)


def _run_file(tmp_path, content):
    out = tmp_path / "rep"
    reproduce.le2019_gmm(out, budget=0.0001, methods=("WW",), ks=(2,))
    path = out / "runs" / "WW-K2-seed0.json"
    data = json.loads(path.read_text())
    path.write_text(content(data))
    return lambda: reproduce.le2019_gmm(out, budget=0.0001, methods=("WW",), ks=(2,))


def _global_rng_estimator(theta, phi, x, rng):
    return rws_ref.wake_phi(MIX, CAT, theta, phi, x, CAT.sample(phi, x, 3, np.random.default_rng(
        np.random.randint(2 ** 31))))


def _theta_writer(theta, phi, x, rng):
    theta["logits"][0] += 1.0
    return rws_ref.wake_phi(MIX, CAT, theta, phi, x, CAT.sample(phi, x, 3, rng))


def _theta_writing_loss(theta, phi, x, z):
    theta["logits"][0] = 5.0
    return None, rws_ref.wake_theta(MIX, CAT, theta, phi, x, z), None


class _FixedSeedGuide(rws_ref.SoftmaxLinearGuide):
    def sample(self, phi, x, K, rng):
        return super().sample(phi, x, K, np.random.default_rng(0))


class _SleepingGuide(rws_ref.SoftmaxLinearGuide):
    def sample(self, phi, x, K, rng):
        time.sleep(60)


def _fresh_keeps_the_users_file(t):
    out = t / "f"
    reproduce.le2019_gmm(out, budget=0.0001, methods=("WW",), ks=(2,))
    (out / "runs" / "my-notes.json").write_text('{"mine": true}')
    reproduce.le2019_gmm(out, budget=0.0001, methods=("WW",), ks=(2,), fresh=True)    # rewrites rws-ref's files

    def call():
        assert (out / "runs" / "my-notes.json").read_text() == '{"mine": true}'
        raise AssertionError("--fresh kept the user's own file and removed only rws-ref's")
    return call



CATALOGUE = [
    # (class, case, build(tmp_path) -> call, exception class, words)
    ("verdict", "a NaN rtol in compare", lambda t: lambda: diagnose.compare(
        "wake_theta", FLIPPED, LG, DG, TH, PH, X, Z, rtol=float("nan")), ValueError, "rtol must be a finite number"),
    ("verdict", "an infinite atol in compare", lambda t: lambda: diagnose.compare(
        "wake_theta", FLIPPED, LG, DG, TH, PH, X, Z, atol=float("inf")), ValueError, "atol must be a finite number"),
    ("verdict", "a negative rtol in compare", lambda t: lambda: diagnose.compare(
        "wake_theta", RIGHT, LG, DG, TH, PH, X, Z, rtol=-1e-8), ValueError, "rtol must be a finite number >= 0"),
    ("verdict", "a string tolerance in compare", lambda t: lambda: diagnose.compare(
        "wake_theta", RIGHT, LG, DG, TH, PH, X, Z, rtol="1e-8"), TypeError, "rtol must be a finite number"),
    ("verdict", "a complex result in compare", lambda t: lambda: diagnose.compare(
        "wake_theta", {k: v + 0j for k, v in RIGHT.items()}, LG, DG, TH, PH, X, Z), TypeError, "is complex"),
    ("verdict", "a NaN rtol in check_estimator", lambda t: lambda: testing.check_estimator(
        rws_ref.wake_theta, "wake_theta", rtol=float("nan")), ValueError, "rtol must be a number in (0, 1)"),
    ("verdict", "a support with a state twice", lambda t: lambda: exact.elbo_is(
        Duplicated(4, scale=6.0), CAT, TH_M, PH_M, X_M, 2), ValueError, "lists state 1 2 times"),
    ("verdict", "a support missing a state the guide samples", lambda t: lambda: exact.elbo_is(
        Missing(4, scale=6.0), CAT, TH_M, PH_M, X_M, 2), ValueError, "puts mass on states outside the support"),
    ("verdict", "a NaN log density at one support state (oracle)", lambda t: lambda: exact.elbo_is(
        NaNAtOneState(4, scale=6.0), CAT, TH_M, PH_M, X_M, 2), ValueError, "at the support state 2"),
    ("verdict", "a NaN log density at one support state (training)", lambda t: lambda: train(
        NaNAtOneState(4, scale=6.0), CAT, X_M, TrainConfig(K=2, iters=2, batch_size=2, grad_replicates=0)),
     NonFiniteLogWeights, "log p = nan"),
    ("verdict", "a reproduce rerun with another budget", lambda t: (
        reproduce.le2019_gmm(t / "r", budget=0.0001, methods=("WW",), ks=(2,)),
        lambda: reproduce.le2019_gmm(t / "r", budget=0.0002, methods=("WW",), ks=(2,)))[1],
     ValueError, "holds runs of another configuration: budget = 0.0001 there, 0.0002 now"),
    ("verdict", "a run file holding NaN", lambda t: _run_file(t, lambda d: json.dumps(
        {**d, "rows": d["rows"][:1] + [{**d["rows"][1], "model_error": float("nan")}]})), ValueError,
     "a row is not finite numbers"),
    ("verdict", "an empty run file", lambda t: _run_file(t, lambda d: ""), ValueError,
     "the run file is not readable JSON"),
    ("verdict", "a run file without rows", lambda t: _run_file(t, lambda d: json.dumps({**d, "rows": []})),
     ValueError, "holds no rows"),
    ("verdict", "a run file without its final parameters", lambda t: _run_file(
        t, lambda d: json.dumps({k: v for k, v in d.items() if k != "parameters"})), ValueError,
     "lacks the final parameters"),
    ("verdict", "a truncated run file", lambda t: _run_file(t, lambda d: json.dumps(d)[:40]), ValueError,
     "WW-K2-seed0.json: the run file is not readable JSON"),
    ("verdict", "a run file whose last row is missing", lambda t: _run_file(t, lambda d: json.dumps(
        {**d, "rows": d["rows"][:-1]})), ValueError, "WW-K2-seed0.json: the run file lacks its last row"),
    ("verdict", "a loss returning a value and no gradients", lambda t: lambda: testing.check_loss(
        lambda theta, phi, x, z: (1.0, None, None), "wake_phi", MIX, CAT).assert_ok(), AssertionError,
     "no gradient came back"),
    ("verdict", "a stochastic estimator drawing from the global NumPy generator", lambda t: lambda:
        endtoend.check_stochastic(_global_rng_estimator, "wake_phi", MIX, CAT, TH_M, PH_M, X_M,
                                  replicates=20).assert_ok(), AssertionError, "global or unseeded generator"),
    ("verdict", "a guide sampler ignoring its rng", lambda t: lambda: sampling.check_guide_sampler(
        _FixedSeedGuide(4, loc=15.0, scale=10.0), PH_M, X_M).assert_ok(), AssertionError,
     "ignores the rng it is given"),
    ("data", "a stochastic estimator writing into θ", lambda t: lambda: endtoend.check_stochastic(
        _theta_writer, "wake_phi", MIX, CAT, TH_M, PH_M, X_M, replicates=20), ValueError, "read-only"),
    ("data", "a loss writing into θ", lambda t: lambda: testing.check_loss(
        _theta_writing_loss, "wake_phi", MIX, CAT, theta=TH_M), ValueError, "read-only"),
    ("data", "--fresh in a folder holding the user's own json", lambda t: _fresh_keeps_the_users_file(t),
     AssertionError, "kept"),
    ("long", "check_stochastic with a billion replicates", lambda t: lambda: endtoend.check_stochastic(
        _global_rng_estimator, "wake_phi", MIX, CAT, TH_M, PH_M, X_M, replicates=10 ** 9), ValueError,
     "above the limit of 1,000,000"),
    ("long", "a stochastic estimator that never returns, with a timeout", lambda t: lambda:
        endtoend.check_stochastic(lambda theta, phi, x, rng: time.sleep(60), "wake_phi", MIX, CAT, TH_M, PH_M, X_M,
                                  replicates=10, timeout=0.2), TimeoutError, "did not return within 0.2 s"),
    ("long", "a sampler that never returns, with a timeout", lambda t: lambda: sampling.check_guide_sampler(
        _SleepingGuide(4, loc=15.0, scale=10.0), PH_M, X_M, timeout=0.2), TimeoutError, "did not return within"),
    ("long", "a loss that never returns, with a timeout", lambda t: lambda: testing.check_loss(
        lambda theta, phi, x, z: time.sleep(60), "wake_phi", MIX, CAT, timeout=0.2), TimeoutError,
     "did not return within 0.2 s"),
    ("data", "a density writing into θ, z and x", lambda t: lambda: rws_ref.wake_theta(
        Writer(2, 3), DG, TH, PH, X, Z), ValueError, "read-only"),
    ("data", "a reproduce folder holding someone's results.csv", lambda t: (
        (t / "mine").mkdir(), (t / "mine" / "results.csv").write_text("precious"),
        lambda: reproduce.le2019_gmm(t / "mine", budget=0.0001, methods=("WW",), ks=(2,)))[2],
     ValueError, "holds files rws-ref did not write (results.csv"),
    ("error", "the user's ValueError at the 10th call of the density", lambda t: lambda: train(
        Raising(4, scale=6.0), CAT, X_M, TrainConfig(K=2, iters=20, batch_size=2, grad_replicates=0, eval_every=50)),
     ValueError, "my density cannot handle this batch"),
    ("message", "a non-callable log density", _adapted(log_joint=np.zeros(3)), TypeError,
     "the log density must be a callable"),
    ("message", "an int for a shape", _adapted(z_shape=3), TypeError, "z_shape must be a tuple of dimensions"),
    ("message", "an int for a parameter shape", _adapted(theta_shapes={"logits": 4}), TypeError,
     "theta_shapes['logits'] must be a tuple of dimensions"),
    ("message", "sample() returning None", lambda t: lambda: protocol.sample_model(
        sampler(lambda out: None), TH_M, 3, _R), TypeError, "sample(theta, n, rng) must return (z, x); got NoneType"),
    ("message", "sample() returning a 3-tuple", lambda t: lambda: protocol.sample_model(
        sampler(lambda out: out + (1,)), TH_M, 3, _R), TypeError, "must return (z, x); got a tuple of 3"),
    ("message", "sample() outside the declared domain", lambda t: lambda: protocol.sample_model(
        sampler(lambda out: (out[0] + 7, out[1])), TH_M, 3, _R), ValueError, "sample output z must hold categories"),
    ("message", "sample() of the wrong shape", lambda t: lambda: protocol.sample_model(
        sampler(lambda out: (out[0], out[1][:2])), TH_M, 3, _R), ValueError, "sample output x must hold n = 3"),
    ("message", "sample() used by check_estimator", lambda t: lambda: testing.check_estimator(
        rws_ref.sleep_phi, "sleep_phi", sampler(lambda out: None), CAT, max_examples=2).assert_ok(),
     AssertionError, "sample(theta, n, rng) must return (z, x)"),
    ("message", "init_theta of another shape", lambda t: lambda: protocol.init_params(Other(4), _R), ValueError,
     "init_theta output['logits'] must have shape (4,)"),
    ("message", "kind given as a list", lambda t: lambda: testing.check_estimator(
        rws_ref.wake_theta, ["wake_theta"]), TypeError, "kind must be one of elbo_is"),
    ("message", "a vectors file missing a field", lambda t: (
        (t / "v.json").write_text(json.dumps({**json.loads(open(vectors.DEFAULT_PATH).read()), "numerics": None,
                                              "cases": json.loads(open(vectors.DEFAULT_PATH).read())["cases"][:1]})),
        lambda: vectors.load(t / "v.json"))[1], ValueError, "not a valid vectors file at numerics"),
    ("message", "a path where loaded vectors belong", lambda t: lambda: diagnose.vectors({}, 42), TypeError,
     "data must be loaded vectors"),
    ("long", "a billion examples", lambda t: lambda: testing.check_estimator(
        rws_ref.wake_theta, "wake_theta", max_examples=10 ** 9), ValueError, "above the limit of 10,000"),
    ("long", "a hundred million seeds", lambda t: lambda: reproduce.le2019_gmm(t / "big", seeds=10 ** 8),
     exact.TooLarge, "above the limit of 2,000 runs"),
    ("long", "a density that never returns, with a timeout", lambda t: lambda: rws_ref.wake_theta(
        limits.timed(type("Slow", (rws_ref.LinearGaussian,), {"log_joint_vjp": lambda self, *a: time.sleep(60)})(
            2, 3), 0.2), DG, TH, PH, X, Z), TimeoutError, "did not return within 0.2 s"),
]


def _snapshot(folder):
    return {os.path.relpath(os.path.join(d, f), folder): os.path.getsize(os.path.join(d, f))
            for d, _, files in os.walk(folder) for f in files}


WATCHED = [TH, PH, X, Z, TH_M, PH_M, X_M]


@pytest.mark.parametrize("cls, case, build, exc, words", CATALOGUE, ids=[f"{c[0]}: {c[1]}" for c in CATALOGUE])
def test_the_catalogue(cls, case, build, exc, words, tmp_path):
    call = build(tmp_path)
    memory = [{k: v.copy() for k, v in a.items()} if isinstance(a, dict) else a.copy() for a in WATCHED]
    disk = _snapshot(tmp_path)
    with pytest.raises(exc) as info:
        call()
    assert type(info.value) is exc and words in str(info.value), f"{case}: {type(info.value)} {info.value}"
    for before, now in zip(memory, WATCHED):               # nothing of the caller's changed in memory
        pairs = [(before[k], now[k]) for k in now] if isinstance(now, dict) else [(before, now)]
        assert all(np.array_equal(a, b) for a, b in pairs), case
    assert _snapshot(tmp_path) == disk, case               # and nothing on disk


def test_the_catalogue_holds_every_class_and_at_least_thirty_cases():
    assert {c[0] for c in CATALOGUE} == {"verdict", "data", "error", "message", "long"} and len(CATALOGUE) >= 45


# -- what the catalogue's shape cannot hold --------------------------------------------------------------


def test_a_guide_sorting_z_in_place_cannot_reach_the_particles_wake_theta_weighs():
    class Sorting(rws_ref.DiagonalGaussianGuide):
        def log_prob_vjp(self, phi, z, x):
            z.sort(axis=0)
            return super().log_prob_vjp(phi, z, x)
    z = Z.copy()
    with pytest.raises(ValueError, match="read-only"):
        rws_ref.wake_theta(LG, Sorting(2, 3), TH, PH, X, z)
    assert np.array_equal(z, Z)


def test_checkpoint_and_save_params_must_differ_and_nothing_is_written(tmp_path, capsys):
    path = str(tmp_path / "run.npz")
    assert main(["train", "--model", "mixture", "--iters", "2", "--checkpoint", path, "--save-params", path]) == 2
    assert "--save-params and --checkpoint name the same file" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_save_params_into_a_folder_where_nothing_can_be_created_is_refused_before_training(capsys):
    started = time.perf_counter()
    assert main(["train", "--model", "mixture", "--iters", "100000", "--save-params", "/proc/p.npz"]) == 2
    err = capsys.readouterr().err
    assert "no file can be created in the folder /proc" in err and time.perf_counter() - started < 5


def test_the_command_line_names_the_users_file_and_line_and_shows_the_traceback_on_request(tmp_path):
    (tmp_path / "mymodel.py").write_text(textwrap.dedent("""
        from rws_ref import GaussianMixture, SoftmaxLinearGuide

        class Mine(GaussianMixture):
            def log_joint_vjp(self, theta, z, x):
                return 1 / 0

        pair = (Mine(4), SoftmaxLinearGuide(4))
    """))
    run = lambda *a: subprocess.run([sys.executable, "-m", "rws_ref.cli", *a], capture_output=True, text=True,
                                    cwd=tmp_path)
    short = run("audit", "--model", "mymodel:pair")
    assert short.returncode == 2 and len(short.stderr.strip().splitlines()) == 1
    assert f"error in your code at {tmp_path / 'mymodel.py'}:6 in log_joint_vjp: ZeroDivisionError" in short.stderr
    full = run("--traceback", "audit", "--model", "mymodel:pair")
    assert "Traceback (most recent call last)" in full.stderr and "return 1 / 0" in full.stderr
    (tmp_path / "broken.py").write_text("def pair(:\n    pass\n")           # a syntax error is the user's too
    syntax = run("audit", "--model", "broken:pair")
    assert syntax.returncode == 2 and len(syntax.stderr.strip().splitlines()) == 1
    assert f"error in your code at {tmp_path / 'broken.py'}:1: SyntaxError" in syntax.stderr, syntax.stderr
    assert "internal error" not in syntax.stderr


def test_check_estimator_shows_the_users_frames_not_the_librarys():
    def mine(model, guide, theta, phi, x, z):
        return helper(z)

    def helper(z):
        raise KeyError("my own bug")
    report = testing.check_estimator(mine, "wake_theta", MIX, CAT, max_examples=2)
    detail = report.failed()[0].detail
    assert "KeyError: 'my own bug'" in detail and "in helper" in detail and "in mine" in detail
    assert "hypothesis" not in detail and "rws_ref/properties.py" not in detail


def test_too_large_for_the_oracle_is_not_applicable_never_the_users_failure():
    report = testing.check_estimator(rws_ref.wake_theta, "wake_theta", MIX, CAT, max_examples=2,
                                     exact_ks=(10 ** 6,))
    result = next(r for r in report.results if r.name == "exact mean (oracle)")
    assert report.ok and result.status == "not applicable" and result.detail.startswith("too large")


def test_local_jobs_are_capped_at_the_pending_runs(monkeypatch):
    import multiprocessing
    sizes = []
    real = multiprocessing.get_context("fork").Pool

    class Counting:
        def Pool(self, n):
            sizes.append(n)
            return real(n)
    monkeypatch.setattr(multiprocessing, "get_context", lambda kind: Counting())
    assert runner.map_runs(abs, [-1, -2], jobs=1000) == [1, 2] and sizes == [2]


def test_a_valid_numpy_float32_budget_is_accepted(tmp_path):
    _, summary, _ = reproduce.le2019_gmm(tmp_path / "f32", budget=np.float32(0.0001), methods=("WW",), ks=(2,))
    assert summary["iterations"] == 10


# -- the survivors of the mutation test --------------------------------------------------------------


def test_the_inference_error_is_against_the_true_posterior_not_the_learned_one():
    from rws_ref.experiments.train import posterior_error
    model, guide = rws_ref.GaussianMixture(20), rws_ref.models.benchmark_guide("mlp")
    rows = reproduce.run_one(("WW", 2, 0, 20, None))["rows"]
    truth, start = reproduce._problem()[2:]
    x = model.sample(truth, reproduce.N_EVAL, np.random.default_rng([0, 2019]))[1]
    phi0 = guide.init_phi(np.random.default_rng(0))
    assert rows[0]["inference_error"] == pytest.approx(posterior_error(model, guide, truth, phi0, x), rel=1e-12)
    assert rows[0]["inference_error"] != pytest.approx(posterior_error(model, guide, start, phi0, x), rel=1e-6)


def test_consecutive_fresh_batches_differ_and_come_from_the_runs_generator():
    seen = []

    def fresh(rng, n):
        seen.append((id(rng), MIX.sample(TH_M, n, rng)[1]))
        return seen[-1][1]
    gen = np.random.default_rng(5)
    train(MIX, CAT, X_M, TrainConfig(K=2, iters=4, batch_size=3, grad_replicates=0), sample_data=fresh, rng=gen)
    assert {i for i, _ in seen} == {id(gen)} and len(seen) == 4
    assert all(not np.array_equal(a[1], b[1]) for a, b in zip(seen, seen[1:]))


def test_an_estimator_drawing_from_the_global_generator_is_flagged_under_the_same_seed():
    noisy = lambda *a: {k: v * (1 + 1e-3 * np.random.random()) for k, v in rws_ref.wake_phi(*a).items()}
    state = np.random.get_state()
    try:
        report = testing.check_estimator(noisy, "wake_phi", MIX, CAT, max_examples=3)
    finally:
        np.random.set_state(state)
    assert next(r for r in report.results if r.name == "deterministic").status == "fail"
