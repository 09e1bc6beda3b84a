"""The properties :func:`rws_ref.checking.testing.check_estimator` checks, one plain function each.

The route of a check, from the user's function to the verdict (docs/architecture.md):

1. :class:`UserFunction` calls the user's ``fn`` in the signature of rws_ref's function of the same kind
   (rws_ref.registry), within the time limit, and validates what it returns (a dict of real, finite arrays
   of the reference's keys and shapes);
2. an :class:`Example` holds one drawn case, rws_ref's output on it (computed once) and the user's (called
   once);
3. each property is a function ``(check, example) -> Outcome``: passed or not, the numbers, and — for a
   disagreement — the :class:`rws_ref.checking.diagnose.Verdict` naming the closest known mistake;
4. testing.check_estimator runs every property on every example and keeps each property's first failure
   as a :class:`PropertyResult` (status, numbers, verdict, input) in the :class:`CheckReport`.

The exact mean is a property of its own (rws_ref.checking.exact_mean), computed without sampling.
"""
import inspect
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import numpy as np

from .. import protocol, registry
from .._checks import NonFinite, deadline, traceback_text
from .._trees import flatten
from ..registry import Case
from . import diagnose

__all__ = ["UserFunction", "takes_objects", "UserOutputError", "NonFiniteOutput", "PropertyResult",
           "CheckReport", "Check", "Example", "Outcome", "PROPERTIES", "close", "draw_case", "shaped_like",
           "STABILITY_SHIFTS", "stability_shift", "no_max_shift", "traceback_text", "ShiftedModel"]

ShiftedModel = registry.ShiftedModel


class UserOutputError(ValueError):
    """The user's function returned something an estimator cannot return (named in the message)."""


class NonFiniteOutput(UserOutputError):
    """The user's function returned NaN or ±inf: ``key``, ``index`` and ``value`` say where."""

    def __init__(self, message, key, index, value):
        super().__init__(message)
        self.key, self.index, self.value = key, index, value


@dataclass
class PropertyResult:
    """One property's outcome: status "pass", "fail" or "not applicable"; on failure the numbers, the input
    or the user's exception (``detail``), the diagnosis as a value (``verdict``: a diagnose.Verdict, whose
    ``mistakes`` name the closest known mistakes) and the failing input (``case``); when not applicable, the
    reason."""
    name: str
    status: str                 # "pass", "fail" or "not applicable"
    detail: str = ""
    verdict: Optional[object] = None
    case: Optional[Case] = None

    @property
    def mistakes(self):
        """The known mistakes the failure looks like (empty when none is named)."""
        return self.verdict.mistakes if self.verdict is not None else ()


@dataclass
class CheckReport:
    """The results of a check, one PropertyResult per property."""
    kind: str
    results: list = field(default_factory=list)

    @property
    def ok(self):
        """No property failed and at least one passed: a check where nothing applied is not a pass."""
        return all(r.status != "fail" for r in self.results) and any(r.status == "pass" for r in self.results)

    @property
    def checked(self):
        """At least one property could be checked (passed or failed)."""
        return any(r.status != "not applicable" for r in self.results)

    def failed(self):
        """The failed properties."""
        return [r for r in self.results if r.status == "fail"]

    def __str__(self):
        verdict = "all properties hold" if self.ok else "FAILED" if self.failed() else \
            "NOTHING CHECKED: no property applies"
        lines = [f"check_estimator({self.kind!r}): {verdict}"]
        lines += [f"  [{r.status}] {r.name}" + (f": {r.detail}" if r.detail else "") for r in self.results]
        return "\n".join(lines)

    def assert_ok(self):
        """Raise AssertionError with the report if any property failed."""
        if not self.ok:
            raise AssertionError(str(self))


# -- the user's function -----------------------------------------------------------------------------


