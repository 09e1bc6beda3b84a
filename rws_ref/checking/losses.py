"""Check a scalar surrogate loss, as frameworks expose them: its value and its gradients.

Pyro's ReweightedWakeSleep, Pyro's and NumPyro's RenyiELBO(α = 0) and a hand-written
PyTorch or JAX training step all give a scalar to minimize and its gradients by
automatic differentiation — not rws_ref's per-datapoint estimators.  :func:`check_loss`
finds the convention a loss follows on fixed particles: its value as a multiple of
the mean bound (1/N) Σ_n L̂_n, its θ-gradient as a multiple of wake-θ, its φ-gradient
as a multiple of the estimator ``kind`` — and says whether that is consistent with
minimizing (a θ-gradient that is a negative multiple of wake-θ, the ascent direction
of the bound; a φ-gradient that is a positive multiple of a descent direction of the
KL, or a negative multiple of an ascent direction of the bound).  A gradient that is
no multiple of the estimator is matched against the estimator's known mistakes, each
at its own multiple ("−N × wake-φ with whole-run weights").
"""
from dataclasses import dataclass, field

import numpy as np

from .. import protocol, registry
from .._checks import DEFAULT_TIMEOUT, check_timeout
from .._trees import flatten
from ..estimators import log_weights, wake_theta
from ..registry import Case
from . import limits
from . import mistakes as known
from .properties import UserFunction, draw_case

__all__ = ["check_loss", "LossReport", "Convention"]


@dataclass
class Convention:
    """What one part of a loss is, in rws_ref's terms: ``factor`` × ``of`` (None: no multiple found),
    whether that is what minimizing the loss needs, and the sentence that says so."""
    part: str
    factor: float = float("nan")
    of: str = ""
    consistent: bool = False
    text: str = ""


@dataclass
class LossReport:
    """:func:`check_loss`'s findings: one :class:`Convention` per part given (value, θ, φ)."""
    kind: str
    parts: list = field(default_factory=list)

    @property
    def ok(self):
        """Every gradient given is consistent with minimizing the loss — and at least one was given: a loss that
        returns a value alone is not checked, so not ok."""
        gradients = [p for p in self.parts if p.part != "value"]
        return bool(gradients) and all(p.consistent for p in gradients)

    def __str__(self):
        head = f"check_loss({self.kind!r}): {'consistent' if self.ok else 'NOT consistent'}"
        return "\n".join([head] + [f"  {p.text}" for p in self.parts])

    def assert_ok(self):
        """Raise AssertionError with the report if a gradient is not consistent with minimizing the loss."""
        if not self.ok:
            raise AssertionError(str(self))


def _scale_words(factor, n, rtol=1e-9):
    """'−N' for −3 with N = 3, '1' for 1.0, '−0.5' otherwise (equal to within ``rtol``)."""
    for value, words in ((1.0, "1"), (float(n), "N"), (1.0 / n, "1/N")):
        for sign, mark in ((1, ""), (-1, "−")):
            if abs(factor - sign * value) <= max(rtol, 1e-9) * max(1.0, abs(factor)):
                return mark + words
    return f"{factor:.6g}".replace("-", "−")


def _fit(got, reference, rtol):
    """(factor, ok): the multiple a with got ≈ a · reference (least squares over every case's entries)."""
    g, r = np.concatenate([flatten(x) for x in got]), np.concatenate([flatten(x) for x in reference])
    rr = float(r @ r)
    if rr == 0.0:
        return float("nan"), False
    a = float(g @ r) / rr
    scale = max(1.0, float(np.max(np.abs(a * r))))
    return a, bool(np.max(np.abs(g - a * r)) <= rtol * scale)


def _explain(part, got, refs, made, n, minimize_sign, rtol, name, K):
    """The Convention of one gradient: a multiple of the reference, else of the closest known result — a
    mistake, a framework's documented convention, an unbiased variant, or another objective's estimator
    (mistakes.nature says which)."""
    if all(not np.any(flatten(g)) for g in got):
        return Convention(part, 0.0, "", False, f"{part} is exactly zero: no gradient reaches these parameters "
                                                f"(a detached output, or a score-function term that was dropped)")
    a, ok = _fit(got, refs, rtol)
    if ok:
        consistent = np.sign(a) == minimize_sign
        verdict = "consistent with minimizing the loss" if consistent else \
            "its sign makes minimizing the loss move the wrong way"
        return Convention(part, a, name, bool(consistent),
                          f"{part} = {_scale_words(a, n, rtol)} × {name}: {verdict}")
    best = None
    for mistake in made[0]:
        if " + " in mistake or mistake in (known.SIGN, known.SUM, known.ZERO):    # multiples are found by the fit
            continue
        outs = [m.get(mistake) for m in made]
        if any(o is None for o in outs):
            continue
        b, fits = _fit(got, outs, rtol)
        if fits and (best is None or abs(abs(b) - 1) < abs(abs(best[0]) - 1)):
            best = (b, mistake)
    if best is None:
        return Convention(part, a, "", False, f"{part} is no multiple of {name} nor of a known mistake of it (best "
                                             f"multiple {a:.4g}); compare it entry by entry with diagnose.compare")
    b, mistake = best
    what, said = known.nature(mistake, K)
    scale = _scale_words(b, n, rtol)
    if what == "mistake":
        return Convention(part, b, f"{name} with: {mistake}", False,
                          f"{part} = {scale} × {name} with a known mistake: {mistake}")
    if what == "objective":
        return Convention(part, b, mistake, False, f"{part} = {scale} × {mistake}: {said}; not {name}")
    consistent = bool(np.sign(b) == minimize_sign)
    direction = "consistent with minimizing the loss" if consistent else \
        "its sign makes minimizing the loss move the wrong way"
    return Convention(part, b, f"{name} under: {mistake}", consistent,
                      f"{part} = {scale} × {name}, {said}: {direction}")


