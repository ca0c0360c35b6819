"""One name per track, from the votes of several of its frames: each frame's answer counts by
the face's size and sharpness, so a blurred or tiny glimpse cannot outvote clear views. When
the views disagree the track is "uncertain" rather than flickering between names."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from facecnn.faces.result import UNCERTAIN

AGREEMENT = 0.6  # share of the vote weight the leading name needs
SHARP_HALF = 100.0  # Laplacian variance at which a face counts half as sharp as it can
CROP_MARGIN = 0.25  # room around a best crop, of the box's side


def face_region(image: np.ndarray, box: tuple[float, float, float, float],
                margin: float = 0.0) -> np.ndarray:
    """The pixels of `box` (grown by `margin` of its size on each side), clipped to the image."""
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    height, width = image.shape[:2]
    left, top = max(int(x1 - dx), 0), max(int(y1 - dy), 0)
    right, bottom = min(int(np.ceil(x2 + dx)), width), min(int(np.ceil(y2 + dy)), height)
    return image[top:bottom, left:right]


def quality(image: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """A view's weight: the face's side in pixels times its sharpness in (0, 1) (variance of
    the Laplacian on the face scaled to 64 px, so it measures blur, not size)."""
    region = face_region(image, box)
    if region.size == 0:
        return 0.0
    grey = region if region.ndim == 2 else cv2.cvtColor(region, cv2.COLOR_BGR2GRAY)
    sharpness = float(cv2.Laplacian(cv2.resize(grey, (64, 64)), cv2.CV_64F).var())
    return min(box[2] - box[0], box[3] - box[1]) * sharpness / (sharpness + SHARP_HALF)


@dataclass
class Decision:
    name: str
    score: float
    distance: float | None
    shares: dict[str, float]  # each name's share of the vote weight


@dataclass
class Votes:
    """The answers of a track's views, and its best view (the heaviest) as a crop."""

    names: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    distances: list[float | None] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    best_crop: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.names)

    def add(self, name: str, score: float, distance: float | None, weight: float,
            crop: np.ndarray) -> None:
        if crop.size and (self.best_crop is None or weight > max(self.weights)):
            self.best_crop = crop.copy()
        self.names.append(name)
        self.scores.append(score)
        self.distances.append(distance)
        self.weights.append(max(weight, 1e-6))  # a view too blurred to measure still counts

    def settled(self, enough: int, agreement: float = AGREEMENT) -> bool:
        """Whether `enough` views agree on one name: more of them would not change it."""
        return len(self) >= enough and self.decision(agreement).name != UNCERTAIN

    def decision(self, agreement: float = AGREEMENT) -> Decision:
        """The leading name when it holds `agreement` of the weight, else UNCERTAIN; score and
        distance are its views' weighted means."""
        if not self.names:
            return Decision(UNCERTAIN, 0.0, None, {})
        total = sum(self.weights)
        by_name: dict[str, float] = {}
        for name, weight in zip(self.names, self.weights):
            by_name[name] = by_name.get(name, 0.0) + weight
        shares = {name: round(w / total, 4) for name, w in
                  sorted(by_name.items(), key=lambda item: -item[1])}
        leader = next(iter(shares))
        if shares[leader] < agreement:
            return Decision(UNCERTAIN, shares[leader], None, shares)
        mine = [k for k, name in enumerate(self.names) if name == leader]
        weights = np.array([self.weights[k] for k in mine])
        score = float(np.average([self.scores[k] for k in mine], weights=weights))
        distances = [self.distances[k] for k in mine]
        distance = (None if any(d is None for d in distances)
                    else float(np.average(distances, weights=weights)))
        return Decision(leader, score, distance, shares)
