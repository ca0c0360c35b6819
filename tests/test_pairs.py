"""The LFW verification protocol: pairs files, cross-validated accuracy, TAR@FAR, ROC plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecnn.apps.pairs import parse_pairs, plot_roc, verification_report, write_pairs
from facecnn.errors import FacecnnError

NAMES = ["Abel_Pacheco", "Akhmed_Zakayev", "Amber_Tamblyn"]


def lfw_like(path: Path, folds: int, per_fold: int) -> Path:
    matched = [(NAMES[k % 3], 1, k + 2) for k in range(folds * per_fold)]
    mismatched = [(NAMES[k % 3], k + 1, NAMES[(k + 1) % 3], 4) for k in range(folds * per_fold)]
    write_pairs(path, matched, mismatched, folds)
    return path


def separable(n_per_fold: int = 600, folds: int = 10) -> tuple[np.ndarray, ...]:
    """Matched pairs at distance < 0.5, mismatched > 0.5, half of each in every fold."""
    rng = np.random.default_rng(0)
    n = n_per_fold * folds
    same = np.tile(np.arange(n_per_fold) < n_per_fold // 2, folds)
    distances = np.where(same, rng.uniform(0.0, 0.4, n), rng.uniform(0.6, 1.0, n))
    return distances, same, np.repeat(np.arange(folds), n_per_fold)


# -- parsing -----------------------------------------------------------------------------------

def test_write_then_parse_ten_folds(tmp_path: Path) -> None:
    root = tmp_path / "lfw"
    pairs = parse_pairs(lfw_like(tmp_path / "pairs.txt", 10, 3), root)
    assert len(pairs) == 60
    assert pairs[0].left == root / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"
    assert pairs[0].right == root / "Abel_Pacheco" / "Abel_Pacheco_0002.jpg"
    assert pairs[3].left == root / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"
    assert pairs[3].right == root / "Akhmed_Zakayev" / "Akhmed_Zakayev_0004.jpg"
    assert [p.fold for p in pairs] == [f for f in range(10) for _ in range(6)]
    assert [p.same for p in pairs] == [True, True, True, False, False, False] * 10
    assert (tmp_path / "pairs.txt").read_text().splitlines()[0].split() == ["10", "3"]


def test_single_set_variant_with_mixed_whitespace(tmp_path: Path) -> None:
    file = tmp_path / "pairsDevTest.txt"
    file.write_text("2\nAbel_Pacheco\t1  2\nAmber_Tamblyn 3\t4\n"
                    "Abel_Pacheco 1 Amber_Tamblyn\t12\n Akhmed_Zakayev\t2 Abel_Pacheco 3 \n\n\n")
    pairs = parse_pairs(file, tmp_path)
    assert [(p.same, p.fold) for p in pairs] == [(True, 0), (True, 0), (False, 0), (False, 0)]
    assert pairs[2].right == tmp_path / "Amber_Tamblyn" / "Amber_Tamblyn_0012.jpg"


@pytest.mark.parametrize("bad, line", [
    ("Abel_Pacheco 1 Amber_Tamblyn 2", 3),  # a mismatched line where a matched one belongs
    ("Abel_Pacheco one 2", 3),
    ("", 3),
])
def test_malformed_line_names_its_number(tmp_path: Path, bad: str, line: int) -> None:
    file = tmp_path / "pairs.txt"
    file.write_text(f"1 2\nAbel_Pacheco 1 2\n{bad}\nA 1 B 2\nC 1 D 2\n")
    with pytest.raises(FacecnnError, match=f"line {line}"):
        parse_pairs(file, tmp_path)


@pytest.mark.parametrize("text", ["ten 300\n", "", "2 1\nAbel_Pacheco 1 2\nA 1 B 2\n"])
def test_bad_header_or_count(tmp_path: Path, text: str) -> None:
    file = tmp_path / "pairs.txt"
    file.write_text(text)
    with pytest.raises(FacecnnError, match="line 1"):
        parse_pairs(file, tmp_path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FacecnnError, match="nope.txt"):
        parse_pairs(tmp_path / "nope.txt", tmp_path)


# -- scores ------------------------------------------------------------------------------------

def test_separable_is_perfect_and_json_serialisable() -> None:
    report = verification_report(*separable())
    assert report["mean_accuracy"] == 1.0 and report["std_accuracy"] == 0.0
    assert report["tar_at_far_1e-3"] == 1.0 and report["auc"] == 1.0
    assert 0.4 <= report["threshold"] <= 0.6
    assert report["pairs"] == 6000 and report["pairs_without_face"] == 0
    assert len(report["fold_accuracies"]) == 10 and report["cross_validated"]
    assert {"mean_accuracy", "std_accuracy", "tar_at_far_1e-3", "threshold", "pairs",
            "pairs_without_face", "fold_accuracies", "roc", "auc"} <= report.keys()
    json.dumps(report, allow_nan=False)


def test_random_distances_are_chance() -> None:
    _, same, folds = separable()
    report = verification_report(np.random.default_rng(1).uniform(size=same.size), same, folds)
    assert abs(report["mean_accuracy"] - 0.5) < 0.05
    assert abs(report["auc"] - 0.5) < 0.05
    assert report["tar_at_far_1e-3"] < 0.02


def test_threshold_is_chosen_on_the_other_folds() -> None:
    """Fold 0's matched pairs sit above the threshold the other nine folds agree on.

    Fitted on fold 0 itself the threshold would be perfect there (1.0); cross-validated it
    calls all of fold 0's matched pairs "different" (0.5). The other folds' training sets
    include fold 0, so their threshold moves up to 0.75 and they stay perfect.
    """
    same = np.tile([True, True, True, False, False, False], 10)
    folds = np.repeat(np.arange(10), 6)
    distances = np.where(same, 0.1, 0.9)
    distances[:6] = [0.6, 0.6, 0.6, 0.95, 0.95, 0.95]
    report = verification_report(distances, same, folds)
    assert report["fold_accuracies"] == [0.5] + [1.0] * 9
    assert report["mean_accuracy"] == pytest.approx(0.95)
    assert report["std_accuracy"] == pytest.approx(np.std([0.5] + [1.0] * 9))
    assert report["threshold"] == pytest.approx(0.75)


def test_failed_pairs_count_as_wrong() -> None:
    distances, same, folds = separable()
    failed = np.arange(same.size) % 10 == 0
    distances[failed] = np.nan  # their distance must never be looked at
    report = verification_report(distances, same, folds, failed)
    assert report["mean_accuracy"] == pytest.approx(0.9)
    assert report["pairs_without_face"] == 600 and report["pairs"] == 6000
    assert report["tar_at_far_1e-3"] == 1.0  # TAR is over the pairs that have faces
    json.dumps(report, allow_nan=False)


def test_threshold_search_matches_brute_force() -> None:
    """One fold fits and scores on the same pairs, so the accuracy is the best any cut gets."""
    rng = np.random.default_rng(2)
    distances = rng.integers(0, 30, 500) / 10.0  # many ties
    same = rng.uniform(size=500) < 1 / (1 + np.exp(3 * (distances - 1.5)))
    report = verification_report(distances, same, np.zeros(500, int))
    unique = np.unique(distances)
    candidates = np.concatenate(([unique[0] - 1], (unique[1:] + unique[:-1]) / 2, [unique[-1]]))
    best = max(((distances <= t) == same).mean() for t in candidates)
    assert report["mean_accuracy"] == pytest.approx(best)
    assert not report["cross_validated"]


def test_tar_at_far_uses_the_strictest_operating_point() -> None:
    """With 2000 mismatched pairs FAR <= 1e-3 allows 2 false accepts, not 3."""
    same = np.array([True] * 100 + [False] * 2000)
    distances = np.concatenate(((np.arange(100) + 0.5) / 100, np.full(2000, 5.0)))
    distances[100:103] = [0.2, 0.4, 0.6]  # impostors after the 20th, 40th and 60th match
    report = verification_report(distances, same, np.zeros(same.size, int))
    assert report["tar_at_far_1e-3"] == pytest.approx(0.60)


def test_needs_both_kinds_of_pair() -> None:
    with pytest.raises(FacecnnError, match="matched and mismatched"):
        verification_report(np.ones(4), np.ones(4, bool), np.arange(4))


def test_plot_roc_writes_a_png(tmp_path: Path) -> None:
    distances, same, folds = separable(60)
    distances = distances + np.random.default_rng(3).normal(0, 0.2, same.size)
    out = plot_roc(verification_report(distances, same, folds), tmp_path / "plots" / "roc.png")
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size[0] > 300


@pytest.mark.e2e
def test_pairs_take_the_face_nearest_the_centre(tmp_path: Path) -> None:
    """LFW's subject is the face in the middle of its photo, whatever else is in it: a photo
    with a large face at the side and a smaller one in the middle gives the middle one to
    `--pick center`, the default for --pairs, and the large one to `largest`."""
    from facecnn.faces.detect import FaceDetector
    from facecnn.faces.embedders.dlib import DlibEmbedder
    from facecnn.faces.pipeline import FacePipeline
    from helpers import ATT_FACES

    photo = np.full((260, 420, 3), 90, np.uint8)
    side = Image.open(ATT_FACES / "s3" / "1.pgm").convert("RGB").resize((138, 168))
    middle = Image.open(ATT_FACES / "s8" / "1.pgm").convert("RGB")
    photo[10:178, 4:142] = np.asarray(side)
    photo[74:186, 164:256] = np.asarray(middle)
    Image.fromarray(photo).save(tmp_path / "two.jpg", quality=95)
    pipeline = FacePipeline(FaceDetector("hog"), DlibEmbedder(), workers=1)
    both = next(pipeline.run([tmp_path / "two.jpg"])).boxes
    assert len(both) == 2
    for pick, want in (("center", 164), ("largest", 4)):
        (box,) = next(pipeline.run([tmp_path / "two.jpg"], pick=pick)).boxes
        assert abs(box[0] - want) < 30, (pick, box)
    with pytest.raises(FacecnnError, match="center or largest|largest or center"):
        next(pipeline.run([tmp_path / "two.jpg"], pick="left"))
