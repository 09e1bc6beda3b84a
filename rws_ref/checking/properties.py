"""The properties :func:`rws_ref.testing.check_estimator` checks, one function each.

A user's function is called through a :class:`Caller` in the signature of rws_ref's
function of the same kind (rws_ref.registry), its output validated (a dict of real,
finite arrays of the reference's keys and shapes) before any comparison.  Each
property takes one :class:`rws_ref.registry.Case` and returns (ok, detail); the exact
mean is a property of its own (:func:`exact_mean`), computed without sampling.
"""
import inspect
from dataclasses import dataclass, field

import numpy as np

from .. import exact, family, protocol, registry
from .._checks import NonFinite, deadline, traceback_text
from .._trees import flatten
from ..estimators import elbo_is, sleep_phi, wake_phi
from ..registry import Case
from . import diagnose

__all__ = ["Caller", "UserOutputError", "NonFiniteOutput", "STABILITY_SHIFTS", "stability_shift", "no_max_shift",
           "PropertyResult", "CheckReport", "Properties", "exact_mean",
           "ShiftedModel", "close", "traceback_text"]


class UserOutputError(ValueError):
    """The user's function returned something an estimator cannot return (named in the message)."""


class NonFiniteOutput(UserOutputError):
    """The user's function returned NaN or ±inf: ``key``, ``index`` and ``value`` say where."""

    def __init__(self, message, key, index, value):
        super().__init__(message)
        self.key, self.index, self.value = key, index, value


@dataclass
class PropertyResult:
    """One property's outcome: status "pass", "fail" or "not applicable", and the numbers, the
    input or the user's exception on failure (the reason when not applicable)."""
    name: str
    status: str                 # "pass", "fail" or "not applicable"
    detail: str = ""


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


class Caller:
    """The user's ``fn`` called in the signature of ``entry`` (with or without the leading model and
    guide), its output checked and returned as a dict of float64 arrays."""

    def __init__(self, fn, entry, timeout=None):
        self.fn, self.entry, self.timeout = fn, entry, timeout
        full = registry.SIGNATURES[entry.signature]
        objects = sum(name in ("model", "guide") for name in full)
        try:
            params = inspect.signature(fn).parameters.values()
            star = any(p.kind is p.VAR_POSITIONAL for p in params)
            n = len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                     and p.default is p.empty])
        except (TypeError, ValueError):
            star, n = True, len(full)
        if not star and n not in (len(full), len(full) - objects):
            forms = [", ".join(full)] + ([", ".join(a for a in full if a not in ("model", "guide"))] if objects else [])
            raise TypeError(f"fn must take ({') or ('.join(forms)}) for {entry.name}; "
                            f"{getattr(fn, '__name__', 'fn')} takes {n} required arguments")
        self.objects = star or n == len(full)
        self.name = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))

    def __call__(self, model, guide, case, reference=None):
        return self.check_output(self.invoke(registry.arguments(self.entry, model, guide, case,
                                                                with_objects=self.objects)),
                                 reference if reference is not None else
                                 registry.reference_output(self.entry, model, guide, case))

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


def close(a, b, rtol):
    """(ok, detail): the largest difference of two output dicts against rtol·max(1, max|b|)."""
    a, b = flatten(a, sorted(a)), flatten(b, sorted(b))
    if a.shape != b.shape:
        return False, f"shapes differ: {a.shape} vs {b.shape}"
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
    return err <= rtol * scale, f"max |difference| = {err:.3e} (tolerance {rtol * scale:.1e})"


class ShiftedModel:
    """The same model with log p(z, x_n) + c_n: a θ-free constant per datapoint (its gradients in θ
    and in z are the inner model's)."""

    def __init__(self, inner, shift):
        self.inner, self.shift = inner, shift
        protocol.copy_declarations(self, inner, "theta_shapes")
        if callable(getattr(inner, "grad_z_log_joint", None)):
            self.grad_z_log_joint = inner.grad_z_log_joint

    def __repr__(self):
        return f"{self.inner!r} shifted per datapoint"

    def init_theta(self, rng):
        return self.inner.init_theta(rng)

    def sample(self, theta, n, rng):
        return self.inner.sample(theta, n, rng)

    def log_joint(self, theta, z, x):
        return self.inner.log_joint(theta, z, x) + self.shift[: np.shape(x)[0]]

    def grad_log_joint(self, theta, z, x, weights):
        return self.inner.grad_log_joint(theta, z, x, weights)

    def log_joint_vjp(self, theta, z, x):
        log_p, pullback = protocol.model_forward(self.inner, theta, z, x)
        return log_p + self.shift[: np.shape(x)[0]], pullback


