"""The roofline against measured latency on this machine, for MobileNetV2, ResNet50 and
EfficientNetB0 (keras.applications, weights=None, 224x224, batch 1).

For each model it times every call alone and the whole model (``measure_latency``), then holds
them against the roofline of this machine measured by ``measure_device`` before and after the
models (the best of the two: a peak is what the machine can do, and the run in between may have
been slowed by other processes). It reports:

- the roofline total (the lower-bound latency) against the measured model time, and the time a
  FLOPs-only model predicts (all FLOPs at peak, no memory traffic);
- Spearman's rank correlation between the predicted and measured time of each call;
- the memory-bound calls that cost the most time.

It writes benchmarks/results/roofline_cpu.json (read by tests/test_roofline.py), rewrites the
measured section of docs/roofline.md and draws docs/roofline_mobilenetv2.png.

    nice -n 10 python benchmarks/bench_roofline.py           # about 3 minutes here
    python benchmarks/bench_roofline.py --quick              # MobileNetV2 only, no files
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "roofline_cpu.json"
DOC = ROOT / "docs" / "roofline.md"
PLOT = ROOT / "docs" / "roofline_mobilenetv2.png"
MODELS = ("MobileNetV2", "ResNet50", "EfficientNetB0")
BEGIN, END = "<!-- measured:begin -->", "<!-- measured:end -->"


def best_of(first, second):
    """The device with the higher of each peak (both measured on this machine)."""
    import modelstats

    return modelstats.Device(
        first.name, max(first.peak_flops, second.peak_flops),
        max(first.bandwidth, second.bandwidth), kind=first.kind,
        source="modelstats.measure_device(), best of a run before and after the models",
        note=f"before: {first.note}. after: {second.note}")


def measure(names, repeats: int, budget: float) -> dict:
    """Time the models and both device measurements; roofline against the best device."""
    import keras

    import modelstats

    before = modelstats.measure_device(budget=budget, refresh=True)
    timed = {}
    for name in names:
        model = getattr(keras.applications, name)(weights=None)
        start = time.perf_counter()
        latency = modelstats.measure_latency(model, repeats=repeats, warmup=3)
        timed[name] = (model, latency, time.perf_counter() - start, os.getloadavg()[0])
        print(f"{name}: measured in {timed[name][2]:.0f} s (load {timed[name][3]:.1f})",
              flush=True)
    after = modelstats.measure_device(budget=budget, refresh=True)
    device = best_of(before, after)
    results = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "backend": keras.backend.backend(),
        "repeats": repeats,
        "device": {"peak_flops": device.peak_flops, "bandwidth": device.bandwidth},
        "measurements": {
            "before": {"peak_flops": before.peak_flops, "bandwidth": before.bandwidth,
                       "note": before.note},
            "after": {"peak_flops": after.peak_flops, "bandwidth": after.bandwidth,
                      "note": after.note},
        },
        "models": {},
    }
    for name, (model, latency, seconds, load) in timed.items():
        bound = modelstats.roofline(model, device)
        results["models"][name] = summarise(bound, latency, device, seconds, load)
        if name == "MobileNetV2":
            results["_plot"] = (bound, latency)
    return results


def summarise(bound, latency, device, seconds: float, load: float) -> dict:
    layers = bound.layers
    compare = bound.compare(latency)
    memory = bound.memory_bound(5)
    flops = float(layers["flops"].sum())
    ran = compare[compare["measured"] == "measured"]
    memory_rows = ran[ran["bound"] == "memory"]
    return {
        "nodes": len(layers),
        "flops": flops,
        "bytes": float((layers["bytes_read"] + layers["bytes_written"]).sum()),
        "flops_only_s": flops / device.peak_flops,
        "roofline_s": bound.total_s,
        "partial": bound.partial,
        "measured_model_s": latency.model_s,
        "measured_sum_s": latency.sum_s,
        "not_run": latency.not_run,
        "spearman": bound.rank_correlation(latency),
        "memory_bound_calls": int((layers["bound"] == "memory").sum()),
        "compute_bound_calls": int((layers["bound"] == "compute").sum()),
        "memory_bound_share_predicted": float(
            layers.loc[layers["bound"] == "memory", "t_roofline_s"].sum() / bound.total_s),
        "memory_bound_share_measured": float(memory_rows["t_measured_s"].sum()
                                             / ran["t_measured_s"].sum()),
        "most_memory_bound": [
            {"node": str(node), "type": row["type"], "intensity": float(row["intensity"]),
             "t_memory_s": float(row["t_memory_s"]),
             "t_measured_s": float(latency.layers.loc[node, "t_measured_s"])}
            for node, row in memory.iterrows()
        ],
        "layers": {
            "node": [str(n) for n in compare.index],
            "bound": list(compare["bound"]),
            "t_roofline_s": floats(compare["t_roofline_s"]),
            "t_measured_s": floats(compare["t_measured_s"]),
            "measured": list(compare["measured"]),
        },
        "seconds_to_measure": seconds,
        "load_average": load,
    }


def floats(values) -> list:
    """JSON numbers, null where a value is missing (<NA>)."""
    import pandas as pd

    return [None if pd.isna(v) else float(v) for v in values]


def machine() -> str:
    import modelstats.latency as roofline

    return f"{roofline._cpu_name()}, Python {platform.python_version()}"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f}"


def render(results: dict) -> str:
    """The measured section of docs/roofline.md."""
    device = results["device"]
    lines = [
        f"Measured on {results['date']}: {results['machine']}, Keras backend "
        f"`{results['backend']}`, batch 1, float32, {results['repeats']} rounds per call. "
        f"`measure_device()` found **{device['peak_flops'] / 1e9:,.1f} GFLOP/s** (float32 "
        f"matmul) and **{device['bandwidth'] / 1e9:,.1f} GB/s** (copy), the best of a "
        "measurement before and after the models; the ridge point is "
        f"{device['peak_flops'] / device['bandwidth']:.1f} FLOPs per byte.",
        "",
        "| model | GFLOPs | MB moved | FLOPs-only (ms) | roofline (ms) | measured model (ms) "
        "| roofline / measured | sum of calls alone (ms) | memory-bound calls | share of "
        "roofline time memory-bound | Spearman per call |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in results["models"].items():
        lines.append(
            f"| {name} | {m['flops'] / 1e9:.2f} | {m['bytes'] / 1e6:,.0f} | "
            f"{ms(m['flops_only_s'])} | {ms(m['roofline_s'])} | {ms(m['measured_model_s'])} | "
            f"{m['roofline_s'] / m['measured_model_s']:.2f} | {ms(m['measured_sum_s'])} | "
            f"{m['memory_bound_calls']} of {m['nodes']} | "
            f"{m['memory_bound_share_predicted']:.0%} | {m['spearman']:.2f} |")
    lines += ["", "The memory-bound calls that cost the most time (roofline), per model:", "",
              "| model | call | type | FLOPs / byte | memory time (ms) | measured (ms) |",
              "|---|---|---|---|---|---|"]
    for name, m in results["models"].items():
        for row in m["most_memory_bound"]:
            lines.append(f"| {name} | `{row['node']}` | {row['type']} | "
                         f"{row['intensity']:.2f} | {ms(row['t_memory_s'])} | "
                         f"{ms(row['t_measured_s'])} |")
    return "\n".join(lines)


def write(results: dict) -> None:
    plot = results.pop("_plot", None)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    text = DOC.read_text()
    head, rest = text.split(BEGIN + "\n", 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(head + BEGIN + "\n" + render(results) + "\n" + END + tail)
    if plot is not None:
        bound, latency = plot
        ax = bound.plot(latency)
        ax.set_title("MobileNetV2 on this machine: roofline (blue) and measured (red)")
        ax.figure.savefig(PLOT, dpi=110, bbox_inches="tight")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="MobileNetV2 only, 5 rounds, print only (no files written)")
    parser.add_argument("--repeats", type=int, default=15, help="timing rounds per call")
    parser.add_argument("--budget", type=float, default=6.0,
                        help="seconds for each measure_device() run")
    args = parser.parse_args()
    names = MODELS[:1] if args.quick else MODELS
    results = measure(names, 5 if args.quick else args.repeats, args.budget)
    print(render(results))
    if not args.quick:
        write(results)
        print(f"wrote {RESULTS.relative_to(ROOT)}, {DOC.relative_to(ROOT)}, "
              f"{PLOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
