"""Faces followed from frame to frame: SORT's recipe (Bewley et al. 2016) with OpenCV's
Kalman filter and SciPy's optimal assignment. Each face's box moves by a constant-velocity
model between detections; at a detection the boxes are matched to the new faces by IoU.

A face is predicted, not detected, on the frames between detections, so detection can run
every few frames. A track missed by a detection is `lost` (not shown) until a later detection
finds it again or `max_age` frames pass; a lost track is matched by its last detected box as
well as by its prediction (OC-SORT's observation-centric recovery), as a prediction left
to run on its own for long drifts away from a face that stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from facecnn.faces.boxes import iou
from facecnn.faces.result import Face
from facecnn.video.votes import Votes

Box = tuple[float, float, float, float]


def _measurement(box: Box) -> np.ndarray:
    """(centre x, centre y, area, aspect ratio) as a column: SORT's observation."""
    w, h = box[2] - box[0], box[3] - box[1]
    return np.array([[box[0] + w / 2], [box[1] + h / 2], [w * h], [w / max(h, 1e-6)]])


def _box(state: np.ndarray) -> Box:
    cx, cy, area, ratio = (float(v) for v in state[:4, 0])
    w = float(np.sqrt(max(area * ratio, 1.0)))
    h = max(area, 1.0) / w
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def box_filter(box: Box) -> cv2.KalmanFilter:
    """SORT's constant-velocity filter of a box, starting at `box` (in float64).

    The state is the observation and the velocities of its centre and area."""
    kf = cv2.KalmanFilter(7, 4, 0, cv2.CV_64F)
    moves = np.eye(7)
    moves[0, 4] = moves[1, 5] = moves[2, 6] = 1.0
    kf.transitionMatrix = moves
    kf.measurementMatrix = np.eye(4, 7)
    kf.measurementNoiseCov = np.diag([1.0, 1.0, 10.0, 10.0])
    # the velocities are not observed: very uncertain at first
    kf.errorCovPost = 10.0 * np.diag([1.0] * 4 + [1000.0] * 3)
    kf.processNoiseCov = np.diag([1.0] * 4 + [0.01, 0.01, 0.0001])
    state = np.zeros((7, 1))
    state[:4] = _measurement(box)
    kf.statePost = state
    return kf


@dataclass
class Track:
    """One face followed over time. `id` is given when the track is confirmed (seen by
    `min_hits` detections), so a stray false detection never takes a number."""

    key: int
    filter: cv2.KalmanFilter
    box: Box
    first_frame: int
    first_time: float
    last_frame: int
    last_time: float
    face: Face | None  # the detection matched on this frame, None between detections
    observed: Box  # the box of the last matching detection
    hits: int = 1
    seen: int = 0  # frame of the last matching detection
    lost: bool = False
    misses: int = 0  # detections in a row that did not find it
    id: int | None = None
    votes: Votes = field(default_factory=Votes)
    embedded: int = -(10 ** 9)  # frame of the last embedding

    @property
    def confirmed(self) -> bool:
        return self.id is not None


class FaceTracker:
    """`predict()` on every frame, then `update(faces, ...)` on the frames that were detected.

    iou: smallest overlap of a predicted box and a detection that continues the track.
    max_age: frames a lost track waits to be found again before it ends.
    min_hits: detections that confirm a track.
    """

    def __init__(self, *, iou: float = 0.2, max_age: int = 30, min_hits: int = 2) -> None:
        self.min_iou, self.max_age, self.min_hits = iou, max_age, min_hits
        self.tracks: list[Track] = []
        self._keys = self._ids = 0

    def predict(self) -> None:
        """Move every track on by one frame."""
        for track in self.tracks:
            kf = track.filter
            state = kf.statePost
            if state[6, 0] + state[2, 0] <= 0:  # the area would turn negative
                state[6, 0] = 0.0
                kf.statePost = state
            track.box, track.face = _box(kf.predict()), None

    def update(self, faces: list[Face], frame: int, seconds: float) -> list[Track]:
        """Match this frame's detections to the tracks; unmatched faces start tracks, and
        unmatched tracks are lost. Returns the tracks that were confirmed just now."""
        matches, new = self._match(faces)
        matched = {id(t) for t, _ in matches}
        confirmed = []
        for track, face in matches:
            track.filter.correct(_measurement(face.box))
            track.box = track.observed = face.box
            track.face, track.seen = face, frame
            track.hits += 1
            track.lost, track.misses = False, 0
            if track.id is None and track.hits >= self.min_hits:
                self._ids += 1
                track.id = self._ids
                confirmed.append(track)
        for track in self.tracks:
            if id(track) not in matched:
                track.lost = True
                track.misses += 1
        for face in new:
            self._keys += 1
            self.tracks.append(Track(self._keys, box_filter(face.box), face.box, frame, seconds,
                                     frame, seconds, face, face.box, seen=frame))
            if self.min_hits <= 1:
                self._ids += 1
                self.tracks[-1].id = self._ids
                confirmed.append(self.tracks[-1])
        return confirmed

    def visible(self, frame: int, seconds: float) -> list[Track]:
        """The tracks shown on this frame (not lost), which now last until it."""
        shown = [t for t in self.tracks if not t.lost]
        for track in shown:
            track.last_frame, track.last_time = frame, seconds
        return shown

    def expire(self, frame: int) -> list[Track]:
        """Remove and return the tracks lost for more than `max_age` frames."""
        ended = [t for t in self.tracks if t.lost and frame - t.seen > self.max_age]
        self.tracks = [t for t in self.tracks if t not in ended]
        return ended

    def close(self) -> list[Track]:
        """End every track (the video ended)."""
        ended, self.tracks = self.tracks, []
        return ended

    def _match(self, faces: list[Face]) -> tuple[list[tuple[Track, Face]], list[Face]]:
        if not self.tracks or not faces:
            return [], list(faces)
        overlap = np.array([[max(iou(t.box, f.box), iou(t.observed, f.box) if t.lost else 0.0)
                             for f in faces] for t in self.tracks])
        from scipy.optimize import linear_sum_assignment  # slow to import: videos only

        rows, cols = linear_sum_assignment(-overlap)
        matches = [(self.tracks[r], faces[c]) for r, c in zip(rows, cols)
                   if overlap[r, c] >= self.min_iou]
        used = {id(f) for _, f in matches}
        return matches, [f for f in faces if id(f) not in used]
