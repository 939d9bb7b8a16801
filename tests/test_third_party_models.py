"""Real third-party models (keras-hub, kimm) against the JAX-trace oracle: the measuring stick of
the "any Keras model" issue (14).

Each model of tests/oracles/hub_models.py is built once (TensorFlow backend, in this process)
and counted with ``modelstats.count_flops``; its total MACs must equal the MACs of its JAX trace
recorded in tests/oracles/golden_macs.json (``python -m tests.oracles.write_golden`` rewrites
it). Those models are made of custom layers that modelstats does not trace yet: the ones that do
not match today are listed in :data:`MACS_NOT_YET` (strict xfail), and the ones that still have
``unsupported`` nodes in :data:`UNSUPPORTED_NOT_YET`. Remove a name when tracing lands: a model
that starts passing fails the run (XPASS strict) until its entry goes.

One small model is traced live as well, to catch a golden file gone stale; its trace (a request
to the JAX worker, tests/oracles/jax_worker.py) is sent with the first model built here and runs
alongside.

The models are built inside ``keras.StatelessScope(initialize_variables=False)``
(:func:`tests.oracles.jax_macs.build_abstract`): their weights have shapes but no values, which
is all counting needs, and building takes half the time (running every random initialiser
eagerly on TensorFlow dominates). Set :data:`ABSTRACT_WEIGHTS` to False to count the models as
the builders return them, with random weights. ``input_shape=`` is given for the models that
leave input dimensions unknown (keras-hub's text backbones: the sequence length).
"""

from __future__ import annotations

import collections
import concurrent.futures
import importlib.util
import time
import warnings

import pytest

import modelstats
from tests.oracles import hub_models, jax_macs, write_golden

GOLDEN = write_golden.load()["models"]
REASON = "custom layers not traced yet (issue 14)"

# Total MACs that differ from the oracle's today (or counting raises): none.
MACS_NOT_YET: set = set()
# Where modelstats and the JAX trace count differently by convention, the exact difference
# is asserted: tests/oracles/hub_models.py holds it, with the arithmetic.
EXPLAINED_DIFFERENCES = hub_models.EXPLAINED_DIFFERENCES
# Some node is still reported ``unsupported``: none. GPT-2 and BERT have calls that
# Keras symbolic tensors refuse, counted from their TensorFlow graphs instead
# (modelstats.backend_trace).
UNSUPPORTED_NOT_YET: set = set()

# Cheap to trace, and no keras-hub import in the JAX worker: keras-hub imports TensorFlow, which
# the worker's later golden check (tests/oracles/backend_check.py) requires absent.
LIVE_CHECK = "kimm_convnext_atto"
ABSTRACT_WEIGHTS = True


def _cases(not_yet: set) -> list:
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=REASON))
        if name in not_yet else name
        for name in sorted(GOLDEN)
    ]


_COUNTED: dict = {}


@pytest.fixture(scope="session")
def live_oracle():
    """A future of the live trace of :data:`LIVE_CHECK` (started once, in the background)."""
    for module in ("jax", hub_models.MODELS[LIVE_CHECK].package):  # imported in the worker
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = executor.submit(write_golden.trace, [LIVE_CHECK])
    yield future
    executor.shutdown(wait=True)


def _has_unknown_sizes(model) -> bool:
    return any(d is None for tensor in model.inputs for d in tensor.shape[1:])


@pytest.fixture(scope="session")
def counted(request):
    """``counted(name)``: the model, its cost frame, the warnings counting raised, and the build
    time; each model is built and counted once per session."""
    if any(getattr(item, "originalname", None) == "test_golden_file_is_not_stale"
           for item in request.session.items):
        try:  # send the trace now, to run while the models are built here
            request.getfixturevalue("live_oracle")
        except pytest.skip.Exception:
            pass

    def count(name: str) -> dict:
        spec = hub_models.MODELS[name]
        pytest.importorskip(spec.package)
        if name not in _COUNTED:
            start = time.perf_counter()
            model = jax_macs.build_abstract(spec) if ABSTRACT_WEIGHTS else spec()
            built = time.perf_counter() - start
            entry = {"model": model, "build_seconds": built}
            kwargs = {}
            if _has_unknown_sizes(model):
                kwargs["input_shape"] = hub_models.input_shape_argument(model, spec.inputs)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    entry["frame"] = modelstats.count_flops(model, **kwargs)
                except Exception as exc:  # noqa: BLE001 - kept, re-raised by each test
                    entry["error"] = exc
            entry["warnings"] = [str(w.message) for w in caught]
            _COUNTED[name] = entry
        entry = _COUNTED[name]
        if "error" in entry:
            raise entry["error"]
        return entry

    return count


def _unsupported(frame) -> dict:
    return dict(collections.Counter(frame.loc[frame["status"] == "unsupported", "type"]))


@pytest.mark.parametrize("name", _cases(MACS_NOT_YET))
def test_macs_equal_the_jax_trace(name, counted):
    entry = counted(name)
    frame, golden = entry["frame"], GOLDEN[name]
    macs = int(frame["macs"].sum())
    expected = golden["oracle_macs"] + EXPLAINED_DIFFERENCES.get(name, 0)
    assert macs == expected, (
        f"{name}: modelstats {macs:,} MACs, JAX trace {golden['oracle_macs']:,} "
        f"(expected {expected:,}) "
        f"({golden['by_primitive']}); unsupported nodes by type: {_unsupported(frame)}; "
        f"warnings: {entry['warnings'][:3]}"
    )


@pytest.mark.parametrize("name", _cases(UNSUPPORTED_NOT_YET))
def test_every_node_supported(name, counted):
    frame = counted(name)["frame"]
    assert _unsupported(frame) == {}
    assert not frame.attrs.get("partial", False)


def test_golden_file_is_not_stale(live_oracle):
    """Trace one model again (in the JAX worker): same MACs, split and calls as the file."""
    fresh = live_oracle.result()[LIVE_CHECK]
    golden = GOLDEN[LIVE_CHECK]
    assert fresh == golden, (
        f"tests/oracles/golden_macs.json is stale for {LIVE_CHECK} (golden made with "
        f"{golden['package']} {golden['package_version']}); re-run "
        "`python -m tests.oracles.write_golden`."
    )


def test_every_builder_has_a_golden_entry():
    assert sorted(GOLDEN) == sorted(hub_models.MODELS)
