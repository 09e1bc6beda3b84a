"""The grader of ``rws-ref exercises check``: the student's function against rws_ref on fixed inputs, then the
properties of check_estimator.  It runs in a child process of its own (rws_ref.checking.exercises.grade_isolated),
which imports the checks; the command line's process does not.

Run as ``python -m rws_ref.checking.grader NAME FILE FD``: the verdict goes to the pipe FD as JSON.
"""
import importlib.util
import json
import os
import sys
import traceback

import numpy as np

from .. import protocol, registry
from .._checks import deadline, traceback_text
from ..estimators import wake_phi, wake_theta
from ..exact import moments as exact_moments  # bound here: exercise exact_mean trips rws_ref.exact.moments
from ..models import (
    BernoulliGuide,
    DiagonalGaussianGuide,
    GaussianMixture,
    LinearGaussian,
    Scene1D,
    SceneGuide,
    SigmoidBeliefNet,
    SoftmaxLinearGuide,
)
from . import diagnose, testing
from .exercises import CALL_TIMEOUT, Grade, get
from .properties import draw_case

__all__ = ["grade", "CallsTheReference", "reference_step"]


def _settings(entry, discrete="mixture"):
    """Two fixed settings per kind: a continuous pair and, where the kind applies, a discrete one (a mixture,
    or the control-flow scene: 1 + 3 + 9 = 13 program paths); a pair the kind does not apply to is left out
    (defensive wake-φ's uniform component needs a discrete latent)."""
    pairs = [(LinearGaussian(2, 3), DiagonalGaussianGuide(2, 3))]
    if entry.signature.enumerable:                   # a discrete pair, where the kind draws its particles
        pairs.append((Scene1D(n_max=2, positions=3, pixels=6), SceneGuide(n_max=2, positions=3, pixels=6, hidden=4))
                     if discrete == "scene" else
                     (GaussianMixture(4, scale=6.0), SoftmaxLinearGuide(4, loc=15.0, scale=10.0)))
    out = []
    for i, (model, guide) in enumerate(pairs):
        if registry.applies(entry, model, guide) is not None:
            continue
        rng = np.random.default_rng([2026, i])
        theta, phi = model.init_theta(rng), guide.init_phi(rng)
        out.append((model, guide, draw_case(entry, model, guide, theta, phi, rng, n=3, k=4)))
    return out


