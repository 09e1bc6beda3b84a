"""The exact-mean property of check_estimator: the user's estimator averaged exactly over its particles
(z ~ q^K, enumerated by rws_ref.exact) against what its mean must equal — the exact ELBO_IS, the exact
gradient of ELBO_IS (the unbiased kinds), rws_ref's own exact mean (the self-normalized kinds, their bias
included), or the sleep target over (z, x) ~ p_θ.  No sampling, so no false failures beyond rounding.
"""
from math import comb

import numpy as np

from .. import exact, protocol, registry
from ..estimators import sleep_phi, wake_phi
from ..registry import Case
from .properties import PropertyResult, close, draw_case, shaped_like, traceback_text

__all__ = ["exact_mean", "EXACT"]

EXACT = "exact mean (oracle)"

#: the most calls of the user's function the exact-mean property makes for one K (one per multiset of K
#: states and datapoint): a K whose enumeration needs more is left out and named in the result
MAX_CALLS = 4000


def exact_mean(call, entry, model, guide, exact_ks, rtol, min_k, data=None):
    """The exact mean of the user's estimator (no sampling) against what it must equal (registry.mean)."""
    if not entry.signature.enumerable:
        return PropertyResult(EXACT, "not applicable", "a reparameterized estimator needs a continuous latent, "
                                                       "and the exact oracle a finite support()")
    if not entry.signature.evaluates_model:                 # sleep-φ: exact over (z, x) ~ p_θ
        return _exact_sleep_mean(call, model, guide, rtol)
    if protocol.support(model) is None:
        return PropertyResult(EXACT, "not applicable", "the exact oracle needs a finite support() (docs/protocol.md)")
    rng = np.random.default_rng(0)
    theta, phi = model.init_theta(rng), guide.init_phi(rng)
    phi = {k: v + 0.5 * rng.standard_normal(np.shape(v)) for k, v in phi.items()}
    x = data[:2] if data is not None else None
    base = draw_case(entry, model, guide, theta, phi, rng, n=2, k=1, x=x)
    n_states, n_data = protocol.support(model).shape[0], base.x.shape[0]
    calls = {K: comb(n_states + K - 1, K) * n_data for K in exact_ks if K >= min_k}
    ks = tuple(K for K in calls if calls[K] <= MAX_CALLS)
    left = "".join(f"; K = {K} left out: {calls[K]:,} calls (C(S + K − 1, K) multisets of the S = {n_states} "
                   f"states × {n_data} datapoints) exceed {MAX_CALLS:,}" for K in calls if K not in ks)
    if not ks:
        return PropertyResult(EXACT, "not applicable", f"too large{left}")
    for K in ks:
        try:
            mean, want, what = _exact_pair(call, entry, model, guide, base, K)
        except exact.TooLarge as err:
            return PropertyResult(EXACT, "not applicable", f"too large ({err})")
        except Exception as err:
            return PropertyResult(EXACT, "fail", f"K = {K}: your function raised {traceback_text(err)}")
        ok, detail = close(mean, want, rtol)
        if not ok:
            return PropertyResult(EXACT, "fail", f"K = {K}: exact mean differs from {what}: {detail}")
    return PropertyResult(EXACT, "pass", f"K in {ks}{left}")


def _exact_pair(call, entry, model, guide, base, K):
    """(the user's exact mean, what it must equal, the name of that) at K particles."""
    th, ph, x = base.theta, base.phi, base.x
    proposal = entry.signature.proposal(model, guide, base)

    def user(m, g, theta, phi, xx, z):
        return call(model, guide, base._replace(theta=theta, phi=phi, x=xx, z=z), shaped_like(entry, model, guide,
                                                                                               np.shape(xx)[0]))
    mean, _ = exact.moments(user, model, proposal, th, ph, x, K, method="direct")
    if entry.mean == "elbo_is":
        return mean, {"elbo_is": np.mean(exact.elbo_is(model, guide, th, ph, x, K), keepdims=True)}, \
            "the exact ELBO_IS (unbiasedness)"
    if entry.mean == "grad_elbo_is":
        (dtheta, dphi), _ = exact.grad_elbo_is_any_route(model, guide, th, ph, x, K)
        return mean, (dtheta if entry.output == "theta" else dphi), "the exact gradient of ELBO_IS (unbiasedness)"
    want, _ = exact.moments(wake_phi, model, proposal, th, ph, x, K)
    if entry.mean == "insomnia":
        dreams = sleep_phi(guide, ph, base.dream_z, base.dream_x)
        want = {k: base.iota * want[k] + (1 - base.iota) * dreams[k] for k in want}
        return mean, want, "ι × wake-φ's exact mean + (1 − ι) × sleep-φ on the same dreams"
    return mean, want, "rws_ref's exact mean (the self-normalized estimator's bias included)"


def _exact_sleep_mean(call, model, guide, rtol):
    has_points = (protocol.support(model) is not None and callable(getattr(model, "data_support", None))) or \
        callable(getattr(model, "joint_quadrature", None))
    if not has_points:
        return PropertyResult(EXACT, "not applicable", "the expectation over (z, x) ~ p_θ needs support() with "
                                                       "data_support(), or joint_quadrature() (docs/protocol.md)")
    rng = np.random.default_rng(0)
    theta, phi = model.init_theta(rng), guide.init_phi(rng)
    z, xs, prob = exact.joint_points(model, theta, 64)
    like = shaped_like(registry.get("sleep_phi"), model, guide, 1)
    try:
        rows = [call(model, guide, Case(theta, phi, dream_z=z[0, i:i + 1], dream_x=xs[i:i + 1]), like)
                for i in range(len(prob))]
    except Exception as err:
        return PropertyResult(EXACT, "fail", f"your function raised {traceback_text(err)}")
    mean = {k: sum(p * r[k] for p, r in zip(prob, rows)) for k in rows[0]}
    ok, detail = close(mean, exact.sleep_target(model, guide, theta, phi), rtol)
    what = "∇_φ E_{p_θ(x)} KL(p_θ(z|x) ‖ q_φ(z|x)) (the sleep target)"
    if not ok:
        return PropertyResult(EXACT, "fail", f"exact mean differs from {what}: {detail}")
    return PropertyResult(EXACT, "pass", f"over {len(prob)} points (z, x) of p_θ")
