"""How well clusters match the true people: pairwise precision/recall/F (over pairs of faces)
and BCubed precision/recall/F (per face, so big clusters do not dominate). A face left
unsorted (label -1) counts as a cluster of its own: it joined no wrong person and no right one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Scores:
    pairwise_precision: float
    pairwise_recall: float
    pairwise_f: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f: float
    clusters: int  # groups found (unsorted faces not counted)
    people: int  # true identities
    unsorted: float  # share of faces left unsorted

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _f(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _singletons(labels: np.ndarray) -> np.ndarray:
    """Labels with every -1 replaced by a label of its own."""
    labels = np.asarray(labels, np.int64).copy()
    alone = labels < 0
    labels[alone] = labels.max(initial=0) + 1 + np.arange(alone.sum())
    return labels


def score(truth: np.ndarray | list, labels: np.ndarray | list) -> Scores:
    """Scores of found `labels` (-1: unsorted) against the `truth` identities, face by face."""
    labels = np.asarray(labels, np.int64)
    truth = np.unique(np.asarray(truth), return_inverse=True)[1].ravel()
    found = _singletons(labels)
    cells = Counter(zip(truth.tolist(), found.tolist()))  # faces of person t in cluster f
    t, f = (np.array(side) for side in zip(*cells))
    joint = np.array(list(cells.values()), np.float64)
    truth_sizes, found_sizes = np.bincount(truth), np.bincount(found)
    same_both, same_truth, same_found = (_pairs(n) for n in (joint, truth_sizes, found_sizes))
    precision = same_both / same_found if same_found else 1.0
    recall = same_both / same_truth if same_truth else 1.0
    # BCubed: each face's share of its cluster that is its person, and of its person found there
    b_precision = float((joint ** 2 / found_sizes[f]).sum() / len(truth))
    b_recall = float((joint ** 2 / truth_sizes[t]).sum() / len(truth))
    return Scores(float(precision), float(recall), _f(precision, recall), b_precision, b_recall,
                  _f(b_precision, b_recall), len(set(labels[labels >= 0].tolist())),
                  len(truth_sizes), float(np.mean(labels < 0)))


def _pairs(sizes: np.ndarray) -> float:
    """Pairs of faces within groups of these sizes."""
    sizes = np.asarray(sizes, np.float64)
    return float((sizes * (sizes - 1) / 2).sum())
