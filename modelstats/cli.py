"""``modelstats MODEL``: receptive fields and per-layer costs of a saved model or an application;
``modelstats A B ...`` (or ``modelstats compare A B ...``): the models side by side.

Every expected failure (bad arguments, missing or corrupted file, Lambda layers in safe mode,
unknown application, shapes that do not fit, unsupported layers with ``--strict``) prints one line
on stderr and exits 2. Messages name command-line flags (``--input-shape``), never the Python
keywords the library's own errors mention (``input_shape=``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import sys
import warnings
from typing import Any, Optional, Sequence

# Pure Python, no pandas or TensorFlow: parsing arguments and refusing bad ones stays instant.
from modelstats import schema
from modelstats.errors import ModelStatsError

# Before TensorFlow is imported: its C++ start-up chatter is noise on a command line.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

EXIT_USAGE = 2
FORMATS = ("table", "csv", "json", "markdown", "html")

#: Applications whose Keras constructor leaves the image size open (input (None, None, 3)),
#: with the size their published ImageNet weights were trained at: the size Keras itself loads
#: those weights for (keras/src/applications/mobilenet_v3.py).
DEFAULT_SIZES = {"MobileNetV3Small": 224, "MobileNetV3Large": 224}

# The library's messages name Python keywords; a command-line user types flags. Applied in
# order to every error and warning the command prints.
_CLI_WORDS: tuple[tuple[re.Pattern, object], ...] = (
    (re.compile(r"keras\.applications\.(\w+)\{'weights': None, 'input_shape': \(([^()]*)\)\}"),
     lambda m: f"{m[1]} at --input-shape {m[2].replace(' ', '')}"),
    (re.compile(r"keras\.applications\.(\w+)\{'weights': None\}"), r"\1"),
    (re.compile(r"input_shape=\(\.\.\.\)"), "--input-shape H,W,C"),
    (re.compile(r"input_shape=\[([^\]]*)\]"),
     lambda m: " ".join(f"--input-shape {s.replace(' ', '')}"
                        for s in re.findall(r"\(([^()]*)\)", m[1]))),
    (re.compile(r"input_shape=\(([^()]*)\)"),
     lambda m: f"--input-shape {m[1].replace(' ', '').rstrip(',')}"),
    (re.compile(r"pass input_shape as a list with one shape per input, or as a dict keyed by "
                r"input name"), "repeat --input-shape once per input, in the model's input order"),
    (re.compile(r"input_shape gives (\d+) shapes"), r"--input-shape is given \1 times"),
    (re.compile(r"\binput=(['\"])(.*?)\1"), r"--rf-input \2"),
    (re.compile(r"\binput=(?=[\s.,;)]|$)"), "--rf-input NAME"),
    (re.compile(r"Register them with modelstats\.register_layer\(cls, cost=\.\.\.\), or pass "
                r"strict=False"),
     "Register them with modelstats.register_layer(cls, cost=...) in a module loaded with "
     "--import MODULE, or drop --strict"),
    (re.compile(r"Load it with safe_mode=False \(CLI: --unsafe\)"), "Pass --unsafe"),
    (re.compile(r"import the module that defines it \(CLI: --import MODULE\) and decorate it"),
     "pass --import MODULE, a module that defines it, decorated"),
    (re.compile(r"\bstrict=True"), "--strict"),
    (re.compile(r"\bexpand_nested=False"), "--no-expand-nested"),
    (re.compile(r"\bbatch_size="), "--batch-size "),
)


def cli_words(message: str) -> str:
    """A library message with its Python keywords replaced by the command's flags.

    >>> cli_words("Pass input_shape=(...) to fix it; input_shape=(16, 16, 3) does not fit.")
    'Pass --input-shape H,W,C to fix it; --input-shape 16,16,3 does not fit.'
    >>> cli_words("measured from 'a'. Pass input= to choose another.")
    "measured from 'a'. Pass --rf-input NAME to choose another."
    """
    for pattern, replacement in _CLI_WORDS:
        message = pattern.sub(replacement, message)
    return message


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line like every other failure of the command."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(EXIT_USAGE, f"{self.prog}: error: {' '.join(message.split())} "
                              f"(see {self.prog} --help)\n")


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
    parser = _Parser(
        prog="modelstats",
        description="Exact receptive fields, MACs, FLOPs, parameters and activation memory per "
                    "layer of a Keras model; several models: one row each, side by side.",
        epilog="examples:\n  modelstats MobileNetV2 --top 10\n"
               "  modelstats model.keras --input-shape 224,224,3 --format csv --output layers.csv\n"
               "  modelstats MobileNetV2 --format html --output report.html\n"
               "  modelstats MobileNetV2 EfficientNetB0 MobileNetV3Small",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help="a .keras / .h5 file, or a keras.applications name such as "
                             "MobileNetV2 (built with random weights, at its default size: 224 "
                             "for MobileNetV3Small and Large, whose size is open). Several "
                             "models (optionally after the word 'compare') give one row each")
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
    parser.add_argument("--by", choices=[c.name for c in schema.rankable(schema.FEATURES)],
                        help="the column --top and --by-type rank by (default flops); with "
                             "several models, the rows are sorted by it")
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
                        help="output format (default table); html is one self-contained page "
                             "with the tables and plots (use with --output)")
    parser.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.add_argument("--convention", choices=("default", "macs_only", "folded"),
                        default="default", help="what counts as a FLOP (see docs/conventions.md)")
    parser.add_argument("--training", action="store_true",
                        help="also count one training step: backward MACs and FLOPs per layer, "
                             "following which layers are trainable, and the optimizer update "
                             "(see docs/conventions.md)")
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
    parser.add_argument("--device", type=_device_name, metavar="NAME",
                        help="add each layer's roofline time on a device (t_compute_s, "
                             "t_memory_s, t_roofline_s, bound) and the model's lower-bound "
                             "latency: a name of modelstats.devices() such as a100-sxm4-80gb, "
                             "or 'measured' for this machine (a few seconds of benchmarks)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    return parser


def _device_name(text: str) -> str:
    """A catalogue name or 'measured' (the catalogue is plain Python: no TensorFlow yet)."""
    from modelstats.latency import MEASURED_NAMES, devices

    names = sorted(devices())
    if text.lower() not in (*names, *MEASURED_NAMES):
        raise argparse.ArgumentTypeError(
            f"unknown device '{text}'; choose one of {', '.join(names)} or 'measured'")
    return text.lower()


def _with_roofline(report, args) -> str:
    """With ``--device``: the roofline columns joined to the report's layers (CSV and JSON show
    them), and the lower bound with the shown layers' roofline for the table and Markdown."""
    import modelstats

    if not args.device:
        return ""
    bound = modelstats.roofline(report, args.device)
    report.layers = report.layers.join(
        bound.layers[["t_compute_s", "t_memory_s", "t_roofline_s", "bound"]])
    if args.format not in ("table", "markdown"):
        return ""
    per_node = args.depth is None and not args.by_type
    _, rows = report._view(args.top, args.by or "flops", args.depth, args.by_type)
    text = bound.summary(rows.index if per_node else [], markdown=args.format == "markdown")
    return "\n" + text