def _roll_particles(a):
    # each datapoint's particles (axis 0) rolled by a different amount: a permutation per datapoint
    perm = np.stack([np.roll(np.arange(a.shape[0]), n + 1) for n in range(a.shape[1])], axis=1)
    return np.take_along_axis(a, perm.reshape(perm.shape + (1,) * (a.ndim - 2)), axis=0)


class Properties:
    """The properties of one estimator kind for one user function, each ``case -> (ok, detail)``."""

    def __init__(self, caller, entry, model, guide, rtol):
        self.call, self.entry, self.model, self.guide, self.rtol = caller, entry, model, guide, rtol

    def _both(self, case, model=None):
        model = model or self.model
        want = registry.reference_output(self.entry, model, self.guide, case)
        return self.call(model, self.guide, case, want), want

    def agreement(self, case):
        mine, want = self._both(case)
        ok, detail = close(mine, want, self.rtol)
        if ok:
            return ok, detail
        verdict = self._diagnose(mine, want, case)
        if np.shape(case.x)[0] < 3 or np.shape(case.z)[0] < 4 or verdict.ambiguous:
            # a small input ties mistakes (N = 1: no batch to normalize over; K = 1: w̄ = 1): a generic one
            try:
                big = self.larger_case()
                larger = self._diagnose(*self._both(big), big)
                news = larger.mistakes != verdict.mistakes
            except Exception as err:           # the user's code failed there: keep the first diagnosis
                larger, news = f"not evaluated ({type(err).__name__}: {err})", True
            if news:
                verdict = f"{verdict}; on a larger, generic example (K = 4, N = 3): {larger}"
        return False, f"{detail}; {verdict}"

    def _diagnose(self, mine, want, case, model=None):
        # the diagnosis with the tolerance agreement uses: rtol relative to max(1, max |reference|)
        atol = self.rtol * max(1.0, float(np.max(np.abs(flatten(want)))))
        return diagnose.compare(self.entry.name, mine, model or self.model, self.guide, rtol=0.0, atol=atol,
                                **case._asdict())

    def larger_case(self):
        """A generic example with K = 4 particles for N = 3 datapoints (3 dreams), parameters jittered."""
        rng = np.random.default_rng(0)
        theta, phi = (self.model.init_theta(rng), self.guide.init_phi(rng))
        theta = {k: v + 0.7 * rng.standard_normal(np.shape(v)) for k, v in theta.items()}      # no symmetries
        phi = {k: v + 0.7 * rng.standard_normal(np.shape(v)) for k, v in phi.items()}
        return draw_case(self.entry, self.model, self.guide, theta, phi, rng, n=3, k=4)

    def deterministic(self, case):
        first, second = self.call(self.model, self.guide, case), self.call(self.model, self.guide, case)
        ok, detail = close(first, second, 0.0)
        return ok, ("the same input gave two different outputs (" + detail + "): does it draw from a global or "
                    "unseeded random number generator, or keep state between calls?") if not ok else detail

    def permutation(self, case):
        sig = self.entry.signature
        if sig == "noise":
            moved = case._replace(eps=_roll_particles(case.eps))
        elif sig == "dreams":
            order = np.roll(np.arange(len(case.dream_x)), 1)
            moved = case._replace(dream_z=np.asarray(case.dream_z)[order], dream_x=np.asarray(case.dream_x)[order])
        else:
            moved = case._replace(z=_roll_particles(case.z))
        return close(self.call(self.model, self.guide, moved), self.call(self.model, self.guide, case), self.rtol)

    def batch(self, case):
        whole = self.call(self.model, self.guide, case)
        parts = [self.call(self.model, self.guide, one) for one in _singles(self.entry, case)]
        if self.entry.output == "bound":
            joined = {k: np.concatenate([p[k] for p in parts]) for k in whole}
        else:
            joined = {k: np.mean([p[k] for p in parts], axis=0) for k in whole}
        return close(whole, joined, self.rtol)

    def stability(self, case):
        """Agreement with rws_ref when log p_θ(z, x_n) is shifted by ±10³ or ±10⁵ per datapoint (the log
        weights with it): the right answer stays finite; exp without a max shift does not.  A function that
        disagrees before any shift fails here too, saying so, and is diagnosed by the agreement property."""
        ok, detail = close(*self._both(case), self.rtol)
        if not ok:
            return False, f"disagrees with rws_ref before any shift ({detail}; see the agreement property)"
        for sign in (1.0, -1.0):
            c = stability_shift(np.shape(case.x)[0], sign)
            if self.entry.signature == "log_w":
                log_w = registry.arguments(self.entry, self.model, self.guide, case)[0] + c
                want, args, model = {"elbo_is": elbo_is(log_w)}, [log_w], None
            else:
                model = ShiftedModel(self.model, c)
                want = registry.reference_output(self.entry, model, self.guide, case)
                args = registry.arguments(self.entry, model, self.guide, case)
            try:
                mine = self.call.check_output(self.call.invoke(args), want)
            except NonFiniteOutput as err:
                return False, f"log p_θ shifted by {c.tolist()}: {no_max_shift(sign, err)}"
            except NonFinite as err:              # NaN weights handed to the model's or guide's gradient
                return False, (f"log p_θ shifted by {c.tolist()}: no max shift: your function handed non-finite "
                               f"values to rws_ref ({err}) — exp(log w) {'overflows' if sign > 0 else 'underflows'} "
                               f"without the max subtracted; use a stable softmax of the log weights")
            ok, detail = close(mine, want, self.rtol)
            if not ok:
                verdict = self._diagnose(mine, want, case, model) if model is not None else ""
                return False, f"log p_θ shifted by {c.tolist()}: {detail}" + (f"; {verdict}" if verdict else "")
        return True, f"log p_θ shifted by ±{STABILITY_SHIFTS} per datapoint"

    def shift(self, case):
        if self.entry.signature == "log_w":                     # L̂(log w + c) = L̂(log w) + c per datapoint
            c = 50.0 * (1.0 + np.arange(np.shape(case.x)[0]))
            shifted = self.call.check_output(self.call.fn(registry.arguments(
                self.entry, self.model, self.guide, case)[0] + c), {"elbo_is": c})
            return close({"elbo_is": shifted["elbo_is"] - c}, self.call(self.model, self.guide, case), self.rtol)
        shifted = ShiftedModel(self.model, 50.0 * (1.0 + np.arange(np.shape(case.x)[0])))
        return close(self.call(shifted, self.guide, case), self.call(self.model, self.guide, case), self.rtol)


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


