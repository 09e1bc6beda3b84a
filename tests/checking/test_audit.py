"""rws_ref.checking.audit: every row passes on the built-in and outside models, and a planted error fails exactly
the rows of the estimator it touches."""
import pytest

from rws_ref import BernoulliGuide, SigmoidBeliefNet
from rws_ref.checking.audit import audit_model, format_table, run_audit

from outside_models import ClusterGuide, Clusters, TwoLayerGuide, TwoLayerNet

PROBLEMS = {"clusters": (Clusters, ClusterGuide), "two-layer": (lambda: TwoLayerNet(), lambda: TwoLayerGuide())}


def test_the_built_in_audit_passes_every_row_and_prints_one_line_per_row():
    rows, seconds = run_audit()
    assert len(rows) >= 24 and all(r.passed for r in rows), format_table([r for r in rows if not r.passed])
    assert {r.estimator for r in rows} >= {"wake-θ", "wake-φ", "sleep-φ", "REINFORCE φ", "VIMCO φ", "IWAE φ",
                                           "STL φ", "RWS-DReG φ", "defensive wake-φ δ=0.2"}
    assert len(format_table(rows).splitlines()) == len(rows) + 2 and seconds > 0


def test_a_guide_gradient_off_by_a_tenth_of_a_percent_fails_the_phi_rows_only():
    class Broken(BernoulliGuide):
        def log_prob_vjp(self, phi, z, x):
            log_q, pullback = super().log_prob_vjp(phi, z, x)
            return log_q, lambda w: {k: 1.001 * v for k, v in pullback(w).items()}
    rows = audit_model(SigmoidBeliefNet(3, 4), Broken(3, 4), seed=2)
    failed = {r.estimator for r in rows if not r.passed}
    assert failed and all("φ" in name for name in failed) and "wake-θ" not in failed, format_table(rows)
    assert all(r.passed for r in audit_model(SigmoidBeliefNet(3, 4), BernoulliGuide(3, 4), seed=2))


@pytest.mark.parametrize("which", sorted(PROBLEMS))
def test_the_audit_passes_on_outside_models_and_fails_on_a_broken_gradient(which):
    model, guide = (make() for make in PROBLEMS[which])
    rows = audit_model(model, guide, seed=1)
    assert len(rows) == 14 and all(r.passed for r in rows)          # 8 estimator rows, 6 sampler rows

    class Broken(Clusters):
        def grad_log_joint(self, theta, z, x, weights):
            g = super().grad_log_joint(theta, z, x, weights)
            return {**g, "means": 1.001 * g["means"]}
    rows = audit_model(Broken(3), ClusterGuide(3), seed=1)
    assert {r.estimator for r in rows if not r.passed} == {"wake-θ"}
