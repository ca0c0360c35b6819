"""Where frames come from and where annotated frames go: photos, folders, videos, a camera."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2

from facecnn.data.decode import read_image
from facecnn.data.folders import expand_inputs
from facecnn.errors import FacecnnError
from facecnn.faces.detect import FaceDetector
from facecnn.faces.pipeline import NO_FACE
from facecnn.faces.recognize import FaceResult, Recognizer, draw, is_video, open_video, video_frames
from facecnn.progress import Reporter

WINDOW = "facecnn (q quits)"


def _free_path(folder: Path, name: str) -> Path:
    """folder/name, or name with _2, _3... so nothing the user has is overwritten."""
    target = folder / name
    k = 2
    while target.exists():
        target = folder / f"{Path(name).stem}_{k}{Path(name).suffix}"
        k += 1
    return target


def recognize_inputs(recognizer: Recognizer, inputs: list[Path], *, save: Path | None = None,
                     every: int = 1, reporter: Reporter | None = None) -> list[dict[str, Any]]:
    """One record per image or video frame: {"file", "frame", "faces": [...]}."""
    reporter = reporter or Reporter()
    records: list[dict[str, Any]] = []
    files = expand_inputs(inputs)
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
    images = [f for f in files if not is_video(f)]
    with reporter.task("recognizing", len(files)) as advance:
        by_file = dict(zip(images, _image_results(recognizer, images, advance)))
        for file in files:
            if is_video(file):
                records += _recognize_video(recognizer, file, save, every)
                advance(1)
                continue
            results, error = by_file[file]
            record = {"file": str(file), "frame": 0, "faces": [r.to_dict() for r in results]}
            if error:
                record["error"] = error
            elif save is not None:
                _save_annotated(file, results, save)
            records.append(record)
    return records


def _image_results(recognizer: Recognizer, images: list[Path],
                   advance: Callable[[int], None]) -> Iterator[tuple[list[FaceResult], str]]:
    """(results, error) per photo: gallery mode runs detection and embedding in worker
    processes; the classifier path runs here."""
    if recognizer.gallery is not None:
        for item in recognizer.pipeline.run(images, advance=advance):
            if item.error:
                yield [], "" if item.error == NO_FACE else item.error
            else:
                yield recognizer.name_vectors(item.boxes, item.vectors), ""
        return
    for file in images:
        advance(1)
        try:
            yield recognizer(read_image(file)), ""
        except ValueError as exc:
            yield [], str(exc)


def _save_annotated(file: Path, results: list[FaceResult], save: Path) -> None:
    image = cv2.cvtColor(read_image(file), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(_free_path(save, f"{file.stem}.jpg")), draw(image, results))


def _recognize_video(recognizer: Recognizer, file: Path, save: Path | None,
                     every: int) -> list[dict[str, Any]]:
    capture = open_video(str(file))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    capture.release()
    writer = None
    records = []
    try:
        for index, frame in video_frames(str(file), every):
            results = recognizer(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            records.append({"file": str(file), "frame": index,
                            "faces": [r.to_dict() for r in results]})
            if save is not None:
                if writer is None:
                    target = _free_path(save, f"{file.stem}.mp4")
                    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"),
                                             fps / every, (frame.shape[1], frame.shape[0]))
                writer.write(draw(frame, results))
    finally:
        if writer is not None:
            writer.release()
    if save is not None:
        _free_path(save, f"{file.stem}.json").write_text(json.dumps(records, indent=2) + "\n")
    return records


def _show(frame_bgr: Any) -> bool:
    """Show a frame; False when the user pressed q. Headless OpenCV cannot open windows."""
    try:
        cv2.imshow(WINDOW, frame_bgr)
        return (cv2.waitKey(1) & 0xFF) != ord("q")
    except cv2.error:
        raise FacecnnError("this OpenCV has no window support: pip install opencv-python "
                           "(instead of opencv-python-headless) for live windows") from None


def recognize_camera(recognizer: Recognizer, camera: int, save: Path | None = None) -> None:
    """Live recognition with seed C's boxes and the frame rate, until 'q'."""
    writer, last = None, time.perf_counter()
    try:
        for _, frame in video_frames(camera):
            results = recognizer(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            annotated = draw(frame, results)
            now = time.perf_counter()
            cv2.putText(annotated, f"{1.0 / max(now - last, 1e-6):.1f} fps", (10, 25),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 0), 2, cv2.LINE_AA)
            last = now
            if save is not None:
                if writer is None:
                    save.mkdir(parents=True, exist_ok=True)
                    writer = cv2.VideoWriter(str(_free_path(save, "camera.mp4")),
                                             cv2.VideoWriter_fourcc(*"mp4v"), 15.0,
                                             (frame.shape[1], frame.shape[0]))
                writer.write(annotated)
            if not _show(annotated):
                break
    finally:
        if writer is not None:
            writer.release()
        cv2.destroyAllWindows()


def capture_faces(out: Path, people: list[str], *, count: int, source: str | int,
                  detector: FaceDetector, every: int = 1, show: bool = False,
                  reporter: Reporter | None = None) -> dict[str, list[Path]]:
    """Seed C's face_capture: for each person in turn, save `count` frames that show exactly
    one face into out/<person>/, numbered after any frames already there."""
    from facecnn.faces.gallery import check_name

    reporter = reporter or Reporter()
    frames = video_frames(source, every)
    saved: dict[str, list[Path]] = {}
    for person in people:
        folder = out / check_name(person)
        folder.mkdir(parents=True, exist_ok=True)
        saved[person] = []
        with reporter.task(f"capturing {person}", count) as advance:
            for _, frame in frames:
                faces = detector.detect_batch([cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)],
                                              landmarks=False)[0]
                if len(faces) == 1:
                    target = _free_path(folder, f"{person}_{len(saved[person]) + 1:04d}.jpg")
                    cv2.imwrite(str(target), frame)
                    saved[person].append(target)
                    advance(1)
                if show and not _show(frame) or len(saved[person]) >= count:
                    break
    return saved
