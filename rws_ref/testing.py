"""Property-based checks you can run on your own RWS implementation.

Needs hypothesis (``pip install 'rws_ref[test]'``).

- Strategies: :func:`params`, :func:`cases` (θ, φ, a batch x and particles z
  for any model and guide that follow the protocol, built from their
  declarations, docs/protocol.md), :func:`log_weight_arrays`
  (including spreads up to ±1e5 and zero-weight particles).
- :func:`check_estimator` runs the properties a correct implementation of one
  estimator must have and reports which failed, on which input, with numbers.

Your function is either ``fn(theta, phi, x, z)`` (it implements the given
model and guide) or has rws_ref's uniform signature
``fn(model, guide, theta, phi, x, z)``; it returns a dict of arrays keyed like
the parameters, with the contract's sign convention.
"""
import inspect
import numbers
from dataclasses import dataclass, field

import numpy as np

from . import diagnose, exact, family, protocol
from ._checks import check_count
from ._trees import flatten as _flat
from .estimators import log_weights, wake_phi, wake_theta
from .models import DiagonalGaussianGuide, LinearGaussian

__all__ = ["params", "cases", "log_weight_arrays", "check_estimator", "assert_estimator", "CheckReport",
           "PropertyResult", "REFERENCE"]

#: kind -> (rws_ref's implementation, what its exact mean must equal on discrete models)
REFERENCE = {
    "wake_theta": (wake_theta, "grad_elbo_is_theta"),
    "wake_phi": (wake_phi, "reference_mean"),
    "reinforce_phi": (family.reinforce_phi, "grad_elbo_is_phi"),
    "vimco_phi": (family.vimco_phi, "grad_elbo_is_phi"),
}


def _st():
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
    return st, hnp


def params(shapes, low=-2.0, high=2.0, log_scale=(-1.0, 1.0)):
    """Strategy for a parameter dict with these shapes; keys starting with ``log_`` get ``log_scale``."""
    st, hnp = _st()

    def entry(key, shape):
        lo, hi = log_scale if key.startswith("log_") else (low, high)
        return hnp.arrays(np.float64, shape, elements=st.floats(lo, hi, allow_nan=False, allow_subnormal=False))
    return st.fixed_dictionaries({k: entry(k, s) for k, s in shapes.items()})


def cases(model, guide, max_n=3, max_k=4, min_k=1, max_spread=None):
    """Strategy for (theta, phi, x, z) on any model and guide that follow the protocol.

    θ and φ from the declared shapes (:func:`params`); x drawn from the model
    itself at that θ (``model.sample`` with a drawn seed), so it is data the
    model could produce; z from the finite ``support()`` if the model has one,
    else by the declared z_domain (real entries in [−4, 4], 0/1, or categories).

    ``max_spread`` (nats): keep each datapoint's log weights within this range,
    so the normalized weights are not one-hot — on a finite support by drawing
    the particles among the states whose log weight is within it of the best,
    otherwise by drawing them from the guide and rejecting wider spreads.
    """
    st, hnp = _st()
    protocol.check_pair(model, guide)
    states = protocol.support(model)
    z_shape, z_domain = tuple(model.z_shape), protocol.domain(model, "z")

    @st.composite
    def build(draw):
        from hypothesis import assume
        n, k = draw(st.integers(1, max_n)), draw(st.integers(min_k, max_k))
        theta, phi = draw(params(model.theta_shapes)), draw(params(guide.phi_shapes))
        rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
        x = protocol.validate_x(model, model.sample(theta, n, rng)[1])
        if states is not None:
            z = _support_particles(rng, states, model, guide, theta, phi, x, k, max_spread)
        elif max_spread is not None:
            z = guide.sample(phi, x, k, rng)
        elif z_domain == "real":
            z = draw(hnp.arrays(np.float64, (k, n) + z_shape, elements=st.floats(
                -4, 4, allow_nan=False, allow_subnormal=False)))
        else:
            top = 1 if z_domain == "binary" else z_domain - 1
            z = draw(hnp.arrays(np.int64, (k, n) + z_shape, elements=st.integers(0, top)))
            z = z.astype(np.float64) if z_domain == "binary" else z
        if max_spread is not None:
            log_w = log_weights(model, guide, theta, phi, x, z)
            assume(np.all(np.ptp(log_w, axis=0) <= max_spread))
        return theta, phi, x, z
    return build()


