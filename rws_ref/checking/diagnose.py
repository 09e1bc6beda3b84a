"""A diagnosis instead of a max difference: which entry is wrong, by how much, and which
known mistake the result looks like.

:func:`compare` takes your estimator's output on some inputs and returns a
:class:`Verdict`: the estimator, the parameter key and index of the worst
entry, expected and got, and — when the result does not agree — the closest
known mistake, found by computing what each mistake produces on the same
inputs (:mod:`rws_ref.mistakes`, one catalogue per estimator of
:mod:`rws_ref.registry`, with two-at-once composites).  :func:`vectors` does
the same for results you computed from the shipped test vectors, with no model
code on your side.

A mistake is named ("looks like") when your result equals its output to a
relative 1e-6; several are named together only when their outputs coincide on
this input (a larger K or N then tells them apart).  A result far from every
known mistake gets "closest known mistake … so probably something else".
"""
import math
import numbers
from dataclasses import dataclass

import numpy as np

from .. import registry
from .._trees import flatten
from ..registry import Case
from . import mistakes as _mistakes_module

__all__ = ["Verdict", "compare", "vectors", "MISTAKES", "REFERENCES", "check_tolerance", "LOOKS_LIKE"]

#: relative distance below which a result is said to *be* a known mistake
LOOKS_LIKE = 1e-6


def _particles_form(fn):
    # a (model, guide, case) function in the uniform (model, guide, theta, phi, x, z) signature
    return lambda m, g, th, ph, x, z: fn(m, g, Case(th, ph, x, z))


#: estimator -> rws_ref's implementation in the uniform signature (model, guide, theta, phi, x, z), for
#: the estimators that take particles (ELBO_IS as a dict {"elbo_is": (N,)}); every kind is in rws_ref.registry
REFERENCES = {kind: _particles_form(lambda m, g, c, e=registry.ESTIMATORS[kind]: registry.reference_output(
    e, m, g, c)) for kind in ("wake_theta", "wake_phi", "reinforce_phi", "vimco_phi", "elbo_is")}

#: estimator -> {mistake name: function (model, guide, theta, phi, x, z) -> what it produces}, for the same
#: estimators as REFERENCES; rws_ref.mistakes holds every estimator's mistakes
MISTAKES = {kind: {name: _particles_form(fn) for name, fn in _mistakes_module.base_mistakes(kind).items()}
            for kind in REFERENCES}


# -- the verdict ------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """One comparison: ``ok``, and on failure where, by how much, and what it looks like."""
    estimator: str
    ok: bool
    max_abs_diff: float
    tolerance: float
    key: str = ""
    index: tuple = ()
    expected: float = 0.0
    got: float = 0.0
    mistakes: tuple = ()
    mistake_distance: float = float("nan")
    note: str = ""

    @property
    def mistake(self):
        """The named mistake(s) as one phrase: several (outputs that coincide on this input) joined by " or "."""
        return " or ".join(self.mistakes)

    @property
    def ambiguous(self):
        """Several known mistakes give this very result on this input (a larger K or N tells them apart)."""
        return len(self.mistakes) > 1

    def __str__(self):
        if self.ok:
            return f"{self.estimator}: agrees (max |difference| {self.max_abs_diff:.2e} ≤ {self.tolerance:.1e})"
        where = f"{self.key}{list(self.index) if self.index else ''}"
        text = (f"{self.estimator}: {where} expected {self.expected:.10g}, got {self.got:.10g} "
                f"(max |difference| {self.max_abs_diff:.3e} > tolerance {self.tolerance:.1e})")
        if self.mistake:
            text += (f"; looks like: {self.mistake}" if self.mistake_distance <= LOOKS_LIKE else
                     f"; closest known mistake: {self.mistake} (relative distance {self.mistake_distance:.2g}, "
                     f"so probably something else)")
        return text + (f"; {self.note}" if self.note else "")


