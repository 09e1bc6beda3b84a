"""The recipes of docs/checking.md: a model that is not built into rws_ref, written in another
framework, checked with a few lines of glue; every listed mistake named on that model."""
import importlib.util
import pathlib

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

from rws_ref.checking import diagnose, testing

RECIPES = pathlib.Path(__file__).parents[2] / "docs" / "recipes"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, RECIPES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_show_the_recipes_as_they_are_tested():
    page = (RECIPES.parent / "checking.md").read_text()
    for name in ("torch_recipe", "jax_recipe"):
        body = (RECIPES / f"{name}.py").read_text()
        glue = body[body.index("# -- the glue"):body.index("# ----", body.index("# -- the glue") + 10)]
        assert glue.strip() in page, name
        assert sum(1 for line in glue.splitlines()[1:] if line.strip()) <= 20      # at most 20 lines of glue


@pytest.mark.parametrize("seed", range(3))
def test_the_autograd_recipe_passes_every_property(seed):
    r = _load("autograd_recipe")
    testing.check_estimator(r.my_wake_theta, "wake_theta", r.model, r.guide, seed=seed, max_examples=15).assert_ok()


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_the_torch_and_jax_recipes_pass_where_installed(framework):
    pytest.importorskip(framework)
    r = _load(f"{framework}_recipe")
    testing.check_estimator(r.my_wake_theta, "wake_theta", r.model, r.guide, max_examples=10).assert_ok()


# -- the mistakes, written as a user would, in autograd.numpy on the recipe's model ------------------


def _weights(r, theta, phi, x, z, how):
    log_w = r.log_joint(theta, z, x) - r.log_prob(phi, z, x)
    if how == "batch":
        e = np.exp(log_w - log_w.max())
        return e / e.sum()
    if how == "pyro":
        s = log_w.sum(1)
        e = np.exp(s - s.max())
        return np.broadcast_to((e / e.sum())[:, None], log_w.shape)
    if how == "uniform":
        return np.full(log_w.shape, 1.0 / log_w.size)
    e = np.exp(log_w - log_w.max(0))
    return e / e.sum(0) / log_w.shape[1]


def _theta_grad(r, theta, x, z, w):
    return grad(lambda t: anp.sum(w * r.log_joint(t, z, x)))(theta)


MISTAKES = {
    "sign flip": lambda r, th, ph, x, z: {k: -v for k, v in r.my_wake_theta(th, ph, x, z).items()},
    "sum over data instead of the mean": lambda r, th, ph, x, z: _theta_grad(
        r, th, x, z, _weights(r, th, ph, x, z, "normal") * x.shape[0]),
    "weights normalized over the whole batch (all K·N)": lambda r, th, ph, x, z: _theta_grad(
        r, th, x, z, _weights(r, th, ph, x, z, "batch")),
    "pyro-style weights (log w summed over the batch, then normalized)": lambda r, th, ph, x, z: _theta_grad(
        r, th, x, z, _weights(r, th, ph, x, z, "pyro")),
    "uniform weights (w̄ = 1/K)": lambda r, th, ph, x, z: _theta_grad(r, th, x, z, _weights(r, th, ph, x, z, "uniform")),
    "datapoints misaligned (z of datapoint n paired with x_{n+1})": lambda r, th, ph, x, z: r.my_wake_theta(
        th, ph, np.roll(x, -1), z),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_each_mistake_written_by_hand_is_named_on_the_users_model(mistake):
    r = _load("autograd_recipe")
    rng = np.random.default_rng(4)
    theta = {"logits": np.array([0.2, -0.1, 0.3]), "means": np.array([-2.0, 0.5, 2.5])}
    phi = {"w": np.array([-1.0, 0.1, 1.2]), "b": np.array([0.1, 0.3, -0.2])}
    x = r.sample(theta, 3, rng)[1]
    z = np.array([[0, 1, 2], [1, 1, 2], [0, 2, 1], [1, 0, 2]])
    wrong = MISTAKES[mistake](r, theta, phi, x, z)
    verdict = diagnose.compare("wake_theta", wrong, r.model, r.guide, theta, phi, x, z)
    assert not verdict.ok and verdict.mistake == mistake and verdict.mistake_distance < 1e-10, str(verdict)
