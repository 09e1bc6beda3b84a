"""Property-based checks you can run on your own RWS implementation.

- Strategies: :func:`params`, :func:`cases` (θ, φ, a batch x and particles z
  for any model and guide that follow the protocol, built from their
  declarations, docs/protocol.md), :func:`log_weight_arrays`
  (including spreads up to ±1e5 and zero-weight particles).
- :func:`check_estimator` runs the properties a correct implementation of one
  estimator must have (rws_ref.properties) and reports which failed, on which
  input, with numbers and a diagnosis; :func:`assert_estimator` raises with it.
- :func:`check_loss` checks a scalar surrogate loss (its value and its gradients)
  and reports the convention it found (rws_ref.losses).

Any of rws_ref's twelve estimator kinds (rws_ref.registry.KINDS) can be checked.
Your function takes the arguments of rws_ref's function of the same name —
``fn(model, guide, theta, phi, x, z)`` for wake-θ, for instance, or
``fn(theta, phi, x, z)`` if it evaluates densities of its own — and returns a dict
of arrays keyed like the parameters (ELBO_IS: the (N,) array), with the
contract's sign convention.  hypothesis, which draws the examples, is installed
with rws_ref.
"""
import math
import numbers
import sys

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .. import protocol, registry
from .._checks import DEFAULT_TIMEOUT, check_count, check_timeout
from ..estimators import log_weights
from ..registry import Case
from . import limits
from .exact_mean import EXACT, exact_mean
from .losses import LossReport, check_loss
from .properties import (
    PROPERTIES,
    Check,
    CheckReport,
    Example,
    Outcome,
    PropertyResult,
    UserFunction,
    UserOutputError,
    draw_case,
    not_applicable,
    traceback_text,
)
from .sampling import check_samplers

__all__ = ["params", "cases", "log_weight_arrays", "check_estimator", "assert_estimator", "check_loss", "CheckReport",
           "PropertyResult", "LossReport", "MAX_EXAMPLES", "draw_case"]

#: check_estimator refuses more examples per property than this unless ``max_examples_limit`` is raised
MAX_EXAMPLES = 10_000


def params(shapes, low=-2.0, high=2.0, log_scale=(-1.0, 1.0)):
    """Strategy for a parameter dict with these shapes; keys starting with ``log_`` get ``log_scale``."""

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
    protocol.check_pair(model, guide)
    states = protocol.support(model)
    z_shape, z_domain = tuple(model.z_shape), protocol.domain(model, "z")

    @st.composite
    def build(draw):
        n, k = draw(st.integers(1, max_n)), draw(st.integers(min_k, max_k))
        theta, phi = draw(params(model.theta_shapes)), draw(params(guide.phi_shapes))
        rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
        x = protocol.sample_model(model, theta, n, rng)[1]
        if states is not None:
            z = _support_particles(rng, states, model, guide, theta, phi, x, k, max_spread)
        elif max_spread is not None:
            z = protocol.sample_guide(guide, phi, x, k, rng)
        elif z_domain == "real":
            z = _on_entries(model, draw(hnp.arrays(np.float64, (k, n) + z_shape, elements=st.floats(
                -4, 4, allow_nan=False, allow_subnormal=False))))
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


