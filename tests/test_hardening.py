"""Hardening: a catalogue of bad input across the API and the command line, extreme
but valid input, and no global random state."""
import subprocess
import sys

import numpy as np
import pytest

import rws_ref
from rws_ref import (BernoulliGuide, DefensiveGuide, DiagonalGaussianGuide, GaussianMixture,
                     LinearGaussian, SigmoidBeliefNet, SoftmaxLinearGuide, analysis, exact, family,
                     testing, vectors)
from rws_ref.train import TrainConfig, load_checkpoint, train

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
    ("oracle over its size limit", lambda: exact.elbo_is(GaussianMixture(), SoftmaxLinearGuide(), GaussianMixture().true_theta(),
                                                         SoftmaxLinearGuide().init_phi(_R), X_M, 50), ValueError, "max_terms"),
    ("oracle on a continuous latent", lambda: exact.moments(rws_ref.wake_phi, LG, DG, TH, PH, X, 2), TypeError, "support"),
    ("unknown training method", lambda: TrainConfig(method="adamw").validate(), ValueError, "method"),
    ("negative learning rate", lambda: TrainConfig(lr_theta=-1.0).validate(), ValueError, "lr_theta"),
    ("SNR study with one K", lambda: analysis.snr_study({"a": lambda K, r: r.random(2)}, [5], 10, _R), ValueError, "ks"),
    ("check_estimator of an unknown kind", lambda: testing.check_estimator(rws_ref.wake_theta, "iwae"), ValueError, "kind"),
    ("model dimension zero", lambda: SigmoidBeliefNet(0, 2), ValueError, "dz"),
    ("scalar oracle with a narrow guide",
     lambda: exact.scalar_laplace(LinearGaussian(1, 1), DiagonalGaussianGuide(1, 1),
                                  {"mu": np.zeros(1), "W": np.ones((1, 1)), "b": np.zeros(1), "log_sigma": np.zeros(1)},
                                  {"A": np.zeros((1, 1)), "c": np.zeros(1), "log_s": np.array([-2.0])},
                                  np.zeros((1, 1)), 3), ValueError, "posterior variance"),
    ("scalar oracle on a 2-d latent", lambda: exact.scalar_laplace(LG, DG, TH, PH, X, 3), TypeError, "dz = 1"),
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
    study = analysis.snr_study({"w": lambda K, r: rws_ref.wake_phi(MIX, CAT, theta, PH_M, x, CAT.sample(PH_M, x, K, r))["w"]},
                               [1, 2], 5, rng, n_boot=10)
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
