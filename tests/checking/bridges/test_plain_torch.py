"""The plain PyTorch bridge against real PyTorch, on a Gaussian mixture written as RWS research code is
(tests/checking/bridges/plain_torch_gmm.py): the bridged densities equal NumPy typed from the definition;
its losses are checked on rws_ref's particles forced into its own torch.distributions draws, and end to
end; a bug in the arithmetic and a bug in the sampling are each caught by the check that can see it; the
user's modules, torch's generator and torch.distributions are left as they were."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import plain_torch_gmm as G  # noqa: E402  (tests/checking/bridges, after the skip)

from rws_ref import estimators  # noqa: E402
from rws_ref.checking import testing  # noqa: E402
from rws_ref.checking.bridges.plain_torch import Bridge, Draws, one_hot  # noqa: E402

K = 3
X = np.array([-1.0, 2.5, 7.0])


def gmm():
    model, guide = G.Model().double(), G.Guide().double()
    bridge = Bridge(model.log_prob, guide.log_prob, model, guide, X, latent=one_hot(G.C),
                    sample_model=model.sample, sample_guide=guide.sample)
    return model, guide, bridge


def numpy_densities(model, guide, z, x):
    """log p(z, x) and log q(z | x) typed here from the modules' definitions and their parameter values."""
    logits = model.logits.detach().numpy()
    log_pi = logits - np.log(np.sum(np.exp(logits)))
    log_p = log_pi[z] - 0.5 * ((x - 3.0 * z) / G.SCALE) ** 2 - np.log(G.SCALE * np.sqrt(2 * np.pi))
    (w1, b1), (w2, b2) = [(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in (guide.mlp[0], guide.mlp[2])]
    out = np.tanh(x[:, None] @ w1.T + b1) @ w2.T + b2                       # (N, C)
    log_q = out - np.log(np.sum(np.exp(out), axis=1, keepdims=True))
    return log_p, log_q[np.arange(len(x)), z]


def test_the_bridged_densities_are_the_users_and_the_pair_passes_rws_refs_checks():
    model, guide, bridge = gmm()
    assert (bridge.model.z_shape, bridge.model.z_domain) == ((), G.C)
    assert set(bridge.model.theta_shapes) == {"logits"} and set(bridge.guide.phi_shapes) == {
        "mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias"}
    z = np.array([[0, 1, 3], [2, 2, 0]])
    want_p, want_q = numpy_densities(model, guide, z, X)
    np.testing.assert_allclose(bridge.model.log_joint(bridge.theta, z, X), want_p, atol=1e-12)
    np.testing.assert_allclose(bridge.guide.log_prob(bridge.phi, z, X), want_q, atol=1e-12)
    report = testing.check_estimator(estimators.wake_phi, "wake_phi", bridge.model, bridge.guide, seed=0,
                                     max_examples=5)
    report.assert_ok()
    names = [r.name for r in report.results if r.status == "pass"]
    assert any("exact mean" in n for n in names) and any("guide.sample" in n for n in names), names


@pytest.mark.parametrize("kind, loss, parts, said", [
    ("wake_phi", lambda m, g: lambda x: G.wake_theta_loss(m, g, x, K), "theta", "θ-gradient = −1 × wake-θ: consistent"),
    ("wake_phi", lambda m, g: lambda x: G.wake_phi_loss(m, g, x, K), "phi", "φ-gradient = 1 × wake-φ: consistent"),
    ("sleep_phi", lambda m, g: lambda x: G.sleep_phi_loss(m, g, len(x)), "phi", "φ-gradient = 1 × sleep-φ: consistent"),
])
def test_the_users_losses_are_checked_on_rws_refs_particles_forced_into_their_own_draws(kind, loss, parts, said):
    # one loss per update, as the code steps θ and φ apart: parts names what each is for
    model, guide, bridge = gmm()
    report = bridge.check_loss(loss(model, guide), kind, parts, K=K)
    assert report.ok and said in str(report), str(report)
    other = "φ-gradient" if parts == "theta" else "θ-gradient"
    assert other not in str(report), str(report)
    if parts == "theta":                                       # read as a loss for both, its φ-gradient is the
        report = bridge.check_loss(loss(model, guide), kind, K=K)          # bound's own, against wake-φ
        assert not report.ok and "φ-gradient = −1 × wake-φ: its sign" in str(report), str(report)
    elif kind == "wake_phi":                                   # a φ loss read as one for both: θ gets nothing
        report = bridge.check_loss(loss(model, guide), kind, K=K)
        assert not report.ok and "θ-gradient is exactly zero" in str(report), str(report)


def test_an_arithmetic_bug_is_named_on_forced_particles():
    model, guide, bridge = gmm()
    report = bridge.check_loss(lambda x: G.wake_phi_loss(model, guide, x, K, bug="no detach"), "wake_phi", "phi", K=K)
    assert not report.ok and "known mistake: gradient through the weights" in str(report), str(report)


def test_a_sampling_bug_passes_on_forced_particles_and_is_caught_end_to_end():
    # particles drawn from the prior but weighted as if from q: on rws_ref's particles the arithmetic is right;
    # only the loss's own draws show it.  check_stochastic's false-failure rate is 1e-3 (Bonferroni); the
    # correct loss passing and the bug failing are both pinned at seed 0.
    model, guide, bridge = gmm()
    good = bridge.check_end_to_end(lambda x: G.wake_phi_loss(model, guide, x, K), "wake_phi", K=K, parts="phi",
                                   replicates=1000)
    assert good.ok, str(good)
    buggy = lambda x: G.wake_phi_loss(model, guide, x, K, bug="prior proposal")           # noqa: E731
    assert bridge.check_loss(buggy, "wake_phi", "phi", K=K).ok
    bad = bridge.check_end_to_end(buggy, "wake_phi", K=K, parts="phi", replicates=1000)
    assert not bad.ok and not bad.runs["φ-gradient"].ok and bad.loss.ok, str(bad)
    assert "check_stochastic('wake_phi'): FAILED" in str(bad), str(bad)


def test_a_loss_that_draws_another_number_of_particles_is_told_which_shapes_it_drew():
    model, guide, bridge = gmm()
    with pytest.raises(ValueError, match=r"drew nothing of the shape of rws_ref's particles \(5, 3, 4\); the draws "
                                         r"it made through torch.distributions had shapes \[\(3, 3, 4\)\]"):
        bridge.check_loss(lambda x: G.wake_phi_loss(model, guide, x, K), "wake_phi", K=5)


def test_the_users_modules_torchs_generator_and_torch_distributions_are_left_as_they_were():
    model, guide, bridge = gmm()
    before = {k: v.detach().clone() for k, v in [*model.named_parameters(), *guide.named_parameters()]}
    sample = torch.distributions.OneHotCategorical.sample
    torch.manual_seed(5)
    state = torch.random.get_rng_state().clone()
    bridge.check_loss(lambda x: G.wake_phi_loss(model, guide, x, K), "wake_phi", K=K)
    assert torch.equal(torch.random.get_rng_state(), state)
    for k, v in [*model.named_parameters(), *guide.named_parameters()]:
        assert torch.equal(v.detach(), before[k]) and v.grad is None, k
    assert torch.distributions.OneHotCategorical.sample is sample

    def broken(x):
        G.wake_phi_loss(model, guide, x, K)
        raise KeyError("the user's own error")
    with pytest.raises(KeyError, match="the user's own error"):                   # unchanged, with its traceback
        bridge.check_loss(broken, "wake_phi", K=K)
    assert torch.distributions.OneHotCategorical.sample is sample


def test_draws_forces_by_shape_and_in_turn_and_lists_what_it_left_alone():
    z, x = torch.zeros(2, 3), torch.ones(2)
    with Draws([("z", z), ("x", x)]) as draws:
        a = torch.distributions.Normal(torch.zeros(2), 1.0).sample()                   # shape (2,): x
        b = torch.distributions.OneHotCategorical(logits=torch.zeros(2, 3)).sample()   # shape (2, 3): z
        c = torch.distributions.Normal(0.0, 1.0).sample((4,))                          # left alone
    assert torch.equal(a, x) and torch.equal(b, z) and c.shape == (4,)
    assert draws.drawn == [(4,)] and draws.unused() == []
    with Draws([("eps", torch.full((3,), 2.0))], noise=True):
        y = torch.distributions.Normal(torch.tensor([1.0, 0.0, -1.0]), 0.5).rsample()
    np.testing.assert_allclose(y.numpy(), [2.0, 1.0, 0.0])                             # loc + scale · ε


def test_a_float32_module_is_refused_with_the_fix():
    model, guide = G.Model().float(), G.Guide().float()          # float32 whatever the default dtype
    with pytest.raises(TypeError, match=r"theta parameter 'logits' must be a float64 tensor .*call \.double\(\)"):
        Bridge(model.log_prob, guide.log_prob, model, guide, X, latent=one_hot(G.C))
