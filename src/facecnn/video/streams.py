"""Frames from a video file, a camera or a network stream (rtsp://, http:// MJPEG, through
OpenCV's FFmpeg), decoded on a thread of their own so that decoding overlaps detection.

A file is read completely (the decoder waits for the tracker). A live source keeps only the
newest few frames when processing falls behind, dropping the oldest, so latency stays
bounded; when it drops it is reopened a bounded number of times, with one line per try.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

# FFmpeg prints its own complaints about broken videos; ours is the one line users need.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402  (reads the variable above when it first opens a video)
import numpy as np  # noqa: E402

from facecnn.errors import FacecnnError  # noqa: E402

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
THUMB_WIDTH = 96  # motion is judged on a grey thumbnail this wide
BUFFER = 8  # decoded frames waiting for the tracker
DEFAULT_FPS = 25.0  # when a source does not say


@dataclass
class Frame:
    """One decoded frame: `index` counts every frame of the source (dropped ones too), `time`
    is seconds into a file, or since the start for a live source."""

    index: int
    time: float
    image: np.ndarray  # BGR, as OpenCV decodes it
    thumb: np.ndarray  # grey, THUMB_WIDTH wide


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def is_stream_url(text: str) -> bool:
    return "://" in text


def describe(source: str | int) -> str:
    return f"camera {source}" if isinstance(source, int) else (
        f"stream {source}" if is_stream_url(source) else f"video {source}")


def open_capture(source: str | int, timeout: float = 10.0) -> cv2.VideoCapture:
    """An opened capture, or a one-line error; a stream that never answers fails after
    `timeout` seconds (FFmpeg's open and read timeouts), never hangs."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # ours is the one line
    if isinstance(source, str) and is_stream_url(source):
        ms = int(timeout * 1000)
        capture = cv2.VideoCapture(source, cv2.CAP_FFMPEG, [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        why = f" (no video within {timeout:g} s)"
    else:
        if isinstance(source, str) and not Path(source).is_file():
            raise FacecnnError(f"video not found: {source}")
        capture, why = cv2.VideoCapture(source), ""
    if not capture.isOpened():
        raise FacecnnError(f"cannot open {describe(source)}{why}")
    return capture


def thumbnail(image: np.ndarray) -> np.ndarray:
    height = max(1, round(image.shape[0] * THUMB_WIDTH / image.shape[1]))
    return cv2.cvtColor(cv2.resize(image, (THUMB_WIDTH, height), interpolation=cv2.INTER_AREA),
                        cv2.COLOR_BGR2GRAY)


class VideoSource:
    """`for frame in VideoSource("clip.mp4"): ...`: a file, a camera index or a stream URL.

    `live` sources (cameras, URLs) drop their oldest waiting frame rather than queue without
    bound (`dropped` counts them) and are reopened up to `retries` times when they stop
    giving frames; when they do not come back, iteration ends and `error` says why.
    """

    def __init__(self, source: str | int, *, timeout: float = 10.0, retries: int = 5) -> None:
        self.source, self.timeout, self.retries = source, timeout, retries
        self.live = isinstance(source, int) or is_stream_url(source)
        self.name = describe(source)
        self.capture = open_capture(source, timeout)
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else DEFAULT_FPS
        self.frame_count = 0 if self.live else max(int(self.capture.get(
            cv2.CAP_PROP_FRAME_COUNT)), 0)
        self.dropped = 0
        self.started_at = time.time()  # wall clock of a live source's time 0
        self.error: str | None = None
        self._queue: queue.Queue[Frame | None] = queue.Queue(maxsize=BUFFER)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __iter__(self) -> Iterator[Frame]:
        self._thread = threading.Thread(target=self._decode, name="facecnn-decode", daemon=True)
        self._thread.start()
        try:
            while (frame := self._queue.get()) is not None:
                yield frame
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            while self._thread.is_alive():  # unblock a decoder waiting to hand a frame over
                with contextlib.suppress(queue.Empty):
                    self._queue.get(timeout=0.05)
        self.capture.release()

    def _decode(self) -> None:
        index, start, self.started_at = 0, time.monotonic(), time.time()
        try:
            while not self._stop.is_set():
                ok, image = self.capture.read()
                if not ok:
                    if self.live and self._reconnect():
                        continue
                    break
                seconds = time.monotonic() - start if self.live else index / self.fps
                self._put(Frame(index, seconds, image, thumbnail(image)))
                index += 1
        except Exception as exc:  # noqa: BLE001  (handed to the reading thread as one line)
            self.error = f"{self.name}: {type(exc).__name__}: {exc}"
        finally:
            self._put(None, wait=True)

    def _put(self, item: Frame | None, wait: bool = False) -> None:
        if not self.live or wait:
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:  # behind: the oldest waiting frame goes
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()
                self.dropped += 1
            self._queue.put_nowait(item)

    def _reconnect(self) -> bool:
        """Reopen a live source that stopped, waiting longer before each try."""
        for attempt in range(1, self.retries + 1):
            log.warning("%s dropped; reconnecting (try %d of %d)", self.name, attempt,
                        self.retries)
            self.capture.release()
            if self._stop.wait(min(0.5 * 2 ** (attempt - 1), 5.0)):
                return False
            try:
                self.capture = open_capture(self.source, self.timeout)
                return True
            except FacecnnError:
                continue
        self.error = f"{self.name} dropped and did not come back after {self.retries} tries"
        return False