def _support_particles(rng, states, model, guide, theta, phi, x, k, max_spread):
    # particles drawn uniformly from the support for each datapoint; with max_spread, only among
    # the states whose log weight for that datapoint is within max_spread of the best one
    n = x.shape[0]
    if max_spread is None:
        return states[rng.integers(0, len(states), size=(k, n))]
    log_w = log_weights(model, guide, theta, phi, x, np.repeat(states[:, None], n, axis=1))      # (S, N)
    idx = np.empty((k, n), dtype=np.int64)
    for j in range(n):
        near = np.flatnonzero(log_w[:, j] >= log_w[:, j].max() - max_spread)
        idx[:, j] = near[rng.integers(0, len(near), size=k)]
    return states[idx]


def log_weight_arrays(max_k=6, max_n=4, spread=1e5, zero_weights=True):
    """Strategy for (K, N) log weights spread over ±``spread``, optionally with −inf
    entries (never a whole column of them)."""
    st, hnp = _st()

    @st.composite
    def build(draw):
        k, n = draw(st.integers(1, max_k)), draw(st.integers(1, max_n))
        a = draw(hnp.arrays(np.float64, (k, n), elements=st.floats(-spread, spread, allow_nan=False)))
        if zero_weights and k > 1:
            dead = draw(hnp.arrays(np.bool_, (k, n)))
            dead[np.argmax(a, axis=0), np.arange(n)] = False
            a = np.where(dead, -np.inf, a)
        return a
    return build()


@dataclass
class PropertyResult:
    """One property's outcome: status "pass", "fail" or "not applicable", and the numbers, the
    input or the user's exception on failure (the reason when not applicable)."""
    name: str
    status: str                 # "pass", "fail" or "not applicable"
    detail: str = ""


@dataclass
class CheckReport:
    """The results of :func:`check_estimator`, one PropertyResult per property."""
    kind: str
    results: list = field(default_factory=list)

    @property
    def ok(self):
        return all(r.status != "fail" for r in self.results)

    def failed(self):
        """The failed properties."""
        return [r for r in self.results if r.status == "fail"]

    def __str__(self):
        lines = [f"check_estimator({self.kind!r}): {'all properties hold' if self.ok else 'FAILED'}"]
        lines += [f"  [{r.status}] {r.name}" + (f": {r.detail}" if r.detail else "") for r in self.results]
        return "\n".join(lines)

    def assert_ok(self):
        """Raise AssertionError with the report if any property failed."""
        if not self.ok:
            raise AssertionError(str(self))


class _ShiftedModel:
    """The same model with log p(z, x_n) + c_n: a θ-free constant per datapoint."""

    def __init__(self, inner, shift):
        self.inner, self.shift = inner, shift
        protocol.copy_declarations(self, inner, "theta_shapes")

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


def _close(a, b, rtol):
    a, b = _flat(a), _flat(b)
    if a.shape != b.shape:
        return False, f"shapes differ: {a.shape} vs {b.shape}"
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
    return err <= rtol * scale, f"max |difference| = {err:.3e} (tolerance {rtol * scale:.1e})"


def _describe(theta, phi, x, z):
    fmt = lambda a: np.array2string(np.asarray(a), precision=4, threshold=20, separator=", ").replace("\n", "")
    parts = [f"theta[{k!r}]={fmt(v)}" for k, v in theta.items()] + [f"phi[{k!r}]={fmt(v)}" for k, v in phi.items()]
    return ", ".join(parts + [f"x={fmt(x)}", f"z={fmt(z)}"])


