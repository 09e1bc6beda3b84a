"""rws_ref.registry: one table of the estimators, consistent with the functions it names."""
import inspect

import numpy as np
import pytest

import rws_ref
from rws_ref import registry
from rws_ref.experiments.train import METHODS, PHI_SIGN


@pytest.mark.parametrize("kind", registry.KINDS)
def test_each_kind_is_rws_refs_public_function_of_that_name_in_the_declared_signature(kind):
    entry = registry.get(kind)
    assert entry.function is getattr(rws_ref, kind)
    params = list(inspect.signature(entry.function).parameters)
    names = entry.signature.names
    assert entry.signature is registry.SIGNATURES[entry.signature.name]
    assert params[:len(names)] == [
        {"dream_z": "z", "dream_x": "x"}.get(n, n) if entry.signature.name == "dreams" else n for n in names]


@pytest.mark.parametrize("kind", [k for k in registry.KINDS if k != "elbo_is"])
def test_the_declared_direction_is_the_one_the_docstring_states(kind):
    # two independent statements of the sign convention: the registry's and the function's own docstring
    first_line = registry.get(kind).function.__doc__.strip().splitlines()[0].lower()
    assert ("ascent" in first_line) != ("descent" in first_line), first_line
    stated = registry.ASCENT if "ascent" in first_line else registry.DESCENT
    assert registry.get(kind).direction == stated


def test_training_methods_and_their_signs_come_from_the_registry():
    assert set(METHODS) == {"wake", "sleep", "insomnia", "defensive", "iwae", "reinforce", "vimco"}
    for entry in registry.ESTIMATORS.values():
        if entry.method:
            assert PHI_SIGN[entry.method] == (1 if entry.direction == registry.ASCENT else -1)


def test_unknown_kinds_are_refused_naming_the_argument():
    with pytest.raises(ValueError, match="kind must be one of elbo_is, wake_theta"):
        registry.get("iwae")
    with pytest.raises(TypeError, match="a string"):
        registry.get(["wake_theta"])


def test_applicability_is_decided_from_capabilities():
    lg = rws_ref.LinearGaussian(2, 3), rws_ref.DiagonalGaussianGuide(2, 3)
    mix = rws_ref.GaussianMixture(4), rws_ref.SoftmaxLinearGuide(4)
    assert registry.applies(registry.get("iwae_phi"), *lg) is None
    assert "reparameterized" in registry.applies(registry.get("iwae_phi"), *mix)
    assert "discrete" in registry.applies(registry.get("defensive_wake_phi"), *lg)
    assert "K >= 2" in registry.applies(registry.get("vimco_phi"), *mix, K=1)
    assert registry.applies(registry.get("wake_phi"), *mix, K=1) is None


def test_arguments_follow_the_signature_and_drop_the_objects_on_request():
    model, guide = rws_ref.LinearGaussian(1, 1), rws_ref.DiagonalGaussianGuide(1, 1)
    rng = np.random.default_rng(0)
    case = registry.Case(model.init_theta(rng), guide.init_phi(rng), np.zeros((1, 1)), np.zeros((2, 1, 1)),
                         dream_z=np.zeros((3, 1)), dream_x=np.ones((3, 1)), iota=0.25)
    args = registry.arguments(registry.get("insomnia"), model, guide, case)
    assert args[0] is model and args[-1] == 0.25 and args[-2] is case.dream_x
    assert len(registry.arguments(registry.get("insomnia"), model, guide, case, with_objects=False)) == 7
    assert registry.arguments(registry.get("elbo_is"), model, guide, case)[0].shape == (2, 1)