def _singles(entry, case):
    """The case split into one datapoint each (one dream each for sleep-φ); insomnia keeps its dreams."""
    if entry.signature == "dreams":
        return [case._replace(dream_z=np.asarray(case.dream_z)[m:m + 1], dream_x=np.asarray(case.dream_x)[m:m + 1])
                for m in range(len(case.dream_x))]
    out = []
    for n in range(np.shape(case.x)[0]):
        one = case._replace(x=case.x[n:n + 1], z=None if case.z is None else case.z[:, n:n + 1])
        out.append(one._replace(eps=case.eps[:, n:n + 1]) if case.eps is not None else one)
    return out


def draw_case(entry, model, guide, theta, phi, rng, n, k, x=None, z=None):
    """A :class:`Case` for ``entry`` around θ, φ: x from the model (unless given), particles z (unless
    given: from the support, else from the guide), base noise ε for reparameterized kinds, M = n
    dreams from the model, ι and δ drawn in (0.05, 0.95)."""
    x = protocol.sample_model(model, theta, n, rng)[1] if x is None else x
    eps = None
    if entry.signature == "noise":
        eps = rng.standard_normal((k, x.shape[0]) + tuple(guide.z_shape))
        z = guide.reparameterize(phi, x, eps)
    elif z is None:
        states = protocol.support(model)
        z = states[rng.integers(0, len(states), (k, x.shape[0]))] if states is not None else \
            protocol.sample_guide(guide, phi, x, k, rng)
    dream_z = dream_x = iota = delta = None
    if entry.signature in ("dreams", "insomnia"):
        dream_z, dream_x = protocol.sample_model(model, theta, x.shape[0], rng)
    if entry.signature == "insomnia":
        iota = float(rng.uniform(0.05, 0.95))
    if entry.signature == "defensive":
        delta = float(rng.uniform(0.05, 0.95))
    return Case(theta, phi, x, z, eps, dream_z, dream_x, iota, delta)


# -- the exact mean ------------------------------------------------------------------------------


