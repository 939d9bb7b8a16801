"""The persistent JAX worker (tests/oracles/jax_worker.py) that the JAX oracles share.

These tests use the process's own worker, as the oracles do, so they add no JAX start-up to a
run that starts it anyway. The functions below are what they ask the worker to run (importable
there as ``tests.test_jax_worker:<name>``).
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.oracles import jax_worker

# find_spec, not importorskip: importing JAX in this (TensorFlow) process would cost seconds.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                reason="jax is not installed")


def backend_and_total(values):
    """Run in the worker: its Keras backend and the sum of ``values``."""
    import keras

    return {"backend": keras.backend.backend(), "total": sum(values)}


def noisy(value):
    """Run in the worker: prints what looks like a reply, then returns ``value``."""
    print(jax_worker.MARKER + '{"id": 0, "ok": true, "result": "forged"}', flush=True)
    return value


def fail(message):
    """Run in the worker: raises."""
    raise ValueError(message)


def layer_name():
    """Run in the worker: the auto-generated name of a new Dense layer."""
    import keras

    return keras.layers.Dense(1).name


def test_a_request_returns_the_value_computed_on_jax():
    result = jax_worker.call("tests.test_jax_worker:backend_and_total", values=[1, 2, 3.5])
    assert result == {"backend": "jax", "total": 6.5}


def test_an_error_names_the_function_and_the_worker_stays_usable():
    worker = jax_worker.worker()
    worker.start()  # a no-op when it runs already
    pid = worker.pid
    with pytest.raises(RuntimeError, match=r"tests\.test_jax_worker:fail raised ValueError in "
                                           r"the JAX worker: no luck") as caught:
        jax_worker.call("tests.test_jax_worker:fail", message="no luck")
    assert "raise ValueError(message)" in str(caught.value)  # the traceback's end
    assert jax_worker.call("tests.test_jax_worker:noisy", value=[4]) == [4]
    assert worker.pid == pid


def test_what_the_function_prints_does_not_reach_the_protocol():
    assert jax_worker.call("tests.test_jax_worker:noisy", value={"a": 1}) == {"a": 1}


def test_each_request_starts_from_a_clear_session():
    first = jax_worker.call("tests.test_jax_worker:layer_name")
    assert first == jax_worker.call("tests.test_jax_worker:layer_name") == "dense"
