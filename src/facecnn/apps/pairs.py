"""The LFW face-verification protocol: pairs lists, 10-fold accuracy, TAR@FAR and the ROC.

It only sees distances between two faces (smaller = more similar), so any face model, and
any way of failing to find a face, can be scored the same way as published LFW results.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import auc, roc_curve

from facecnn.errors import FacecnnError

TARGET_FAR = 1e-3
_MIN_PLOT_FAR = 1e-4


@dataclass(frozen=True)
class Pair:
    """Two face images and whether they show the same person; `fold` counts from 0."""

    left: Path
    right: Path
    same: bool
    fold: int


def _image(root: Path, name: str, number: str) -> Path:
    """LFW names images <root>/<name>/<name>_<4-digit number>.jpg."""
    return root / name / f"{name}_{int(number):04d}.jpg"


def _is_count(field: str) -> bool:
    return field.isdigit() and int(field) > 0


def parse_pairs(path: Path, root: Path) -> list[Pair]:
    """Read an LFW pairs file: `FOLDS N` (pairs.txt) or `N` (pairsDevTrain/Test, one fold).

    Each fold holds N matched lines `name i j` then N mismatched lines `name1 i name2 j`.
    Images are not checked here: callers report missing ones alongside failed detections.
    """
    path, root = Path(path), Path(root)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise FacecnnError(f"cannot read pairs file {path}: {exc.strerror or exc}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    header = lines[0].split() if lines else []
    if not 1 <= len(header) <= 2 or not all(_is_count(f) for f in header):
        got = repr(lines[0]) if lines else "an empty file"
        raise FacecnnError(f"{path}, line 1: expected 'FOLDS PAIRS_PER_FOLD' or 'PAIRS', "
                           f"got {got}")
    folds, per_fold = (1, int(header[0])) if len(header) == 1 else map(int, header)
    expected = folds * 2 * per_fold
    if len(lines) - 1 != expected:
        raise FacecnnError(f"{path}: header line 1 promises {expected} pairs "
                           f"({folds} folds x {per_fold} matched + {per_fold} mismatched), "
                           f"but {len(lines) - 1} lines follow")
    pairs = []
    for index, line in enumerate(lines[1:]):
        fold, position = divmod(index, 2 * per_fold)
        same = position < per_fold
        fields = line.split()
        if same and len(fields) == 3 and _is_count(fields[1]) and _is_count(fields[2]):
            name, i, j = fields
            pairs.append(Pair(_image(root, name, i), _image(root, name, j), True, fold))
        elif not same and len(fields) == 4 and _is_count(fields[1]) and _is_count(fields[3]):
            name1, i, name2, j = fields
            pairs.append(Pair(_image(root, name1, i), _image(root, name2, j), False, fold))
        else:
            shape = "name i j (a matched pair)" if same else "name1 i name2 j (a mismatched pair)"
            raise FacecnnError(f"{path}, line {index + 2}: expected '{shape}', "
                               f"got {line.strip()!r}")
    return pairs


def write_pairs(path: Path, matched: list[tuple[str, int, int]],
                mismatched: list[tuple[str, int, str, int]], folds: int) -> None:
    """Write pairs in LFW's format, splitting each list in order into `folds` equal folds."""
    per_fold = len(matched) // folds
    if folds < 1 or len(matched) != len(mismatched) or per_fold * folds != len(matched):
        raise FacecnnError(f"{len(matched)} matched and {len(mismatched)} mismatched pairs "
                           f"cannot be split into {folds} equal folds")
    lines = [f"{folds}\t{per_fold}"]
    for fold in range(folds):
        chunk = slice(fold * per_fold, (fold + 1) * per_fold)
        lines += ["\t".join(map(str, pair)) for pair in matched[chunk] + mismatched[chunk]]
    Path(path).write_text("\n".join(lines) + "\n")