def takes_objects(fn, full, what):
    """Whether ``fn`` takes the leading ``model, guide`` of the argument names ``full``: decided by its
    number of required positional arguments; a function with ``*args`` takes them.  The one arity rule of
    rws_ref's checks (check_estimator, check_loss, check_stochastic).  TypeError for any other count."""
    objects = sum(name in ("model", "guide") for name in full)
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):             # a builtin or C callable: give it everything
        return True
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    n = len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty])
    if n == len(full):
        return True
    if objects and n == len(full) - objects:
        return False
    forms = [", ".join(full)] + ([", ".join(a for a in full if a not in ("model", "guide"))] if objects else [])
    raise TypeError(f"fn must take ({') or ('.join(forms)}) for {what}; {getattr(fn, '__name__', 'fn')} takes "
                    f"{n} required arguments")


class UserFunction:
    """The user's ``fn`` called in the signature of ``entry`` (with or without the leading model and
    guide), within ``timeout`` seconds, its output checked and returned as a dict of float64 arrays."""

    def __init__(self, fn, entry, timeout=None, names=None):
        self.fn, self.entry, self.timeout = fn, entry, timeout
        self.objects = takes_objects(fn, names or entry.signature.names, entry.name)
        self.name = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))

    def __call__(self, model, guide, case, like):
        """The user's output on ``case``, validated against ``like`` (rws_ref's output: keys and shapes)."""
        return self.check_output(self.invoke(self.entry.signature.arguments(model, guide, case, self.objects)), like)

    def invoke(self, args):
        """The user's function on positional ``args``, within the time limit; its output unchecked."""
        with deadline(self.timeout, self.name):
            return self.fn(*args)

    def check_output(self, out, like):
        """``out`` as a dict of finite real float64 arrays with the keys and shapes of ``like``."""
        out = registry.as_output(self.entry, out)
        if not isinstance(out, dict):
            raise UserOutputError(f"{self.name} returned {type(out).__name__}; {self.entry.name} returns a dict "
                                  f"keyed like the parameters ({', '.join(sorted(like))})")
        if sorted(out) != sorted(like):
            raise UserOutputError(f"{self.name} returned keys {sorted(out)}; {self.entry.name} returns {sorted(like)}")
        checked = {}
        for key, value in out.items():
            try:
                arr = np.asarray(value)
            except Exception as err:                 # an object NumPy cannot read (a tensor with grad, say)
                raise UserOutputError(f"{self.name} returned {type(value).__name__} for {key!r}, not an array "
                                      f"({err}); give NumPy arrays (e.g. tensor.detach().numpy())") from None
            if arr.dtype.kind == "c" or arr.dtype.kind not in "fiub":
                raise UserOutputError(f"{self.name} returned {key!r} of dtype {arr.dtype}; an estimator's output "
                                      f"is real")
            if arr.shape != np.shape(like[key]):
                raise UserOutputError(f"{self.name} returned {key!r} of shape {arr.shape}; expected "
                                      f"{np.shape(like[key])}")
            arr = arr.astype(np.float64)
            if not np.all(np.isfinite(arr)):
                bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0]) if arr.ndim else ()
                raise NonFiniteOutput(f"{self.name} returned a non-finite value {arr[bad]} in {key!r} at {bad}", key,
                                      bad, float(arr[bad]))
            checked[key] = arr
        return checked


def shaped_like(entry, model, guide, n):
    """Zeros of the keys and shapes ``entry``'s output has for n datapoints (θ's, φ's, or the bound's (n,))."""
    if entry.output == "bound":
        return {"elbo_is": np.zeros(n)}
    shapes = model.theta_shapes if entry.output == "theta" else guide.phi_shapes
    return {k: np.zeros(shape) for k, shape in shapes.items()}


def close(a, b, rtol):
    """(ok, detail): the largest difference of two output dicts against rtol·max(1, max|b|)."""
    a, b = flatten(a, sorted(a)), flatten(b, sorted(b))
    if a.shape != b.shape:
        return False, f"shapes differ: {a.shape} vs {b.shape}"
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
    return err <= rtol * scale, f"max |difference| = {err:.3e} (tolerance {rtol * scale:.1e})"


