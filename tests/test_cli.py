"""The ``modelstats`` command line: formats that parse, and one line + exit 2 for every bad input."""

from __future__ import annotations

import html.parser
import io
import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from modelstats.cli import main
from tests.conftest import nested_block_model

MARKER_ENV = "MODELSTATS_TEST_LAMBDA_MARKER"
# A Python keyword argument in a message: the command line's user types flags instead.
PYTHON_KEYWORD = re.compile(r"\b(input_shape|input|strict|safe_mode|batch_size|expand_nested)=")


# Keras stores a Python lambda's bytecode in the file and runs it when it rebuilds the layer, so
# this one proves whether loading executed code from the file: it touches the marker file.
_touch_marker = lambda x: (  # noqa: E731 - only a lambda is serialised as code
    __import__("pathlib").Path(
        __import__("os").environ.get("MODELSTATS_TEST_LAMBDA_MARKER", "/dev/null")).touch(),
    x,
)[1]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def saved(tmp_path_factory, keras):
    """A small model saved as .keras and .h5, a Lambda model, and broken files."""
    folder = tmp_path_factory.mktemp("cli")
    x = keras.Input((32, 32, 3), name="image")
    y = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv")(x)
    y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    y = keras.layers.Dense(4, name="dense")(y)
    model = keras.Model(x, y, name="small")
    model.save(folder / "small.keras")
    model.save(folder / "small.h5")
    model.save_weights(folder / "small.weights.h5")

    z = keras.layers.Lambda(_touch_marker, name="touch")(x)
    z = keras.layers.Conv2D(2, 3, name="conv")(z)
    keras.Model(x, z, name="with_lambda").save(folder / "lambda.keras")
    keras.Model(x, z, name="with_lambda").save(folder / "lambda.h5")

    class Doubler(keras.layers.Layer):  # deliberately not registered with Keras
        def call(self, inputs):
            return inputs * 2

    keras.Model(x, Doubler(name="doubler")(x), name="custom").save(folder / "custom.keras")

    payload = (folder / "small.keras").read_bytes()
    (folder / "truncated.keras").write_bytes(payload[: len(payload) // 2])
    h5 = (folder / "small.h5").read_bytes()
    (folder / "truncated.h5").write_bytes(h5[: len(h5) // 3])
    (folder / "notes.txt").write_text("not a model\n")
    (folder / "notes.keras").write_text("not a model either\n")
    (folder / "empty.h5").write_bytes(b"")
    return folder


def one_line_error(code, err):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("modelstats: error: ")
    return lines[0]


@pytest.mark.parametrize("name", ["small.keras", "small.h5"])
def test_saved_model_every_format_parses(capsys, saved, name):
    code, out, err = run_cli(capsys, saved / name)
    assert code == 0 and err == ""
    assert "small: 4 nodes" in out
    # conv: 16*16 output pixels * 3*3*3 kernel * 8 filters = 55,296 MACs
    assert "55,296" in out
    assert "receptive field of the last feature map 'conv': 3x3 px, stride 2x2" in out

    code, out, _ = run_cli(capsys, saved / name, "--format", "csv")
    table = pd.read_csv(io.StringIO(out), index_col="node")
    assert code == 0 and list(table.index) == ["image", "conv", "gap", "dense"]
    assert table.loc["conv", "macs"] == 55_296 and table.loc["dense", "params"] == 36

    code, out, _ = run_cli(capsys, saved / name, "--format", "json")
    document = json.loads(out)
    assert document["totals"]["params"] == 224 + 36  # conv 3*3*3*8+8, dense 8*4+4
    assert [row["node"] for row in document["layers"]] == ["image", "conv", "gap", "dense"]

    code, out, _ = run_cli(capsys, saved / name, "--format", "markdown")
    assert out.startswith("# small") and "## All 4 layers, in graph order" in out
    body = out.split("## All 4 layers, in graph order")[1]
    assert [line.split(" | ")[0] for line in body.strip().splitlines()[2:]] == \
        ["| image", "| conv", "| gap", "| dense"]


def test_input_shape_replaces_unknown_sizes(capsys, saved, keras, tmp_path):
    x = keras.Input((None, None, 3), name="picture")
    y = keras.layers.Conv2D(8, 3, padding="same", name="conv")(x)
    keras.Model(x, y, name="any_size").save(tmp_path / "any.keras")
    code, out, _ = run_cli(capsys, tmp_path / "any.keras", "--input-shape", "64,48,3",
                           "--format", "csv")
    table = pd.read_csv(io.StringIO(out), index_col="node")
    assert code == 0 and table.loc["conv", "macs"] == 64 * 48 * 27 * 8

    code, _, err = run_cli(capsys, tmp_path / "any.keras")
    line = one_line_error(code, err)
    assert "Pass --input-shape H,W,C" in line and "'picture'" in line
    assert PYTHON_KEYWORD.search(line) is None, line


def test_application_by_name_top_and_output_file(capsys, tmp_path):
    target = tmp_path / "top.csv"
    code, out, err = run_cli(capsys, "mobilenetv2", "--top", "3", "--format", "csv",
                             "--output", target)
    assert code == 0 and out == "" and err == ""
    table = pd.read_csv(target, index_col="node")
    assert list(table.index) == ["Conv_1", "block_1_expand", "block_16_project"]
    assert list(table["flops"]) == [40_140_800, 38_535_168, 30_105_600]


def test_application_with_input_shape_and_json_top(capsys):
    code, out, _ = run_cli(capsys, "MobileNetV2", "--input-shape", "96,96,3", "--top", "1",
                           "--format", "json")
    document = json.loads(out)
    assert code == 0 and len(document["layers"]) == 1
    # Conv_1 at 96 px: 3*3 output pixels * 320 * 1280 = 3,686,400 MACs
    assert document["layers"][0]["node"] == "Conv_1"
    assert document["layers"][0]["macs"] == 3 * 3 * 320 * 1280


@pytest.mark.parametrize(
    "target, expected",
    [
        ("missing.keras", "no such file"),
        ("notes.txt", "not a Keras model file"),
        ("notes.keras", "not a Keras model file"),
        ("empty.h5", "not a Keras model file"),
        ("truncated.keras", "truncated or corrupted"),
        ("truncated.h5", "truncated or corrupted"),
        ("small.weights.h5", "no model configuration"),
        (".", "is a directory"),
    ],
)
def test_bad_files_exit_2_with_one_line(capsys, saved, target, expected):
    code, out, err = run_cli(capsys, saved / target)
    assert expected in one_line_error(code, err) and out == ""


def test_unknown_application_suggests_names(capsys):
    code, _, err = run_cli(capsys, "MobileNetV9")
    line = one_line_error(code, err)
    assert "'MobileNetV9' is neither a model file nor a keras.applications model" in line
    assert "MobileNetV2" in line


def test_unregistered_custom_class_names_the_way_out(capsys, saved):
    line = one_line_error(*run_cli(capsys, saved / "custom.keras")[::2])
    assert "custom class 'Doubler'" in line and "--import" in line


def test_lambda_h5_is_refused_before_keras_reads_it(capsys, saved, tmp_path, monkeypatch):
    marker = tmp_path / "lambda-ran"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    line = one_line_error(*run_cli(capsys, saved / "lambda.h5")[::2])
    assert "Lambda layers ['touch']" in line and not marker.exists()


def test_lambda_file_is_refused_without_unsafe(capsys, saved, tmp_path, monkeypatch):
    marker = tmp_path / "lambda-ran"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    code, _, err = run_cli(capsys, saved / "lambda.keras")
    line = one_line_error(code, err)
    assert "Lambda layers ['touch']" in line and "--unsafe" in line
    assert not marker.exists()

    # The same file with --unsafe does run the code: the marker shows the check above can fail.
    code, out, err = run_cli(capsys, saved / "lambda.keras", "--format", "csv")
    assert code == 2 and not marker.exists()
    code, out, err = run_cli(capsys, saved / "lambda.keras", "--unsafe", "--format", "csv")
    assert code == 0 and marker.exists()
    table = pd.read_csv(io.StringIO(out), index_col="node")
    assert table.loc["touch", "status"] == "unsupported"
    assert "no rule for Lambda" in err or "Lambda" in err  # the unsupported-layer warning


def test_strict_refuses_unsupported_layers(capsys, saved, monkeypatch, tmp_path):
    monkeypatch.setenv(MARKER_ENV, str(tmp_path / "marker"))
    code, _, err = run_cli(capsys, saved / "lambda.keras", "--unsafe", "--strict")
    assert "Lambda" in one_line_error(code, err)


@pytest.mark.parametrize("argv, expected", [
    (["--input-shape", "a,b"], "argument --input-shape: 'a,b' is not a shape like 224,224,3"),
    (["--top", "0"], "--top must be at least 1; received 0"),
    (["--format", "xml"], "argument --format: invalid choice: 'xml'"),
    (["--batch-size", "0"], "--batch-size must be a positive integer"),
    (["--batch-size", "two"], "argument --batch-size: invalid int value: 'two'"),
    (["--depth", "1", "--by-type"], "argument --by-type: not allowed with argument --depth"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, argv, expected):
    # argparse's own errors too: one line (no usage block), as every other failure
    with pytest.raises(SystemExit) as raised:
        raise SystemExit(main(["MobileNetV2", *argv]))
    assert expected in one_line_error(raised.value.code, capsys.readouterr().err)


def test_missing_model_argument_is_one_line(capsys):
    with pytest.raises(SystemExit) as raised:
        main([])
    line = one_line_error(raised.value.code, capsys.readouterr().err)
    assert line == ("modelstats: error: the following arguments are required: MODEL "
                    "(see modelstats --help)")


@pytest.mark.parametrize("value", ["0", "-2"])
def test_batch_size_is_checked_like_the_library(capsys, saved, value):
    # One check for both: the message of schema.check_batch_size, naming the option.
    line = one_line_error(*run_cli(capsys, saved / "small.keras", "--batch-size", value)[::2])
    assert line == (f"modelstats: error: --batch-size must be a positive integer (the number of "
                    f"samples the costs are multiplied by); received {value}. Pass "
                    "--batch-size=1 for per-sample counts.")


def test_by_any_rankable_column(capsys, saved):
    # activations per sample: image 32*32*3 = 3,072, conv 16*16*8 = 2,048, gap 8, dense 4
    code, out, _ = run_cli(capsys, saved / "small.keras", "--top", "2", "--by", "activations",
                           "--batch-size", "2", "--format", "csv")
    table = pd.read_csv(io.StringIO(out), index_col="node")
    assert code == 0 and list(table.index) == ["image", "conv"]
    assert list(table["activations"]) == [2 * 3_072, 2 * 2_048]
    code, out, _ = run_cli(capsys, saved / "small.keras")
    header = next(line for line in out.splitlines() if line.startswith("node "))
    assert header.split() == ["node", "type", "output_shape", "params", "macs",
                                           "flops", "rf_size", "rf_stride"]


def test_console_entry_point_keeps_tensorflow_notices_off_stderr(saved):
    """In a real process TensorFlow's native start-up notices must not reach stderr. One
    process (TensorFlow starts in about 8 s of CPU here): the one-line errors themselves are
    checked in-process above."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
    done = subprocess.run([sys.executable, "-m", "modelstats", str(saved / "small.keras"),
                           "--format", "json"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert json.loads(done.stdout)["totals"]["macs"] == 55_296 + 8 * 4


def test_multi_input_model_shapes_and_field_input(capsys, keras, tmp_path):
    a = keras.Input((None, None, 3), name="a")
    b = keras.Input((None, None, 3), name="b")
    ya = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="ca")(a)
    yb = keras.layers.Conv2D(4, 3, padding="same", name="cb")(b)
    keras.Model([a, b], keras.layers.Add(name="add")([ya, yb])).save(tmp_path / "two.keras")

    code, out, err = run_cli(capsys, tmp_path / "two.keras", "--input-shape", "32,32,3",
                             "--input-shape", "16,16,3", "--format", "json")
    document = json.loads(out)
    assert code == 0 and document["totals"]["rf_input"] == "a"
    # ca: 16*16 * 3*3*3 * 4; cb: 16*16 * 3*3*3 * 4
    assert document["totals"]["macs"] == 2 * 16 * 16 * 27 * 4
    assert err.startswith("modelstats: warning: The model has several inputs")
    assert err.strip().endswith("measured from 'a'. Pass --rf-input NAME to choose another.")

    code, out, err = run_cli(capsys, tmp_path / "two.keras", "--input-shape", "32,32,3",
                             "--input-shape", "16,16,3", "--rf-input", "b", "--format", "json")
    assert code == 0 and err == "" and json.loads(out)["totals"]["rf_input"] == "b"

    code, _, err = run_cli(capsys, tmp_path / "two.keras", "--input-shape", "32,32,3")
    assert "The model has 2 inputs (['a', 'b']); repeat --input-shape once per input, in the " \
        "model's input order." in one_line_error(code, err)


@pytest.fixture(scope="module")
def nested_file(tmp_path_factory, keras):
    """image 8x8x3 -> stem conv 3x3 same (4) -> block (conv 3x3 same 4->4 without bias, ReLU;
    a nested Functional) called twice -> global average pool -> dense 2.

    stem 8*8 * 3*3*3 * 4 = 6,912 MACs, 112 params; each block call 8*8 * 3*3*4 * 4 = 9,216 MACs,
    2*9,216 + 8*8*4 (ReLU) = 18,688 FLOPs, 144 params at the first call; dense 4*2 = 8 MACs.
    """
    path = tmp_path_factory.mktemp("nested") / "nested.keras"
    nested_block_model(keras, keras.layers.Dense(2, name="head")).save(path)
    return path


def test_depth_prints_one_row_per_block(capsys, nested_file):
    code, out, err = run_cli(capsys, nested_file, "--depth", "1", "--format", "csv")
    table = pd.read_csv(io.StringIO(out), index_col="block")
    assert code == 0 and err == ""
    assert list(table.index) == ["image", "stem", "block", "block#1", "gap", "head"]
    assert table["macs"].to_dict() == {"image": 0, "stem": 6_912, "block": 9_216,
                                       "block#1": 9_216, "gap": 0, "head": 8}
    assert table["params"].to_dict() == {"image": 0, "stem": 112, "block": 144, "block#1": 0,
                                         "gap": 0, "head": 10}
    assert table.loc["block", "nodes"] == 3 and table.loc["block#1", "flops"] == 18_688
    assert not table["partial"].any()

    code, out, _ = run_cli(capsys, nested_file, "--depth", "2", "--top", "2", "--format", "csv")
    table = pd.read_csv(io.StringIO(out), index_col="block")
    assert list(table.index) == ["block/conv", "block#1/conv"]  # 18,432 FLOPs each: graph order

    code, out, _ = run_cli(capsys, nested_file, "--depth", "1")
    lines = out.splitlines()
    assert lines[0] == "nested: 10 nodes"
    header = next(line for line in lines if line.startswith("block "))
    assert header.split() == ["block", "nodes", "params", "macs", "flops", "unsupported"]
    row = next(line for line in lines if line.startswith("block#1 "))
    assert row.split() == ["block#1", "3", "0", "9,216", "18,688", "0"]


def test_by_type_in_json_and_markdown(capsys, nested_file):
    code, out, _ = run_cli(capsys, nested_file, "--by-type", "--format", "json")
    document = json.loads(out)
    assert code == 0 and "layers" not in document
    assert document["totals"]["macs"] == 6_912 + 2 * 9_216 + 8
    rows = {row["type"]: row for row in document["types"]}
    assert list(rows) == ["Conv2D", "ReLU", "GlobalAveragePooling2D", "Dense", "InputLayer"]
    assert (rows["Conv2D"]["nodes"], rows["Conv2D"]["macs"]) == (3, 6_912 + 2 * 9_216)

    code, out, _ = run_cli(capsys, nested_file, "--depth", "1", "--format", "json")
    assert [row["block"] for row in json.loads(out)["blocks"]][:3] == ["image", "stem", "block"]

    code, out, _ = run_cli(capsys, nested_file, "--by-type", "--top", "1", "--by", "params",
                           "--format", "markdown")
    assert "## Top 1 layer types by params" in out
    assert out.splitlines()[-1] == "| Conv2D | 3 | 256 | 25,344 | 50,944 | 0 |"


def test_depth_arguments_are_checked(capsys, nested_file):
    line = one_line_error(*run_cli(capsys, nested_file, "--depth", "0")[::2])
    assert line == "modelstats: error: --depth must be at least 1; received 0"
    with pytest.raises(SystemExit) as raised:
        main([str(nested_file), "--depth", "1", "--by-type"])
    assert raised.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize("argv, expected", [
    (["two.keras", "--input-shape", "8,8,3", "--input-shape", "8,8,3", "--rf-input", "nope"],
     "--rf-input nope is not a model input"),
    (["two.keras", "--input-shape", "8,8,3", "--input-shape", "8,8,3", "--input-shape",
      "8,8,3"], "--input-shape is given 3 times but the model has 2 inputs"),
    (["lambda.keras"], "Pass --unsafe only if you trust the file"),
    (["lambda.keras", "--unsafe", "--strict"], "or drop --strict to get partial totals"),
    (["custom.keras"], "pass --import MODULE, a module that defines it"),
    (["MobileNetV2", "--input-shape", "16,16,3"],
     "MobileNetV2 at --input-shape 16,16,3: Input size must be at least 32x32; Received: "
     "--input-shape 16,16,3"),
])
def test_messages_name_flags_not_python_keywords(capsys, saved, keras, monkeypatch, tmp_path,
                                                 argv, expected):
    if argv[0] == "two.keras":
        a = keras.Input((None, None, 3), name="a")
        b = keras.Input((None, None, 3), name="b")
        merged = keras.layers.Add(name="add")([a, b])
        keras.Model([a, b], merged).save(tmp_path / "two.keras")
        argv = [tmp_path / argv[0], *argv[1:]]
    elif argv[0].endswith(".keras"):
        argv = [saved / argv[0], *argv[1:]]
    monkeypatch.setenv(MARKER_ENV, str(tmp_path / "marker"))
    line = one_line_error(*run_cli(capsys, *argv)[::2])
    assert expected in line
    assert PYTHON_KEYWORD.search(line) is None, line


def test_mobilenet_v3_is_analysed_at_its_default_size(capsys):
    # Keras builds MobileNetV3 for any size, (None, None, 3); 224 is the size of its weights
    code, out, err = run_cli(capsys, "MobileNetV3Small", "--top", "1", "--format", "json")
    assert code == 0
    assert err == ("modelstats: note: MobileNetV3Small takes images of any size; analysed at "
                   "its default 224,224,3 (choose with --input-shape)\n")
    document = json.loads(out)
    (first,) = document["layers"]
    assert first["node"] == "conv" and first["output_shape"] == [[112, 112, 16]]
    assert first["macs"] == 112 * 112 * 3 * 3 * 3 * 16


def test_default_sizes_cover_every_open_sized_application():
    from modelstats.cli import _default_shape

    assert _default_shape("MobileNetV3Large") == (224, 224, 3)
    assert _default_shape("mobilenetv3small") == (224, 224, 3)
    assert _default_shape("MobileNetV2") is None  # fixed at 224 by Keras itself


def test_several_models_give_one_row_each(capsys, saved, nested_file):
    # small: conv 55,296 + dense 32 MACs; nested: 6,912 + 2 * 9,216 + 8
    code, out, err = run_cli(capsys, saved / "small.keras", nested_file, "--format", "csv")
    assert code == 0 and err == ""
    table = pd.read_csv(io.StringIO(out), index_col="model")
    assert list(table.index) == [str(saved / "small.keras"), str(nested_file)]
    assert list(table["macs"]) == [55_296 + 32, 6_912 + 2 * 9_216 + 8]
    assert list(table["params"]) == [224 + 36, 112 + 144 + 10]
    assert list(table["rf_node"]) == ["conv", "block#1/relu"]
    assert list(table["rf_size_x"]) == [3, 7]  # stem 3 + two block convs 2 + 2
    assert not table["partial"].any()

    code, out, _ = run_cli(capsys, "compare", saved / "small.keras", saved / "small.h5",
                           "--by", "params", "--format", "json")
    document = json.loads(out)
    assert code == 0 and [m["macs"] for m in document["models"]] == [55_328, 55_328]
    assert document["convention"].startswith("FLOPs = 2 x MACs")

    code, out, _ = run_cli(capsys, saved / "small.keras", nested_file)
    lines = out.splitlines()
    assert lines[0].split() == ["model", "params", "trainable_params", "macs", "flops",
                                "activation_bytes", "rf_node", "rf_size", "rf_stride",
                                "partial"]
    row = lines[1].split()
    assert row[3] == "55,328" and row[-3:] == ["3x3", "2x2", "False"]


def test_comparison_refuses_single_model_options(capsys, saved, nested_file):
    for option in (["--top", "2"], ["--depth", "1"], ["--by-type"], ["--rf-input", "x"]):
        line = one_line_error(*run_cli(capsys, saved / "small.keras", nested_file,
                                       *option)[::2])
        assert line == (f"modelstats: error: {option[0]} applies to one model; with several, "
                        "modelstats prints one row per model (--by sorts them).")
    line = one_line_error(*run_cli(capsys, saved / "small.keras", nested_file, "--by",
                                   "bytes_read")[::2])
    assert line.startswith("modelstats: error: --by bytes_read is not a column of the comparison")


class _Tables(html.parser.HTMLParser):
    """Cell texts of every table row, and the image sources."""

    def __init__(self, text):
        super().__init__()
        self.rows, self.images, self._row, self._cell = [], [], None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr":
            self.rows.append(self._row)


def test_html_format_writes_one_page(capsys, saved, nested_file, tmp_path):
    target = tmp_path / "small.html"
    code, out, err = run_cli(capsys, saved / "small.keras", "--format", "html", "--output",
                             target)
    assert code == 0 and out == "" and err == ""
    page = _Tables(target.read_text(encoding="utf-8"))
    totals = {r[0]: r[1] for r in page.rows if len(r) == 2}
    assert totals["macs"] == "55,328" and totals["params"] == "260"
    assert all(src.startswith("data:image/png;base64,") for src in page.images)

    code, out, _ = run_cli(capsys, saved / "small.keras", nested_file, "--format", "html")
    rows = _Tables(out).rows
    assert code == 0 and rows[0][:3] == ["model", "nodes", "params"]
    assert [r[0] for r in rows[1:]] == [str(saved / "small.keras"), str(nested_file)]
    assert [r[2] for r in rows[1:]] == ["260", "266"]

    line = one_line_error(*run_cli(capsys, saved / "small.keras", "--format", "html",
                                   "--by-type")[::2])
    assert "--by-type has no HTML view" in line


def test_training_flag_adds_the_training_step(capsys):
    from modelstats import cli

    assert cli.main(["MobileNetV2", "--training", "--top", "1", "--by", "train_macs"]) == 0
    out = capsys.readouterr().out
    # golden: 300,774,272 forward MACs; every layer trainable but the input's first conv
    # (Conv1, 10,838,016 MACs) needs no input gradient; a training step is
    # 3 x 300,774,272 - 10,838,016 = 891,484,800 MACs (equal to the JAX autodiff trace)
    assert "train MACs        891,484,800" in out
    assert "42,058,464 for an Adam update" in out  # 3,504,872 trainable parameters x 12
