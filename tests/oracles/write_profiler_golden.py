"""Write tests/oracles/golden_profiler_flops.json: the TensorFlow profiler's float operations of
the matmul-like ops of every application in :data:`tests.conftest.APPLICATIONS`.

Profiling a whole application takes 8-20 s on this machine, so tests/test_profiler_oracle.py
compares modelstats with these numbers for every application and profiles only
:data:`LIVE` again, to catch a golden file gone stale. Re-run after upgrading TensorFlow or
Keras, and commit the JSON::

    python -m tests.oracles.write_profiler_golden
"""

from __future__ import annotations

import importlib.metadata
import json
import pathlib
import sys

GOLDEN_PATH = pathlib.Path(__file__).resolve().with_name("golden_profiler_flops.json")
#: Applications profiled live in the suite (the cheapest two with distinct structure).
LIVE = ("MobileNetV2", "EfficientNetB0")


def load(path: pathlib.Path = GOLDEN_PATH) -> dict:
    """``{application: {op type: float operations}}``."""
    return json.loads(path.read_text())["applications"]


def main() -> int:
    import keras

    from modelstats.tf_profiler import profiler_flops
    from tests.conftest import APPLICATIONS

    found = {}
    for name in APPLICATIONS:
        # as tests/conftest.py's application fixture builds them
        shape = {"input_shape": (224, 224, 3)} if name == "NASNetMobile" else {}
        model = getattr(keras.applications, name)(weights=None, **shape)
        found[name] = {op: int(v) for op, v in sorted(profiler_flops(model).items())}
        print(name, sum(found[name].values()), flush=True)
    document = {
        "about": "TensorFlow profiler float operations by op type of keras.applications "
                 "models (weights=None, default input size, batch 1). Written by "
                 "tests/oracles/write_profiler_golden.py.",
        "versions": {d: importlib.metadata.version(d) for d in ("tensorflow", "keras")},
        "applications": found,
    }
    GOLDEN_PATH.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