def check_loss(loss, kind, model=None, guide=None, theta=None, phi=None, x=None, z=None, *, eps=None,
               dream_z=None, dream_x=None, iota=None, delta=None, K=4, N=3, M=None, seed=0, rtol=1e-8, minimize=True,
               timeout=DEFAULT_TIMEOUT):
    """Check a scalar surrogate loss on fixed particles and report its convention.

    Parameters
    ----------
    loss : callable taking the arguments of rws_ref's function ``kind`` (with or without the leading
        model and guide: ``loss(theta, phi, x, z)``, ``loss(theta, phi, x, eps)`` for reparameterized
        kinds, ``loss(phi, dream_z, dream_x)`` for sleep-φ) and returning ``(value, grad_theta,
        grad_phi)``: the loss, and its gradients in θ and in φ as dicts (either may be None when the
        loss does not reach those parameters)
    kind : the estimator its φ-gradient implements (rws_ref.registry.KINDS, not "elbo_is"); its
        θ-gradient is compared with wake-θ, its value with the mean bound (1/N) Σ_n L̂_n
    model, guide : the pair the loss implements (default: LinearGaussian(2, 3), DiagonalGaussianGuide(2, 3))
    theta, phi, x, z, eps, dream_z, dream_x, iota, delta : the inputs; missing ones are drawn (seed), with
        ``K`` particles for ``N`` datapoints.  The check also runs at a second, jittered (θ, φ), so that
        a multiple is a constant of the loss and not a coincidence of one input.
    M : the dreams per call of a sleep-φ or insomnia loss (default N)
    rtol : tolerance of "is a multiple", relative to max(1, the largest entry)
    timeout : seconds (default 60; None: no limit): each call of ``loss`` and of the model's and guide's methods
        must return within it (TimeoutError naming the function)
    minimize : True for a loss to minimize (the frameworks' convention), False for an objective to maximize

    Returns
    -------
    LossReport — ``str(report)`` says, e.g., "θ-gradient = −N × wake-θ: consistent with minimizing the loss".
    """
    entry = registry.get(kind)
    if entry.output != "phi":
        raise ValueError(f"kind must name a φ estimator (the one the loss's φ-gradient implements); got {kind!r}")
    if not callable(loss):
        raise TypeError(f"loss must be callable; got {type(loss).__name__}")
    if isinstance(minimize, (bool, np.bool_)) is False:
        raise TypeError(f"minimize must be True or False; got {minimize!r}")
    if model is None and guide is None:
        model, guide = registry.default_pair(entry)
    protocol.check_pair(model, guide)
    given = Case(theta, phi, x, z, eps, dream_z, dream_x, iota, delta)
    timeout = check_timeout(timeout)
    model, guide = limits.timed(model, timeout), limits.timed(guide, timeout)
    cases = _cases(entry, model, guide, given, K, N, M, seed)
    call = UserFunction(loss, entry, timeout)
    outputs = [_evaluate(call, entry, model, guide, c) for c in cases]
    resolution = max(o[3] for o in outputs)               # 1e-6 when a gradient came back in float32
    if resolution > 1e-12:                                # compare at that precision, and say so
        rtol = max(rtol, 20 * resolution)
    K, n = entry.signature.particles(cases[0]), entry.signature.size(cases[0])
    sign = -1.0 if minimize else 1.0
    report = LossReport(kind)
    values = [o[0] for o in outputs]
    if all(v is not None for v in values) and entry.signature.evaluates_model:
        report.parts.append(_value_convention(values, model, guide, cases, n))
    if all(o[1] is not None for o in outputs) and model.theta_shapes:        # a model without θ: nothing to say
        refs = [wake_theta(model, guide, c.theta, c.phi, c.x, c.z) for c in cases]
        made = [known.all_mistakes("wake_theta", model, guide, c) for c in cases]
        report.parts.append(_explain("θ-gradient", [o[1] for o in outputs], refs, made, n, sign, rtol, "wake-θ", K))
    if all(o[2] is not None for o in outputs):
        refs = [registry.reference_output(entry, model, guide, c) for c in cases]
        made = [known.all_mistakes(kind, model, guide, c) for c in cases]
        phi_sign = sign if entry.direction == registry.ASCENT else -sign
        report.parts.append(_explain("φ-gradient", [o[2] for o in outputs], refs, made, n, phi_sign, rtol,
                                     kind.replace("_phi", "-φ").replace("_", " "), K))
    if not report.parts:
        raise ValueError("loss returned no value and no gradients: nothing to check")
    if not any(p.part != "value" for p in report.parts):
        report.parts.append(Convention("gradients", text="no gradient came back (grad_theta and grad_phi are both "
                                                         "None): nothing checked, so not consistent"))
    if resolution > 1e-12:
        report.parts.append(Convention("precision", consistent=True, text=(
            f"precision: the gradients came back in {np.finfo(np.float32).dtype if resolution < 1e-3 else 'float16'}"
            f" (resolution {resolution:g}), so they are compared at rtol {rtol:g}; compute in float64 for a check "
            f"at 1e-8")))
    return report


