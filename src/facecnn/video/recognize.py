"""Name the people of a video or stream once each: look for faces every few frames, follow
them in between (tracker.py), embed each track's face every few frames in one batch per frame,
and let its views vote (votes.py). One pass gives the per-frame faces, a summary per track and
appeared/left events.

In a file every frame's faces carry their track's final name, and events are written once
the names are settled; a live source shows and logs each track's name as it stands.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import cv2
import numpy as np

from facecnn.faces.result import Face, Result, json_number
from facecnn.video.events import EventLog, clock
from facecnn.video.schedule import DetectionSchedule
from facecnn.video.streams import Frame, VideoSource
from facecnn.video.tracker import Box, FaceTracker, Track
from facecnn.video.votes import AGREEMENT, CROP_MARGIN, face_region, quality

OnFrame = Callable[[Frame, list[Face]], bool]  # False stops the source


class Namer(Protocol):
    """What tracking asks of a Recognizer."""

    def detect(self, image: np.ndarray) -> list[Face]: ...

    def name_faces(self, image: np.ndarray, faces: list[Face]) -> list[Face]: ...


@dataclass
class TrackingOptions:
    """every: look for faces at least every N frames (more often after a loss or new motion).
    first_views: a new track's views embedded at every look, so that it is named from
    several at once; after them, one every `embed_every` frames, until `enough_views` agree
    (the leading name holds `agreement` of the weight): then the track is named and its
    face is not embedded again.
    agreement: share of the vote weight a track's leading name needs (else "uncertain").
    max_age: seconds a face may go unseen and keep its track.
    min_hits: detections that make a track (fewer: a false detection, dropped)."""

    every: int = 5
    first_views: int = 3
    embed_every: int = 10
    enough_views: int = 5
    agreement: float = AGREEMENT
    max_age: float = 1.0
    min_hits: int = 2


@dataclass
class VideoResult:
    """What one video or stream gave: its tracks and, unless not kept, every frame's boxes."""

    source: str
    fps: float
    live: bool
    agreement: float
    tracks: list[Track] = field(default_factory=list)
    frames: list[tuple[int, float, list[tuple[Track, Box]]]] = field(default_factory=list)
    frames_read: int = 0
    dropped: int = 0
    seconds: float = 0.0  # processing time
    # where it went: decode (reading frames), detect, embed (naming tracks), write (on_frame:
    # showing, saving) and track (the tracker and everything else)
    stages: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def named(self, track: Track, box: Box) -> Face:
        decision = track.votes.decision(self.agreement)
        return Face(box, track=track.id).named(decision.name, decision.score, decision.distance)

    def faces(self, k: int) -> list[Face]:
        """The faces of the k-th kept frame, each with its track's name."""
        return [self.named(t, box) for t, box in self.frames[k][2] if t.confirmed]

    def frame_records(self) -> list[dict[str, Any]]:
        return [Result(self.source, self.faces(k), frame=index, time=seconds).to_dict()
                for k, (index, seconds, _) in enumerate(self.frames)]

    def track_records(self, crops: dict[int, Path] | None = None) -> list[dict[str, Any]]:
        records = []
        for track in self.tracks:
            decision = track.votes.decision(self.agreement)
            crop = (crops or {}).get(track.id)
            records.append({
                "file": self.source, "track": track.id, "name": decision.name,
                "score": json_number(decision.score), "distance": json_number(decision.distance),
                "votes": len(track.votes), "shares": decision.shares,
                "first_frame": track.first_frame, "last_frame": track.last_frame,
                "first_time": round(track.first_time, 3), "last_time": round(track.last_time, 3),
                "crop": None if crop is None else str(crop)})
        return records

    @property
    def rate(self) -> float:
        """Frames processed per second."""
        return self.frames_read / max(self.seconds, 1e-9)


