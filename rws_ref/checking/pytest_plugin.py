"""pytest integration: the ``rws_check`` fixture checks an estimator in one line of your test.

Installed with rws_ref (entry point ``pytest11``), so in any test file::

    def test_my_wake_theta(rws_check):
        rws_check(my_wake_theta, "wake_theta", model, guide)

runs :func:`rws_ref.testing.check_estimator` and fails the test with the whole
report — each property, and for a disagreement the entry, expected and got and
the closest known mistake — as the failure message, with rws_ref's own frames
hidden (your test's line stays).  Keyword options (``seed``, ``max_examples``,
``rtol``, ``shrink``, ``min_k``, ``max_spread``, ``exact_ks``, ``timeout``) pass
through; a misuse of the fixture (an unknown kind, a model without its guide, a
bad option) fails the test with one line.
"""
import pytest


@pytest.fixture
def rws_check():
    """A function (fn, kind, model=None, guide=None, **options) -> CheckReport that fails the test
    with the diagnosis if any property fails."""
    from rws_ref.checking.testing import check_estimator

    def rws_check(fn, kind, model=None, guide=None, **options):
        __tracebackhide__ = True
        try:
            report = check_estimator(fn, kind, model, guide, **options)
        except (TypeError, ValueError) as err:          # the arguments, refused before any example ran
            pytest.fail(f"rws_check: {err}", pytrace=False)
        if not report.ok:
            pytest.fail(str(report), pytrace=False)
        return report
    return rws_check
