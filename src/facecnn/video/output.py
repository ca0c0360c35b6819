"""What a tracked video leaves in the --save folder: the annotated video (track numbers and
names), each track's best view as a crop (for review or enrolment) and the JSON document; and
the live view of a camera or stream (window with the frame rate, and the video written as it
is shown). Nothing already in the folder is overwritten."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facecnn.errors import FacecnnError
from facecnn.faces.result import Face, draw
from facecnn.fileio import free_path
from facecnn.video.recognize import VideoResult
from facecnn.video.streams import Frame, VideoSource

WINDOW = "facecnn (q quits)"


def video_writer(path: Path, fps: float, frame: np.ndarray) -> cv2.VideoWriter:
    return cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                           (frame.shape[1], frame.shape[0]))


def save_crops(result: VideoResult, folder: Path) -> dict[int, Path]:
    """Each track's best view as folder/track_NNN_<name>.jpg; returns the files by track."""
    crops = {}
    for track in result.tracks:
        if track.votes.best_crop is None:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        name = track.votes.decision(result.agreement).name
        crops[track.id] = free_path(folder, f"track_{track.id:03d}_{name}.jpg")
        cv2.imwrite(str(crops[track.id]), track.votes.best_crop)
    return crops


def document(result: VideoResult, crops: dict[int, Path] | None = None) -> dict[str, Any]:
    """The JSON of one video: its frames (faces with their tracks) and its tracks."""
    return {"file": result.source, "fps": round(result.fps, 3),
            "frames_read": result.frames_read, "dropped_frames": result.dropped,
            "frames": result.frame_records(), "tracks": result.track_records(crops)}


def save_file_video(result: VideoResult, save: Path, stem: str) -> dict[int, Path]:
    """A file's annotated copy, drawn once the names are settled (a second, decode-only pass),
    its crops and its JSON; returns the crops by track."""
    writer = None
    try:
        for k, frame in enumerate(VideoSource(result.source)):
            if k >= len(result.frames):
                break
            if writer is None:
                writer = video_writer(free_path(save, f"{stem}.mp4"), result.fps, frame.image)
            writer.write(draw(frame.image, result.faces(k)))
    finally:
        if writer is not None:
            writer.release()
    return save_outputs(result, save, stem)


def save_outputs(result: VideoResult, save: Path, stem: str) -> dict[int, Path]:
    crops = save_crops(result, save / f"{stem}_tracks")
    free_path(save, f"{stem}.json").write_text(json.dumps(document(result, crops), indent=2)
                                               + "\n")
    return crops


class LiveView:
    """A live source's frames as they are processed: shown in a window (`show`) with the
    frame rate, and written to save/<stem>.mp4; `q` in the window stops."""

    def __init__(self, *, show: bool, save: Path | None, stem: str, fps: float) -> None:
        self.show, self.save, self.stem, self.fps = show, save, stem, fps
        self.writer: cv2.VideoWriter | None = None
        self.last = time.perf_counter()
        self.rate = 0.0

    def __call__(self, frame: Frame, faces: list[Face]) -> bool:
        annotated = draw(frame.image, faces)
        now = time.perf_counter()
        instant = 1.0 / max(now - self.last, 1e-6)
        self.rate, self.last = 0.9 * self.rate + 0.1 * instant if self.rate else instant, now
        cv2.putText(annotated, f"{self.rate:.1f} fps", (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                    (255, 255, 0), 2, cv2.LINE_AA)
        if self.save is not None:
            if self.writer is None:
                self.save.mkdir(parents=True, exist_ok=True)
                self.writer = video_writer(free_path(self.save, f"{self.stem}.mp4"), self.fps,
                                           annotated)
            self.writer.write(annotated)
        return not self.show or show(annotated)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
        if self.show:
            cv2.destroyAllWindows()


def show(frame_bgr: np.ndarray) -> bool:
    """Show a frame; False when the user pressed q. Headless OpenCV cannot open windows."""
    try:
        cv2.imshow(WINDOW, frame_bgr)
        return (cv2.waitKey(1) & 0xFF) != ord("q")
    except cv2.error:
        raise FacecnnError("this OpenCV has no window support: pip install opencv-python "
                           "(instead of opencv-python-headless) for live windows, or "
                           "--no-show") from None
