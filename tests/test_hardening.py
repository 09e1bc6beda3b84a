"""Hardening: a catalogue of bad input across the API and the command line, extreme
but valid input, and no global random state."""
import json
import subprocess
import sys

import numpy as np
import pytest

import rws_ref
from rws_ref import (
    BernoulliGuide,
    DefensiveGuide,
    DiagonalGaussianGuide,
    GaussianMixture,
    LinearGaussian,
    SigmoidBeliefNet,
    SoftmaxLinearGuide,
    analysis,
    exact,
    family,
    testing,
    vectors,
)
from rws_ref.estimators import NonFiniteLogWeights
from rws_ref.experiments.train import TrainConfig, load_checkpoint, train

LG, DG = LinearGaussian(2, 3), DiagonalGaussianGuide(2, 3)
MIX, CAT = GaussianMixture(4, scale=6.0), SoftmaxLinearGuide(4, loc=15.0, scale=10.0)
SBN, BERN = SigmoidBeliefNet(2, 3), BernoulliGuide(2, 3)
_R = np.random.default_rng(0)
TH, PH = LG.init_theta(_R), DG.init_phi(_R)
X = LG.sample(TH, 3, _R)[1]
Z = DG.sample(PH, X, 4, _R)
TH_M, PH_M = MIX.init_theta(_R), CAT.init_phi(_R)
X_M = np.array([1.0, 12.0])
Z_M = np.array([[0, 1], [2, 3]])


def _with(tree, key, value):
    out = dict(tree)
    out[key] = value
    return out


