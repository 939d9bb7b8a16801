"""Shared, session-scoped models: each heavy model is built once per test session, and the
Hypothesis profiles of every test that uses Hypothesis.

``ci`` (the default) is derandomized, has no deadline and keeps no example database: every
run, on every machine, checks the same examples, so a result never depends on the machine's
load or on what an earlier local run found. ``long`` explores at random, many more examples
per test::

    HYPOTHESIS_PROFILE=long python -m pytest tests/properties/test_rf_oracle.py -q -x

Every counterexample found under ``long`` is kept as an ``@example`` on its test (with a
comment naming the bug it caught), so ``ci`` checks it from then on.
"""

from __future__ import annotations

import os

import hypothesis
import pytest

# Registered here, not in tests/properties/: a run of other files alone (test_profiler_oracle
# has Hypothesis tests too) must not fall back to Hypothesis' random, deadline-bound default.
_COMMON = dict(
    deadline=None, print_blob=True, database=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.filter_too_much],
)
hypothesis.settings.register_profile("ci", max_examples=25, derandomize=True, **_COMMON)
hypothesis.settings.register_profile("long", max_examples=2000, **_COMMON)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

APPLICATIONS = (
    "MobileNetV2",
    "ResNet50",
    "InceptionV3",
    "DenseNet121",
    "EfficientNetB0",
    "NASNetMobile",
    "ConvNeXtTiny",
)


@pytest.fixture(scope="session")
def keras():
    import keras as _keras

    return _keras


@pytest.fixture(scope="session")
def classifier():
    from modelstats.models import clothing_classifier

    return clothing_classifier()


@pytest.fixture(scope="session")
def mobilenet(keras):
    return keras.applications.MobileNetV2(
        input_shape=(224, 224, 3), include_top=False, weights=None
    )


@pytest.fixture(scope="session")
def mobilenet_any_size(keras):
    """MobileNetV2 feature extractor with unknown spatial dimensions (None, None, 3)."""
    return keras.applications.MobileNetV2(
        input_shape=(None, None, 3), include_top=False, weights=None
    )


_APP_CACHE: dict = {}


@pytest.fixture(scope="session")
def application(keras):
    """Return a builder that constructs each keras.applications model at most once."""

    def build(name):
        if name not in _APP_CACHE:
            constructor = getattr(keras.applications, name)
            kwargs = {"weights": None}
            if name == "NASNetMobile":
                kwargs["input_shape"] = (224, 224, 3)
            _APP_CACHE[name] = constructor(**kwargs)
        return _APP_CACHE[name]

    return build


@pytest.fixture
def registry():
    """A copy of the registry in force, active for one test: what the test registers (with
    ``modelstats.register_layer`` or on the copy) is gone after it."""
    from modelstats import rules

    with rules.using(rules.active().copy()) as scoped:
        yield scoped


def load_script(folder: str, name: str):
    """Import ``<folder>/<name>.py`` of the project as a module (the examples and benchmarks
    are scripts, not packages)."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parent.parent / folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_example(name: str):
    """Import ``examples/<name>.py`` as a module."""
    return load_script("examples", name)


@pytest.fixture(scope="session")
def subclassed_model(keras):
    """A built subclassed model: no static graph of layer calls; modelstats traces its call."""

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2, name="dense")

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(keras.ops.ones((1, 3)))
    return net


def nested_block_model(keras, head):
    """image 8x8x3 -> stem conv 3x3 same (4) -> block (a nested Functional: conv 3x3 same 4->4
    without bias, ReLU) called twice -> global average pool -> ``head``."""
    x = keras.Input((8, 8, 3), name="image")
    y = keras.layers.Conv2D(4, 3, padding="same", name="stem")(x)
    inner = keras.Input((8, 8, 4), name="block_in")
    z = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inner)
    block = keras.Model(inner, keras.layers.ReLU(name="relu")(z), name="block")
    y = keras.layers.GlobalAveragePooling2D(name="gap")(block(block(y)))
    return keras.Model(x, head(y), name="nested")