def check_estimator(fn, kind, model=None, guide=None, max_examples=25, rtol=1e-8, exact_ks=(1, 2, 3), seed=0,
                    shrink=False, min_k=None, max_spread=30.0):
    """Check an implementation of one estimator against the properties it must have.

    Parameters
    ----------
    fn : callable (theta, phi, x, z) -> dict, or (model, guide, theta, phi, x, z) -> dict
    kind : "wake_theta", "wake_phi", "reinforce_phi" or "vimco_phi"
    model, guide : the model and guide ``fn`` implements — built-in, your own following the
        protocol, or :mod:`rws_ref.adapters` around densities in another framework
        (default: LinearGaussian(2, 3) with DiagonalGaussianGuide(2, 3)).
    max_examples : int, hypothesis examples per property
    rtol : float in (0, 1), tolerance relative to max(1, max |reference|)
    exact_ks : K values for the exact-oracle property (models with a finite support)
    seed : int, the seed of the examples (same seed, same examples)
    shrink : bool, let hypothesis shrink a failing example (slower; a simpler input)
    min_k : int, the smallest K drawn (default 1; 2 for VIMCO)
    max_spread : float or None, the largest spread of one datapoint's log weights in the
        drawn cases, so that w̄ is not one-hot and every mistake shows; the extreme
        range (no limit) is checked by a property of its own.

    Properties
    ----------
    agreement     equals rws_ref's estimator on random θ, φ, x, z, with a diagnosis naming
                  the entry and the closest known mistake (rws_ref.diagnose)
    extreme       agreement again with log weights of any spread (w̄ may be one-hot)
    permutation   invariant to permuting each datapoint's particles
    shift         invariant to a θ-free constant added to one datapoint's log joint
                  (applies only to fn(model, guide, …) that evaluates the model it is given;
                  not a property of REINFORCE, whose learning signal moves with it)
    batch         a batch estimate equals the mean of the single-datapoint estimates
    exact         with a finite support: the exact mean over z ~ q^K equals
                  ∇ ELBO_IS (wake-θ, REINFORCE, VIMCO: unbiased) or rws_ref's exact
                  mean (wake-φ: the exact bias; zero at K = 1)

    An exception raised by ``fn`` is reported with its type, message and traceback.
    A property that cannot apply is reported as "not applicable", never as passed.

    Returns
    -------
    CheckReport (``report.ok``, ``report.failed()``, ``str(report)``, ``report.assert_ok()``)
    """
    min_k, seed = _check_options(fn, kind, rtol, max_examples, seed, min_k, max_spread)
    exact_ks = tuple(check_count(int(k) if isinstance(k, np.integer) else k, "exact_ks[i]") for k in exact_ks)
    max_examples = int(max_examples)
    if model is None:
        model, guide = LinearGaussian(2, 3), DiagonalGaussianGuide(2, 3)
    if guide is None:
        raise ValueError("guide must be given together with model")
    protocol.check_pair(model, guide)
    reference, exact_target = REFERENCE[kind]
    call, uniform = _caller(fn)
    report = CheckReport(kind)
    run = _runner(report, max_examples, seed, shrink)
    max_k = max(4, min_k)
    moderate = cases(model, guide, min_k=min_k, max_k=max_k, max_spread=max_spread)
    prop = _Properties(call, kind, reference, model, guide, rtol)
    run("agreement with rws_ref", prop.agreement, moderate)
    run("agreement, extreme log weights", prop.agreement, cases(model, guide, min_k=min_k, max_k=max_k,
                                                                max_spread=None))
    run("permutation invariance", prop.permutation, moderate)
    shift_reason = _shift_not_applicable(kind, uniform, fn, model, guide, moderate, seed)
    if shift_reason:
        report.results.append(PropertyResult("per-datapoint shift invariance", "not applicable", shift_reason))
    else:
        run("per-datapoint shift invariance", prop.shift, moderate)
    run("batch = mean of single datapoints", prop.batch, moderate)
    if protocol.support(model) is not None:
        report.results.append(_exact_property(call, kind, reference, exact_target, model, guide, exact_ks,
                                              rtol, min_k))
    else:
        report.results.append(PropertyResult("exact mean (oracle)", "not applicable",
                                             "the exact oracle needs a finite support() (docs/protocol.md)"))
    return report


def _check_options(fn, kind, rtol, max_examples, seed, min_k, max_spread):
    """Every argument of check_estimator, before any example runs; returns (min_k, seed)."""
    if kind not in REFERENCE:
        raise ValueError(f"kind must be one of {sorted(REFERENCE)}; got {kind!r}")
    if not callable(fn):
        raise TypeError(f"fn must be callable; got {type(fn).__name__}")
    if isinstance(rtol, bool) or not isinstance(rtol, numbers.Real) or not 0 < rtol < 1:
        raise ValueError(f"rtol must be a number in (0, 1); got {rtol!r}")
    check_count(max_examples, "max_examples")
    if max_spread is not None and (isinstance(max_spread, bool) or not isinstance(max_spread, numbers.Real)
                                   or not max_spread > 0):
        raise ValueError(f"max_spread must be a positive number or None; got {max_spread!r}")
    min_k = check_count(min_k if min_k is not None else (2 if kind == "vimco_phi" else 1), "min_k")
    if kind == "vimco_phi" and min_k < 2:
        raise ValueError(f"min_k must be >= 2 for VIMCO (its baseline needs two particles); got {min_k}")
    return min_k, check_count(seed, "seed", minimum=0)


