"""When to look for faces in a video: at least every `every` frames, and sooner (after half
as many) when at the last look a track went missing or a new one began, or new motion
appeared where no face is followed, such as a person walking in; at once after a cut, which
also ends every track (a box where another person's face was must not carry that person's
track on). In between, the tracker carries the faces on.

Motion counts as new when more of the picture moves than usually does in this scene: a
singer's hands or a panning camera move all the time and would otherwise have every other
frame detected, for nothing."""

from __future__ import annotations

import cv2
import numpy as np

from facecnn.video.streams import Frame

MOTION_LEVEL = 25  # grey levels a thumbnail pixel must change by to count as motion
MOTION_SHARE = 0.01  # share of the untracked thumbnail that must move to look again
NEW_MOTION = 2.0  # ... and this many times the share that usually moves in the scene
USUAL_WEIGHT = 0.5  # of the newest measurement in the scene's usual share
TRACK_MARGIN = 0.5  # a followed face's box is grown by this much before motion is judged
CUT_LEVEL = 20.0  # mean grey change from the previous frame that makes a cut (motion: < 15)


class DetectionSchedule:
    def __init__(self, every: int) -> None:
        self.every, self.soon = every, max(1, every // 2)
        self.last: int | None = None
        self.reference: np.ndarray | None = None
        self.previous: np.ndarray | None = None
        self.unsure = False
        self.usual = 0.0  # share of the untracked picture that usually moves between looks

    def cut(self, frame: Frame) -> bool:
        """Whether the scene changed at once from the previous frame (call on every frame)."""
        previous, self.previous = self.previous, frame.thumb
        if previous is None or previous.shape != frame.thumb.shape:
            return False
        cut = float(cv2.absdiff(frame.thumb, previous).mean()) > CUT_LEVEL
        if cut:
            self.last, self.usual = None, 0.0  # look now, at a new scene
        return cut

    def due(self, frame: Frame, boxes: list[tuple[float, float, float, float]]) -> bool:
        """Whether to detect on this frame, given the boxes now followed."""
        if self.last is None:
            return True
        since = frame.index - self.last
        if since >= self.every:
            return True
        return since >= self.soon and (self.unsure or self._moved(frame, boxes))

    def looked(self, frame: Frame, unsure: bool) -> None:
        """Detection ran on `frame`; `unsure`: a track was just missed, or is new."""
        self.last, self.reference, self.unsure = frame.index, frame.thumb, unsure

    def _moved(self, frame: Frame, boxes: list[tuple[float, float, float, float]]) -> bool:
        """Whether new motion appeared since the last look (and learn how much is usual)."""
        moved = cv2.absdiff(frame.thumb, self.reference) > MOTION_LEVEL
        scale = frame.thumb.shape[1] / frame.image.shape[1]
        for x1, y1, x2, y2 in boxes:
            dx, dy = (x2 - x1) * TRACK_MARGIN, (y2 - y1) * TRACK_MARGIN
            moved[max(int((y1 - dy) * scale), 0):max(int((y2 + dy) * scale) + 1, 0),
                  max(int((x1 - dx) * scale), 0):max(int((x2 + dx) * scale) + 1, 0)] = False
        share = float(moved.mean())
        new = share > max(MOTION_SHARE, NEW_MOTION * self.usual)
        self.usual += USUAL_WEIGHT * (share - self.usual)
        return new
