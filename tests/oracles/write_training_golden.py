"""Write tests/oracles/golden_training_macs.json: the JAX-trace MACs of one training step of
every model in :data:`tests.oracles.training_models.TRAINING_BUILDERS`.

The oracle traces ``jax.grad`` of a loss over ``model.stateless_call(..., training=True)`` with
respect to the trainable variables (:func:`tests.oracles.jax_macs.training_jaxpr`) and adds up
``dot_general`` and ``conv_general_dilated`` MACs: forward and backward together. Tracing the
224 px classifiers takes about a minute, so tests/test_training.py compares modelstats with
these numbers and traces only the small models live. Re-run after changing a builder or
upgrading Keras / JAX, and commit the JSON::

    python -m tests.oracles.write_training_golden
"""

from __future__ import annotations

import importlib.metadata
import json
import pathlib
import sys

from tests.oracles import jax_macs, training_models

GOLDEN_PATH = pathlib.Path(__file__).resolve().with_name("golden_training_macs.json")


def spec(name: str) -> str:
    """The ``module:function`` the oracle subprocess resolves for builder ``name``."""
    return f"{training_models.__name__}:{name}"


def load(path: pathlib.Path = GOLDEN_PATH) -> dict:
    """``{name: {"oracle_macs": int, "by_primitive": {...}, "calls": {...}}}``."""
    return json.loads(path.read_text())["models"]


def main() -> int:
    names = list(training_models.TRAINING_BUILDERS)
    traced = jax_macs.macs_in_subprocess([spec(n) for n in names], training=True, timeout=1800)
    document = {
        "about": "MACs of the JAX trace of jax.grad of a training step (batch 1, forward and "
                 "backward): dot_general + conv_general_dilated. Written by "
                 "tests/oracles/write_training_golden.py.",
        "versions": {d: importlib.metadata.version(d) for d in ("keras", "jax")},
        "models": {n: {"oracle_macs": traced[spec(n)]["macs"],
                       "by_primitive": traced[spec(n)]["by_primitive"],
                       "calls": traced[spec(n)]["calls"]} for n in names},
    }
    GOLDEN_PATH.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN_PATH} ({len(names)} models)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