def assert_estimator(fn, kind, model=None, guide=None, **options):
    """:func:`check_estimator`, raising AssertionError whose message is the whole report
    (the diagnosis) if any property fails — one line in a test."""
    check_estimator(fn, kind, model, guide, **options).assert_ok()


class _Poisoned:
    """A model every method of which raises: tells whether a function evaluates the model it is given."""

    class Touched(Exception):
        pass

    def __init__(self, inner):
        protocol.copy_declarations(self, inner, "theta_shapes")

    def __repr__(self):
        return "a model that must not be evaluated"

    def _touch(self, *args):
        raise self.Touched()

    init_theta = sample = log_joint = grad_log_joint = log_joint_vjp = _touch


def _shift_not_applicable(kind, uniform, fn, model, guide, strategy, seed):
    if kind == "reinforce_phi":
        return ("REINFORCE's learning signal L̂ moves with the shift; only its mean is invariant "
                "(VIMCO's differences L̂ − L̂₋ₖ are invariant)")
    if not uniform:
        return ("fn(theta, phi, x, z) evaluates its own densities, which rws_ref cannot shift; "
                "give fn(model, guide, theta, phi, x, z) to have the property checked")
    theta, phi, x, z = _example(strategy, seed)
    try:
        fn(_Poisoned(model), guide, theta, phi, x, z)
    except Exception:            # it evaluated the model (or failed on it in its own way): it uses the model
        return None
    return "fn ignores the model it is given (it evaluates its own densities), so a shifted model cannot test it"


def _example(strategy, seed):
    """One example of a strategy, reproducibly."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed
    out = []

    @hseed(seed)
    @settings(max_examples=1, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def take(case):
        out.append(case)
    take()
    return out[0]


def _caller(fn):
    """fn as a uniform (model, guide, theta, phi, x, z) callable, and whether it took that signature."""
    try:
        params = inspect.signature(fn).parameters.values()
        n_params = 6 if any(p.kind is p.VAR_POSITIONAL for p in params) else len(params)
    except (TypeError, ValueError):
        n_params = 6
    if n_params >= 6:
        return fn, True
    return (lambda m, g, th, ph, x, z: fn(th, ph, x, z)), False


def _runner(report, max_examples, seed, shrink):
    """run(name, prop, strategy): hypothesis over ``strategy``; the first failing input's numbers, or
    the exception the user's function raised with its traceback, go in the report."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    conf = settings(max_examples=max_examples, deadline=None, derandomize=False, database=None,
                    suppress_health_check=list(HealthCheck), phases=phases, report_multiple_bugs=False)

    def run(name, prop, strategy):
        failure = {}

        @hseed(seed)
        @conf
        @given(strategy)
        def test(case):
            theta, phi, x, z = case
            try:
                ok, detail = prop(theta, phi, x, z)
            except Exception as err:
                failure["detail"] = f"your function raised {_traceback(err)}input: {_describe(theta, phi, x, z)}"
                raise
            if not ok:
                failure["detail"] = f"{detail}; input: {_describe(theta, phi, x, z)}"
                raise AssertionError(detail)
        try:
            test()
            report.results.append(PropertyResult(name, "pass"))
        except Exception as err:
            report.results.append(PropertyResult(name, "fail", failure.get("detail", f"{type(err).__name__}: {err}")))
    return run


