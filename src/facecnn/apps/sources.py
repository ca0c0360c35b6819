"""Where frames come from and where annotated frames go: photos, folders, videos, cameras and
streams. Videos and live sources are tracked (facecnn.video): each person is named once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from facecnn.data.folders import expand_inputs
from facecnn.faces.pipeline import NO_FACE
from facecnn.faces.recognize import Recognizer
from facecnn.faces.result import Face, Result
from facecnn.progress import Reporter
from facecnn.video.events import EventLog
from facecnn.video.output import LiveView, save_file_video, save_outputs
from facecnn.video.recognize import TrackingOptions, VideoRecognizer, VideoResult
from facecnn.video.streams import Frame, VideoSource, is_video


@dataclass
class Recognized:
    """Every photo's and video frame's record ({"file", "frame", "faces"}), and the tracks of
    the videos and streams (with their best crops' files where they were saved)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    tracks: list[dict[str, Any]] = field(default_factory=list)
    videos: list[VideoResult] = field(default_factory=list)

    def document(self) -> list[dict[str, Any]] | dict[str, Any]:
        """What --json prints: the records of photos alone (as before videos were tracked),
        or {"frames": [...], "tracks": [...]} when there were videos."""
        if not self.videos:
            return self.records
        return {"frames": self.records, **self.summary()}

    def summary(self) -> dict[str, Any]:
        """The tracks of the videos and streams, and the frames dropped to keep up."""
        return {"tracks": self.tracks, "dropped_frames": sum(v.dropped for v in self.videos)}

    def add(self, video: VideoResult, crops: dict[int, Path] | None = None) -> None:
        self.videos.append(video)
        self.records += video.frame_records()
        self.tracks += video.track_records(crops)


def recognize_inputs(recognizer: Recognizer, inputs: list[Path], *, save: Path | None = None,
                     options: TrackingOptions | None = None, events: EventLog | None = None,
                     reporter: Reporter | None = None) -> Recognized:
    """Photos are named one by one; every frame of a video is processed, its faces tracked."""
    reporter = reporter or Reporter()
    out = Recognized()
    files = expand_inputs(inputs)
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
    images = [f for f in files if not is_video(f)]
    videos = VideoRecognizer(recognizer, options)
    with reporter.task("recognizing", len(images)) as advance:
        by_file = dict(zip(images, _image_results(recognizer, images, advance)))
    for file in files:
        if is_video(file):
            source = VideoSource(str(file))
            with reporter.task(f"tracking {file.name}", source.frame_count) as advance:
                video = videos.run(source, events=events, advance=advance)
            out.add(video, None if save is None else save_file_video(video, save, file.stem))
            continue
        result = by_file[file]
        if save is not None and not result.error:
            result.save(save)
        out.records.append(result.to_dict())
    return out


def recognize_live(recognizer: Recognizer, source: int | str, *, show: bool,
                   save: Path | None = None, options: TrackingOptions | None = None,
                   events: EventLog | None = None,
                   on_record: Callable[[dict[str, Any]], None] | None = None,
                   timeout: float = 10.0, retries: int = 5) -> Recognized:
    """A camera or stream until it ends for good, 'q' in the window or Ctrl-C: the latest
    frames tracked (older ones dropped when processing falls behind), names and events as
    they stand. Frames are not kept (a camera never ends): `on_record` is handed each
    frame's record as it is processed, its faces named as their tracks stand then."""
    stream = VideoSource(source, timeout=timeout, retries=retries)
    stem = f"camera{source}" if isinstance(source, int) else "stream"
    view = LiveView(show=show, save=save, stem=stem, fps=stream.fps)

    def on_frame(frame: Frame, faces: list[Face]) -> bool:
        if on_record is not None:
            on_record(Result(stream.name, faces, frame=frame.index, time=frame.time).to_dict())
        return view(frame, faces)

    try:
        video = VideoRecognizer(recognizer, options).run(stream, events=events,
                                                         on_frame=on_frame, keep_frames=False)
    finally:
        view.close()
    out = Recognized()
    out.add(video, None if save is None else save_outputs(video, save, stem))
    return out


def _image_results(recognizer: Recognizer, images: list[Path],
                   advance: Callable[[int], None]) -> Iterator[Result]:
    """Each photo's named faces (or why it has none): gallery mode runs detection and
    embedding in worker processes; the classifier path runs here."""
    if recognizer.gallery is not None:
        for result in recognizer.pipeline.run(images, advance=advance):
            if result.error == NO_FACE:  # a photo without faces is no error
                result.error = None
            recognizer.name_embedded(result.faces)
            yield result
        return
    for file in images:
        advance(1)
        try:
            yield recognizer(file)
        except ValueError as exc:
            yield Result(file, error=str(exc))
