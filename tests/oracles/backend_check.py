"""The golden numbers of the worked example, checked in a subprocess on another Keras backend.

The Keras backend is fixed by the first ``import keras`` of a process, so each backend gets its
own interpreter: :func:`run_golden_check` runs :data:`GOLDEN_CHECK` with ``KERAS_BACKEND`` set
and returns the completed process (its stdout is ``ok`` when every number matched).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

GOLDEN_CHECK = textwrap.dedent("""
    import sys, keras, modelstats
    from modelstats.models import clothing_classifier
    assert keras.backend.backend() == sys.argv[1], keras.backend.backend()
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
    assert "tensorflow" not in sys.modules, "analysing a Keras 3 graph imported TensorFlow"
    print("ok")
""")


def run_golden_check(backend: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run :data:`GOLDEN_CHECK` under ``KERAS_BACKEND=backend``."""
    env = {**os.environ, "KERAS_BACKEND": backend}
    return subprocess.run([sys.executable, "-c", GOLDEN_CHECK, backend], env=env,
                          capture_output=True, text=True, timeout=timeout)