def draw_case(entry, model, guide, theta, phi, rng, n, k, x=None, z=None, m=None):
    """A :class:`Case` for ``entry`` around θ, φ (:meth:`rws_ref.registry.Signature.draw`): x from the model
    (unless given), particles z (unless given: from the pair's finite latent domain, else from the guide),
    base noise ε for reparameterized kinds, ``m`` dreams (default n) from the model, ι and δ in (0.05, 0.95)."""
    return entry.signature.draw(model, guide, theta, phi, rng, n, k, x=x, z=z, m=m)


# -- one example, every property -----------------------------------------------------------------------


@dataclass
class Check:
    """What every property of one check needs: the user's function, the estimator, the pair, the tolerance,
    and why the shift-based properties cannot apply (None when they can)."""
    call: UserFunction
    entry: registry.Estimator
    model: object
    guide: object
    rtol: float
    shift_reason: Optional[str] = None
    data: Optional[np.ndarray] = None

    def batch(self, theta, rng, n):
        """n datapoints: drawn (with replacement) from the given data, else from the model's sampler."""
        if self.data is not None:
            return self.data[rng.integers(0, len(self.data), n)]
        return protocol.sample_model(self.model, theta, n, rng)[1]

    def reference(self, case, model=None):
        return self.entry.reference(model or self.model, self.guide, case)

    def user(self, case, like, model=None):
        return self.call(model or self.model, self.guide, case, like)

    def diagnose(self, mine, want, case, model=None):
        """The diagnosis (a Verdict) with the tolerance agreement uses: rtol relative to max(1, max |reference|)."""
        atol = self.rtol * max(1.0, float(np.max(np.abs(flatten(want)))) if want else 1.0)
        return diagnose.compare(self.entry.name, mine, model or self.model, self.guide, rtol=0.0, atol=atol,
                                **case._asdict())

    def larger_case(self):
        """A generic example with K = 4 particles for N = 3 datapoints (3 dreams), parameters jittered."""
        rng = np.random.default_rng(0)
        theta, phi = (self.model.init_theta(rng), self.guide.init_phi(rng))
        theta = {k: v + 0.7 * rng.standard_normal(np.shape(v)) for k, v in theta.items()}      # no symmetries
        phi = {k: v + 0.7 * rng.standard_normal(np.shape(v)) for k, v in phi.items()}
        return draw_case(self.entry, self.model, self.guide, theta, phi, rng, n=3, k=4, x=self.batch(theta, rng, 3))


class Example:
    """One drawn case, rws_ref's output on it and the user's, each computed once (on first use); the extreme
    case (log weights of any spread) beside it."""

    def __init__(self, check, case, extreme):
        self.check, self.case, self.extreme = check, case, extreme
        self._reference = self._output = None

    @property
    def reference(self):
        if self._reference is None:
            self._reference = self.check.reference(self.case)
        return self._reference

    @property
    def output(self):
        if self._output is None:
            self._output = self.check.user(self.case, self.reference)
        return self._output


class Outcome(NamedTuple):
    """A property on one example: passed or not, the numbers, and the diagnosis (a Verdict) of a disagreement."""
    ok: bool
    detail: str = ""
    verdict: Optional[object] = None