def _best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold (same person iff distance <= it) with the most correct answers.

    Candidates are the midpoints between sorted unique distances plus both ends. Sorting once
    and counting with cumulative sums scores all of them together, without a loop.
    """
    if distances.size == 0:
        return 0.0
    order = np.argsort(distances, kind="stable")
    d, s = distances[order], same[order]
    # Calling the first k sorted pairs "same" gets right the matched ones among them plus the
    # mismatched ones after them; k ranges over 0..n.
    matched_before = np.concatenate(([0], np.cumsum(s)))
    k = np.arange(d.size + 1)
    correct = matched_before + (d.size - s.sum()) - (k - matched_before)
    # Only cuts between different distances are thresholds; both ends always are.
    cut = np.concatenate(([True], d[1:] > d[:-1], [True]))
    best = int(k[cut][np.argmax(correct[cut])])
    if best == 0:
        return float(np.nextafter(d[0], -np.inf))  # just below everything: all "different"
    if best == d.size:
        return float(d[-1])
    return float((d[best - 1] + d[best]) / 2)


def verification_report(distances: np.ndarray, same: np.ndarray, folds: np.ndarray,
                        failed: np.ndarray | None = None) -> dict:
    """LFW's scores for pair distances: accuracy with a threshold cross-validated over folds.

    Pairs marked `failed` (no face found) are wrong answers in every fold, whatever the
    threshold, so a detector that skips hard pairs cannot look better than it is. With one
    fold there is nothing to cross-validate on and the threshold is fitted on the fold itself
    ("cross_validated" is then False).
    """
    distances = np.asarray(distances, dtype=np.float64).ravel()
    same = np.asarray(same, dtype=bool).ravel()
    folds = np.asarray(folds).ravel()
    failed = np.zeros(distances.size, bool) if failed is None else np.asarray(failed, bool).ravel()
    if not distances.size == same.size == folds.size == failed.size:
        raise ValueError("distances, same, folds and failed must have one entry per pair")
    usable = ~failed
    if len(np.unique(same[usable])) < 2:
        raise FacecnnError("verification needs matched and mismatched pairs with faces found; "
                           f"{int(failed.sum())} of {distances.size} pairs have no face")

    fold_ids = np.unique(folds)
    cross_validated = fold_ids.size > 1
    fold_accuracies = []
    for fold in fold_ids:
        test = folds == fold
        fit = usable & (~test if cross_validated else test)
        threshold = _best_threshold(distances[fit], same[fit])
        answered_right = usable[test] & ((distances[test] <= threshold) == same[test])
        fold_accuracies.append(float(answered_right.mean()))

    fpr, tpr, _ = roc_curve(same[usable], -distances[usable])
    tar = float(tpr[fpr <= TARGET_FAR].max(initial=0.0))
    return {
        "mean_accuracy": float(np.mean(fold_accuracies)),
        "std_accuracy": float(np.std(fold_accuracies)),
        "tar_at_far_1e-3": tar,
        "threshold": _best_threshold(distances[usable], same[usable]),
        "pairs": int(distances.size),
        "pairs_without_face": int(failed.sum()),
        "fold_accuracies": fold_accuracies,
        "cross_validated": bool(cross_validated),
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
        "auc": float(auc(fpr, tpr)),
    }


def plot_roc(report: dict, path: Path, title: str = "ROC") -> Path:
    """ROC curve on a log false-accept axis (where verification systems differ), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fpr = np.clip(report["roc"]["fpr"], _MIN_PLOT_FAR, 1.0)
    tar = report["tar_at_far_1e-3"]
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot(fpr, report["roc"]["tpr"], label=f"AUC {report['auc']:.4f}")
    ax.axvline(TARGET_FAR, color="grey", linestyle=":", linewidth=1)
    ax.plot([TARGET_FAR], [tar], "o", color="C3", label=f"TAR {tar:.4f} @ FAR {TARGET_FAR:g}")
    ax.set_xscale("log")
    ax.set_xlim(_MIN_PLOT_FAR, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(f"{title}: accuracy {report['mean_accuracy']:.2%} "
                 f"± {report['std_accuracy']:.2%}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
