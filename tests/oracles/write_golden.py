"""Write tests/oracles/golden_macs.json: the JAX-trace MACs of every model in
:data:`tests.oracles.hub_models.MODELS`.

The oracle (:mod:`tests.oracles.jax_macs`) traces ``model.stateless_call`` on the JAX backend in
one subprocess and adds up the MACs of ``dot_general`` and ``conv_general_dilated``; this script
records, per model, that total, its split by primitive, the number of calls, the input shapes
traced (per sample) and the version of the package that defines the model.
tests/test_third_party_models.py compares modelstats with these numbers without starting JAX.

Re-run after changing a builder or upgrading keras-hub / kimm, and commit the JSON::

    python -m tests.oracles.write_golden             # every model
    python -m tests.oracles.write_golden hub_bert    # only these (the others are kept)
    python -m tests.oracles.write_golden --check     # trace again, compare, write nothing
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import pathlib
import sys
from collections.abc import Sequence

from tests.oracles import hub_models, jax_macs

__all__ = ["GOLDEN_PATH", "DISTRIBUTIONS", "builder_spec", "trace", "load", "main"]

GOLDEN_PATH = pathlib.Path(__file__).resolve().with_name("golden_macs.json")
DISTRIBUTIONS = {"keras_hub": "keras-hub", "kimm": "kimm"}  # HubModel.package -> PyPI name


def builder_spec(name: str) -> str:
    """The ``module:function`` the oracle subprocess resolves for model ``name``."""
    return f"{hub_models.__name__}:{name}"


def _version(distribution: str) -> str:
    return importlib.metadata.version(distribution)


def trace(names: Sequence[str], *, timeout: float = 900) -> dict:
    """Golden entries for ``names``, traced in one JAX subprocess."""
    traced = jax_macs.macs_in_subprocess([builder_spec(n) for n in names], timeout=timeout)
    entries = {}
    for name in names:
        model = hub_models.MODELS[name]
        result = traced[builder_spec(name)]
        entries[name] = {
            "oracle_macs": result["macs"],
            "by_primitive": result["by_primitive"],
            "calls": result["calls"],
            "input_shapes": {
                key: {"shape": list(shape), "dtype": dtype}
                for key, (shape, dtype) in model.inputs.items()
            },
            "package": model.package,
            "package_version": _version(DISTRIBUTIONS[model.package]),
        }
    return entries


def load(path: pathlib.Path = GOLDEN_PATH) -> dict:
    """The golden file: ``{"versions": {...}, "models": {name: entry}}``."""
    return json.loads(path.read_text())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="models of hub_models.MODELS (default: all)")
    parser.add_argument("--check", action="store_true",
                        help="compare a fresh trace with the file; exit 1 on a difference")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(hub_models.MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; known: {sorted(hub_models.MODELS)}")
    names = args.names or list(hub_models.MODELS)
    fresh = trace(names)
    old = load() if GOLDEN_PATH.exists() else {"models": {}}
    if args.check:
        stale = {n: (old["models"].get(n, {}).get("oracle_macs"), fresh[n]["oracle_macs"])
                 for n in names if old["models"].get(n) != fresh[n]}
        for name, (was, now) in stale.items():
            print(f"{name}: golden {was}, traced {now}")
        return 1 if stale else 0
    models = {**old["models"], **fresh} if args.names else fresh  # a full run drops stale names
    golden = {
        "about": "MACs of the JAX trace of model.stateless_call (batch 1): dot_general + "
                 "conv_general_dilated. Written by tests/oracles/write_golden.py.",
        "versions": {d: _version(d) for d in ("keras", "jax", *DISTRIBUTIONS.values())},
        "models": {n: models[n] for n in sorted(models)},
    }
    GOLDEN_PATH.write_text(json.dumps(golden, indent=2) + "\n")
    for name in names:
        print(f"{name:24s} {fresh[name]['oracle_macs']:>14,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