def _load(path, name):
    """The student's function ``name`` from the file ``path`` (its module-level code runs here)."""
    spec = importlib.util.spec_from_file_location(f"rws_ref_exercise_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ValueError(f"{path} must define a function {name}(...) (rws-ref exercises start {name} FILE "
                         f"writes a template)")
    return fn


def _student(fn, args, name, model, where, timeout):
    """(the student's output, None), or (None, the Grade) when their function is not written yet or raises: their
    bug is the grade, shown with their frames."""
    try:
        with deadline(timeout, name):
            return fn(*args), None
    except NotImplementedError:
        return None, Grade(name, False, ["not written yet: the template still raises NotImplementedError", where])
    except Exception as err:
        return None, Grade(name, False, [f"your function raised {type(err).__name__} on {model!r}:",
                                         *traceback_text(err).splitlines(), where])


class CallsTheReference(Exception):
    """The student's function calls rws_ref's own implementation of the exercise."""


def _forbid_the_reference(name):
    """rws_ref's public function ``name`` (rws_ref.NAME, rws_ref.estimators.NAME, rws_ref.family.NAME) replaced
    by a tripwire, for the student's code only: the grader's references hold the functions themselves
    (rws_ref.registry), so they are not affected."""
    from .. import estimators, family

    own = "exact.moments" if name == "exact_mean" else name

    def tripwire(*args, **kwargs):
        raise CallsTheReference(f"the exercise is to write {name}; your function calls rws_ref's own {own}")
    import rws_ref

    from .. import exact
    from ..exact import enumeration
    for module in (rws_ref, estimators, family):
        if hasattr(module, name):
            setattr(module, name, tripwire)
    if name == "exact_mean":                       # the oracle's own enumeration is the reference
        for module in (exact, enumeration):
            module.moments = tripwire


def grade(name, path, max_examples=10, timeout=CALL_TIMEOUT):
    """Grade the function ``name`` in the Python file ``path`` in this process: a :class:`Grade`.
    ``rws-ref exercises check`` runs it in a child process of its own (:func:`grade_isolated`)."""
    exercise = get(name)
    where = f"see {exercise.section}"
    if not os.path.isfile(path):
        raise ValueError(f"FILE must be your Python file; {path!r} is not a file")
    try:
        with deadline(timeout, f"your file {os.path.basename(path)} (its module-level code)"):
            fn = _load(path, name)
    except ValueError:
        raise
    except Exception as err:                       # a syntax error, an exception at import: the student's
        if isinstance(err, SyntaxError):            # no frames of the student's: the line and the caret
            text = "".join(traceback.format_exception_only(type(err), err)).splitlines()
        else:
            text = traceback_text(err).splitlines()
        return Grade(name, False, [f"your file raised {type(err).__name__} when it was loaded:", *text, where])
    if exercise.graded_by != "estimator":
        return _SPECIAL[exercise.graded_by](name, fn, where, timeout)
    entry = registry.get(name)
    settings = _settings(entry, exercise.discrete)
    for model, guide, case in settings:
        got, failed = _student(fn, registry.arguments(entry, model, guide, case), name, model, where, timeout)
        if failed:
            return failed
        try:
            verdict = diagnose.compare(name, got, model, guide, **case._asdict())
        except (TypeError, ValueError) as err:
            return Grade(name, False, [f"on {model!r}: {err}", where])
        if not verdict.ok:
            return Grade(name, False, [f"on {model!r}: {verdict}", where])
    model, guide = settings[-1][:2]
    report = testing.check_estimator(fn, name, model, guide, max_examples=max_examples, samplers=False,
                                     timeout=timeout)
    failed = [r for r in report.results if r.status == "fail"]
    if failed:
        return Grade(name, False, [f"right on the fixed inputs, but a property fails on {model!r}:",
                                   *str(failed[0]).splitlines(), where])
    passed = [r.name for r in report.results if r.status == "pass"]
    return Grade(name, True, [f"agrees with rws_ref on the fixed inputs and passes {len(passed)} properties: "
                              + "; ".join(passed)])


# -- the exercises that are not an estimator: one iteration of training, and the exact oracle ---------------


def _pairs():
    """The two pairs of the special exercises, with θ, φ and a batch of three: continuous and discrete."""
    out = []
    for i, (model, guide) in enumerate(((LinearGaussian(2, 3), DiagonalGaussianGuide(2, 3)),
                                        (GaussianMixture(4, scale=6.0), SoftmaxLinearGuide(4, loc=15.0, scale=10.0)))):
        rng = np.random.default_rng([2027, i])
        theta, phi = model.init_theta(rng), guide.init_phi(rng)
        out.append((model, guide, theta, phi, model.sample(theta, 3, rng)[1]))
    return out


def reference_step(model, guide, theta, phi, x, K, lr, rng, *, phi_sign=-1.0, theta_sign=1.0, redraw=False):
    """One RWS iteration as rws_ref.experiments.train takes it with optimizer "sgd" and the batch x (the tests pin
    the two equal): z from the guide with ``rng``, θ + lr·wake-θ, φ − lr·wake-φ.  The keywords make the
    known mistakes (a sign, particles drawn again for φ)."""
    z = protocol.sample_guide(guide, phi, x, K, rng)
    g_theta = wake_theta(model, guide, theta, phi, x, z)
    g_phi = wake_phi(model, guide, theta, phi, x, protocol.sample_guide(guide, phi, x, K, rng) if redraw else z)
    return ({k: theta[k] + theta_sign * lr * g_theta[k] for k in theta},
            {k: phi[k] + phi_sign * lr * g_phi[k] for k in phi})


_STEP_MISTAKES = {
    "φ stepped along wake-φ (it is a descent direction of the KL: subtract it)": {"phi_sign": 1.0},
    "θ stepped against wake-θ (it ascends the bound: add it)": {"theta_sign": -1.0},
    "both signs turned": {"phi_sign": 1.0, "theta_sign": -1.0},
    "particles drawn again for the φ step (one draw serves both updates)": {"redraw": True},
}


def _close(got, want):
    return set(got) == set(want) and all(np.shape(got[k]) == np.shape(want[k]) and
                                         np.allclose(got[k], want[k], rtol=1e-10, atol=1e-12) for k in want)


def _grade_train(name, fn, where, timeout):
    K, lr = 4, 0.1
    for i, (model, guide, theta, phi, x) in enumerate(_pairs()):
        seed = [2027, 10 + i]
        want = reference_step(model, guide, theta, phi, x, K, lr, np.random.default_rng(seed))
        got, failed = _student(fn, (model, guide, protocol.validate_params(theta, model.theta_shapes, "theta"),
                                    protocol.validate_params(phi, guide.phi_shapes, "phi"), protocol.readonly(x), K,
                                    lr, np.random.default_rng(seed)), name, model, where, timeout)
        if failed:
            return failed
        if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(g, dict) for g in got)):
            return Grade(name, False, [f"return (new θ, new φ), two dicts; got {type(got).__name__}", where])
        got = tuple({k: np.asarray(v, dtype=np.float64) for k, v in g.items()} for g in got)
        if _close(got[0], want[0]) and _close(got[1], want[1]):
            continue
        for mistake, change in _STEP_MISTAKES.items():
            alt = reference_step(model, guide, theta, phi, x, K, lr, np.random.default_rng(seed), **change)
            if _close(got[0], alt[0]) and _close(got[1], alt[1]):
                return Grade(name, False, [f"on {model!r}: looks like: {mistake}", where])
        wrong = next((f"{part}[{k!r}]: expected {np.ravel(w[k])[:3]}, got {np.ravel(g.get(k, np.nan))[:3]}"
                      for part, g, w in (("θ", got[0], want[0]), ("φ", got[1], want[1]))
                      for k in w if k not in g or not _close({k: g[k]}, {k: w[k]})), "the keys differ")
        return Grade(name, False, [f"on {model!r}: {wrong}", where])
    return Grade(name, True, ["agrees with one iteration of rws_ref's training (optimizer 'sgd', method 'wake') "
                              "on a continuous and a discrete pair, with the same generator"])


