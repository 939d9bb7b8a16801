"""Keras 3 on the PyTorch backend gives the golden numbers (in a subprocess, KERAS_BACKEND=torch).

torch is not in the `test` extra: its wheel alone would take much of the suite's install budget.
So this check runs only where torch is installed and is skipped otherwise, and the README says
exactly that (TensorFlow and JAX are what a default test run covers).
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.oracles.backend_check import run_golden_check


# find_spec, not importorskip: importing torch here would cost seconds for nothing.
@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="torch is not installed (not part of the test extra)")
def test_golden_checks_on_the_torch_backend():
    done = run_golden_check("torch")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
