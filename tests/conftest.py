"""Hypothesis profiles for the whole suite, the shared helpers on the path, and one BLAS thread per pytest-xdist worker.

RWS_HYPOTHESIS_PROFILE selects one: ``dev`` (the default: quick, exploring
new examples each run) or ``ci`` (more examples, derandomized so a CI run is
reproducible).  Numeric properties run with ``deadline=None``.
"""
import os
import sys

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("RWS_HYPOTHESIS_PROFILE", "dev"))

# the shared helpers (_util, outside_models) for the tests of the wings too (tests/checking, tests/experiments)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n: the workers are the parallelism; a multi-threaded BLAS in each would oversubscribe the cores
    from threadpoolctl import threadpool_limits

    _ONE_BLAS_THREAD = threadpool_limits(limits=1, user_api="blas")
