"""Videos uploaded to POST /v1/recognize: told from photos by their container's bytes (never by
the name or the declared type), refused by length before a frame is tracked where the container
says it, stopped where it did not say or lied, decoded from a temporary file that is always
removed, and answered with `facecnn recognize clip.mp4 --json`'s frames and tracks."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import filetype

from facecnn.apps.sources import Recognized
from facecnn.errors import FacecnnError
from facecnn.serve.security import Upload, UploadError
from facecnn.video import VideoRecognizer, VideoSource
from facecnn.video.recognize import Namer
from facecnn.video.streams import Frame

CONTAINERS = ("mp4", "m4v", "mov", "webm", "mkv", "avi")
HEADER = 8192  # bytes of an upload its container is told from
TEMP_PREFIX = "facecnn-upload-"


@dataclass
class VideoLimits:
    """The longest video an upload may be: in seconds and in frames (413 beyond)."""

    seconds: float = 30.0
    frames: int = 900


def video_container(data: bytes) -> str | None:
    """The container of an uploaded video (mp4, mov, webm, mkv, avi), or None: not a video."""
    kind = filetype.guess(data[:HEADER])
    return kind.extension if kind is not None and kind.extension in CONTAINERS else None


class _Within:
    """on_frame for a video that may be longer than its container said: stops it there."""

    def __init__(self, limits: VideoLimits) -> None:
        self.limits, self.over = limits, False

    def __call__(self, frame: Frame, faces: Any) -> bool:
        self.over = frame.index >= self.limits.frames or frame.time > self.limits.seconds
        return not self.over


def recognize_video(upload: Upload, container: str, recognizer: Namer, limits: VideoLimits,
                    max_pixels: int) -> dict[str, Any]:
    """The tracks JSON of an uploaded video; UploadError (413, 422) when it is too long, too
    large a picture or cannot be decoded."""
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX) as folder:
        path = Path(folder) / f"upload.{container}"
        path.write_bytes(upload.data)
        try:
            source = VideoSource(str(path))
        except FacecnnError:
            raise UploadError(422, f"{upload.name}: the video could not be decoded") from None
        try:
            _check(source, upload.name, limits, max_pixels)
        except UploadError:
            source.close()
            raise
        within = _Within(limits)
        video = VideoRecognizer(recognizer).run(source, on_frame=within)
    if within.over:
        raise UploadError(413, f"{upload.name}: video over {_limits(limits)}")
    if video.error or video.frames_read == 0:
        raise UploadError(422, f"{upload.name}: the video could not be decoded")
    video.source = upload.name
    found = Recognized()
    found.add(video)
    return found.document()


def _check(source: VideoSource, name: str, limits: VideoLimits, max_pixels: int) -> None:
    """What the container says, checked before any frame is decoded."""
    width = int(source.capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(source.capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width * height > max_pixels:
        raise UploadError(413, f"{name}: {width}x{height} frames are over {max_pixels:,} pixels")
    seconds = source.frame_count / source.fps
    if source.frame_count > limits.frames or seconds > limits.seconds:
        raise UploadError(413, f"{name}: video of {seconds:.1f} s ({source.frame_count} frames) "
                               f"is over {_limits(limits)}")


def _limits(limits: VideoLimits) -> str:
    return f"{limits.seconds:g} s or {limits.frames} frames"
