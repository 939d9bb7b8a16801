"""Legacy Keras 2 (tf_keras) models give exactly the Keras 3 numbers; Keras 3 on JAX too.

Node ids differ only where the frameworks name things differently (docs/frameworks.md):
Keras 2 wraps raw TensorFlow functions as ``tf.math.truediv`` / ``tf.math.subtract`` where
Keras 3 has the ``keras.ops`` operations ``true_divide`` / ``subtract``, and the two frameworks
auto-name Input layers differently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.oracles.backend_check import run_golden_check

import modelstats

tf_keras = pytest.importorskip("tf_keras")

COMPARED = ["params", "trainable_params", "macs", "flops", "activations", "rf_status",
            "rf_size_y", "rf_size_x", "rf_stride_y", "rf_stride_x", "rf_padding_y", "rf_padding_x"]
def _canonical(node_id: str, data: dict) -> str:
    """Node ids with framework-specific auto-names replaced by what the node is.

    Keras 3 numbers auto-named operations per process (``true_divide_2``), so operations are
    named by the keras.ops class they are (a TFOpLambda by the class it is counted as).
    """
    from modelstats.adapters import TF_OP_EQUIVALENTS

    if data["type"] == "InputLayer" and data["path"]:
        return "/".join(data["path"]) + "/<input>"
    if data["type"] == "TFOpLambda":
        return "<op " + TF_OP_EQUIVALENTS[data["operation"].symbol] + ">"
    if data["type"] in set(TF_OP_EQUIVALENTS.values()) and not data["path"]:
        return "<op " + data["type"] + ">"
    return node_id


def _rows(report):
    graph = report.graph
    table = report.layers.copy()
    table.index = [_canonical(n, graph.nodes[n]) for n in table.index]
    return table


@pytest.fixture(scope="module")
def both_classifiers():
    from modelstats.models import clothing_classifier

    return clothing_classifier(keras_module=tf_keras), clothing_classifier()


def test_classifier_per_layer_identical(both_classifiers):
    keras2, keras3 = (modelstats.analyze(m) for m in both_classifiers)
    a, b = _rows(keras2), _rows(keras3)
    assert list(a.index) == list(b.index)  # same nodes, same order, after the id mapping
    assert a[COMPARED].equals(b[COMPARED])
    assert [list(map(tuple, s)) for s in a["output_shape"]] == \
        [list(map(tuple, s)) for s in b["output_shape"]]
    assert keras2.totals == keras3.totals
    assert keras2.totals["params"] == 2_270_794 and keras2.totals["macs"] == 299_507_072
    assert keras2.layers.loc["tf.math.truediv", "type"] == "TFOpLambda"
    rf = keras2.receptive_field("mobilenetv2_1.00_224/out_relu")
    assert (rf.size, rf.stride, rf.padding) == ((491, 491), (32, 32), (214, 214))


@pytest.mark.parametrize("name, last", [("MobileNetV2", "out_relu"), ("ResNet50", "conv5_block3_out"),
                                        ("InceptionV3", "mixed10")])
def test_applications_identical_totals_and_final_field(application, name, last):
    keras2 = getattr(tf_keras.applications, name)(weights=None)
    report2 = modelstats.analyze(keras2)
    report3 = modelstats.analyze(application(name))
    # everything but the auto-named input ("input_1" vs "input_layer_1")
    assert {k: v for k, v in report2.totals.items() if k != "rf_input"} == \
        {k: v for k, v in report3.totals.items() if k != "rf_input"}
    field2, field3 = report2.receptive_field(last), report3.receptive_field(last)
    assert (field2.size, field2.stride, field2.padding) == \
        (field3.size, field3.stride, field3.padding)


def test_sequential_shared_and_unknown_sizes(keras):
    L = tf_keras.layers
    shared = L.Conv2D(4, 3, padding="same", name="shared")
    x = tf_keras.Input((None, None, 3), name="image")
    y = L.Add(name="add")([shared(L.Conv2D(4, 1, name="a")(x)), shared(L.Conv2D(4, 1, name="b")(x))])
    model = tf_keras.Model(x, y)
    report = modelstats.analyze(model, input_shape=(16, 16, 3))
    assert {"shared", "shared#1"} <= set(report.layers.index)
    # weights once: a, b 3*4+4 each; shared 3*3*4*4+4 once
    assert report.totals["params"] == 2 * 16 + 148 == model.count_params()
    assert report.layers.loc["shared#1", "macs"] == 16 * 16 * 9 * 4 * 4
    assert report.receptive_field("add").size == (3, 3)

    sequential = tf_keras.Sequential([L.Conv2D(2, 3, name="c"), L.Flatten(name="f")])
    with pytest.raises(modelstats.NotAGraphModelError, match="input_shape"):
        modelstats.analyze(sequential)
    assert modelstats.analyze(sequential, input_shape=(8, 8, 1)).layers.loc["c", "macs"] == \
        6 * 6 * 9 * 1 * 2
    assert not sequential.built


def test_unknown_raw_tf_op_is_unsupported_not_zero():
    import tensorflow as tf

    x = tf_keras.Input((4, 4, 2), name="x")
    model = tf_keras.Model(x, tf.math.cumsum(x, axis=1))
    with pytest.warns(modelstats.UnsupportedLayerWarning, match="TFOpLambda"):
        report = modelstats.analyze(model)
    row = report.layers.iloc[-1]
    assert row["status"] == "unsupported" and "tf.math.cumsum" in row["note"]


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
def test_cli_loads_keras2_h5(tmp_path, capsys):
    from modelstats.cli import main
    from modelstats.models import clothing_classifier

    model = clothing_classifier(keras_module=tf_keras, input_shape=(96, 96, 3))
    model.save(tmp_path / "keras2.h5")
    assert main([str(tmp_path / "keras2.h5"), "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["totals"]["params"] == model.count_params()
    assert not document["totals"]["partial"]
    types = {row["type"] for row in document["layers"]}
    assert "TFOpLambda" in types and all(row["status"] != "unsupported"
                                         for row in document["layers"])


def test_golden_checks_on_the_jax_backend():
    pytest.importorskip("jax")
    done = run_golden_check("jax")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


LEGACY_CHECK = textwrap.dedent("""
    import tensorflow as tf, modelstats
    x = tf.keras.Input((32, 32, 3), name="image")
    y = tf.keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv")(x / 127.5 - 1.0)
    model = tf.keras.Model(x, y)
    assert type(model).__module__.startswith("tf_keras"), type(model).__module__
    report = modelstats.analyze(model)
    assert list(report.layers["type"]) == ["InputLayer", "TFOpLambda", "TFOpLambda", "Conv2D"]
    assert report.layers.loc["conv", "macs"] == 16 * 16 * 3 * 3 * 3 * 8
    assert report.layers.loc["tf.math.truediv", "flops"] == 32 * 32 * 3
    assert report.receptive_field("conv").size == (3, 3)
    print("ok")
""")


def test_tf_keras_through_tf_use_legacy_keras():
    """TensorFlow's own switch to Keras 2: tf.keras models are tf_keras objects."""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
    done = subprocess.run([sys.executable, "-c", LEGACY_CHECK], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