def check_estimator(fn, kind, model=None, guide=None, max_examples=25, rtol=1e-8, exact_ks=(1, 2, 3), seed=0,
                    shrink=False, min_k=None, max_spread=30.0, max_examples_limit=MAX_EXAMPLES,
                    timeout=DEFAULT_TIMEOUT,
                    progress=False, samplers=True, data=None):
    """Check an implementation of one estimator against the properties it must have.

    Parameters
    ----------
    fn : callable in the signature of rws_ref's function ``kind`` (rws_ref.registry), with or without the
        leading ``model, guide`` — e.g. ``fn(model, guide, theta, phi, x, z)`` or ``fn(theta, phi, x, z)``
        for wake-θ, ``fn(theta, phi, x, eps)`` for IWAE, ``fn(phi, dream_z, dream_x)`` for sleep-φ,
        ``fn(log_w)`` for ELBO_IS
    kind : one of rws_ref.registry.KINDS: "elbo_is", "wake_theta", "wake_phi", "sleep_phi", "insomnia",
        "defensive_wake_phi", "iwae_phi", "stl_phi", "iwae_dreg_phi", "rws_dreg_phi", "reinforce_phi",
        "vimco_phi"
    model, guide : the model and guide ``fn`` implements — built-in, your own following the protocol, or
        :mod:`rws_ref.adapters` around densities in another framework (default: LinearGaussian(2, 3) with
        DiagonalGaussianGuide(2, 3); for defensive wake-φ a four-component mixture)
    max_examples : int, hypothesis examples per property (at most ``max_examples_limit``)
    rtol : float in (0, 1), tolerance relative to max(1, max |reference|)
    exact_ks : K values for the exact-oracle property (models with a finite support)
    seed : int, the seed of the examples (same seed, same examples)
    shrink : bool, let hypothesis shrink a failing example (slower; a simpler input)
    min_k : int, the smallest K drawn (default: the estimator's own minimum, 2 for VIMCO)
    max_spread : float or None, the largest spread of one datapoint's log weights in the drawn cases,
        so that w̄ is not one-hot and every mistake shows; the extreme range is a property of its own.
    timeout : seconds (default 60, _checks.DEFAULT_TIMEOUT; None: no limit): each call of ``fn`` and of the
        model's and guide's methods must return within it, else the property fails with a TimeoutError
        naming the function (main thread, Unix)
    progress : bool, print each property's name to stderr as it starts
    samplers : bool, also test the pair's samplers against their densities (rws_ref.sampling): the
        particles a training run would use must come from the guide's density
    data : array (M, *x_shape), optional: observations the examples' batches are drawn from (with
        replacement) instead of the model's sampler — for a pair that serves no sample() (densities only)

    Properties
    ----------
    agreement      equals rws_ref's estimator on random inputs, with a diagnosis naming the entry and
                   the closest known mistake (rws_ref.diagnose)
    extreme        agreement again with log weights of any spread (w̄ may be one-hot)
    deterministic  the same input twice gives the same output
    permutation    invariant to permuting each datapoint's particles (ε; the dreams' order)
    shift          invariant to a θ-free constant added to one datapoint's log joint (ELBO_IS: moves by
                   it); applies only to a function that evaluates the model it is given, and not to
                   REINFORCE, whose learning signal moves with it, nor to sleep-φ, which has no model
    stability      agreement with rws_ref when each datapoint's log joint is shifted by ±10³ or ±10⁵
                   (past exp's range): a function that exponentiates log weights without subtracting
                   their max returns inf or NaN, named "no max shift"; applies where the shift
                   property does, and to REINFORCE
    batch          a batch estimate equals the mean of the single-datapoint estimates
    exact          with a finite support: the exact mean over z ~ q^K equals ∇ ELBO_IS (the unbiased
                   kinds), rws_ref's exact mean (the self-normalized kinds: their bias) or the exact
                   ELBO_IS; sleep-φ's exact mean over (z, x) ~ p_θ equals the sleep target
    samplers       ``guide.sample`` draws from ``guide.log_prob`` and ``model.sample`` from
                   ``model.log_joint`` (χ² on finite supports, the score identity, the PIT), each at a
                   false-failure rate of 1e-3

    An exception raised by ``fn`` is reported with its type, message and traceback; an output that is
    not a dict of finite real arrays of the right keys and shapes is reported as such.  A property that
    cannot apply is reported as "not applicable" with the reason, never as passed.

    Returns
    -------
    CheckReport (``report.ok``, ``report.failed()``, ``str(report)``, ``report.assert_ok()``)
    """
    entry = registry.get(kind)
    min_k, seed, rtol, max_examples = _check_options(fn, entry, rtol, max_examples, seed, min_k, max_spread,
                                                     max_examples_limit)
    exact_ks = tuple(check_count(int(k) if isinstance(k, np.integer) else k, "exact_ks[i]") for k in exact_ks)
    if model is None and guide is None:
        model, guide = registry.default_pair(entry)
    if model is None or guide is None:
        raise ValueError("model and guide must be given together (or neither, for the default pair)")
    protocol.check_pair(model, guide)
    timeout = check_timeout(timeout)
    model, guide = limits.timed(model, timeout), limits.timed(guide, timeout)
    call = UserFunction(fn, entry, timeout)
    data = None if data is None else protocol.validate_x(model, data, name="data")
    report = CheckReport(kind)
    reason = registry.applies(entry, model, guide) or _needs_data(model, data)
    if reason:
        report.results.append(PropertyResult("every property", "not applicable", reason))
        return report
    check = Check(call, entry, model, guide, rtol, data=data)
    examples = _ExampleMaker(check, min_k, max(4, min_k), 3, max_spread)
    check.shift_reason = _shift_not_applicable(check, examples, seed)
    _say(progress, f"check_estimator({kind!r}): {len(PROPERTIES)} properties on {max_examples} examples …")
    report.results += _run_properties(check, examples, max_examples, seed, shrink)
    _say(progress, f"check_estimator({kind!r}): {EXACT} …")
    report.results.append(exact_mean(call, entry, model, guide, exact_ks, rtol, min_k, data))
    if samplers:
        _say(progress, f"check_estimator({kind!r}): the samplers …")
        report.results += check_samplers(model, guide, seed)
    return report


