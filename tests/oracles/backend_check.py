"""The golden numbers of the worked example, checked in another process on another Keras backend.

The Keras backend is fixed by the first ``import keras`` of a process, so each backend gets its
own interpreter: :func:`run_golden_check` runs :func:`check_golden_numbers` there and returns
a completed process (its stdout is ``ok`` when every number matched, its stderr says what did
not). On JAX that interpreter is the test process's persistent JAX worker
(:mod:`tests.oracles.jax_worker`, shared with the other JAX oracles: starting one costs more
than the check); any other backend gets a fresh subprocess running :data:`GOLDEN_CHECK`.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

__all__ = ["GOLDEN_CHECK", "check_golden_numbers", "run_golden_check"]

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

GOLDEN_CHECK = textwrap.dedent("""
    import sys
    from tests.oracles.backend_check import check_golden_numbers
    print(check_golden_numbers(sys.argv[1]))
""")


def check_golden_numbers(backend: str) -> str:
    """Check the worked example's receptive field and totals on this process's backend.

    Parameters
    ----------
    backend : str
        The backend this process must run (``keras.backend.backend()``).

    Returns
    -------
    str
        ``"ok"``; a number that does not match raises AssertionError.
    """
    # Whether TensorFlow was loaded before the analysis: in a shared worker an earlier request
    # may have imported it, and then this check cannot see whether the analysis did.
    tensorflow_before = "tensorflow" in sys.modules
    import keras

    import modelstats
    from modelstats.models import clothing_classifier

    assert keras.backend.backend() == backend, keras.backend.backend()
    # Weights with a shape and no value (modelstats reads shapes only): JAX would otherwise
    # compile one random initialiser per weight shape, most of this check's time.
    with keras.StatelessScope(initialize_variables=False):
        base = keras.applications.MobileNetV2(input_shape=(224, 224, 3), include_top=False,
                                              weights=None)
        classifier = clothing_classifier()
    rf = modelstats.receptive_field(base, "out_relu")
    assert (rf.size, rf.stride, rf.padding) == ((491, 491), (32, 32), (214, 214)), rf
    report = modelstats.analyze(classifier)
    t = report.totals
    assert (t["params"], t["trainable_params"]) == (2270794, 12810), t
    assert (t["macs"], t["flops"]) == (299507072, 625162172), t
    assert report.layers.loc["mobilenetv2_1.00_224/Conv_1", "macs"] == 20070400
    assert "tensorflow" not in sys.modules, (
        "TensorFlow was imported before this check (by an earlier request to this process), so "
        "it cannot tell whether analysing a Keras 3 graph imports it" if tensorflow_before
        else "analysing a Keras 3 graph imported TensorFlow"
    )
    return "ok"


def run_golden_check(backend: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run :func:`check_golden_numbers` under ``KERAS_BACKEND=backend``.

    Parameters
    ----------
    backend : str
        ``"jax"`` runs in the JAX worker; any other backend in a new subprocess.
    timeout : float
        Seconds before the check is abandoned (the process stopped).

    Returns
    -------
    subprocess.CompletedProcess
        ``returncode`` 0 and ``stdout`` ``"ok\\n"`` when every number matched; otherwise a
        non-zero ``returncode`` and the error in ``stderr`` (for the JAX worker: the
        exception and its traceback, as a subprocess would print them).
    """
    if backend == "jax":
        from tests.oracles import jax_worker

        args = ["jax_worker", "tests.oracles.backend_check:check_golden_numbers", backend]
        try:
            out = jax_worker.call("tests.oracles.backend_check:check_golden_numbers",
                                  backend=backend, timeout=timeout)
        except jax_worker.JaxWorkerError as exc:
            return subprocess.CompletedProcess(args, 1, stdout="", stderr=str(exc))
        return subprocess.CompletedProcess(args, 0, stdout=f"{out}\n", stderr="")
    env = {**os.environ, "KERAS_BACKEND": backend}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p
    )
    return subprocess.run([sys.executable, "-c", GOLDEN_CHECK, backend], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)
