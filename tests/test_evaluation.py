"""modelstats.evaluation: a hand-worked golden example, and agreement with scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelstats import ModelStatsError
from modelstats.evaluation import evaluate

CLASSES = ["a", "b", "c"]
#           a  a  a  a  b  b  b  c  c  c
Y_TRUE = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
Y_PRED = [0, 0, 1, 2, 1, 1, 0, 2, 2, 2]


def golden_probabilities():
    """Right answers put 0.8 on the prediction; wrong ones 0.6 on it and 0.3 on the truth."""
    rows = []
    for t, p in zip(Y_TRUE, Y_PRED):
        row = np.full(3, 0.1)
        if t == p:
            row[p] = 0.8
        else:
            row[p], row[t] = 0.6, 0.3
        rows.append(row)
    return np.array(rows)


@pytest.fixture(scope="module")
def golden():
    return evaluate(Y_TRUE, golden_probabilities(), CLASSES)


def test_golden_accuracy_and_loss(golden):
    assert golden.accuracy == pytest.approx(7 / 10)  # 2 + 2 + 3 right out of 10
    # cross-entropy = -(7 ln 0.8 + 3 ln 0.3) / 10
    assert golden.loss == pytest.approx(-(7 * math.log(0.8) + 3 * math.log(0.3)) / 10)


def test_golden_confusion(golden):
    # rows true, columns predicted
    assert golden.confusion.to_numpy().tolist() == [[2, 1, 1], [1, 2, 0], [0, 0, 3]]
    assert list(golden.confusion.index) == CLASSES and golden.confusion.index.name == "true"
    assert golden.confusion_normalized.loc["a"].tolist() == pytest.approx([2 / 4, 1 / 4, 1 / 4])
    assert golden.confusion_normalized.loc["b"].tolist() == pytest.approx([1 / 3, 2 / 3, 0])


def test_golden_per_class_and_averages(golden):
    table = golden.per_class
    expected = {
        # precision = TP / predicted as class, recall = TP / support, f1 = 2pr / (p + r)
        "a": (2 / 3, 2 / 4, 4 / 7, 4),
        "b": (2 / 3, 2 / 3, 2 / 3, 3),
        "c": (3 / 4, 3 / 3, 6 / 7, 3),
        # macro: plain means of the three rows
        "macro avg": (25 / 36, 13 / 18, 44 / 63, 10),
        # weighted by support 4, 3, 3: precision (4*2/3 + 3*2/3 + 3*3/4) / 10 = 83/120
        "weighted avg": (83 / 120, 7 / 10, 24 / 35, 10),
    }
    assert list(table.index) == list(expected)
    for name, values in expected.items():
        assert table.loc[name, ["precision", "recall", "f1", "support"]].tolist() == \
            pytest.approx(values), name


def test_golden_top_confusions_order(golden):
    # All three mistakes happen once; b->a is a third of b, a->b and a->c a quarter of a.
    top = golden.top_confusions(5)
    assert top[["true", "predicted", "count"]].values.tolist() == [
        ["b", "a", 1], ["a", "b", 1], ["a", "c", 1],
    ]
    assert top["rate"].tolist() == pytest.approx([1 / 3, 1 / 4, 1 / 4])
    assert len(golden.top_confusions(2)) == 2


def test_counts_order_before_rates():
    # c->a happens twice (rate 2/6), b->a once (rate 1/1): the count decides.
    result = evaluate([0, 1, 2, 2, 2, 2, 2, 2], [0, 0, 0, 0, 2, 2, 2, 2], ["a", "b", "c"])
    assert result.top_confusions(2)[["true", "predicted", "count"]].values.tolist() == [
        ["c", "a", 2], ["b", "a", 1],
    ]


def test_one_hot_and_labels_only():
    one_hot = np.eye(3, dtype=int)[Y_TRUE]
    from_one_hot = evaluate(one_hot, golden_probabilities(), CLASSES)
    from_labels = evaluate(Y_TRUE, Y_PRED, CLASSES)
    assert from_one_hot.accuracy == from_labels.accuracy == pytest.approx(0.7)
    assert from_labels.loss is None
    assert np.array_equal(from_one_hot.confusion.to_numpy(), from_labels.confusion.to_numpy())


def test_markdown_dict_and_plot(golden, tmp_path):
    text = golden.to_markdown()
    assert "- accuracy: 70.00%" in text and "| b | a | 1 | 33.3% |" in text
    assert "| macro avg | 0.69 | 0.72 | 0.70 | 10 |" in text
    data = golden.to_dict()
    assert data["confusion"] == [[2, 1, 1], [1, 2, 0], [0, 0, 3]]
    assert data["per_class"]["c"]["support"] == 3
    ax = golden.plot_confusion()
    ax.figure.savefig(tmp_path / "confusion.png")
    assert (tmp_path / "confusion.png").stat().st_size > 0


@pytest.mark.parametrize("y_true, y_prob, names, message", [
    (Y_TRUE, golden_probabilities() * 5, CLASSES, "look like logits"),
    (Y_TRUE[:-1], Y_PRED, CLASSES, "10 examples|9 examples"),
    ([0, 3], [0, 1], CLASSES, "outside 0..2"),
    (Y_TRUE, golden_probabilities(), ["a", "b"], "3 columns but there are 2 classes"),
    ([], [], CLASSES, "No examples"),
    (np.ones((10, 3)), Y_PRED, CLASSES, "not one-hot"),
    ([0.5, 1.0], [0, 1], CLASSES, "non-integer"),
])
def test_bad_input_is_a_clear_error(y_true, y_prob, names, message):
    with pytest.raises(ModelStatsError, match=message):
        evaluate(y_true, y_prob, names)


@st.composite
def predictions(draw):
    k = draw(st.integers(2, 6))
    n = draw(st.integers(1, 60))
    y_true = draw(hnp.arrays(np.int64, n, elements=st.integers(0, k - 1)))
    logits = draw(hnp.arrays(np.float64, (n, k), elements=st.floats(-5, 5)))
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return k, y_true, prob


@settings(max_examples=50)
@given(predictions())
def test_equals_scikit_learn_on_random_labels(case):
    from sklearn import metrics

    k, y_true, prob = case
    names = [f"class{i}" for i in range(k)]
    result = evaluate(y_true, prob, names)
    y_pred = prob.argmax(axis=1)
    labels = list(range(k))
    assert result.accuracy == metrics.accuracy_score(y_true, y_pred)
    assert result.loss == pytest.approx(metrics.log_loss(y_true, prob, labels=labels))
    report = metrics.classification_report(y_true, y_pred, labels=labels, target_names=names,
                                           output_dict=True, zero_division=0)
    for name in [*names, "macro avg", "weighted avg"]:
        row = result.per_class.loc[name]
        assert row["precision"] == pytest.approx(report[name]["precision"])
        assert row["recall"] == pytest.approx(report[name]["recall"])
        assert row["f1"] == pytest.approx(report[name]["f1-score"])
        assert row["support"] == report[name]["support"]
    counts = metrics.confusion_matrix(y_true, y_pred, labels=labels)
    assert np.array_equal(result.confusion.to_numpy(), counts)
    # top pairs: counts never increase down the list, and every listed pair is a real mistake
    top = result.top_confusions(k * k)
    assert list(top["count"]) == sorted(top["count"], reverse=True)
    off_diagonal = counts.sum() - np.trace(counts)
    assert top["count"].sum() == off_diagonal
