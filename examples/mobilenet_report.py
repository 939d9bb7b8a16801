"""The worked example: what the clothing classifier (MobileNetV2 transfer learning) costs and sees.

Builds the classifier, analyses it with modelstats and prints parameters, MACs and FLOPs, the
receptive field of the MobileNetV2 feature map, the most expensive layers, what a training
step and an epoch cost in the seed's three regimes (against the measured epoch times), the
effective receptive field next to the theoretical one, the roofline lower bound and the
measured latency on this machine with the most memory-bound layers, the base's MACs as a
formula of the input size, and where the published per-layer table of the original study was
wrong. Writes layers.csv, blocks.csv,
report.md, report.json, published_vs_exact.csv, a self-contained report.html and three plots
(cost per layer, field growth, one unit's field over an input image) to --out, and lists what it
wrote. Runs offline with --weights none (the default).
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
    parser.add_argument("--image", type=Path,
                        help="a photo to draw the feature map's receptive field on, resized to "
                             "the 224 x 224 input (default: a generated test card)")
    parser.add_argument("--images", type=Path, metavar="DIR",
                        help="photos (e.g. the clothing dataset's test split) to measure the "
                             "effective receptive field on (default: 8 random images)")
    parser.add_argument("--quick", action="store_true",
                        help="skip what runs the model (the effective receptive field, the "
                             "device and latency measurements): about 15 s less")
    parser.add_argument("--no-plots", action="store_true",
                        help="skip the PNG plots (report.html is written without them)")
    return parser.parse_args(argv)


class ExampleError(Exception):
    """A bad argument (weights or image file); printed as one line, exit status 2."""


def build_classifier(weights_arg: str):
    """The classifier with the requested base weights, or ExampleError in one line."""
    from modelstats.models import clothing_classifier

    if weights_arg not in ("none", "imagenet") and not Path(weights_arg).is_file():
        raise ExampleError(f"--weights {weights_arg}: no such file (pass none, imagenet, or "
                           "the path of a MobileNetV2 weights file)")
    weights = None if weights_arg == "none" else weights_arg
    try:
        return clothing_classifier(weights=weights)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types; one line instead
        first = " ".join(str(exc).strip().split("\n")[0].split()) or type(exc).__name__
        raise ExampleError(f"--weights {weights_arg}: {first}") from None


def load_image(path: Path, size: tuple[int, int]):
    """The photo at ``path`` resized to the model's input, as the model would receive it."""
    if not path.is_file():
        raise ExampleError(f"--image {path}: no such file")
    try:
        from keras.utils import img_to_array, load_img

        return img_to_array(load_img(path, target_size=size, color_mode="rgb"), dtype="uint8")
    except ImportError as exc:
        raise ExampleError(f"--image needs Pillow: pip install -e \".[examples]\" ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a bad file
        raise ExampleError(f"--image {path}: cannot read it as an image "
                           f"({type(exc).__name__})") from None


def load_images(folder: Path, n: int = 8):
    """Up to ``n`` photos found under ``folder`` (sorted, recursively), resized to 224 x 224."""
    import numpy as np

    if not folder.is_dir():
        raise ExampleError(f"--images {folder}: no such folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise ExampleError(f"--images {folder}: no .jpg or .png files in it")
    # one photo per sub-folder in turn (the dataset's classes), then the next of each
    by_folder: dict = {}
    for path in files:
        by_folder.setdefault(path.parent, []).append(path)
    chosen = [p for group in zip(*by_folder.values()) for p in group][:n] or files[:n]
    return np.stack([load_image(p, (224, 224)) for p in chosen]).astype("float32")


def effective_field(model, images):
    """The classifier's effective receptive field at the centre unit of its feature map."""
    import modelstats

    return modelstats.effective_receptive_field(model, f"{BASE}/out_relu", images=images,
                                                n_images=8)


def roofline_and_latency(report, model):
    """The roofline lower bound on this machine (measured peaks) and the measured latency."""
    import modelstats

    bound = modelstats.roofline(report, "measured")
    # 3 rounds of every layer alone keep the example quick; benchmarks/bench_roofline.py,
    # which docs/roofline.md reports, measures 15
    latency = modelstats.measure_latency(model, repeats=3)
    return bound, latency


def print_effective_field(erf, rf, images, args) -> None:
    source = (f"{len(images)} photos from {args.images}" if images is not None
              else f"{erf.n_images} random images (--images DIR for photos)")
    print(f"Effective receptive field of unit {erf.position} of out_relu, on {source}:")
    print(f"  half of the gradient mass lies in {erf.area_ratio(0.5):.1%} of the image, 90% in "
          f"{erf.area_ratio(0.9):.1%};")
    print(f"  the theoretical field ({rf.size[0]} px) covers the whole image"
          + (" (random weights: a trained network's differs)" if args.weights == "none" else ""))
    print()


def print_latency(bound, latency) -> None:
    print(f"Latency on this machine ({bound.device.name}): roofline lower bound "
          f"{bound.total_s * 1e3:.1f} ms, measured {latency.model_s * 1e3:.1f} ms "
          f"(batch 1); per-layer rank correlation {bound.rank_correlation(latency):.2f}")
    print("Most memory-bound layers (FLOPs per byte moved, time predicted and measured alone):")
    worst = bound.memory_bound(5).join(latency.layers[["t_measured_s"]])
    for node, row in worst.iterrows():
        print(f"  {node.split('/')[-1]:<22} {row['type']:<20} {row['intensity']:6.2f} FLOP/B "
              f"{row['t_roofline_s'] * 1e6:9.1f} us predicted {row['t_measured_s'] * 1e6:9.1f} us "
              "measured")
    print()


def write_plots(report, out: Path, top: int, image, erf=None, bound=None,
                latency=None) -> list[str]:
    """The three PNG plots; returns the names written (none without matplotlib)."""
    import matplotlib.pyplot as plt

    pictures = {
        "cost_per_layer.png": lambda: report.plot_cost(top),
        "receptive_field.png": lambda: report.plot_receptive_field(),
        # 491 px seen by the centre unit of a 7x7 map on a 224 px input: most of the field is
        # padding, and every unit sees the whole image.
        "field_on_image.png": lambda: report.plot_receptive_field(layer=f"{BASE}/out_relu",
                                                                   image=image),
    }
    if erf is not None:  # the gradient's mass against the 491 px geometric field (dashed)
        pictures["effective_field.png"] = lambda: erf.plot(image=image, full_field=True)
    if bound is not None:
        pictures["roofline.png"] = lambda: bound.plot(latency)
    for name, draw in pictures.items():
        ax = draw()
        ax.figure.savefig(out / name, dpi=100, bbox_inches="tight")
        plt.close(ax.figure)
    return list(pictures)


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


# The seed's data and training set-up (docs/training.md): 3,068 training and 341 validation
# images, batch 32, Adam; and the epoch times measured on this 2-core CPU with --weights none.
TRAIN_IMAGES, VALIDATION_IMAGES, BATCH = 3068, 341, 32
SCRATCH = "from scratch, 0.35 at 96 px"
# (the from-scratch run: train_clothing.py --mode scratch --alpha 0.35 --img-size 96, median
# of its 30 epochs)
MEASURED_EPOCH_SECONDS = {"frozen base": 44.1, "cached features": 0.25, SCRATCH: 31.0}


def fine_tuned_classifier(from_layer: int = 100):
    """A second classifier with its base trainable from layer ``from_layer`` on (the seed's
    third regime); the base is still called with training=False. Random weights: what a
    step costs does not depend on them."""
    from modelstats.models import clothing_classifier

    return clothing_classifier(fine_tune_from=from_layer)


def cached_head(model):
    """The head alone, on the 1,280 pooled base features cached once (--mode cached)."""
    import keras

    dense = model.get_layer("dense")
    features = keras.Input((1280,), name="cached_features")
    x = keras.layers.Dropout(0.5, name="dropout")(features)
    outputs = keras.layers.Dense(dense.units, activation="softmax", name="dense")(x)
    return keras.Model(features, outputs, name="cached_head")


def training_regimes(model) -> list[dict]:
    """What one epoch costs in the seed's three regimes: every training image's training step,
    one Adam update per batch and the validation images' forward passes."""
    import math

    import modelstats

    steps = math.ceil(TRAIN_IMAGES / BATCH)
    from modelstats.models import clothing_classifier

    regimes = {"frozen base": model, "cached features": cached_head(model),
               "fine-tuning from layer 100": fine_tuned_classifier(),
               # what learns offline (train_clothing.py --mode scratch, docs/training.md)
               SCRATCH: clothing_classifier(alpha=0.35, input_shape=(96, 96, 3),
                                            train_base=True)}
    rows = []
    for name, regime in regimes.items():
        t = modelstats.analyze(regime, training=True).totals
        epoch = (TRAIN_IMAGES * t["train_flops"] + steps * t["optimizer_flops"]["adam"]
                 + VALIDATION_IMAGES * t["flops"])
        seconds = MEASURED_EPOCH_SECONDS.get(name)
        rows.append({"regime": name, "trainable": t["trainable_params"],
                     "train_macs": t["train_macs"], "backward_macs":
                     t["bwd_input_macs"] + t["bwd_weight_macs"], "epoch_flops": epoch,
                     "measured_s": seconds,
                     "achieved": epoch / seconds if seconds else None})
    return rows


def macs_formula():
    """The MobileNetV2 base's MACs as an exact formula of the input size, and its values."""
    import keras

    import modelstats

    any_size = keras.applications.MobileNetV2(input_shape=(None, None, 3), include_top=False,
                                              weights=None)
    report = modelstats.analyze(any_size, input_shape=("H", "W", 3))
    sizes = [(160, 160), (224, 224), (97, 131), (320, 240)]
    return report.totals["macs"], {hw: report.at(H=hw[0], W=hw[1]).totals["macs"]
                                   for hw in sizes}


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except ExampleError as exc:
        print(f"mobilenet_report: error: {exc}", file=sys.stderr)
        return 2


def run(args) -> int:
    import modelstats

    image = load_image(args.image, (224, 224)) if args.image else None
    images = load_images(args.images) if args.images else None
    if image is None and images is not None:  # draw the fields on the first of the photos
        image = images[0].astype("uint8")
    model = build_classifier(args.weights)
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
    print("Training step per image, and per epoch (3,068 training + 341 validation images, "
          "batch 32, Adam):")
    print(f"  {'regime':<28} {'trainable':>10} {'train MACs':>13} {'backward':>13} "
          f"{'GFLOPs/epoch':>13} {'measured':>9} {'achieved':>12}")
    for row in training_regimes(model):
        measured = f"{row['measured_s']:.2f} s" if row["measured_s"] else "-"
        achieved = f"{row['achieved'] / 1e9:.2f} GFLOP/s" if row["achieved"] else "-"
        print(f"  {row['regime']:<28} {row['trainable']:>10,} {row['train_macs']:>13,} "
              f"{row['backward_macs']:>13,} {row['epoch_flops'] / 1e9:>13,.1f} {measured:>9} "
              f"{achieved:>12}")
    print("  (measured: one epoch on this 2-core CPU, docs/training.md; the cached head's epoch "
          "is mostly overhead)")
    print()
    erf = bound = latency = None
    if args.quick:
        print("(effective receptive field and latency skipped: --quick)")
        print()
    else:
        erf = effective_field(model, images)
        print_effective_field(erf, rf, images, args)
        bound, latency = roofline_and_latency(report, model)
        print_latency(bound, latency)
    formula, values = macs_formula()
    print("MobileNetV2 base MACs at any input size H x W (exact, floors and ceilings kept):")
    print(f"  {formula}")
    print("  " + ", ".join(f"{h}x{w}: {int(v):,}" for (h, w), v in values.items()))
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
    written = ["layers.csv", "blocks.csv", "report.md", "report.json", "published_vs_exact.csv"]
    plots = not args.no_plots
    if plots:
        try:
            written += write_plots(report, args.out, args.top, image, erf, bound, latency)
        except ImportError as exc:  # matplotlib is in the examples extra, not the core
            plots = False
            print(f"(plots skipped: {exc}; pip install -e \".[examples]\" adds them)",
                  file=sys.stderr)
    # Asked for plots but matplotlib is missing: the page says how to get them.
    report.to_html(args.out / "report.html", top=args.top, plots=not args.no_plots)
    written.append("report.html" + ("" if plots else " (without plots)"))
    print(f"\nWrote {', '.join(written[:-1])} and {written[-1]} to {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