def exact_mean(call, entry, model, guide, exact_ks, rtol, min_k):
    """The exact mean of the user's estimator (no sampling) against what it must equal (registry.mean)."""
    name = "exact mean (oracle)"
    if entry.signature == "noise":
        return PropertyResult(name, "not applicable", "a reparameterized estimator needs a continuous latent, "
                                                      "and the exact oracle a finite support()")
    if entry.signature == "dreams":
        return _exact_sleep_mean(call, entry, model, guide, rtol)
    if protocol.support(model) is None:
        return PropertyResult(name, "not applicable", "the exact oracle needs a finite support() (docs/protocol.md)")
    rng = np.random.default_rng(0)
    theta, phi = model.init_theta(rng), guide.init_phi(rng)
    phi = {k: v + 0.5 * rng.standard_normal(np.shape(v)) for k, v in phi.items()}
    base = draw_case(entry, model, guide, theta, phi, rng, n=2, k=1)
    ks = tuple(K for K in exact_ks if K >= min_k)
    for K in ks:
        try:
            mean, want, what = _exact_pair(call, entry, model, guide, base, K)
        except exact.TooLarge as err:
            return PropertyResult(name, "not applicable", f"too large ({err})")
        except Exception as err:
            return PropertyResult(name, "fail", f"K = {K}: your function raised {traceback_text(err)}")
        ok, detail = close(mean, want, rtol)
        if not ok:
            return PropertyResult(name, "fail", f"K = {K}: exact mean differs from {what}: {detail}")
    return PropertyResult(name, "pass", f"K in {ks}")


def _exact_pair(call, entry, model, guide, base, K):
    """(the user's exact mean, what it must equal, the name of that) at K particles."""
    th, ph, x = base.theta, base.phi, base.x
    proposal = family.DefensiveGuide(guide, base.delta) if entry.signature == "defensive" else guide

    def user(m, g, theta, phi, xx, z):
        return call(model, guide, base._replace(theta=theta, phi=phi, x=xx, z=z))
    if entry.signature == "log_w":
        mean, _ = exact.moments(user, model, guide, th, ph, x, K, method="direct")
        return mean, {"elbo_is": np.mean(exact.elbo_is(model, guide, th, ph, x, K), keepdims=True)}, \
            "the exact ELBO_IS (unbiasedness)"
    mean, _ = exact.moments(user, model, proposal, th, ph, x, K, method="direct")
    if entry.mean == "grad_elbo_is":
        (dtheta, dphi), _ = exact.grad_elbo_is_any_route(model, guide, th, ph, x, K)
        return mean, (dtheta if entry.output == "theta" else dphi), "the exact gradient of ELBO_IS (unbiasedness)"
    want, _ = exact.moments(wake_phi, model, proposal, th, ph, x, K)
    if entry.signature == "insomnia":
        dreams = sleep_phi(guide, ph, base.dream_z, base.dream_x)
        want = {k: base.iota * want[k] + (1 - base.iota) * dreams[k] for k in want}
        return mean, want, "ι × wake-φ's exact mean + (1 − ι) × sleep-φ on the same dreams"
    return mean, want, "rws_ref's exact mean (the self-normalized estimator's bias included)"


def _exact_sleep_mean(call, entry, model, guide, rtol):
    name = "exact mean (oracle)"
    has_points = (protocol.support(model) is not None and callable(getattr(model, "data_support", None))) or \
        callable(getattr(model, "joint_quadrature", None))
    if not has_points:
        return PropertyResult(name, "not applicable", "the expectation over (z, x) ~ p_θ needs support() with "
                                                      "data_support(), or joint_quadrature() (docs/protocol.md)")
    rng = np.random.default_rng(0)
    theta, phi = model.init_theta(rng), guide.init_phi(rng)
    z, xs, prob = exact.joint_points(model, theta, 64)
    try:
        rows = [call(model, guide, Case(theta, phi, dream_z=z[0, i:i + 1], dream_x=xs[i:i + 1]))
                for i in range(len(prob))]
    except Exception as err:
        return PropertyResult(name, "fail", f"your function raised {traceback_text(err)}")
    mean = {k: sum(p * r[k] for p, r in zip(prob, rows)) for k in rows[0]}
    ok, detail = close(mean, exact.sleep_target(model, guide, theta, phi), rtol)
    what = "∇_φ E_{p_θ(x)} KL(p_θ(z|x) ‖ q_φ(z|x)) (the sleep target)"
    if not ok:
        return PropertyResult(name, "fail", f"exact mean differs from {what}: {detail}")
    return PropertyResult(name, "pass", f"over {len(prob)} points (z, x) of p_θ")
