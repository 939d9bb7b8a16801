"""How long modelstats takes next to building the model and next to the TensorFlow profiler.

For each keras.applications model (weights=None) it measures, in the same process: building
the model, ``analyze``, the read floor and the TensorFlow-profiler FLOP count (frozen concrete
function + ``tf.compat.v1.profiler``) in rounds, one right after the other, the ratios taken
round by round; and ``to_networkx``, ``receptive_field`` and ``count_flops`` as medians of
repeats. Then the scaling of ``analyze`` over generated chains and residual DAGs of 100,
1,000 and 10,000 layers (at the default recursion limit), and the peak Python memory
``analyze`` allocates against the size of the model's weights.

Then the third-party models of tests/oracles/hub_models.py (keras-hub and kimm, small
configurations built from constructor arguments, random weights): their work sits in custom
layers that modelstats traces, so ``analyze`` does more per node there. And five keras-hub
backbones at the sizes of published checkpoints (GPT-2 base to Gemma 2B, random weights).

Prints the tables and rewrites the "analysis" section of docs/benchmarks.md.

    python benchmarks/bench_analysis.py            # the full run (about 16 minutes here)
    python benchmarks/bench_analysis.py --quick    # two small models, 100/1,000 layers
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
APPLICATIONS = ("MobileNetV2", "ResNet50", "InceptionV3", "DenseNet121", "EfficientNetB0",
                "ConvNeXtTiny", "NASNetMobile", "ResNet152")
QUICK_APPLICATIONS = ("MobileNetV2", "ResNet50")
SCALES = (100, 1_000, 10_000)
TEXT_128 = {"token_ids": (128,), "padding_mask": (128,)}


def _published(package: str, constructor: str, input_shape, **config):
    """A builder of a keras-hub backbone at the configuration of a published checkpoint
    (random weights: presets cannot be downloaded here)."""
    def build():
        import keras_hub

        return getattr(keras_hub.models, constructor)(**config)

    return package, build, input_shape


#: Published sizes: (package, builder, input_shape). The configurations of the checkpoints
#: gpt2_base_en, bert_base_en, vit_base_patch16_224, llama3.2_1b and gemma_2b_en; the last two
#: in bfloat16, to halve the memory (1.5 and 2.5 billion parameters).
PUBLISHED = {
    "GPT-2 base": _published(
        "keras_hub", "GPT2Backbone", TEXT_128, vocabulary_size=50257, num_layers=12,
        num_heads=12, hidden_dim=768, intermediate_dim=3072, max_sequence_length=1024),
    "BERT base": _published(
        "keras_hub", "BertBackbone", {**TEXT_128, "segment_ids": (128,)},
        vocabulary_size=30522, num_layers=12, num_heads=12, hidden_dim=768,
        intermediate_dim=3072, max_sequence_length=512),
    "ViT-B/16": _published(
        "keras_hub", "ViTBackbone", (224, 224, 3), image_shape=(224, 224, 3), patch_size=16,
        num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072),
    "Llama 3.2 1B": _published(
        "keras_hub", "LlamaBackbone", TEXT_128, vocabulary_size=128256, num_layers=16,
        num_query_heads=32, num_key_value_heads=8, hidden_dim=2048, intermediate_dim=8192,
        dtype="bfloat16"),
    "Gemma 2B": _published(
        "keras_hub", "GemmaBackbone", TEXT_128, vocabulary_size=256000, num_layers=18,
        num_query_heads=8, num_key_value_heads=1, hidden_dim=2048, intermediate_dim=32768,
        head_dim=256, dtype="bfloat16"),
}


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> str:
    import keras
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.0f} GiB RAM"
    except (ValueError, OSError, AttributeError):
        pass
    return (f"{cpu}, {os.cpu_count()} cores{memory}, no GPU; {platform.system()} "
            f"{platform.release()}; Python {platform.python_version()}, TensorFlow "
            f"{tf.__version__}, Keras {keras.__version__}")


def read_floor(model: Any, n_columns: int):
    """What any per-node table of ``model`` costs before it analyses anything: every call
    node visited in topological order (modelstats' own adapter), its operation, class name,
    input producers, output shapes and weight sizes read, and a DataFrame of ``n_columns``
    columns (as many as ``analyze``'s) built from them. No cost rule, receptive field,
    validation or graph: a lower bound for ``analyze`` in any design, measured next to it."""
    import math

    import pandas as pd

    from modelstats.adapters import adapter_for

    adapter = adapter_for(model)
    producers: dict[int, int] = {}
    names, types, inputs, outputs, params = [], [], [], [], []
    for index, node in enumerate(adapter.nodes_in_topological_order(model)):
        operation, tensors = adapter.operation(node), adapter.node_outputs(node)
        for tensor in tensors:
            producers[id(tensor)] = index
        names.append(operation.name)
        types.append(type(operation).__name__)
        inputs.append([producers[id(t)] for t in adapter.input_tensors(node)])
        outputs.append([tuple(t.shape[1:]) for t in tensors])
        params.append(sum(math.prod(w.shape) for w in getattr(operation, "weights", ())))
    columns = {"node": names, "type": types, "inputs": inputs, "output_shapes": outputs}
    for extra in range(n_columns - len(columns)):
        columns[f"params_{extra}"] = params
    return pd.DataFrame(columns)


def bench_application(name: str, repeats: int, rounds: int) -> dict:
    """One application's timings. Construction, ``analyze`` and the profiler path are timed
    in ``rounds`` rounds, one after the other within each round (a model built, analysed
    ``repeats`` times, profiled once), and each ratio is the median of the rounds' ratios:
    this machine's speed drifts by tens of percent over a minute, and timings taken seconds
    apart share the drift. The other steps are medians on one model."""
    import keras

    import modelstats
    from modelstats.tf_profiler import profiler_flops

    constructor = getattr(keras.applications, name)
    kwargs = {"weights": None}
    if name == "NASNetMobile":
        kwargs["input_shape"] = (224, 224, 3)
    timed = {"build": [], "analyze": [], "floor": [], "profiler": []}
    n_columns = None
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        model = constructor(**kwargs)
        timed["build"].append(time.perf_counter() - start)
        timed["analyze"].append(median_seconds(lambda: modelstats.analyze(model), repeats))
        n_columns = n_columns or len(modelstats.analyze(model).layers.columns)
        timed["floor"].append(median_seconds(lambda: read_floor(model, n_columns), repeats))
        timed["profiler"].append(median_seconds(lambda: profiler_flops(model), 1))
    graph = modelstats.to_networkx(model)
    row = {
        "model": name,
        "nodes": graph.number_of_nodes(),
        **{step: statistics.median(seconds) for step, seconds in timed.items()},
        **{f"{a}_per_{b}": statistics.median(x / y for x, y in zip(timed[a], timed[b]))
           for a, b in (("analyze", "build"), ("profiler", "analyze"), ("analyze", "floor"),
                        # the most any design reaching the floor could beat the profiler by
                        ("profiler", "floor"))},
        "to_networkx": median_seconds(lambda: modelstats.to_networkx(model), repeats),
        "receptive_field": median_seconds(lambda: modelstats.receptive_field(graph), repeats),
        "count_flops": median_seconds(lambda: modelstats.count_flops(graph), repeats),
    }
    weights_bytes = sum(int(w.numpy().nbytes) for w in model.weights)
    tracemalloc.start()
    modelstats.analyze(model)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    row["weights_mib"] = weights_bytes / 2**20
    row["analyze_peak_mib"] = peak / 2**20
    report = modelstats.analyze(model)
    row["partial"] = report.totals["partial"]
    return row


def bench_third_party(name: str, repeats: int) -> Optional[dict]:
    """Build and analyze one model of tests/oracles/hub_models.py; None when its package is
    not installed."""
    import importlib.util

    sys.path.insert(0, str(ROOT))
    from tests.oracles.hub_models import EXPLAINED_DIFFERENCES, MODELS, input_shape_argument

    import modelstats

    spec = MODELS[name]
    if importlib.util.find_spec(spec.package) is None:
        return None
    build = median_seconds(spec, 2)
    model = spec()
    shape = input_shape_argument(model, spec.inputs)
    report = modelstats.analyze(model, input_shape=shape)
    statuses = report.layers["status"].value_counts()
    golden = json.loads((ROOT / "tests" / "oracles" / "golden_macs.json").read_text())
    return {
        "oracle": golden["models"][name]["oracle_macs"],
        "explained": EXPLAINED_DIFFERENCES.get(name, 0),
        "model": name, "package": spec.package, "nodes": len(report.layers),
        "traced": int(statuses.get("traced", 0)),
        "unsupported": int(statuses.get("unsupported", 0)),
        "macs": int(report.totals["macs"]), "build": build,
        "analyze": median_seconds(lambda: modelstats.analyze(model, input_shape=shape),
                                  repeats),
    }


def bench_published(name: str, repeats: int) -> Optional[dict]:
    """Build one model at a published size (once: it takes tens of seconds) and analyze it."""
    import gc
    import importlib.util
    import warnings

    import modelstats

    package, build, shape = PUBLISHED[name]
    if importlib.util.find_spec(package) is None:
        return None
    start = time.perf_counter()
    model = build()
    built = time.perf_counter() - start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = modelstats.analyze(model, input_shape=shape)  # the first call warms up
        analyze = median_seconds(lambda: modelstats.analyze(model, input_shape=shape), repeats)
    statuses = report.layers["status"].value_counts()
    row = {"model": name, "params": model.count_params(), "nodes": len(report.layers),
           "traced": int(statuses.get("traced", 0)),
           "unsupported": int(statuses.get("unsupported", 0)),
           "macs": int(report.totals["macs"]), "build": built, "analyze": analyze}
    del model, report
    gc.collect()
    return row


def bench_scaling(scales: tuple[int, ...], residual: bool, rounds: int) -> list[dict]:
    """One row per depth of one kind of generated model. Every depth is built first, then
    analysed once per round, the depths one after the other within a round, so that the
    growth from one depth to the next (``growth``: the median of the rounds' ratios) compares
    timings taken seconds apart rather than minutes."""
    import modelstats
    from modelstats.models import deep_conv_net

    models, builds = [], []
    for n_layers in scales:
        start = time.perf_counter()
        models.append(deep_conv_net(n_layers, residual=residual))  # raises Keras' limit
        builds.append(time.perf_counter() - start)
        assert sys.getrecursionlimit() == DEFAULT_RECURSION_LIMIT  # analysed at the default
    timed = [[] for _ in scales]
    for _ in range(rounds):
        for model, seconds in zip(models, timed):
            seconds.append(median_seconds(lambda: modelstats.analyze(model), 1))
    rows = []
    for i, (n_layers, build, seconds) in enumerate(zip(scales, builds, timed)):
        analyze = statistics.median(seconds)
        growth = None if i == 0 else statistics.median(
            a / b for a, b in zip(seconds, timed[i - 1]))
        rows.append({"model": "residual" if residual else "chain", "layers": n_layers,
                     "build": build, "analyze": analyze,
                     "per_layer_us": analyze / n_layers * 1e6, "growth": growth})
    return rows


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f}"


def _table(columns: list[tuple[str, Any]], rows: list[dict], left: int = 1) -> str:
    """A Markdown table, one ``(title, cell of a row)`` per column; the first ``left``
    columns (names) aligned left, the numbers right."""
    from modelstats._render import pipe_table

    return pipe_table([title for title, _ in columns],
                      [[cell(r) for _, cell in columns] for r in rows],
                      right=[i >= left for i in range(len(columns))])


def application_table(rows: list[dict]) -> str:
    return _table([
        ("model", lambda r: r["model"] + (" (partial)" if r["partial"] else "")),
        ("nodes", lambda r: str(r["nodes"])),
        ("build (ms)", lambda r: ms(r["build"])),
        ("to_networkx", lambda r: ms(r["to_networkx"])),
        ("receptive_field", lambda r: ms(r["receptive_field"])),
        ("count_flops", lambda r: ms(r["count_flops"])),
        ("analyze", lambda r: ms(r["analyze"])),
        ("TF profiler (ms)", lambda r: ms(r["profiler"])),
        ("analyze / build", lambda r: f"{r['analyze_per_build']:.1%}"),
        ("profiler / analyze", lambda r: f"{r['profiler_per_analyze']:,.0f}x"),
        ("read floor (ms)", lambda r: ms(r["floor"])),
        ("analyze / floor", lambda r: f"{r['analyze_per_floor']:.1f}x"),
        ("profiler / floor", lambda r: f"{r['profiler_per_floor']:,.0f}x"),
        ("weights (MiB)", lambda r: f"{r['weights_mib']:,.1f}"),
        ("analyze peak alloc (MiB)", lambda r: f"{r['analyze_peak_mib']:,.1f}"),
    ], rows)


def scaling_table(rows: list[dict]) -> str:
    return _table([
        ("model", lambda r: r["model"]),
        ("layers", lambda r: f"{r['layers']:,}"),
        ("build (s)", lambda r: f"{r['build']:.2f}"),
        ("analyze (s)", lambda r: f"{r['analyze']:.3f}"),
        ("analyze per layer (µs)", lambda r: f"{r['per_layer_us']:.0f}"),
        ("analyze / build", lambda r: f"{r['analyze'] / r['build']:.1%}"),
        ("growth over the row above", lambda r: "" if r["growth"] is None
         else f"{r['growth']:.1f}x"),
    ], rows)


def third_party_table(rows: list[dict]) -> str:
    return _table([
        ("model", lambda r: r["model"]),
        ("package", lambda r: r["package"]),
        ("nodes", lambda r: str(r["nodes"])),
        ("traced by the backend", lambda r: str(r["traced"])),
        ("unsupported", lambda r: str(r["unsupported"])),
        ("MACs", lambda r: f"{r['macs']:,}"),
        ("JAX-trace oracle", lambda r: f"{r['oracle']:,}" + (
            f" ({r['explained']:+,} explained)" if r["explained"] else "")),
        ("build (ms)", lambda r: ms(r["build"])),
        ("analyze (ms)", lambda r: ms(r["analyze"])),
        ("analyze / build", lambda r: f"{r['analyze'] / r['build']:.1%}"),
    ], rows, left=2)


def published_table(rows: list[dict]) -> str:
    return _table([
        ("model", lambda r: r["model"]),
        ("parameters", lambda r: f"{r['params'] / 1e6:,.0f} M"),
        ("nodes", lambda r: str(r["nodes"])),
        ("traced by the backend", lambda r: str(r["traced"])),
        ("unsupported", lambda r: str(r["unsupported"])),
        ("GMACs", lambda r: f"{r['macs'] / 1e9:,.2f}"),
        ("build (s)", lambda r: f"{r['build']:.2f}"),
        ("analyze (s)", lambda r: f"{r['analyze']:.3f}"),
        ("analyze / build", lambda r: f"{r['analyze'] / r['build']:.1%}"),
    ], rows)


def replace_section(text: str, name: str, body: str) -> str:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        return text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    return text.rstrip() + "\n\n" + block + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two models and 100/1,000 layers")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each analysis step")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args(argv)

    names = QUICK_APPLICATIONS if args.quick else APPLICATIONS
    scales = SCALES[:2] if args.quick else SCALES
    started = time.perf_counter()
    rows = []
    for name in names:
        rows.append(bench_application(name, args.repeats, rounds=3))
        print(f"{name:>14}: build {ms(rows[-1]['build'])} ms, analyze "
              f"{ms(rows[-1]['analyze'])} ms, profiler {ms(rows[-1]['profiler'])} ms", flush=True)
    sys.path.insert(0, str(ROOT))
    from tests.oracles.hub_models import MODELS

    def measured(names, bench, line) -> list[dict]:
        rows = []
        for name in () if args.quick else names:
            row = bench(name)
            if row is None:
                print(f"{name:>14}: skipped (its package is not installed)", flush=True)
                continue
            rows.append(row)
            print(f"{name:>14}: {line(row)}", flush=True)
        return rows

    third_party = measured(
        MODELS, lambda name: bench_third_party(name, args.repeats),
        lambda row: f"build {ms(row['build'])} ms, analyze {ms(row['analyze'])} ms")
    published = measured(
        PUBLISHED, lambda name: bench_published(name, repeats=3),
        lambda row: f"build {row['build']:.2f} s, analyze {row['analyze']:.3f} s")
    # keras-hub's imports raise the recursion limit; the scaling rows are measured at the
    # default one
    sys.setrecursionlimit(DEFAULT_RECURSION_LIMIT)
    scaling = []
    for residual in (False, True):
        rows_of_kind = bench_scaling(scales, residual, rounds=3)
        scaling.extend(rows_of_kind)
        for row in rows_of_kind:
            print(f"{row['model']:>14} {row['layers']:>6}: build {row['build']:.2f} s, "
                  f"analyze {row['analyze']:.3f} s", flush=True)
    elapsed = time.perf_counter() - started

    body = "\n".join([
        f"Measured {datetime.date.today().isoformat()} by `python benchmarks/bench_analysis.py`"
        f"{' --quick' if args.quick else ''} in {elapsed / 60:.1f} minutes, on: {machine()}.",
        "",
        "### keras.applications (weights=None, 224x224 inputs, batch 1)",
        "",
        "Three rounds in one process, each building the model, analysing it (median of "
        + str(args.repeats) + ") and profiling it once; the times are the medians of the "
        "rounds, and the two ratios the medians of each round's own ratio (timings seconds "
        "apart share this machine's drift). The other analysis steps are medians of "
        + str(args.repeats) + " on one model. Analysis times are in ms. `analyze` includes "
        "`to_networkx`, `receptive_field` and `count_flops` of the model object plus building "
        "the tables; the three steps alone are timed on a prepared graph. "
        "\"analyze peak alloc\" is the peak Python allocation during one `analyze` "
        "(tracemalloc), next to the size of the model's weights: analysing copies no weights. "
        "\"read floor\" is timed in the same rounds: each call node visited, its operation, "
        "inputs, output shapes and weight sizes read, and a DataFrame of as many columns as "
        "`analyze` gives built from them (`read_floor`), with no cost rule, field or graph: "
        "the least any per-node analysis costs here. \"profiler / floor\" is the most any "
        "design could be faster than the profiler.",
        "",
        application_table(rows),
        "",
        *([
            "### Third-party models (keras-hub, kimm: small configurations, random weights)",
            "",
            "The models of `tests/oracles/hub_models.py`, whose work sits in custom layers: "
            "`analyze` traces each custom layer's call on symbolic tensors (and, where Keras "
            "refuses them, the backend's graph), so it does more per node than on "
            "keras.applications. \"build\" is the median of 2 constructions, \"analyze\" "
            f"the median of {args.repeats}, with the inputs' sizes given (16 tokens, the "
            "builders' image sizes). \"JAX-trace oracle\" is the model's MACs in "
            "tests/oracles/golden_macs.json.",
            "",
            third_party_table(third_party),
            "",
        ] if third_party else []),
        *([
            "### Third-party models at published sizes (keras-hub, random weights)",
            "",
            "The configurations of published checkpoints (gpt2_base_en, bert_base_en, "
            "vit_base_patch16_224, llama3.2_1b, gemma_2b_en; the last two in bfloat16), built "
            "from constructor arguments once each, \"analyze\" the median of 3 after a first "
            "call, at 128 tokens or a 224x224 image. Construction grows with the weights, "
            "the analysis with the number of calls.",
            "",
            published_table(published),
            "",
        ] if published else []),
        "### Scaling with depth (generated models, default recursion limit for modelstats)",
        "",
        "`modelstats.models.deep_conv_net(n)`: a chain alternates Conv2D(3x3) and ReLU; a "
        "residual model adds an Add merge every third layer. \"build\" is Keras constructing "
        "the model (one repeat; Keras needs `sys.setrecursionlimit` raised for the deep ones). "
        "Each kind's models are built first, then analysed in three rounds, one depth "
        "after the other within a round: \"analyze\" is the median of the rounds, and the "
        "growth the median of the rounds' ratios to the depth above.",
        "",
        scaling_table(scaling),
    ])
    print()
    print(body)
    if not args.no_write:
        text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
        DOC.write_text(replace_section(text, "analysis", body), encoding="utf-8")
        print(f"\nwrote {DOC.relative_to(ROOT)}")
    return 0


DEFAULT_RECURSION_LIMIT = sys.getrecursionlimit()

if __name__ == "__main__":
    sys.exit(main())
