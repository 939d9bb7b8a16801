"""The worked example: what the clothing classifier (MobileNetV2 transfer learning) costs and sees.

Builds the classifier, analyses it with modelstats and prints parameters, MACs and FLOPs, the
receptive field of the MobileNetV2 feature map, the most expensive layers and where the
published per-layer table of the original study was wrong. Writes layers.csv, report.md,
report.json and two plots to --out. Runs offline with --weights none (the default).
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BASE = "mobilenetv2_1.00_224"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="none",
                        help="none (offline, default), imagenet (downloads) or a weights file path")
    parser.add_argument("--top", type=int, default=10, help="how many expensive layers to list")
    parser.add_argument("--out", type=Path, default=Path("mobilenet_report"),
                        help="output folder (default ./mobilenet_report/)")
    parser.add_argument("--no-plots", action="store_true", help="skip the two PNG plots")
    return parser.parse_args(argv)


def published_table():
    """The per-layer FLOP table published with the original study (shipped with modelstats)."""
    import pandas as pd

    path = resources.files("modelstats") / "data" / "published_flops_clothing_classifier.csv"
    with resources.as_file(path) as csv:
        return pd.read_csv(csv).set_index("layer")


def compare_with_published(report):
    """Rows where the published FLOPs differ from modelstats' exact count."""
    import pandas as pd

    published = published_table()
    rows = []
    for node, row in report.layers.iterrows():
        name = node.split("/")[-1]
        if name not in published.index:
            continue
        old = float(published.loc[name, "flops"])
        exact = int(row["flops"])
        if round(old) != exact:
            rows.append({"layer": name, "type": row["type"], "published": old, "exact": exact,
                         "difference": exact - old})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    args = parse_args(argv)
    import modelstats
    from modelstats.models import clothing_classifier

    weights = None if args.weights == "none" else args.weights
    model = clothing_classifier(weights=weights)
    report = modelstats.analyze(model)
    t = report.totals
    rf = report.receptive_field(f"{BASE}/out_relu")

    print(f"Clothing classifier ({model.name}): {len(report.layers)} operation calls")
    print(f"  parameters      {t['params']:>14,}  ({t['trainable_params']:,} trainable)")
    print(f"  MACs            {t['macs']:>14,}")
    print(f"  FLOPs           {t['flops']:>14,}  ({report.convention})")
    print(f"  activations     {t['activation_bytes'] / 2**20:>14.1f} MiB (float32, batch 1)")
    print(f"  totals partial: {t['partial']}")
    print()
    print(f"Receptive field of the MobileNetV2 feature map ({BASE}/out_relu, 7x7):")
    print(f"  size {rf.size[0]} x {rf.size[1]} px, stride {rf.stride[0]} x {rf.stride[1]}, "
          f"effective padding {rf.padding[0]} x {rf.padding[1]}")
    print(f"  unit (3, 3) is centred on pixel {rf.center((3, 3))}; unit (0, 0) sees "
          f"{rf.box((0, 0))} (clipped to the image: {rf.box((0, 0), clip=True)})")
    print()
    # Where the cost sits: the frozen MobileNetV2 base against the 10-class head.
    blocks = report.by_block(depth=1)
    print("Cost by block (the nested MobileNetV2 base is one block):")
    for block, row in blocks.iterrows():
        share = int(row["macs"]) / t["macs"] if t["macs"] else 0.0
        print(f"  {block:<28} {int(row['nodes']):>4} calls {int(row['params']):>11,} params "
              f"{int(row['macs']):>13,} MACs ({share:7.3%})")
    print()
    top = report.top(args.top)
    print(f"Top {args.top} layers by FLOPs:")
    for node, row in top.iterrows():
        print(f"  {node.split('/')[-1]:<20} {row['type']:<16} {int(row['flops']):>12,} FLOPs")
    print()
    diff = compare_with_published(report)
    print(f"Published table vs exact: {len(diff)} layers differ.")
    if len(diff):
        summary = diff.groupby("type")["difference"].agg(["count", "sum"])
        for kind, item in summary.iterrows():
            print(f"  {kind:<24} {int(item['count']):>3} layers, {item['sum']:>+14,.0f} FLOPs")
        worst = diff.reindex(diff["difference"].abs().sort_values(ascending=False).index).head(3)
        for _, item in worst.iterrows():
            print(f"  e.g. {item['layer']}: published {item['published']:,.0f}, "
                  f"exact {item['exact']:,}")

    args.out.mkdir(parents=True, exist_ok=True)
    report.to_csv(args.out / "layers.csv")
    blocks.to_csv(args.out / "blocks.csv")
    report.to_json(args.out / "report.json")
    (args.out / "report.md").write_text(report.to_markdown(args.top))
    diff.to_csv(args.out / "published_vs_exact.csv", index=False)
    if not args.no_plots:
        try:
            import matplotlib.pyplot as plt

            ax = report.plot_cost(args.top)
            ax.figure.savefig(args.out / "cost_per_layer.png", dpi=100, bbox_inches="tight")
            plt.close(ax.figure)
            ax = report.plot_receptive_field()
            ax.figure.savefig(args.out / "receptive_field.png", dpi=100, bbox_inches="tight")
            plt.close(ax.figure)
        except ImportError as exc:
            print(f"(plots skipped: {exc})", file=sys.stderr)
    print(f"\nWrote layers.csv, blocks.csv, report.md, report.json, published_vs_exact.csv and "
          f"plots to {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