def _version() -> str:
    from modelstats import __version__

    return __version__


def _render_table(report, rows, per_node: bool = True) -> str:
    """A plain-text summary: totals, the receptive field of the last feature map, and the rows
    with the schema's ``in_cli_table`` columns (for a per-block or per-type view, ``nodes``,
    the summed ones and ``unsupported``)."""
    from modelstats._render import (PARTIAL_NOTE, field_unit, last_feature_map, per_axis,
                                    summary_rows, view_rows)

    t = report.totals
    lines = [f"{report.graph.graph.get('name', 'model')}: {len(report.layers)} nodes"]
    lines.append(f"  parameters   {t['params']:>16,}  ({t['trainable_params']:,} trainable)")
    lines.append(f"  MACs         {t['macs']:>16,}  (batch {t['batch_size']})")
    lines.append(f"  FLOPs        {t['flops']:>16,}  ({report.convention})")
    lines.append(f"  activations  {t['activation_bytes']:>16,}  bytes")
    if "train_macs" in t:
        lines.append(f"  train MACs   {t['train_macs']:>16,}  (one training step: forward + "
                     f"{t['bwd_input_macs']:,} input-gradient + {t['bwd_weight_macs']:,} "
                     "weight-gradient)")
        lines.append(f"  train FLOPs  {t['train_flops']:>16,}  (+ "
                     f"{t['optimizer_flops']['adam']:,} for an Adam update)")
    if t["partial"]:
        lines.append(f"  PARTIAL totals: no rule for {', '.join(t['unsupported'])}")
    axes = schema.axes_of(report.layers.columns)
    last = last_feature_map(report.layers)
    if last is not None:
        row = report.layers.loc[last]
        unit = field_unit(report.graph, report.totals.get("rf_input"))
        lines.append(
            f"  receptive field of the last feature map '{last}': "
            f"{per_axis(row, 'size', axes)} {unit}, stride {per_axis(row, 'stride', axes)}, "
            f"padding {per_axis(row, 'padding', axes)}"
        )
    lines.append("")
    if per_node:
        names, body, numeric = summary_rows(rows, schema.cli_table(), missing="-")
        header = ["node", *names]
    else:
        names, body, numeric = view_rows(rows, missing="-")
        header = [rows.index.name, *names]
    lines += _aligned(header, body, numeric)
    if not per_node and rows["partial"].any():
        lines += ["", PARTIAL_NOTE]
    return "\n".join(lines) + "\n"


