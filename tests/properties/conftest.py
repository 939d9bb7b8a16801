"""Hypothesis profiles: ``ci`` (the default, about a minute in all) and ``long`` for local runs
(``HYPOTHESIS_PROFILE=long python -m pytest tests/properties``)."""

import os

import pytest

hypothesis = pytest.importorskip("hypothesis")

hypothesis.settings.register_profile(
    "ci", max_examples=25, deadline=None, print_blob=True,
    suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.filter_too_much],
)
hypothesis.settings.register_profile(
    "long", max_examples=400, deadline=None, print_blob=True,
    suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.filter_too_much],
)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
