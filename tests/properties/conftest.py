"""Hypothesis profiles for the property suites.

``ci`` (the default, about a minute in all) is derandomized and keeps no example database:
every run, on every machine, checks the same examples, so a result never depends on what an
earlier local run found. ``long`` explores at random, many more examples per test::

    HYPOTHESIS_PROFILE=long python -m pytest tests/properties/test_rf_oracle.py -q -x

Every counterexample found under ``long`` is kept as an ``@example`` on its test (with a
comment naming the bug it caught), so ``ci`` checks it from then on.
"""

import os

import pytest

hypothesis = pytest.importorskip("hypothesis")

_COMMON = dict(
    deadline=None, print_blob=True, database=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.filter_too_much],
)
hypothesis.settings.register_profile("ci", max_examples=25, derandomize=True, **_COMMON)
hypothesis.settings.register_profile("long", max_examples=2000, **_COMMON)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