def check_tolerance(value, name):
    """A tolerance: a finite real number >= 0 (NaN, inf, negatives, bools and strings refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite number >= 0; got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    return float(value)


def _as_real(value, key, estimator):
    arr = np.asarray(value)
    if arr.dtype.kind == "c":
        raise TypeError(f"{estimator}: your result[{key!r}] is complex ({arr.dtype}); an estimator's output is real")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{estimator}: your result[{key!r}] must be a real array; got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _distance(a, b):
    if sorted(a) != sorted(b):
        return np.inf
    a, b = flatten(a, sorted(a)), flatten(b, sorted(b))
    if a.shape != b.shape or not np.all(np.isfinite(b)) or not np.all(np.isfinite(a)):
        return np.inf
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    if scale == 0.0:
        return 0.0 if not np.any(a) else np.inf
    return float(np.max(np.abs(a - b)) / scale)


def _closest(got, made):
    """(distance, names): the known mistakes nearest ``got``; several only when their outputs coincide.
    Among coinciding mistakes a single one is preferred to a composite of two (the simpler story)."""
    scored = sorted((_distance(got, m), name.count(" + "), name) for name, m in made.items() if m is not None)
    scored = [(d, parts, name) for d, parts, name in scored if np.isfinite(d)]
    if not scored:
        return np.inf, []
    best = scored[0][0]
    near = [(parts, name) for d, parts, name in scored if d <= best + 1e-12]
    if any(name != _mistakes_module.ZERO for _, name in near):        # a particular mistake explains a zero better
        near = [(parts, name) for parts, name in near if name != _mistakes_module.ZERO]
    fewest = min(parts for parts, _ in near)
    first = next(name for parts, name in near if parts == fewest)
    if best > LOOKS_LIKE:
        return best, [first]
    return best, [first] + [name for parts, name in near if name != first and parts == fewest
                            and _distance(made[name], made[first]) <= LOOKS_LIKE]


def _verdict(estimator, got, expected, rtol, atol, made):
    if not isinstance(got, dict):
        got = {next(iter(expected)): got}
    if sorted(got) != sorted(expected):
        return Verdict(estimator, False, np.inf, 0.0, note=f"keys {sorted(got)}, expected {sorted(expected)}")
    got = {k: _as_real(v, k, estimator) for k, v in got.items()}
    worst, where, tolerance = -1.0, None, 0.0
    for key in sorted(expected):
        e, g = np.asarray(expected[key], dtype=np.float64), got[key]
        if e.shape != g.shape:
            return Verdict(estimator, False, np.inf, 0.0, key=key, note=f"shape {g.shape}, expected {e.shape}")
        diff = np.abs(g - e)
        allowed = atol + rtol * np.abs(e)
        excess = np.where(np.isnan(diff), np.inf, diff - allowed)
        if excess.size and np.max(excess) > worst:
            idx = np.unravel_index(int(np.argmax(excess)), e.shape) if e.ndim else ()
            worst, where = float(np.max(excess)), (key, tuple(int(i) for i in idx), float(e[idx]), float(g[idx]))
            tolerance = float(allowed[idx])
    with np.errstate(invalid="ignore"):
        diffs = [np.abs(got[k] - np.asarray(expected[k], float)) for k in expected if np.size(expected[k])]
    max_diff = max((float(np.max(np.where(np.isnan(d), np.inf, d))) for d in diffs), default=0.0)
    if worst <= 0:
        return Verdict(estimator, True, max_diff, tolerance)
    key, idx, e, g = where
    verdict = Verdict(estimator, False, max_diff, tolerance, key=key, index=idx, expected=e, got=g)
    best, names = _closest(got, made)
    right = _distance(got, expected)
    if names and right <= best:                 # the right answer is as near as any mistake: no mistake to name
        verdict.note = (f"your result is nearer rws_ref's answer (relative distance {right:.2g}) than any known "
                        f"mistake: a difference of precision, not of formula?")
        names = []
    if names:
        verdict.mistake_distance, verdict.mistakes = best, tuple(names)
        if len(names) > 1:
            verdict.note = "these mistakes give the same result on this input; a larger K or N tells them apart"
    if all(not np.any(v) for v in got.values()):
        verdict.note = (verdict.note + "; " if verdict.note else "") + "your result is exactly zero"
    return verdict


def compare(estimator, got, model, guide, theta, phi, x=None, z=None, rtol=1e-8, atol=1e-12, *, eps=None,
            dream_z=None, dream_x=None, iota=None, delta=None, log_w=None):
    """Compare your ``got`` for ``estimator`` with rws_ref on the same inputs, and diagnose.

    Parameters
    ----------
    estimator : a kind of rws_ref.registry (the name of rws_ref's function): "elbo_is",
        "wake_theta", "wake_phi", "sleep_phi", "insomnia", "defensive_wake_phi", "iwae_phi",
        "stl_phi", "iwae_dreg_phi", "rws_dreg_phi", "reinforce_phi" or "vimco_phi"
    got : dict keyed like the parameters (for "elbo_is", the (N,) array or {"elbo_is": array})
    model, guide, theta, phi, x, z : the inputs you computed it from (x and z: the batch and its
        particles; for reparameterized estimators give ``eps`` instead of z; for sleep-φ the dreams
        ``dream_z``, ``dream_x``; insomnia takes both and ``iota``, defensive wake-φ ``delta``; ``log_w``, the
        log weights of (x, z) when already computed)
    rtol, atol : agreement means |got − expected| ≤ atol + rtol·|expected| entry by entry

    Returns
    -------
    Verdict (``str(verdict)`` is the diagnosis)
    """
    entry = registry.get(estimator, "estimator")
    rtol, atol = check_tolerance(rtol, "rtol"), check_tolerance(atol, "atol")
    case = Case(theta, phi, x, z, eps, dream_z, dream_x, iota, delta, log_w)
    expected = registry.reference_output(entry, model, guide, case)
    made = _mistakes_module.all_mistakes(estimator, model, guide, case)
    return _verdict(estimator, registry.as_output(entry, got), expected, rtol, atol, made)


def vectors(results, data=None):
    """Verdicts for results computed from the test vectors, with no model code of yours.

    Parameters
    ----------
    results : dict case name -> {estimator kind: your output}
    data : the loaded vectors, or the path of a vectors file (default ``rws_ref.vectors.load()``)

    Returns
    -------
    list of Verdict, one per (case, estimator) you gave; each estimator's name is
    prefixed with its case.  The tolerance is the one recorded in the file; the
    recorded mistakes, with a sign flip or a sum over the data on top, are the candidates.
    """
    from . import vectors as vec
    if data is None or isinstance(data, (str, bytes)) or hasattr(data, "__fspath__"):
        data = vec.load(data)                                  # the shipped copy, or a path to a vectors file
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise TypeError(f"data must be loaded vectors (rws_ref.vectors.load()) or a path to a vectors file; "
                        f"got {type(data).__name__}")
    if not isinstance(results, dict):
        raise TypeError(f"results must be a dict case name -> {{estimator: output}}; got {type(results).__name__}")
    cases = {case["name"]: case for case in data["cases"]}
    out = []
    for name, outputs in results.items():
        if name not in cases:
            raise ValueError(f"results names an unknown case {name!r}; cases: {sorted(cases)}")
        if not isinstance(outputs, dict):
            raise TypeError(f"results[{name!r}] must be a dict estimator -> output; got {type(outputs).__name__}")
        case = cases[name]
        for estimator, got in outputs.items():
            entry = registry.get(estimator, f"results[{name!r}] key")
            expected = (case["estimators"].get(estimator) if estimator != "elbo_is"
                        else {"elbo_is": case["elbo_is"]})
            if expected is None:
                raise ValueError(f"case {name!r} records no {estimator!r}; it has {sorted(case['estimators'])}")
            tol = case["tolerance"]
            made = dict(case["mistakes"].get(estimator, {}))
            n = entry.signature.size(Case(None, None, x=case.get("x"), dream_x=case.get("dream_x")))
            made.update(_mistakes_module.composite(made, n))
            verdict = _verdict(estimator, registry.as_output(entry, got), expected, tol["rtol"], tol["atol"], made)
            verdict.estimator = f"{name}: {estimator}"
            out.append(verdict)
    return out
