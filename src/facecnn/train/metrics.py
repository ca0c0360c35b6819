"""Classification metrics derived from a confusion matrix.

Everything is computed from counts so a matrix can be accumulated batch by batch and summed
across DDP ranks before any ratio is taken (averaging per-rank ratios would be wrong).
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true, predicted) pairs: rows are true classes, columns predictions (int64)."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    for labels in (y_true, y_pred):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"labels must lie in [0, {num_classes}), "
                             f"got {labels.min()}..{labels.max()}")
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64, copy=False)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise with 0/0 = 0, the convention sklearn uses for empty classes."""
    num = num.astype(np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _per_class(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 and support for every class."""
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    f1 = _ratio(2 * tp, support + predicted)  # = 2PR/(P+R), without the 0/0 cases
    return precision, recall, f1, support


def accuracy_f1(cm: np.ndarray) -> tuple[float, float]:
    """Accuracy and macro-F1 over the classes present in y_true: the two numbers logged per
    epoch."""
    total = cm.sum()
    accuracy = float(np.trace(cm) / total) if total else 0.0
    _, _, f1, support = _per_class(cm)
    present = support > 0
    macro_f1 = float(f1[present].mean()) if present.any() else 0.0
    return accuracy, macro_f1


def summarize(cm: np.ndarray, class_names: list[str]) -> dict:
    """JSON-ready report: accuracy, macro-F1 and per-class precision/recall/F1/support.

    Classes absent from y_true are listed but left out of macro-F1, so a small validation
    split is not penalised for classes it happens not to contain.
    """
    if cm.shape != (len(class_names), len(class_names)):
        raise ValueError(f"confusion matrix {cm.shape} does not match {len(class_names)} "
                         "class names")
    accuracy, macro_f1 = accuracy_f1(cm)
    precision, recall, f1, support = _per_class(cm)
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    return {"accuracy": accuracy, "macro_f1": macro_f1, "per_class": per_class}
