"""Hypothesis profiles for the whole suite.

RWS_HYPOTHESIS_PROFILE selects one: ``dev`` (the default: quick, exploring
new examples each run) or ``ci`` (more examples, derandomized so a CI run is
reproducible).  Numeric properties run with ``deadline=None``.
"""
import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("RWS_HYPOTHESIS_PROFILE", "dev"))
