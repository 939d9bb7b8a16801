"""``modelstats MODEL``: receptive fields and per-layer costs of a saved model or an application.

Every expected failure (missing or corrupted file, Lambda layers in safe mode, unknown application,
shapes that do not fit, unsupported layers with ``--strict``) prints one line on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import warnings
from typing import Optional, Sequence

# Pure Python, no pandas or TensorFlow: parsing arguments and refusing bad ones stays instant.
from modelstats import schema
from modelstats.errors import ModelStatsError

# Before TensorFlow is imported: its C++ start-up chatter is noise on a command line.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

EXIT_USAGE = 2
FORMATS = ("table", "csv", "json", "markdown")


def _input_shape(text: str) -> tuple:
    """``"224,224,3"`` -> ``(224, 224, 3)``; ``None`` or ``?`` leave a dimension unknown."""
    dims = []
    for part in text.replace("x", ",").split(","):
        part = part.strip()
        if part.lower() in ("none", "?", ""):
            dims.append(None)
            continue
        try:
            value = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"'{text}' is not a shape like 224,224,3 (integers, or None for unknown)"
            ) from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"dimensions must be positive, got {value} in '{text}'")
        dims.append(value)
    return tuple(dims)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelstats",
        description="Exact receptive fields, MACs, FLOPs, parameters and activation memory per "
                    "layer of a Keras model.",
        epilog="examples:\n  modelstats MobileNetV2 --top 10\n"
               "  modelstats model.keras --input-shape 224,224,3 --format csv --output layers.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL",
                        help="a .keras / .h5 file, or a keras.applications name such as "
                             "MobileNetV2 (built with weights=None)")
    parser.add_argument("--input-shape", type=_input_shape, action="append", metavar="H,W,C",
                        help="input shape without the batch dimension; repeat once per input "
                             "for multi-input models")
    parser.add_argument("--rf-input", metavar="NAME",
                        help="the model input receptive fields are measured from (models with "
                             "several image inputs; default: the first)")
    parser.add_argument("--batch-size", type=int, default=1, help="batch size for costs (default 1)")
    parser.add_argument("--top", type=int, metavar="K",
                        help="only the K most expensive rows: layers, or blocks with --depth, "
                             "or layer classes with --by-type (default: every row, in graph "
                             "order)")
    parser.add_argument("--by", default="flops", choices=[c.name for c in schema.rankable()],
                        help="the column --top and --by-type rank by (default flops)")
    view = parser.add_mutually_exclusive_group()
    view.add_argument("--depth", type=int, metavar="K",
                      help="one row per block instead of per layer: the costs of the layers "
                           "inside each nested model or custom layer summed, K levels of "
                           "nesting deep (1: the model's own layers, each nested model or "
                           "custom layer one row)")
    view.add_argument("--by-type", action="store_true",
                      help="one row per layer class instead of per layer, the costs summed, "
                           "the most expensive first (by --by)")
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="output format (default table)")
    parser.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.add_argument("--convention", choices=("default", "macs_only", "folded"),
                        default="default", help="what counts as a FLOP (see docs/conventions.md)")
    parser.add_argument("--no-expand-nested", action="store_true",
                        help="keep nested models as single nodes")
    parser.add_argument("--strict", action="store_true",
                        help="fail on unsupported layers and misaligned merges")
    parser.add_argument("--unsafe", action="store_true",
                        help="allow loading files with Lambda layers (runs their code: only for "
                             "files you trust)")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (registers custom layers and their rules)")
    parser.add_argument("--verbose", action="store_true",
                        help="keep TensorFlow's native log messages on stderr")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    return parser


def _version() -> str:
    from modelstats import __version__

    return __version__


def _per_axis(row, quantity: str, axes: Sequence[str]) -> str:
    from modelstats._render import text_cell

    values = [text_cell(row[f"rf_{quantity}_{a}"]) for a in axes]
    return "-" if all(v == "-" for v in values) else "x".join(values)


def _render_table(report, rows, per_node: bool = True) -> str:
    """A plain-text summary: totals, the receptive field of the last feature map, and the rows
    with the schema's ``in_cli_table`` columns (for a per-block or per-type view, ``nodes``,
    the summed ones and ``unsupported``)."""
    from modelstats._render import PARTIAL_NOTE, summary_rows, view_rows

    t = report.totals
    lines = [f"{report.graph.graph.get('name', 'model')}: {len(report.layers)} nodes"]
    lines.append(f"  parameters   {t['params']:>16,}  ({t['trainable_params']:,} trainable)")
    lines.append(f"  MACs         {t['macs']:>16,}  (batch {t['batch_size']})")
    lines.append(f"  FLOPs        {t['flops']:>16,}  ({report.convention})")
    lines.append(f"  activations  {t['activation_bytes']:>16,}  bytes")
    if t["partial"]:
        lines.append(f"  PARTIAL totals: no rule for {', '.join(t['unsupported'])}")
    axes = schema.axes_of(report.layers.columns)
    if axes:
        spatial = report.layers.index[report.layers["rf_status"] == "spatial"]
        if len(spatial):
            last = report.layers.loc[spatial[-1]]
            lines.append(
                f"  receptive field of the last feature map '{spatial[-1]}': "
                f"{_per_axis(last, 'size', axes)} px, stride {_per_axis(last, 'stride', axes)}, "
                f"padding {_per_axis(last, 'padding', axes)}"
            )
    lines.append("")
    if per_node:
        names, body, numeric = summary_rows(rows, schema.cli_table(), missing="-")
        header = ["node", *names]
    else:
        names, body, numeric = view_rows(rows, missing="-")
        header = [rows.index.name, *names]
    right = [False, *numeric]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    for cells in [header, *body]:
        lines.append("  ".join(c.rjust(w) if right[i] else c.ljust(w)
                               for i, (c, w) in enumerate(zip(cells, widths))).rstrip())
    if not per_node and rows["partial"].any():
        lines += ["", PARTIAL_NOTE]
    return "\n".join(lines) + "\n"


def _render(report, args) -> str:
    import json

    per_node = args.depth is None and not args.by_type
    if args.format == "markdown":
        return report.to_markdown(top=args.top, by=args.by, depth=args.depth,
                                  by_type=args.by_type)
    _, rows = report._view(args.top, args.by, args.depth, args.by_type)
    if args.format == "table":
        return _render_table(report, rows, per_node)
    if args.format == "csv":
        return rows.to_csv()
    document = report.to_dict()
    if per_node:
        if args.top is not None:
            keep = set(rows.index)
            document["layers"] = [r for r in document["layers"] if r["node"] in keep]
    else:  # the view's rows replace the per-node ones, under "blocks" or "types"
        del document["layers"]
        key = "types" if args.by_type else "blocks"
        document[key] = json.loads(rows.reset_index().to_json(orient="records"))
    return json.dumps(document, indent=2) + "\n"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@contextlib.contextmanager
def _native_stderr_silenced(enabled: bool = True):
    """Send file descriptor 2 to /dev/null while TensorFlow starts and runs.

    TensorFlow's C++ runtime writes start-up notices (absl, oneDNN, CUDA probing) straight to
    fd 2, whatever ``TF_CPP_MIN_LOG_LEVEL`` says; a command whose errors are promised to be one
    line cannot let them through. Python-level messages are collected and printed afterwards.
    """
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def run(args: argparse.Namespace) -> tuple[str, list[str]]:
    """Load and analyse; return the rendered text and the warnings to show.

    Raises ``ModelStatsError`` for the caller to turn into one line and exit 2.
    """
    import modelstats

    for module in args.imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise modelstats.ModelLoadError(f"--import {module}: {_one_line(exc)}") from None
    shapes = args.input_shape
    single_shape = shapes[0] if shapes and len(shapes) == 1 else shapes
    is_file = os.path.exists(args.model) or os.path.splitext(args.model)[1] != ""
    model = modelstats.load_model(args.model, safe_mode=not args.unsafe,
                                  input_shape=None if is_file else single_shape)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", modelstats.UnsupportedLayerWarning)
        warnings.simplefilter("always", modelstats.MisalignedMergeWarning)
        warnings.simplefilter("always", modelstats.MultipleSpatialInputsWarning)
        report = modelstats.analyze(
            model,
            input_shape=single_shape if is_file else None,
            batch_size=args.batch_size,
            input=args.rf_input,
            strict=args.strict,
            convention=args.convention,
            expand_nested=not args.no_expand_nested,
        )
    shown = (modelstats.UnsupportedLayerWarning, modelstats.MisalignedMergeWarning,
             modelstats.MultipleSpatialInputsWarning)
    messages = [_one_line(w.message) for w in caught if issubclass(w.category, shown)]
    return _render(report, args), messages


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``modelstats`` console script and ``python -m modelstats``."""
    args = build_parser().parse_args(argv)
    try:
        # The library's own check, so the command line and analyze() refuse the same values.
        schema.check_batch_size(args.batch_size, name="--batch-size")
    except ModelStatsError as exc:
        print(f"modelstats: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    for option, value in (("--top", args.top), ("--depth", args.depth)):
        if value is not None and value < 1:
            print(f"modelstats: error: {option} must be at least 1; received {value}",
                  file=sys.stderr)
            return EXIT_USAGE

    try:
        with _native_stderr_silenced(not args.verbose):
            text, messages = run(args)
    except ModelStatsError as exc:
        print(f"modelstats: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    for message in messages:
        print(f"modelstats: warning: {message}", file=sys.stderr)
    if not args.output:
        sys.stdout.write(text)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        print(f"modelstats: error: cannot write --output: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
