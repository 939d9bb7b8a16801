"""Error analysis of a classifier: accuracy, loss, per-class scores, confusion and its worst pairs.

Every metric comes from scikit-learn (the ``eval`` extra: ``pip install 'modelstats[eval]'``);
this module validates the inputs, labels the results by class and puts them in tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from modelstats._render import markdown_table, pyplot
from modelstats.errors import ModelStatsError

__all__ = ["evaluate", "Evaluation"]

_SUM_TOLERANCE = 1e-3  # float32 softmax rows sum to 1 within about 1e-6


def _sklearn_metrics():
    try:
        from sklearn import metrics
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "modelstats.evaluation needs scikit-learn: pip install 'modelstats[eval]'"
        ) from exc
    return metrics


def _labels(y: Any, n_classes: Optional[int], what: str) -> np.ndarray:
    """Integer labels from integer labels or one-hot rows."""
    array = np.asarray(y)
    if array.ndim == 2:
        if n_classes is not None and array.shape[1] != n_classes:
            raise ModelStatsError(
                f"{what} has {array.shape[1]} columns but there are {n_classes} classes."
            )
        if not np.all((array == 0) | (array == 1)) or not np.all(array.sum(axis=1) == 1):
            raise ModelStatsError(f"{what} is 2-D but not one-hot (one 1 per row, zeros elsewhere).")
        return array.argmax(axis=1)
    if array.ndim != 1:
        raise ModelStatsError(f"{what} must be 1-D labels or 2-D one-hot rows; got shape {array.shape}.")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.mod(array, 1) == 0):
            raise ModelStatsError(f"{what} holds non-integer values; expected class indices.")
        array = array.astype(int)
    return array


def _probabilities(y_prob: np.ndarray) -> np.ndarray:
    if np.any(y_prob < 0) or np.any(y_prob > 1) or np.any(
        np.abs(y_prob.sum(axis=1) - 1) > _SUM_TOLERANCE
    ):
        raise ModelStatsError(
            "y_prob rows must be probabilities that sum to 1; these look like logits or scores. "
            "Apply a softmax first, or pass predicted labels (1-D) instead."
        )
    # float32 softmax rows sum to 1 only within ~1e-7; renormalised in float64 so that
    # scikit-learn's stricter check does not warn about them.
    return y_prob / y_prob.sum(axis=1, keepdims=True)


@dataclass
class Evaluation:
    """The error analysis of one set of predictions. Build it with :func:`evaluate`."""

    class_names: tuple[str, ...]
    accuracy: float
    loss: Optional[float]
    per_class: pd.DataFrame
    confusion: pd.DataFrame
    confusion_normalized: pd.DataFrame
    y_true: np.ndarray = field(repr=False)
    y_pred: np.ndarray = field(repr=False)

    def top_confusions(self, k: int = 5) -> pd.DataFrame:
        """The ``k`` most frequent mistakes, as (true, predicted) pairs.

        Columns ``true``, ``predicted``, ``count`` and ``rate`` (the share of the true class's
        examples that went to ``predicted``). Ordered by count, then rate, then class order;
        pairs that never happen are left out.
        """
        counts = self.confusion.to_numpy()
        rates = self.confusion_normalized.to_numpy()
        rows = [
            (self.class_names[i], self.class_names[j], int(counts[i, j]), float(rates[i, j]), i, j)
            for i in range(len(self.class_names))
            for j in range(len(self.class_names))
            if i != j and counts[i, j] > 0
        ]
        rows.sort(key=lambda r: (-r[2], -r[3], r[4], r[5]))
        table = pd.DataFrame([r[:4] for r in rows[:k]],
                             columns=["true", "predicted", "count", "rate"])
        return table

    def to_dict(self) -> dict:
        """Plain data for JSON: accuracy, loss, per-class rows, confusion counts, top pairs."""
        return {
            "n": int(len(self.y_true)),
            "accuracy": self.accuracy,
            "loss": self.loss,
            "classes": list(self.class_names),
            "per_class": {
                name: {k: (int(v) if k == "support" else float(v)) for k, v in row.items()}
                for name, row in self.per_class.to_dict(orient="index").items()
            },
            "confusion": self.confusion.to_numpy().tolist(),
            "top_confusions": self.top_confusions(10).to_dict(orient="records"),
        }

    def to_markdown(self, k: int = 5) -> str:
        """Accuracy, loss, the per-class table, the confusion matrix and the top ``k`` pairs."""
        loss = "n/a (labels only)" if self.loss is None else f"{self.loss:.4f}"
        per_class = self.per_class.copy()
        per_class["support"] = per_class["support"].astype(int)
        lines = [
            f"- examples: {len(self.y_true)}",
            f"- accuracy: {self.accuracy:.2%}",
            f"- loss (cross-entropy): {loss}",
            "",
            "## Per class",
            "",
            markdown_table(per_class, float_format="{:.2f}"),
            "",
            "## Confusion matrix (rows: true, columns: predicted)",
            "",
            markdown_table(self.confusion),
            "",
            f"## Most confused pairs (top {k})",
            "",
            markdown_table(self.top_confusions(k).set_index("true"), float_format="{:.1%}"),
        ]
        return "\n".join(lines) + "\n"

    def plot_confusion(self, ax=None, normalized: bool = True):
        """Heatmap of the confusion matrix (row-normalised by default), counts written in."""
        plt = pyplot()
        values = (self.confusion_normalized if normalized else self.confusion).to_numpy(float)
        n = len(self.class_names)
        ax = ax or plt.subplots(figsize=(1.0 + 0.7 * n, 0.8 + 0.6 * n))[1]
        image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalized else None)
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xticks(range(n), self.class_names, rotation=45, ha="right")
        ax.set_yticks(range(n), self.class_names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        counts = self.confusion.to_numpy()
        threshold = np.nanmax(values) / 2 if np.isfinite(values).any() else 0
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if values[i, j] > threshold else "black")
        ax.set_title(f"Confusion ({'row-normalised' if normalized else 'counts'}), "
                     f"accuracy {self.accuracy:.1%}")
        return ax


def evaluate(y_true: Any, y_prob: Any, class_names: Optional[Sequence[str]] = None) -> Evaluation:
    """Accuracy, loss, per-class precision / recall / F1 / support and the confusion matrix.

    Parameters
    ----------
    y_true : array-like
        True classes: integer labels ``(n,)`` or one-hot rows ``(n, k)``.
    y_prob : array-like
        Predicted probabilities ``(n, k)`` (rows summing to 1), or predicted labels ``(n,)``;
        with labels only there is no loss.
    class_names : sequence of str, optional
        The ``k`` class names in label order; default ``"0" .. "k-1"``.

    Returns
    -------
    Evaluation
        ``accuracy``, ``loss`` (cross-entropy, natural log), ``per_class`` (rows per class
        plus ``macro avg`` and ``weighted avg``; columns ``precision``, ``recall``, ``f1``,
        ``support``), ``confusion`` (counts, rows true / columns predicted),
        ``confusion_normalized`` (rows divided by the true class's support),
        ``top_confusions(k)``, ``to_markdown()``, ``to_dict()`` and ``plot_confusion()``.

    Examples
    --------
    >>> result = evaluate([0, 0, 1, 2], [0, 1, 1, 2], ["cat", "dog", "fox"])
    >>> result.accuracy
    0.75
    >>> result.per_class.loc["dog", ["precision", "recall"]].tolist()
    [0.5, 1.0]
    >>> result.top_confusions(1).to_dict(orient="records")
    [{'true': 'cat', 'predicted': 'dog', 'count': 1, 'rate': 0.5}]
    """
    metrics = _sklearn_metrics()
    prob = np.asarray(y_prob)
    n_classes = len(class_names) if class_names is not None else (
        prob.shape[1] if prob.ndim == 2 else None
    )
    true = _labels(y_true, n_classes, "y_true")
    if prob.ndim == 2:
        if n_classes is not None and prob.shape[1] != n_classes:
            raise ModelStatsError(
                f"y_prob has {prob.shape[1]} columns but there are {n_classes} classes."
            )
        prob = _probabilities(prob.astype(float))
        pred = prob.argmax(axis=1)
    else:
        pred = _labels(prob, n_classes, "y_prob (predicted labels)")
    if true.shape != pred.shape:
        raise ModelStatsError(
            f"y_true has {true.shape[0]} examples but the predictions have {pred.shape[0]}."
        )
    if true.size == 0:
        raise ModelStatsError("No examples to evaluate.")
    if n_classes is None:
        n_classes = int(max(true.max(), pred.max())) + 1
    for name, labels in (("y_true", true), ("predictions", pred)):
        if labels.min() < 0 or labels.max() >= n_classes:
            raise ModelStatsError(
                f"{name} holds labels outside 0..{n_classes - 1} (there are {n_classes} classes)."
            )
    names = tuple(str(c) for c in class_names) if class_names is not None else tuple(
        str(i) for i in range(n_classes)
    )
    labels = list(range(n_classes))

    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        true, pred, labels=labels, zero_division=0
    )
    per_class = pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(float)},
        index=pd.Index(names, name="class"),
    )
    for average in ("macro", "weighted"):
        p, r, f, _ = metrics.precision_recall_fscore_support(
            true, pred, labels=labels, average=average, zero_division=0
        )
        per_class.loc[f"{average} avg"] = [p, r, f, float(len(true))]

    counts = metrics.confusion_matrix(true, pred, labels=labels)
    confusion = pd.DataFrame(counts, index=pd.Index(names, name="true"),
                             columns=pd.Index(names, name="predicted"))
    normalized = pd.DataFrame(
        metrics.confusion_matrix(true, pred, labels=labels, normalize="true"),
        index=confusion.index, columns=confusion.columns,
    )
    loss = None
    if prob.ndim == 2:
        loss = float(metrics.log_loss(true, prob, labels=labels))
    return Evaluation(
        class_names=names,
        accuracy=float(metrics.accuracy_score(true, pred)),
        loss=loss,
        per_class=per_class,
        confusion=confusion,
        confusion_normalized=normalized,
        y_true=true,
        y_pred=pred,
    )
