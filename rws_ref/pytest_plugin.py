"""pytest integration: the ``rws_check`` fixture checks an estimator in one line of your test.

Installed with rws_ref (entry point ``pytest11``), so in any test file::

    def test_my_wake_theta(rws_check):
        rws_check(my_wake_theta, "wake_theta", model, guide)

runs :func:`rws_ref.testing.check_estimator` and fails the test with the whole
report — each property, and for a disagreement the entry, expected and got and
the closest known mistake — as the assertion message.  Keyword options
(``seed``, ``max_examples``, ``rtol``, ``shrink``, ``min_k``, ``max_spread``,
``exact_ks``) pass through.
"""
import pytest


@pytest.fixture
def rws_check():
    """A function (fn, kind, model=None, guide=None, **options) -> CheckReport that fails the test
    with the diagnosis if any property fails."""
    from rws_ref.testing import check_estimator

    def check(fn, kind, model=None, guide=None, **options):
        report = check_estimator(fn, kind, model, guide, **options)
        if not report.ok:
            pytest.fail(str(report), pytrace=False)
        return report
    return check