CATALOGUE = [
    # (kind of bad input, call, exception type, words the message must contain)
    ("z missing the particle axis", lambda: rws_ref.wake_theta(LG, DG, TH, PH, X, Z[0]), ValueError, "z"),
    ("z with another N", lambda: rws_ref.wake_phi(LG, DG, TH, PH, X, Z[:, :2]), ValueError, "z"),
    ("z with K = 0", lambda: rws_ref.log_weights(LG, DG, TH, PH, X, Z[:0]), ValueError, "K >= 1"),
    ("x of the wrong width", lambda: LG.log_joint(TH, Z, X[:, :2]), ValueError, "x"),
    ("empty batch", lambda: LG.log_marginal(TH, np.zeros((0, 3))), ValueError, "N >= 1"),
    ("complex data", lambda: LG.log_joint(TH, Z, X.astype(complex)), TypeError, "x"),
    ("string data", lambda: MIX.log_joint(TH_M, Z_M, np.array(["a", "b"])), TypeError, "x"),
    ("NaN in data", lambda: LG.log_joint(TH, Z, np.where(X > 0, np.nan, X)), ValueError, "x"),
    ("+inf in data", lambda: MIX.posterior(TH_M, np.array([np.inf, 1.0])), ValueError, "x"),
    ("NaN in θ", lambda: LG.sample(_with(TH, "W", np.full((3, 2), np.nan)), 2, _R), ValueError, "theta['W']"),
    ("-inf in φ", lambda: DG.mean(_with(PH, "c", np.array([-np.inf, 0.0])), X), ValueError, "phi['c']"),
    ("missing θ key", lambda: LG.log_joint({"mu": TH["mu"]}, Z, X), ValueError, "missing"),
    ("unexpected φ key", lambda: DG.log_prob(_with(PH, "extra", 1.0), Z, X), ValueError, "unexpected"),
    ("θ of the wrong shape", lambda: MIX.log_joint({"logits": np.zeros(5)}, Z_M, X_M), ValueError, "logits"),
    ("θ not a dict", lambda: LG.log_joint(np.zeros(3), Z, X), TypeError, "theta"),
    ("mixture z out of range", lambda: MIX.log_joint(TH_M, np.array([[4, 0]]), X_M), ValueError, "z"),
    ("mixture z fractional", lambda: CAT.log_prob(PH_M, np.array([[0.5, 1.0]]), X_M), ValueError, "z"),
    ("belief-net z not binary", lambda: SBN.log_joint(SBN.init_theta(_R), np.full((1, 1, 2), 2.0),
                                                      np.zeros((1, 3))), ValueError, "z"),
    ("weights of the wrong shape", lambda: LG.grad_log_joint(TH, Z, X, np.ones((3, 4))), ValueError, "weights"),
    ("K = 0 for sampling", lambda: DG.sample(PH, X, 0, _R), ValueError, "K"),
    ("K a float", lambda: CAT.sample(PH_M, X_M, 2.5, _R), TypeError, "K"),
    ("K a bool", lambda: DG.sample(PH, X, True, _R), TypeError, "K"),
    ("legacy RandomState", lambda: MIX.sample(TH_M, 3, np.random.RandomState(0)), TypeError, "rng"),
    ("seed instead of a Generator", lambda: SBN.init_theta(7), TypeError, "rng"),
    ("log weights all -inf", lambda: rws_ref.elbo_is(np.array([[-np.inf], [-np.inf]])), ValueError, "weight zero"),
    ("log weights with NaN", lambda: rws_ref.normalized_weights(np.array([[np.nan]])), ValueError, "NaN"),
    ("iota above 1", lambda: family.insomnia(LG, DG, TH, PH, X, Z, Z[0], X, 1.01), ValueError, "iota"),
    ("delta negative", lambda: DefensiveGuide(CAT, -0.2), ValueError, "delta"),
    ("VIMCO with K = 1", lambda: family.vimco_phi(MIX, CAT, TH_M, PH_M, X_M, Z_M[:1]), ValueError, "K >= 2"),
    ("reparameterized estimator on a discrete guide",
     lambda: family.stl_phi(MIX, CAT, TH_M, PH_M, X_M, np.zeros((1, 2))), TypeError, "reparameterizable"),
    ("oracle over its size limit",
     lambda: exact.elbo_is(GaussianMixture(), SoftmaxLinearGuide(), GaussianMixture().true_theta(),
                           SoftmaxLinearGuide().init_phi(_R), X_M, 50), exact.TooLarge, "max_terms"),
    ("oracle on a continuous latent", lambda: exact.moments(rws_ref.wake_phi, LG, DG, TH, PH, X, 2), TypeError,
     "support"),
    ("unknown training method", lambda: TrainConfig(method="adamw").validate(), ValueError, "method"),
    ("negative learning rate", lambda: TrainConfig(lr_theta=-1.0).validate(), ValueError, "lr_theta"),
    ("SNR study with one K", lambda: analysis.snr_study({"a": lambda K, r: r.random(2)}, [5], 10, _R), ValueError,
     "ks"),
    ("check_estimator of an unknown kind", lambda: testing.check_estimator(rws_ref.wake_theta, "iwae"), ValueError,
     "kind"),
    ("model dimension zero", lambda: SigmoidBeliefNet(0, 2), ValueError, "dz"),
    ("scalar oracle with a narrow guide",
     lambda: exact.scalar_laplace(LinearGaussian(1, 1), DiagonalGaussianGuide(1, 1),
                                  {"mu": np.zeros(1), "W": np.ones((1, 1)), "b": np.zeros(1), "log_sigma": np.zeros(1)},
                                  {"A": np.zeros((1, 1)), "c": np.zeros(1), "log_s": np.array([-2.0])},
                                  np.zeros((1, 1)), 3), ValueError, "posterior variance"),
    ("scalar oracle on a 2-d latent", lambda: exact.scalar_laplace(LG, DG, TH, PH, X, 3), TypeError, "z_shape (1,)"),
    ("guide of other dimensions", lambda: rws_ref.wake_theta(LG, DiagonalGaussianGuide(3, 3), TH,
                                                             DiagonalGaussianGuide(3, 3).init_phi(_R), X, Z),
     ValueError, "does not match"),
]


@pytest.mark.parametrize("kind, call, exc, words", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_bad_input_catalogue(kind, call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value), f"{kind}: {info.value}"


def test_the_catalogue_is_at_least_thirty_kinds():
    assert len({c[0] for c in CATALOGUE}) >= 30


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage", b'{"format": "rws_ref test vectors", "version": 1'])
def test_malformed_vector_and_checkpoint_files(tmp_path, content):
    path = tmp_path / "file"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=str(path)):
        vectors.load(path)
    with pytest.raises(ValueError, match=str(path)):
        load_checkpoint(path)