def _cases(entry, model, guide, given, K, N, M, seed):
    """The given inputs (the missing ones drawn) and a second case at a jittered (θ, φ)."""
    rng = np.random.default_rng(seed)
    theta = model.init_theta(rng) if given.theta is None else given.theta
    phi = guide.init_phi(rng) if given.phi is None else given.phi
    first = draw_case(entry, model, guide, theta, phi, rng, n=N, k=K, x=given.x, z=given.z, m=M)
    extras = {k: v for k, v in given._asdict().items() if k not in ("theta", "phi", "x", "z") and v is not None}
    first = first._replace(**extras)
    if given.eps is not None:
        first = first._replace(z=guide.reparameterize(first.phi, first.x, given.eps))
    jitter = np.random.default_rng([seed, 1])
    second = first._replace(theta={k: np.asarray(v) + 0.3 * jitter.standard_normal(np.shape(v))
                                   for k, v in first.theta.items()},
                            phi={k: np.asarray(v) + 0.3 * jitter.standard_normal(np.shape(v))
                                 for k, v in first.phi.items()})
    if not entry.signature.enumerable:                   # the particles z(ε, φ) move with φ
        second = second._replace(z=guide.reparameterize(second.phi, second.x, second.eps))
    return [_read_only(c, model, guide) for c in (first, second)]


def _read_only(case, model, guide):
    """The case with every array a read-only view (validated): a loss that writes into θ, φ, x or the particles
    fails at once instead of changing the caller's arrays or the inputs of the check's second half."""
    arrays = {k: protocol.readonly(np.asarray(v)) for k, v in case._asdict().items()
              if isinstance(v, np.ndarray) and k not in ("theta", "phi")}
    return case._replace(theta=protocol.validate_params(case.theta, model.theta_shapes, "theta"),
                         phi=protocol.validate_params(case.phi, guide.phi_shapes, "phi"), **arrays)


def _evaluate(call, entry, model, guide, case):
    out = call.invoke(entry.signature.arguments(model, guide, case, call.objects))
    if not isinstance(out, tuple) or len(out) != 3:
        raise TypeError(f"{call.name} must return (value, grad_theta, grad_phi); got {type(out).__name__}"
                        + (f" of length {len(out)}" if isinstance(out, tuple) else ""))
    value, g_theta, g_phi = out
    if value is not None:
        arr = np.asarray(value)
        if arr.shape not in ((), (1,)) or arr.dtype.kind not in "fiu" or not np.isfinite(arr).all():
            raise TypeError(f"{call.name} returned a loss value {value!r}; expected one finite real number")
        value = float(arr.reshape(()))
    phi_like = entry.reference(model, guide, case)
    theta_like = {k: np.zeros(np.shape(v)) for k, v in case.theta.items()}
    # the resolution of the gradients' dtype: 1e-15 for float64, 1e-6 for float32 (the coarsest one given)
    resolution = max((float(np.finfo(np.asarray(v).dtype).resolution) for g in (g_theta, g_phi) if isinstance(g, dict)
                      for v in g.values() if np.asarray(v).dtype.kind == "f"), default=1e-15)
    return (value, None if g_theta is None else call.check_output(g_theta, theta_like),
            None if g_phi is None else call.check_output(g_phi, phi_like), resolution)


def _value_convention(values, model, guide, cases, n):
    bounds = [float(np.mean(registry.ESTIMATORS["elbo_is"].function(
        log_weights(model, guide, c.theta, c.phi, c.x, c.z)))) for c in cases]
    got, ref = np.array(values), np.array(bounds)
    a = float(got @ ref / (ref @ ref)) if ref @ ref > 0 else float("nan")
    if np.isfinite(a) and np.max(np.abs(got - a * ref)) <= 1e-8 * max(1.0, np.max(np.abs(got))):
        return Convention("value", a, "mean ELBO_IS", True,
                          f"value = {_scale_words(a, n)} × mean ELBO_IS ((1/N) Σ_n L̂_n)")
    return Convention("value", a, "", True, "value is no fixed multiple of the bound (a surrogate whose value "
                                            "carries no meaning, as RWS's φ loss; its gradient is what counts)")