def _aligned(header: Sequence[str], body: Sequence[Sequence[str]],
             numeric: Sequence[bool]) -> list[str]:
    """Columns padded to a common width; numbers right-aligned (``numeric`` after the first)."""
    right = [False, *numeric]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    return ["  ".join(c.rjust(w) if right[i] else c.ljust(w)
                      for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
            for cells in [header, *body]]


def _render(report, args) -> str:
    import json

    per_node = args.depth is None and not args.by_type
    by = args.by or "flops"
    if args.format == "html":
        if args.by_type:
            raise ModelStatsError("--by-type has no HTML view; the HTML report shows the top "
                                  "layers (--top, --by) and the blocks (--depth).")
        return report.to_html(top=args.top or 10, by=by, depth=args.depth or 1,
                              device=args.device)
    if args.format == "markdown":
        return report.to_markdown(top=args.top, by=by, depth=args.depth, by_type=args.by_type)
    _, rows = report._view(args.top, by, args.depth, args.by_type)
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


def _render_comparison(table, args, conventions: Sequence[str]) -> str:
    """The comparison of several models in the chosen format."""
    import json

    from modelstats._render import comparison_rows, html_page, html_table, pipe_table

    if args.by:
        if args.by not in table.columns:
            raise ModelStatsError(f"--by {args.by} is not a column of the comparison; choose one "
                                  f"of {', '.join(c for c in table.columns if c != 'rf_node')}.")
        table = table.sort_values(args.by, ascending=False, kind="stable")
    convention = "; ".join(dict.fromkeys(conventions))
    if args.format == "csv":
        return table.to_csv()
    if args.format == "json":
        records = json.loads(table.reset_index().to_json(orient="records"))
        return json.dumps({"convention": convention, "models": records}, indent=2) + "\n"
    note = (f"{convention}. rf_node is each model's last feature map, rf_size and rf_stride "
            "its receptive field.")
    if table["partial"].any():
        note += (" A partial row lacks the MACs and FLOPs of layers without a cost rule "
                 "(a lower bound).")
    if args.format == "html":
        import html

        header, body, _ = comparison_rows(table, missing="-")
        return html_page(f"modelstats: {len(table)} models compared", [
            f"<h1>{len(table)} models compared</h1>",
            f'<p class="convention">{html.escape(note)}</p>',
            html_table(["model", *header], body, "comparison", sortable=True)])
    # The text views leave out the node count and activations in elements (activation
    # bytes stay): a terminal row should fit.
    header, body, numeric = comparison_rows(table.drop(columns=["nodes", "activations"]),
                                            missing="-")
    if args.format == "markdown":
        return "\n".join([f"# {len(table)} models compared", "", note, "",
                          pipe_table(["model", *header], body)]) + "\n"
    return "\n".join(_aligned(["model", *header], body, numeric) + ["", note]) + "\n"


def _one_line(exc: BaseException) -> str:
    return cli_words(" ".join(str(exc).split()) or type(exc).__name__)


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


def _default_shape(name: str) -> Optional[tuple]:
    """The input shape to build an application with when its constructor leaves the size open
    (:data:`DEFAULT_SIZES`), in Keras' image data format; None for every other name."""
    known = {k.lower(): v for k, v in DEFAULT_SIZES.items()}
    size = known.get(name.lower())
    if size is None:
        return None
    import keras

    channels_first = keras.config.image_data_format() == "channels_first"
    return (3, size, size) if channels_first else (size, size, 3)


def _analyse(source: str, args: argparse.Namespace) -> tuple[Any, list[str]]:
    """Load one model (file or application name) and analyse it; the report and the lines
    to print on stderr (notes and the library's warnings, in the command's words)."""
    import modelstats

    shapes = args.input_shape
    single_shape = shapes[0] if shapes and len(shapes) == 1 else shapes
    is_file = os.path.exists(source) or os.path.splitext(source)[1] != ""
    notes = []
    if not is_file and single_shape is None:
        single_shape = _default_shape(source)
        if single_shape is not None:
            notes.append(f"modelstats: note: {source} takes images of any size; analysed at its "
                         f"default {','.join(map(str, single_shape))} (choose with "
                         "--input-shape)")
    model = modelstats.load_model(source, safe_mode=not args.unsafe,
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
            training=args.training,
        )
    shown = (modelstats.UnsupportedLayerWarning, modelstats.MisalignedMergeWarning,
             modelstats.MultipleSpatialInputsWarning)
    notes += [f"modelstats: warning: {_one_line(w.message)}" for w in caught
              if issubclass(w.category, shown)]
    return report, notes


def _sources(models: Sequence[str]) -> list[str]:
    """The models named on the command line; a leading ``compare`` (``modelstats compare A
    B``) is the verb, unless a file of that name exists."""
    if len(models) > 1 and models[0] == "compare" and not os.path.exists(models[0]):
        return list(models[1:])
    return list(models)


def run(args: argparse.Namespace) -> tuple[str, list[str]]:
    """Load and analyse; return the rendered text and the lines to print on stderr.

    Raises ``ModelStatsError`` for the caller to turn into one line and exit 2.
    """
    import modelstats

    for module in args.imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise modelstats.ModelLoadError(f"--import {module}: {_one_line(exc)}") from None
    sources = _sources(args.models)
    if len(sources) == 1 and args.models[0] != "compare":
        report, notes = _analyse(sources[0], args)
        extra = _with_roofline(report, args)
        return _render(report, args) + extra, notes
    for option, value in (("--top", args.top), ("--depth", args.depth),
                          ("--by-type", args.by_type or None), ("--rf-input", args.rf_input)):
        if value is not None:
            raise ModelStatsError(f"{option} applies to one model; with several, modelstats "
                                  "prints one row per model (--by sorts them).")
    reports, notes = {}, []
    for source in sources:
        report, more = _analyse(source, args)
        name, repeat = source, 0
        while name in reports:
            repeat += 1
            name = f"{source}#{repeat}"
        reports[name] = report
        notes += more
    table = modelstats.compare(reports, device=args.device)
    return _render_comparison(table, args, [r.convention for r in reports.values()]), notes


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
        print(message, file=sys.stderr)
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