@pytest.mark.parametrize("args", [["train", "--resume", "{bad}"], ["vectors", "--out", "/proc/forbidden/v.json"],
                                  ["train", "--batch-size", "-3"], ["train", "--seed", "x"],
                                  ["audit", "--plot", "/nonexistent/dir/a.png"]])
def test_command_line_bad_input_is_one_line(tmp_path, args):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"\x00")
    args = [a.replace("{bad}", str(bad)) for a in args]
    result = subprocess.run([sys.executable, "-m", "rws_ref.cli", *args, "--no-progress"] if args[0] == "train"
                            else [sys.executable, "-m", "rws_ref.cli", *args], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# -- extreme but valid input -------------------------------------------------------------


def test_extreme_valid_input_gives_finite_correct_answers():
    # N = 1, K = 1
    one = rws_ref.wake_theta(LG, DG, TH, PH, X[:1], Z[:1, :1])
    want = LG.grad_log_joint(TH, Z[:1, :1], X[:1], np.ones((1, 1)))
    assert all(np.array_equal(one[k], want[k]) for k in want)
    # a particle whose weight underflows to exactly zero contributes nothing
    far = Z[:, :1].copy()
    far[0] = 1e3
    log_w = rws_ref.log_weights(LG, DG, TH, PH, X[:1], far)
    assert np.exp(log_w[0, 0] - log_w.max()) == 0.0
    got = rws_ref.wake_theta(LG, DG, TH, PH, X[:1], far)
    rest = rws_ref.wake_theta(LG, DG, TH, PH, X[:1], far[1:])
    assert all(np.allclose(got[k], rest[k], rtol=1e-13, atol=0) for k in got)
    # a large K: 200,000 particles; finite, weights summing to 1
    big = DG.sample(PH, X[:1], 200_000, np.random.default_rng(1))
    g = rws_ref.wake_theta(LG, DG, TH, PH, X[:1], big)
    assert all(np.all(np.isfinite(v)) for v in g.values())
    w = rws_ref.normalized_weights(rws_ref.log_weights(LG, DG, TH, PH, X[:1], big))
    assert abs(w.sum() - 1.0) < 1e-12


def test_the_oracle_in_tiny_chunks_equals_the_default(monkeypatch):
    mean, var = exact.moments(rws_ref.wake_phi, MIX, CAT, TH_M, PH_M, X_M, 6)
    monkeypatch.setattr(exact.enumeration, "_CHUNK_BYTES", 2000)                  # a few multisets per chunk
    mean_c, var_c = exact.moments(rws_ref.wake_phi, MIX, CAT, TH_M, PH_M, X_M, 6)
    for k in mean:
        np.testing.assert_allclose(mean_c[k], mean[k], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(var_c[k], var[k], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(exact.elbo_is(MIX, CAT, TH_M, PH_M, X_M, 6),
                               [exact.elbo_is(MIX, CAT, TH_M, PH_M, X_M[n:n + 1], 6)[0] for n in range(2)], rtol=1e-12)


# -- no global random state -----------------------------------------------------------------


def _everything(seed):
    rng = np.random.default_rng(seed)
    theta = MIX.init_theta(rng)
    x = MIX.sample(theta, 5, rng)[1]
    z = CAT.sample(PH_M, x, 3, rng)
    result = train(MIX, CAT, x, TrainConfig(K=3, iters=6, batch_size=3, eval_every=3, seed=seed))
    draw = lambda K, r: rws_ref.wake_phi(MIX, CAT, theta, PH_M, x, CAT.sample(PH_M, x, K, r))["w"]
    study = analysis.snr_study({"w": draw}, [1, 2], 5, rng, n_boot=10)
    return np.concatenate([x, z.ravel(), result.theta["logits"], study.snr["w"]])


def test_the_global_numpy_generator_is_neither_used_nor_touched():
    np.random.seed(123)
    before = np.random.get_state()
    a = _everything(5)
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]
    np.random.seed(999)
    np.random.standard_normal(1000)                                   # draw from the global generator
    b = _everything(5)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, _everything(6))                      # the seed does matter


# -- the catalogue, continued: classes of issue 13 -----------------------------------------------

SBN_TH = SBN.init_theta(np.random.default_rng(3))
CFG = dict(K=3, iters=4, batch_size=2, eval_every=2)
MORE = [
    # errors that name the argument
    ("x as a list in a family estimator", lambda: family.reinforce_phi(MIX, CAT, TH_M, PH_M, [1.0, "a"], Z_M),
     TypeError, "x must be"),
    ("estimator None for the oracle", lambda: exact.moments(None, MIX, CAT, TH_M, PH_M, X_M, 2), TypeError,
     "estimator"),
    ("max_terms a string", lambda: exact.elbo_is(MIX, CAT, TH_M, PH_M, X_M, 2, max_terms="lots"), TypeError,
     "max_terms"),
    ("max_terms NaN", lambda: exact.elbo_is(MIX, CAT, TH_M, PH_M, X_M, 2, max_terms=float("nan")), TypeError,
     "max_terms"),
    ("guide with fewer components than the model",
     lambda: rws_ref.wake_phi(MIX, SoftmaxLinearGuide(3), TH_M, SoftmaxLinearGuide(3).init_phi(_R), X_M, Z_M),
     ValueError, "does not match"),
    ("guide scale a string", lambda: SoftmaxLinearGuide(4, scale="wide"), ValueError, "scale"),
    ("mixture scale a string", lambda: GaussianMixture(4, scale="5"), ValueError, "scale"),
    ("guide loc NaN", lambda: SoftmaxLinearGuide(4, loc=float("nan")), ValueError, "loc"),
    ("unknown freeze key", lambda: train(MIX, CAT, X_M, TrainConfig(freeze=("mu",), **CFG)), ValueError, "freeze"),
    ("tie given as one string", lambda: TrainConfig(tie="log_sigma").validate(), TypeError, "tie"),
    ("config as a dict", lambda: train(MIX, CAT, X_M, {"K": 3}), TypeError, "config must be a TrainConfig"),
    ("checkpoint_every zero", lambda: train(MIX, CAT, X_M, TrainConfig(**CFG), checkpoint_every=0), ValueError,
     "checkpoint_every"),
    ("checkpoint_every negative", lambda: train(MIX, CAT, X_M, TrainConfig(**CFG), checkpoint_every=-1), ValueError,
     "checkpoint_every"),
    ("checkpoint_every fractional", lambda: train(MIX, CAT, X_M, TrainConfig(**CFG), checkpoint_every=2.5), TypeError,
     "checkpoint_every"),
    ("unknown class in a vectors spec", lambda: vectors.make_model({"class": "Transformer", "args": {}}), ValueError,
     "unknown class 'Transformer'"),
    ("negative K in n_multisets", lambda: exact.n_multisets(3, -2), ValueError, "K"),
    ("check_estimator rtol NaN", lambda: testing.check_estimator(rws_ref.wake_theta, "wake_theta", rtol=float("nan")),
     ValueError, "rtol"),
    ("check_estimator rtol negative", lambda: testing.check_estimator(rws_ref.wake_theta, "wake_theta", rtol=-1e-8),
     ValueError, "rtol"),
    ("check_estimator rtol infinite", lambda: testing.check_estimator(rws_ref.wake_theta, "wake_theta", rtol=np.inf),
     ValueError, "rtol"),
    ("check_estimator on a mismatched guide",
     lambda: testing.check_estimator(rws_ref.wake_theta, "wake_theta", MIX, BERN), ValueError, "does not match"),
    # hangs and unbounded work, refused at once
    ("particles beyond the memory limit", lambda: DG.sample(PH, X, 10 ** 10, _R), exact.TooLarge, "GiB"),
    ("training K beyond the memory limit", lambda: train(MIX, CAT, X_M, TrainConfig(K=10 ** 11, iters=1)),
     exact.TooLarge, "GiB"),
    ("enumerating 40 latent bits", lambda: SigmoidBeliefNet(40, 2).support(), exact.TooLarge, "2^40"),
    ("an oracle beyond 64-bit ranks", lambda: next(exact.multisets(10 ** 6, 10 ** 6)), ValueError, "64-bit"),
    # silent non-finite results, now clear errors
    ("data at 1e200 overflows the densities", lambda: rws_ref.wake_theta(LG, DG, TH, PH, np.full((1, 3), 1e200),
                                                                         np.zeros((2, 1, 2))), NonFiniteLogWeights,
     "overflow"),
    ("log_s = -400 overflows the guide density",
     lambda: rws_ref.log_weights(LG, DG, TH, _with(PH, "log_s", np.full(2, -400.0)), X, Z), NonFiniteLogWeights,
     "log q"),
    ("an SNR draw that is NaN", lambda: analysis.snr_study({"bad": lambda K, r: np.array([np.nan])}, [1, 2], 5, _R),
     ValueError, "non-finite"),
    ("a diverging run", lambda: train(LG, DG, X, TrainConfig(K=2, iters=50, batch_size=3, lr_theta=1e3, lr_phi=1e3,
                                                            optimizer="sgd", grad_replicates=0)),
     ValueError, "diverged"),
]


@pytest.mark.parametrize("kind, call, exc, words", MORE, ids=[c[0] for c in MORE])
def test_bad_input_catalogue_continued(kind, call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert type(info.value) is exc and words in str(info.value), f"{kind}: {type(info.value)} {info.value}"


def test_the_catalogue_has_at_least_sixty_kinds():
    from test_cli import BAD_ARGUMENTS
    kinds = {c[0] for c in CATALOGUE} | {c[0] for c in MORE} | {" ".join(a) for a, _ in BAD_ARGUMENTS}
    assert len(kinds) >= 60, len(kinds)


def test_extreme_valid_vimco_and_binary_oracle_give_finite_correct_answers():
    assert np.all(np.abs(family.vimco_signals(np.full((4, 2), 1.7e308))) <= 1e-15)
    sbn1, bern1 = SigmoidBeliefNet(1, 2), BernoulliGuide(1, 2)
    th, ph = sbn1.init_theta(np.random.default_rng(0)), bern1.init_phi(np.random.default_rng(1))
    x = np.array([[0.0, 1.0]])
    bound = exact.elbo_is(sbn1, bern1, th, ph, x, 100_000)       # 100,001 multisets, well under a second
    gap = sbn1.log_marginal(th, x) - bound
    chi2 = exact.chi2(sbn1, bern1, th, ph, x)
    assert np.all(gap > 0) and np.allclose(gap, chi2 / (2 * 100_000), rtol=1e-3)   # K·gap → χ²/2


# -- nothing lost -------------------------------------------------------------------------------


def _mixture_run(tmp_path, **kw):
    x = MIX.sample(MIX.true_theta(), 60, np.random.default_rng(1))[1]
    return train(MIX, CAT, x, TrainConfig(K=3, iters=kw.pop("iters", 6), batch_size=5, eval_every=3, seed=2),
                 checkpoint=tmp_path / "run.npz", **kw)


@pytest.mark.parametrize("tamper, words", [
    (lambda m, a: m.update(iteration=-3), "iteration"),
    (lambda m, a: m.update(history=[{"iteration": 0, "elbo_is": "high"}]), "history"),
    (lambda m, a: m.update(history=[{"iteration": 999, "elbo_is": 1.0}]), "after the checkpoint"),
    (lambda m, a: m["rng"].update(state={"state": "garbage"}), "generator state"),
    (lambda m, a: m["opt_theta"].update(t=-1), "step count"),
    (lambda m, a: a.update({"opt_theta/m/logits": np.zeros(7)}), "moment m"),
    (lambda m, a: a.update({"opt_phi/v/w": -np.ones(4)}), "moment v"),
    (lambda m, a: m["provenance"].update(data_sha256="0" * 64), "data_sha256"),
    (lambda m, a: m["config"].update(K=99), "configuration: K"),
])
def test_tampered_checkpoints_are_refused_naming_the_field(tmp_path, tamper, words):
    _mixture_run(tmp_path)
    path = tmp_path / "run.npz"
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(str(arrays.pop("meta")))
    tamper(meta, arrays)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=words):
        _mixture_run(tmp_path, iters=9, resume=path)
    assert path.read_bytes() == before                             # refused: nothing replaced


def test_resume_with_other_data_is_refused_naming_the_field(tmp_path):
    _mixture_run(tmp_path)
    other = MIX.sample(MIX.true_theta(), 61, np.random.default_rng(1))[1]
    with pytest.raises(ValueError, match="data_shape"):
        train(MIX, CAT, other, TrainConfig(K=3, iters=9, batch_size=5, eval_every=3, seed=2),
              checkpoint=tmp_path / "run.npz", resume=tmp_path / "run.npz")


def test_an_output_path_that_is_a_directory_or_in_a_missing_folder_is_refused_before_training(tmp_path,
                                                                                                 monkeypatch):
    monkeypatch.setattr("rws_ref.experiments.train._iteration", lambda *a: pytest.fail("training started"))
    for path, words in ((tmp_path, "is a directory"), (tmp_path / "missing" / "c.npz", "does not exist")):
        with pytest.raises(ValueError, match=words):
            train(MIX, CAT, X_M, TrainConfig(**CFG), checkpoint=path)
        with pytest.raises(ValueError, match=words):
            vectors.write(path)


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    from rws_ref import _io
    target = tmp_path / "v.json"
    target.write_text("previous")

    def broken(handle):
        handle.write("half")
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        _io.atomic_write(target, broken)
    assert target.read_text() == "previous" and sorted(p.name for p in tmp_path.iterdir()) == ["v.json"]
    stale = tmp_path / (_io.TEMP_PREFIX + "run.npz.abc123")       # what a killed run leaves behind
    stale.write_bytes(b"x")
    _mixture_run(tmp_path)
    assert not stale.exists() and (tmp_path / "run.npz").exists()


def test_ctrl_c_stops_training_cleanly_with_checkpoint_and_metrics(tmp_path):
    import signal
    import time
    ckpt, out = tmp_path / "c.npz", tmp_path / "m.csv"
    proc = subprocess.Popen([sys.executable, "-m", "rws_ref.cli", "train", "--model", "mixture", "--iters", "100000",
                             "--eval-every", "5", "--n-data", "200", "--no-progress", "--no-early-stop",
                             "--checkpoint", str(ckpt),
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not ckpt.exists() and time.time() < deadline:             # wait until it is training
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1 and "interrupted at iteration" in stderr
    state = load_checkpoint(ckpt)
    rows = out.read_text().splitlines()
    assert state["iteration"] > 0 and len(rows) >= 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rws-ref-tmp")]


# -- time limits nest ------------------------------------------------------------------------------------


def test_an_inner_time_limit_never_cancels_or_extends_the_outer_one():
    import time

    from rws_ref._checks import deadline
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="outer did not return within 0.3 s"):
        with deadline(0.3, "outer"):
            with deadline(5.0, "inner"):                  # a longer inner limit does not extend the outer one
                time.sleep(0.05)
            time.sleep(2.0)                               # the outer limit still holds after the inner ended
    assert time.monotonic() - start < 1.0
    with pytest.raises(TimeoutError, match="outer"):      # a swallowed TimeoutError fires again
        with deadline(0.2, "outer"):
            for _ in range(3):
                try:
                    with deadline(5.0, "inner"):
                        time.sleep(1.0)
                except TimeoutError:
                    pass
            time.sleep(1.0)
    with pytest.raises(TimeoutError, match="outer did not return within 0.3 s"):
        with deadline(0.3, "outer"):
            with deadline(0.1, "inner"):                  # a shorter inner limit that ends in time ...
                time.sleep(0.02)
            time.sleep(2.0)                               # ... leaves the outer limit armed after it
    with deadline(1.0, "outer"):                          # a shorter inner limit fires alone
        with pytest.raises(TimeoutError, match="inner did not return within 0.1 s"):
            with deadline(0.1, "inner"):
                time.sleep(1.0)
        time.sleep(0.2)
    import signal
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0) and signal.getsignal(signal.SIGALRM) in (
        signal.SIG_DFL, signal.default_int_handler, 0)


def test_a_function_that_calls_the_model_and_then_stalls_is_timed_out_by_check_estimator():
    import time

    from rws_ref.checking import testing

    def stalls(model, guide, theta, phi, x, z):
        out = rws_ref.wake_theta(model, guide, theta, phi, x, z)     # timed model calls inside the timed function
        time.sleep(3.0)                                              # then no call of rws_ref's until it returns
        return out
    report = testing.check_estimator(stalls, "wake_theta", max_examples=1, timeout=0.3, samplers=False)
    agreement = next(r for r in report.results if r.name == "agreement with rws_ref")
    assert agreement.status == "fail" and "stalls did not return within 0.3 s" in agreement.detail
