"""keras-hub XLNet was counted 317,440 MACs short of its JAX trace, silently.

XLNet's ``ContentAndQueryEmbedding`` returns a relative position table of ``2 x sequence``
rows (positions ``klen .. -qlen + 1``) but its ``compute_output_shape`` declares it ``(batch,
1, hidden)``. Its call is counted from its backend trace (the table is computed from shapes
alone), while the graph sized its outputs, and so every node reading the table, from the
declaration: each layer's position projection and positional scores were counted over 1
relative position instead of 32.

Now the graph sizes such a call by running it (modelstats.graph), and the backend trace
refuses a read output whose shape in the call differs from the graph's (modelstats.
backend_trace): the node is then unsupported, naming both, and the count flagged partial
instead of silently short.

``RelativePositions`` is the same pattern without keras-hub, small enough to work out by hand.
"""

from __future__ import annotations

import json
import pathlib
import warnings

import pytest

import modelstats
from modelstats.registry import Unsupported

tf = pytest.importorskip("tensorflow")

# 4 tokens of 8 features; a table of 2 x 4 = 8 relative positions of 8 features.
TOKENS, DIM, UNITS = 4, 8, 3
POSITIONS = 2 * TOKENS
TABLE_MACS = POSITIONS * (DIM // 2)  # einsum("i,d->id"): 8 positions x 4 frequencies = 32
PROJECT_MACS = POSITIONS * DIM * UNITS  # Dense(3) over the 8 rows: 8 * 8 * 3 = 192
SCORES_MACS = TOKENS * POSITIONS * DIM  # einsum("btd,bsd->bts"): 4 * 8 scores of 8 = 256
EXACT_MACS = TABLE_MACS + PROJECT_MACS + SCORES_MACS  # 480
# (What was counted, silently, at the declared size of 1 row: 32 + 1*8*3 + 4*1*8 = 88.)


@pytest.fixture(scope="module")
def relative_model(keras):
    ops = keras.ops

    class RelativePositions(keras.layers.Layer):
        """Passes ``x`` on with a sinusoid table of ``2 x tokens`` relative positions, built
        from shapes alone (as XLNet's ContentAndQueryEmbedding), and declares the table
        ``(batch, 1, dim)`` (as XLNet does)."""

        def __init__(self, dim, **kwargs):
            super().__init__(**kwargs)
            self.dim = dim

        def call(self, x):
            length = ops.shape(x)[1]
            positions = ops.arange(2 * length, 0, -1, dtype="float32")
            inv_freq = 1.0 / (10000.0 ** (ops.arange(0, self.dim, 2, dtype="float32")
                                          / self.dim))
            angles = ops.einsum("i,d->id", positions, inv_freq)
            table = ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)
            return x, ops.broadcast_to(table[None], (ops.shape(x)[0], 2 * length, self.dim))

        def compute_output_shape(self, input_shape):
            return input_shape, (input_shape[0], 1, self.dim)

    x = keras.Input((TOKENS, DIM), name="x")
    h, table = RelativePositions(DIM, name="positions")(x)
    project = keras.layers.Dense(UNITS, name="project")(table)
    scores = ops.einsum("btd,bsd->bts", h, table)
    return keras.Model(x, [project, scores])


def _count(model, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", modelstats.UnsupportedLayerWarning)
        return modelstats.count_flops(model, **kwargs)


def test_the_backend_trace_refuses_a_graph_that_mis_sizes_a_read_output(relative_model):
    """Independent of how the graph sizes the node: given the declared (1, 8) the trace names
    both shapes; given the call's (8, 8) it counts the table's 32 MACs."""
    from modelstats.backend_trace import trace_node

    graph = modelstats.to_networkx(relative_model)
    data = graph.nodes["positions"]
    data["output_shapes"] = [(TOKENS, DIM), (1, DIM)]
    with pytest.raises(Unsupported, match=r"output 1 has shape \(8, 8\) in its call but "
                                          r"\(1, 8\) in the graph"):
        trace_node(graph, "positions")
    data["output_shapes"] = [(TOKENS, DIM), (POSITIONS, DIM)]
    assert trace_node(graph, "positions").cost.macs == TABLE_MACS


def test_the_readers_of_the_table_are_counted_at_its_real_size(relative_model):
    frame = _count(relative_model, strict=True)  # (raises if any node is unsupported)
    assert frame.loc["positions", "output_shape"][1] == [POSITIONS, DIM]
    assert int(frame["macs"].sum()) == EXACT_MACS == 480


# -- keras-hub XLNet ---------------------------------------------------------------------------

SEQUENCE = 16
# (the JAX trace of tests/oracles/hub_models.py's hub_xlnet, the model built below)
GOLDEN = pathlib.Path(__file__).resolve().parent / "oracles" / "golden_macs.json"
# Per encoder layer (16 tokens, 32 relative positions, hidden 64 = 2 heads x 32, FFN 128):
#   query, key, value      3 x 16 * 64 * 64 = 196,608
#   position projection    32 * 64 * 64     = 131,072   (at the declared 1 row: 4,096)
#   content scores         2 * 16 * 16 * 32 =  16,384
#   positional scores      2 * 16 * 32 * 32 =  32,768   (at 1 row: 1,024)
#   segment scores         2 * 2 * 16 * 32  =   2,048
#   weighted values        2 * 16 * 16 * 32 =  16,384
#   output projection      16 * 64 * 64     =  65,536
#   feed-forward           2 * 16 * 64 * 128 = 262,144
#   per layer                                = 722,944
# 2 layers + the table, einsum("i,d->id") of 32 positions x 32 frequencies (1,024):
XLNET_MACS = 2 * 722_944 + 32 * 32  # 1,446,912, the JAX trace's total
# (Short by 2 x (131,072 - 4,096 + 32,768 - 1,024) = 317,440 at the declared size.)


@pytest.fixture(scope="module")
def xlnet_frame(keras):
    from tests.oracles.hub_models import MODELS, input_shape_argument

    spec = MODELS["hub_xlnet"]  # the configuration the golden entry traced, defined once
    pytest.importorskip(spec.package)
    model = spec()
    return _count(model, input_shape=input_shape_argument(model, spec.inputs))


def test_xlnet_equals_its_jax_trace(xlnet_frame):
    golden = json.loads(GOLDEN.read_text())["models"]["hub_xlnet"]
    assert golden["input_shapes"]["token_ids"]["shape"] == [SEQUENCE]
    assert not xlnet_frame.attrs.get("partial", False)
    assert int(xlnet_frame["macs"].sum()) == XLNET_MACS == golden["oracle_macs"] == 1_446_912