def _disagreement(check, mine, want, case, model=None, what=""):
    """The Outcome of a disagreement: the numbers and the diagnosis — and, when the input is small enough to tie
    mistakes (N = 1: no batch to normalize over; K = 1: w̄ = 1) or the diagnosis is ambiguous, the diagnosis on
    a larger, generic example as well."""
    ok, detail = close(mine, want, check.rtol)
    if ok:
        return Outcome(True, detail)
    verdict = check.diagnose(mine, want, case, model)
    text = f"{what}{detail}; {verdict}"
    if close(mine, want, 1e-5)[0] and not verdict.mistakes:        # single-precision rounding, not a formula
        text += ("; the difference is at the level of float32 rounding (within 1e-5 relative): does your code "
                 "compute in float32? rws_ref checks in float64 at rtol 1e-8 (compute in float64, or pass rtol)")
    sig = check.entry.signature
    if model is None and (sig.size(case) < 3 or sig.particles(case) < 4 or verdict.ambiguous):
        try:
            big = check.larger_case()
            ref = check.reference(big)
            larger = check.diagnose(check.user(big, ref), ref, big)
        except Exception as err:                   # the user's code failed there: keep the first diagnosis
            text += f"; on a larger, generic example (K = 4, N = 3): not evaluated ({type(err).__name__}: {err})"
        else:
            if larger.mistakes != verdict.mistakes:
                text += f"; on a larger, generic example (K = 4, N = 3): {larger}"
                verdict = larger if larger.mistakes else verdict
    return Outcome(False, text, verdict)


def agreement(check, ex):
    """Equals rws_ref's estimator on the drawn input."""
    return _disagreement(check, ex.output, ex.reference, ex.case)


def extreme(check, ex):
    """Equals rws_ref's estimator on an input whose log weights have any spread (w̄ may be one-hot)."""
    want = check.reference(ex.extreme)
    return _disagreement(check, check.user(ex.extreme, want), want, ex.extreme)


def deterministic(check, ex):
    """The same input twice gives the same output."""
    ok, detail = close(check.user(ex.case, ex.reference), ex.output, 0.0)
    return Outcome(ok, detail if ok else "the same input gave two different outputs (" + detail + "): does it draw "
                   "from a global or unseeded random number generator, or keep state between calls?")


def permutation(check, ex):
    """Invariant to permuting each datapoint's particles (ε; the dreams' order), by a different permutation
    per datapoint."""
    return Outcome(*close(check.user(check.entry.signature.permuted(ex.case), ex.reference), ex.output, check.rtol))


def _shift(n):
    return 50.0 * (1.0 + np.arange(n))


def shift(check, ex):
    """Invariant to a θ-free constant added to each datapoint's log joint (the bound moves by it)."""
    sig = check.entry.signature
    c = _shift(sig.size(ex.case))
    model, case = sig.shifted(check.model, check.guide, ex.case, c)
    moved = sig.shift_moves(c)
    got = check.user(case, ex.reference, model)
    if moved is not None:
        got = {k: got[k] - moved[k] for k in got}
    return Outcome(*close(got, ex.output, check.rtol))


#: the per-datapoint shifts of log p_θ(z, x_n) of the numerical-stability property: 10³ and 10⁵ alternate
#: over the datapoints, once added and once subtracted — beyond exp's range (overflow above ≈ 709.8,
#: underflow to 0 below ≈ −745), so that exponentiating log weights without subtracting their max fails
STABILITY_SHIFTS = (1e3, 1e5)


def stability_shift(n, sign):
    """The shift c (N,) of the numerical-stability property: sign · (10³, 10⁵, 10³, …)."""
    return sign * np.array([STABILITY_SHIFTS[i % len(STABILITY_SHIFTS)] for i in range(n)])


def no_max_shift(sign, err):
    """The mistake a non-finite output under a large shift of the log weights names."""
    how = ("exp(log w) overflows to inf for log weights near +10³" if sign > 0 else
           "exp(log w) underflows to 0 for log weights near −10³, and 0/0 or log 0 follows")
    return (f"no max shift: {how} — returned {err.value} in {err.key!r} at {list(err.index)}; subtract each "
            f"datapoint's largest log weight before exponentiating (logsumexp, a stable softmax)")


