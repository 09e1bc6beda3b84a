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

from .. import registry
from .._checks import deadline, traceback_text
from ..models import DiagonalGaussianGuide, GaussianMixture, LinearGaussian, Scene1D, SceneGuide, SoftmaxLinearGuide
from . import diagnose, testing
from .exercises import CALL_TIMEOUT, Grade, get
from .properties import draw_case

__all__ = ["grade", "CallsTheReference"]


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


class CallsTheReference(Exception):
    """The student's function calls rws_ref's own implementation of the exercise."""


def _forbid_the_reference(name):
    """rws_ref's public function ``name`` (rws_ref.NAME, rws_ref.estimators.NAME, rws_ref.family.NAME) replaced
    by a tripwire, for the student's code only: the grader's references hold the functions themselves
    (rws_ref.registry), so they are not affected."""
    from .. import estimators, family

    def tripwire(*args, **kwargs):
        raise CallsTheReference(f"the exercise is to write {name}; your function calls rws_ref's own {name}")
    import rws_ref
    for module in (rws_ref, estimators, family):
        if hasattr(module, name):
            setattr(module, name, tripwire)


def grade(name, path, max_examples=10, timeout=CALL_TIMEOUT):
    """Grade the function ``name`` in the Python file ``path`` in this process: a :class:`Grade`.
    ``rws-ref exercises check`` runs it in a child process of its own (:func:`grade_isolated`)."""
    exercise = get(name)
    entry = registry.get(name)
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
    settings = _settings(entry, exercise.discrete)
    for model, guide, case in settings:
        try:
            with deadline(timeout, name):
                got = fn(*registry.arguments(entry, model, guide, case))
        except NotImplementedError:
            return Grade(name, False, ["not written yet: the template still raises NotImplementedError", where])
        except Exception as err:                   # the student's bug is the grade, shown with their frames
            return Grade(name, False, [f"your function raised {type(err).__name__} on {model!r}:",
                                       *traceback_text(err).splitlines(), where])
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