class _Properties:
    """The properties of one estimator, each (theta, phi, x, z) -> (ok, detail)."""

    def __init__(self, call, kind, reference, model, guide, rtol):
        self.call, self.kind, self.reference = call, kind, reference
        self.model, self.guide, self.rtol = model, guide, rtol

    def _run(self, model, theta, phi, x, z):
        return self.call(model, self.guide, theta, phi, x, z)

    def agreement(self, theta, phi, x, z):
        mine = self._run(self.model, theta, phi, x, z)
        want = self.reference(self.model, self.guide, theta, phi, x, z)
        ok, detail = _close(mine, want, self.rtol)
        if ok:
            return ok, detail
        verdict = self._diagnose(mine, want, theta, phi, x, z)
        if " or " in verdict.mistake:          # ambiguous on this small input: look at a larger one
            try:
                larger = self._larger(theta, phi)
            except Exception as err:           # the user's code failed there: keep the first diagnosis
                larger = f"not evaluated ({type(err).__name__}: {err})"
            verdict = f"{verdict}; on a larger, generic example (K = 4, N = 3): {larger}"
        return False, f"{detail}; {verdict}"

    def _larger(self, theta, phi):
        rng = np.random.default_rng(0)
        theta = {k: v + 0.7 * rng.standard_normal(np.shape(v)) for k, v in theta.items()}    # no symmetries
        phi = {k: v + 0.7 * rng.standard_normal(np.shape(v)) for k, v in phi.items()}
        x = self.model.sample(theta, 3, rng)[1]
        states = protocol.support(self.model)
        z = states[rng.integers(0, len(states), (4, 3))] if states is not None else self.guide.sample(phi, x, 4, rng)
        mine = self._run(self.model, theta, phi, x, z)
        return self._diagnose(mine, self.reference(self.model, self.guide, theta, phi, x, z), theta, phi, x, z)

    def _diagnose(self, mine, want, theta, phi, x, z):
        # the diagnosis with the tolerance agreement uses: rtol relative to max(1, max |reference|)
        atol = self.rtol * max(1.0, float(np.max(np.abs(_flat(want)))))
        return diagnose.compare(self.kind, mine, self.model, self.guide, theta, phi, x, z, rtol=0.0, atol=atol)

    def permutation(self, theta, phi, x, z):
        perm = np.stack([np.roll(np.arange(z.shape[0]), n + 1) for n in range(z.shape[1])], axis=1)
        z_perm = np.take_along_axis(z, perm.reshape(perm.shape + (1,) * (z.ndim - 2)), axis=0)
        return _close(self._run(self.model, theta, phi, x, z_perm), self._run(self.model, theta, phi, x, z), self.rtol)

    def batch(self, theta, phi, x, z):
        whole = self._run(self.model, theta, phi, x, z)
        singles = [self._run(self.model, theta, phi, x[n:n + 1], z[:, n:n + 1]) for n in range(x.shape[0])]
        return _close(whole, {k: np.mean([s[k] for s in singles], axis=0) for k in whole}, self.rtol)

    def shift(self, theta, phi, x, z):
        shifted = _ShiftedModel(self.model, 50.0 * (1.0 + np.arange(x.shape[0])))
        return _close(self._run(shifted, theta, phi, x, z), self._run(self.model, theta, phi, x, z), self.rtol)


def _exact_property(call, kind, reference, exact_target, model, guide, exact_ks, rtol, min_k):
    rng = np.random.default_rng(0)
    theta, phi = model.init_theta(rng), guide.init_phi(rng)
    phi = {k: v + 0.5 * rng.standard_normal(np.shape(v)) for k, v in phi.items()}
    x = model.sample(theta, 2, rng)[1]
    name, ks = "exact mean (oracle)", tuple(k for k in exact_ks if k >= min_k)
    for K in ks:
        try:
            mean, _ = exact.moments(call, model, guide, theta, phi, x, K, method="direct")
        except Exception as err:
            return PropertyResult(name, "fail", f"K = {K}: your function raised {_traceback(err)}")
        if exact_target == "reference_mean":
            want, _ = exact.moments(reference, model, guide, theta, phi, x, K)
            what = "rws_ref's exact mean (the wake-φ bias)"
        else:
            (dtheta, dphi), _ = exact.grad_elbo_is_any_route(model, guide, theta, phi, x, K)
            want = dtheta if exact_target.endswith("theta") else dphi
            what = "the exact gradient of ELBO_IS (unbiasedness)"
        ok, detail = _close(mean, want, rtol)
        if not ok:
            return PropertyResult(name, "fail", f"K = {K}: exact mean differs from {what}: {detail}")
    return PropertyResult(name, "pass", f"K in {ks}")


def _traceback(err):
    import traceback
    lines = traceback.format_exception(type(err), err, err.__traceback__)
    return f"{type(err).__name__}: {err}\n" + "".join(lines[-6:])