def stability(check, ex):
    """Agreement with rws_ref when log p_θ(z, x_n) is shifted by ±10³ or ±10⁵ per datapoint (the log weights
    with it), and, where the signature can move one particle alone (the bound's log weights), when the first
    particle is raised that far above the others: the right answer stays finite; exp without a max shift (or
    shifted by anything but the max) does not.  A function that disagrees before any shift fails here too,
    saying so, and is diagnosed by the agreement property."""
    ok, detail = close(ex.output, ex.reference, check.rtol)
    if not ok:
        return Outcome(False, f"disagrees with rws_ref before any shift ({detail}; see the agreement property)")
    sig = check.entry.signature
    up, down = (stability_shift(sig.size(ex.case), sign) for sign in (1.0, -1.0))
    # (what was moved, the shift c, the moved model and case, whether the output moves with c as a shift does)
    moves = [(f"log p_θ shifted by {c.tolist()}: ", c, sig.shifted(check.model, check.guide, ex.case, c), True)
             for c in (up, down)]
    spread = sig.spread(check.model, check.guide, ex.case, up)
    if spread is not None:                        # the first particle 10³ or 10⁵ above the others
        moves.append((f"the first particle's log weight raised by {up.tolist()} above the others: ", up, spread,
                      False))
    for where, c, (model, case), common in moves:
        sign = float(np.sign(c[0]))
        moved = sig.shift_moves(c) if common else None
        if not check.entry.shift_invariant or not common:
            want = check.reference(case, model)
        elif moved is None:
            want = ex.reference
        else:
            want = {k: ex.reference[k] + moved[k] for k in ex.reference}
        try:
            mine = check.call.check_output(check.call.invoke(sig.arguments(model, check.guide, case,
                                                                           check.call.objects)), want)
        except NonFiniteOutput as err:
            return Outcome(False, where + no_max_shift(sign, err))
        except NonFinite as err:                   # NaN weights handed to the model's or guide's gradient
            return Outcome(False, where + f"no max shift: your function handed non-finite values to rws_ref ({err}) "
                                  f"— exp(log w) {'overflows' if sign > 0 else 'underflows'} without the max "
                                  f"subtracted; use a stable softmax of the log weights")
        out = _disagreement(check, mine, want, case, model, where)
        if not out.ok:
            return out
    return Outcome(True, f"log p_θ shifted by ±{STABILITY_SHIFTS} per datapoint"
                         + (", and one particle's log weight that far above the others" if spread else ""))


def batch(check, ex):
    """A batch estimate equals the mean of the single-datapoint estimates (the concatenation for the bound)."""
    parts = []
    for one in check.entry.signature.singles(ex.case):
        parts.append(check.user(one, {k: np.asarray(v)[..., :1] if check.entry.output == "bound" else v
                                      for k, v in ex.reference.items()}))
    if check.entry.output == "bound":
        joined = {k: np.concatenate([p[k] for p in parts]) for k in ex.output}
    else:
        joined = {k: np.mean([p[k] for p in parts], axis=0) for k in ex.output}
    return Outcome(*close(ex.output, joined, check.rtol))


class Property(NamedTuple):
    name: str
    test: callable
    shifts: bool = False            # needs the model to be shifted (not applicable where shift_reason says)


STABILITY = "numerical stability: log weights shifted by ±10³ and ±10⁵"

#: the properties every example goes through, in the report's order
PROPERTIES = (Property("agreement with rws_ref", agreement),
              Property("agreement, extreme log weights", extreme),
              Property("deterministic", deterministic),
              Property("permutation invariance", permutation),
              Property("per-datapoint shift invariance", shift, shifts=True),
              Property(STABILITY, stability, shifts=True),
              Property("batch = mean of single datapoints", batch))


def not_applicable(check, prop):
    """Why ``prop`` cannot run in this check, or None."""
    if not prop.shifts:
        return None
    if not check.entry.signature.evaluates_model:
        return "sleep-φ does not evaluate the model" if prop.test is shift else "sleep-φ has no importance weights"
    if prop.test is shift and not check.entry.shift_invariant:
        return ("REINFORCE's learning signal L̂ moves with the shift; only its mean is invariant "
                "(VIMCO's differences L̂ − L̂₋ₖ are invariant)")
    return check.shift_reason