def _needs_data(model, data):
    if data is None and not protocol.serves(model, "sample"):
        return "the examples need data: the model serves no sample(); give data=… (observations, (M, *x_shape))"
    return None


def _say(progress, text):
    if progress:
        print(text, file=sys.stderr, flush=True)


class _ExampleMaker:
    """Examples for one check: a spec — N, K, the scale of θ and of φ (0: the symmetric all-zero parameters,
    an edge case) and a seed — and the values drawn from that seed by NumPy, so an example costs the same
    however many parameters the pair has.  θ, φ in ±2 × scale (log-scales in
    ±1 × scale); x from the model; particles from the pair's finite latent domain (those within
    ``max_spread`` nats of the best, so w̄ is not one-hot), else from the guide (spread at most ``max_spread``,
    else the example is discarded); the extreme case beside it: particles of any spread (uniform over the
    domain, or in [−4, 4]; ε × 3)."""

    SCALES = (0.5, 1.0, 1.0)                # drawn; the all-zero and near-zero parameters are edge cases

    def __init__(self, check, min_k, max_k, max_n, max_spread):
        self.check, self.min_k, self.max_k, self.max_n, self.max_spread = check, min_k, max_k, max_n, max_spread
        self.states = protocol.latent_states(check.model, check.guide)

    def specs(self, count, seed):
        """The specs (N, K, θ scale, φ scale, seed) of ``count`` examples — up to 10 × count when examples are
        discarded: drawn from np.random.default_rng(seed), every other one of the first eight an edge case (one
        datapoint and the fewest particles with all-zero parameters; the most datapoints and particles with
        all-zero parameters; near-zero parameters; a nearly uniform guide)."""
        rng = np.random.default_rng([seed, 29])
        edges = [(1, self.min_k, 0.0, 0.0), (self.max_n, self.max_k, 0.0, 0.0), (1, self.min_k, 0.1, 0.1),
                 (self.max_n, self.max_k, 1.0, 0.1)]
        for i in range(10 * count):
            drawn = (int(rng.integers(1, self.max_n + 1)), int(rng.integers(self.min_k, self.max_k + 1)),
                     float(rng.choice(self.SCALES)), float(rng.choice(self.SCALES)), int(rng.integers(2 ** 32)))
            yield edges[i // 2] + drawn[-1:] if i % 2 and i // 2 < len(edges) else drawn

    def __call__(self, spec):
        """The Example of ``spec`` = (N, K, θ scale, φ scale, seed), or None when no particles within the
        spread were found."""
        n, k, theta_scale, phi_scale, seed = spec
        check = self.check
        model, guide, sig = check.model, check.guide, check.entry.signature
        rng = np.random.default_rng(seed)
        theta = _scaled(model.theta_shapes, theta_scale, rng)
        phi = _scaled(guide.phi_shapes, phi_scale, rng)
        x = check.batch(theta, rng, n)
        if not sig.enumerable:                                   # base noise ε, its particles z(ε, φ)
            case = sig.draw(model, guide, theta, phi, rng, n, k, x=x)
            extreme = case._replace(eps=3.0 * case.eps, z=guide.reparameterize(phi, x, 3.0 * case.eps))
            if self.max_spread is not None and not _within(model, guide, case, self.max_spread):
                return None
            return Example(check, case, extreme)
        z = self._particles(theta, phi, x, k, rng)
        if z is None:
            return None
        case = sig.draw(model, guide, theta, phi, rng, n, k, x=x, z=z)
        extreme = case._replace(z=self._anywhere(k, n, rng))
        return Example(check, sig.prepared(model, guide, case), sig.prepared(model, guide, extreme))

    def _particles(self, theta, phi, x, k, rng):
        model, guide = self.check.model, self.check.guide
        if self.states is not None:
            return _support_particles(rng, self.states, model, guide, theta, phi, x, k, self.max_spread)
        for _ in range(20):
            z = protocol.sample_guide(guide, phi, x, k, rng) if protocol.serves(guide, "sample") else \
                self._anywhere(k, x.shape[0], rng)
            if self.max_spread is None or _within(model, guide, Case(theta, phi, x, z), self.max_spread):
                return z
        return None

    def _anywhere(self, k, n, rng):
        if self.states is not None:
            return self.states[rng.integers(0, len(self.states), (k, n))]
        return _on_entries(self.check.model, rng.uniform(-4.0, 4.0, (k, n) + tuple(self.check.model.z_shape)))


def _on_entries(model, z):
    """Real particles ``z`` in [−4, 4] with each discrete entry a model declares in ``z_entries`` mapped onto
    its values (uniform in, uniform out): the domain a mixed latent allows."""
    for j, e in enumerate(protocol.z_entries(model) or ()):
        if e != "real":
            top = 2 if e == "binary" else e
            z[..., j] = np.clip(np.floor((z[..., j] + 4.0) / 8.0 * top), 0, top - 1)
    return z


def _scaled(shapes, scale, rng):
    return {key: scale * (1.0 if key.startswith("log_") else 2.0) * rng.uniform(-1.0, 1.0, shape)
            for key, shape in shapes.items()}


def _within(model, guide, case, max_spread):
    log_w = log_weights(model, guide, case.theta, case.phi, case.x, case.z)
    return bool(np.all(np.ptp(log_w, axis=0) <= max_spread))


def _run_properties(check, examples, max_examples, seed, shrink):
    """Every applicable property on every example (:meth:`_ExampleMaker.specs`): one PropertyResult per
    property, its first failure kept (with ``shrink``, the failure on the simplest smaller input)."""
    results, live = {}, []
    for prop in PROPERTIES:
        reason = not_applicable(check, prop)
        if reason:
            results[prop.name] = PropertyResult(prop.name, "not applicable", reason)
        else:
            live.append(prop)
    failing, done = {}, 0
    for spec in examples.specs(max_examples, seed):
        pending = [p for p in live if p.name not in results]
        if not pending or done == max_examples:
            break
        failures = _evaluate(check, examples, spec, pending)
        if failures is None:                       # no particles within the spread: another example
            continue
        done += 1
        results.update(failures)
        failing.update({name: spec for name in failures})
    if shrink:
        for prop in live:
            if prop.name in failing:
                results[prop.name] = _shrunk(check, examples, prop, failing[prop.name]) or results[prop.name]
    return [results.get(p.name, PropertyResult(p.name, "pass")) for p in PROPERTIES]


def _evaluate(check, examples, spec, props):
    """{property name: its PropertyResult} of the properties that fail on the example of ``spec`` (None when the
    example could not be drawn within the spread)."""
    try:
        ex = examples(spec)
    except Exception as err:                       # the pair's sampler or densities failed drawing the example
        text = f"drawing the example (the model's and guide's samplers and densities) raised {traceback_text(err)}"
        return {prop.name: PropertyResult(prop.name, "fail", text) for prop in props}
    if ex is None:
        return None
    failures = {}
    for prop in props:
        try:
            outcome = prop.test(check, ex)
        except UserOutputError as err:
            outcome = Outcome(False, f"your function returned {err}")
        except Exception as err:                   # the user's exception, with the user's frames
            outcome = Outcome(False, f"your function raised {traceback_text(err)}")
        if not outcome.ok:
            failures[prop.name] = PropertyResult(prop.name, "fail", f"{outcome.detail}; input: {_describe(ex.case)}",
                                                 outcome.verdict, ex.case)
    return failures


def _shrunk(check, examples, prop, spec):
    """The failure of ``prop`` on the smallest input below ``spec`` (fewer datapoints, fewer particles, zero
    parameters first) drawn from the same seed, or None."""
    n, k, theta_scale, phi_scale, seed = spec
    smaller = sorted({(n2, k2, t2, p2) for n2 in range(1, n + 1) for k2 in range(examples.min_k, k + 1)
                      for t2 in (0.0, theta_scale) for p2 in (0.0, phi_scale)})
    for n2, k2, t2, p2 in smaller:
        failure = (_evaluate(check, examples, (n2, k2, t2, p2, seed), [prop]) or {}).get(prop.name)
        if failure is not None:
            return failure
    return None


def _check_options(fn, entry, rtol, max_examples, seed, min_k, max_spread, limit):
    """Every argument of check_estimator, before any example runs; returns (min_k, seed, rtol, max_examples)."""
    if not callable(fn):
        raise TypeError(f"fn must be callable; got {type(fn).__name__}")
    if isinstance(rtol, bool) or not isinstance(rtol, numbers.Real):
        raise TypeError(f"rtol must be a number in (0, 1); got {type(rtol).__name__} {rtol!r}")
    if not 0 < rtol < 1:                                  # also refuses NaN
        raise ValueError(f"rtol must be a number in (0, 1); got {rtol!r}")
    limit = check_count(limit, "max_examples_limit")
    max_examples = check_count(max_examples, "max_examples")
    if max_examples > limit:
        raise ValueError(f"max_examples = {max_examples:,} examples per property is above the limit of {limit:,} "
                         f"(about {max_examples * 7 * 2e-3 / 3600:.2g} hours for a fast function); "
                         f"pass max_examples_limit={max_examples} to allow it")
    if max_spread is not None and (isinstance(max_spread, bool) or not isinstance(max_spread, numbers.Real)
                                   or not (max_spread > 0 and math.isfinite(max_spread))):
        raise ValueError(f"max_spread must be a positive finite number or None; got {max_spread!r}")
    min_k = check_count(min_k if min_k is not None else entry.min_k, "min_k")
    if min_k < entry.min_k:
        raise ValueError(f"min_k must be >= {entry.min_k} for {entry.name}; got {min_k}")
    return min_k, check_count(seed, "seed", minimum=0), float(rtol), max_examples


def assert_estimator(fn, kind, model=None, guide=None, **options):
    """:func:`check_estimator`, raising AssertionError whose message is the whole report
    (the diagnosis) if any property fails — one line in a test."""
    __tracebackhide__ = True
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

    init_theta = sample = log_joint = grad_log_joint = log_joint_vjp = grad_z_log_joint = _touch


def _shift_not_applicable(check, examples, seed):
    """Why a shifted model cannot test the user's function (it evaluates densities of its own), or None."""
    entry, call = check.entry, check.call
    if not entry.signature.evaluates_model or entry.output == "bound":
        return None
    if not call.objects:
        return ("fn evaluates its own densities, which rws_ref cannot shift; "
                "give fn(model, guide, …) to have the property checked")
    rng = np.random.default_rng(seed)
    theta = check.model.init_theta(rng)
    case = entry.signature.draw(check.model, check.guide, theta, check.guide.init_phi(rng), rng, n=2,
                                k=max(2, entry.min_k), x=check.batch(theta, rng, 2))
    try:
        call.invoke(entry.signature.arguments(_Poisoned(check.model), check.guide, case))
    except Exception:            # it evaluated the model (or failed on it in its own way): it uses the model
        return None
    return "fn ignores the model it is given (it evaluates its own densities), so a shifted model cannot test it"


def _describe(case):
    fmt = lambda a: np.array2string(np.asarray(a), precision=4, threshold=20, separator=", ").replace("\n", "")
    parts = [f"theta[{k!r}]={fmt(v)}" for k, v in case.theta.items()]
    parts += [f"phi[{k!r}]={fmt(v)}" for k, v in case.phi.items()]
    shown = [(name, v) for name, v in case._asdict().items() if name not in ("theta", "phi", "log_w") and v is not None]
    return ", ".join(parts + [f"{name}={fmt(v) if not isinstance(v, float) else v}" for name, v in shown])