def _grade_exact(name, fn, where, timeout):
    pairs = [(SigmoidBeliefNet(2, 3), BernoulliGuide(2, 3)), _pairs()[1][:2]]
    for i, (model, guide) in enumerate(pairs):
        rng = np.random.default_rng([2028, i])
        theta, phi = model.init_theta(rng), guide.init_phi(rng)
        x = model.sample(theta, 2, rng)[1]
        for estimator, K in ((wake_phi, 1), (wake_phi, 3), (wake_theta, 2)):
            want = exact_moments(estimator, model, guide, theta, phi, x, K)[0]
            got, failed = _student(fn, (estimator, model, guide, theta, phi, x, K), name, model, where, timeout)
            if failed:
                return failed
            got = {k: np.asarray(v, dtype=np.float64) for k, v in got.items()} if isinstance(got, dict) else got
            if not isinstance(got, dict) or not _close(got, want):
                shown = {k: np.round(v, 6).tolist() for k, v in got.items()} if isinstance(got, dict) else got
                return Grade(name, False, [f"on {model!r}, {estimator.__name__} at K = {K}: expected "
                                           f"{ {k: np.round(v, 6).tolist() for k, v in want.items()} }, got {shown}",
                                           where])
    return Grade(name, True, ["agrees with rws_ref.exact.moments to 1e-10 on a belief net and a mixture, for wake-φ "
                              "at K = 1 and 3 and wake-θ at K = 2"])


_SPECIAL = {"train": _grade_train, "exact": _grade_exact}


def _child(name, path, fd):
    """The child process of :func:`grade_isolated`: the tripwire, the grade, the verdict into the pipe."""
    _forbid_the_reference(name)
    try:
        result = {"ok": (g := grade(name, path)).ok, "lines": g.lines}
    except ValueError as err:
        result = {"error": str(err)}
    with os.fdopen(fd, "wb") as pipe:
        pipe.write(json.dumps(result).encode("utf-8"))


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