class VideoRecognizer:
    """`VideoRecognizer(recognizer).run(VideoSource("clip.mp4"))` -> VideoResult; works with
    any detector, and with a gallery or a trained classifier (whatever `recognizer` has)."""

    def __init__(self, recognizer: Namer, options: TrackingOptions | None = None) -> None:
        self.recognizer, self.options = recognizer, options or TrackingOptions()

    def run(self, source: VideoSource, *, events: EventLog | None = None,
            on_frame: OnFrame | None = None, keep_frames: bool = True,
            advance: Callable[[int], None] = lambda n: None) -> VideoResult:
        opts = self.options
        tracker = FaceTracker(max_age=max(round(opts.max_age * source.fps), 2 * opts.every),
                              min_hits=opts.min_hits)
        schedule = DetectionSchedule(opts.every)
        result = VideoResult(source.name if source.live else str(source.source), source.fps,
                             source.live, opts.agreement)
        log = _Events(events, result, source)
        start, stages = time.perf_counter(), result.stages
        frames = iter(source)
        try:
            while True:
                with _timed(stages, "decode"):
                    frame = next(frames, None)
                if frame is None:
                    break
                shown = self._step(frame, tracker, schedule, log, stages)
                result.frames_read += 1
                if keep_frames:
                    result.frames.append((frame.index, frame.time, [(t, t.box) for t in shown]))
                advance(1)
                with _timed(stages, "write"):
                    go_on = on_frame is None or on_frame(
                        frame, [result.named(t, t.box) for t in shown if t.confirmed])
                if not go_on:
                    break
        except KeyboardInterrupt:  # Ctrl-C ends a live source like its end; a file's is lost
            if not source.live:
                raise
        finally:
            source.close()
        result.seconds = time.perf_counter() - start
        stages["track"] = max(result.seconds - sum(stages.values()), 0.0)
        log.ended(tracker.close())
        log.settled()
        result.dropped, result.error = source.dropped, source.error
        return result

    def _step(self, frame: Frame, tracker: FaceTracker, schedule: DetectionSchedule,
              log: _Events, stages: dict[str, float]) -> list[Track]:
        if schedule.cut(frame):
            log.ended(tracker.close())
        tracker.predict()
        if schedule.due(frame, [t.box for t in tracker.tracks if not t.lost]):
            with _timed(stages, "detect"):
                rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)
                found = self.recognizer.detect(rgb)
            confirmed = tracker.update(found, frame.index, frame.time)
            # unsure: a track was just missed, or a new one waits for the look that confirms it
            schedule.looked(frame, any(t.misses == (1 if t.confirmed else 0)
                                       for t in tracker.tracks))
            with _timed(stages, "embed"):
                self._vote(frame, rgb, tracker.tracks)
            log.appeared(confirmed)
        log.ended(tracker.expire(frame.index))
        return tracker.visible(frame.index, frame.time)

    def _vote(self, frame: Frame, rgb: Any, tracks: list[Track]) -> None:
        """Embed (as one batch) the detected faces of the tracks due a new view."""
        opts = self.options
        due = [t for t in tracks if t.face is not None and not t.votes.settled(
            opts.enough_views, opts.agreement) and (
            len(t.votes) < opts.first_views or frame.index - t.embedded >= opts.embed_every)]
        if not due:
            return
        answers = self.recognizer.name_faces(rgb, [t.face for t in due])
        for track, answer in zip(due, answers):
            box = track.face.box
            track.votes.add(answer.name, answer.score, answer.distance,
                            quality(frame.image, box), face_region(frame.image, box, CROP_MARGIN))
            track.embedded = frame.index


@contextmanager
def _timed(stages: dict[str, float], stage: str) -> Iterator[None]:
    """Add the seconds the block takes to `stages[stage]`."""
    start = time.perf_counter()
    try:
        yield
    finally:
        stages[stage] = stages.get(stage, 0.0) + time.perf_counter() - start


class _Events:
    """A run's tracks as they end, and its events: written as they happen for a live source,
    and once every name is settled (at the end, in time order) for a file."""

    def __init__(self, log: EventLog | None, result: VideoResult, source: VideoSource) -> None:
        self.log, self.result, self.source = log, result, source

    def appeared(self, tracks: list[Track]) -> None:
        if self.result.live:
            for track in tracks:
                self._write("appeared", track)

    def ended(self, tracks: list[Track]) -> None:
        for track in tracks:
            if track.confirmed:
                self.result.tracks.append(track)
                if self.result.live:
                    self._write("left", track)

    def settled(self) -> None:
        self.result.tracks.sort(key=lambda t: t.id)
        if self.result.live:
            return
        events = [(t.first_time, 0, t.id, "appeared", t) for t in self.result.tracks]
        events += [(t.last_time, 1, t.id, "left", t) for t in self.result.tracks]
        for *_, kind, track in sorted(events, key=lambda e: e[:3]):
            self._write(kind, track)

    def _write(self, kind: str, track: Track) -> None:
        if self.log is None:
            return
        decision = track.votes.decision(self.result.agreement)
        frame, seconds = ((track.first_frame, track.first_time) if kind == "appeared"
                          else (track.last_frame, track.last_time))
        self.log.write({"event": kind, "time": round(seconds, 3), "frame": frame,
                        "track": track.id, "name": decision.name,
                        "score": json_number(decision.score), "source": self.result.source,
                        "at": clock(self.source.started_at + seconds) if self.result.live
                        else None})
