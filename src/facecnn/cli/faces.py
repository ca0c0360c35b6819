"""The face commands of `facecnn`: prepare, capture, enroll, recognize, verify, embed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table
from rich.text import Text

from facecnn.cli.options import (
    CROPS,
    DETECTOR,
    DEVICE,
    EMBEDDER_HELP,
    FACE_BATCH_SIZE,
    FLIP,
    JITTER,
    JSON,
    LANDMARKS,
    MIN_QUALITY,
    MIN_SIZE,
    NAME,
    PROJECT,
    QUIET,
    SAME_VECTORS,
    UPSAMPLE,
    WORKERS,
    embedder_option,
    gallery_option,
)
from facecnn.errors import FacecnnError
from facecnn.faces.config import PipelineConfig
from facecnn.faces.gallery.location import GalleryLocation
from facecnn.terminal import console, err_console, reporter_for


def prepare(
    raw: Path = typer.Argument(..., help="Photos, one folder per person."),
    out: Path = typer.Argument(..., help="Where the aligned face crops go (same layout)."),
    detector: str = DETECTOR,
    landmarks: str = LANDMARKS,
    upsample: int = UPSAMPLE,
    min_size: int = MIN_SIZE,
    crops: bool = CROPS,
    crop: Optional[str] = typer.Option(
        None, help="Cut faces as this model or run takes them: a model name (dlib_resnet: "
        "dlib's 150 px chips) or a run folder. Default: the ArcFace template, margin 0.2."),
    size: Optional[int] = typer.Option(None, min=16, help="Crop side in pixels [default: 160]."),
    margin: Optional[float] = typer.Option(None, min=0.0, max=1.0,
                                           help="Room around the face [default: 0.2]."),
    multi: str = typer.Option("largest", help="Photos with several faces: largest, all, skip."),
    overwrite: bool = typer.Option(False, help="Replace crops that already exist in OUT."),
    quiet: bool = QUIET,
) -> None:
    """Find, align and crop every face; lists photos with no face or several faces."""
    from facecnn.apps.prepare import prepare as run_prepare
    from facecnn.data.crop_layout import PREPARE_REPORT, describe
    from facecnn.faces.detect import FaceDetector

    layout = _prepare_crop(crop, size, margin)
    config = PipelineConfig(detector=detector, landmarks=landmarks, upsample=upsample,
                            min_size=min_size, crops=crops)
    report = run_prepare(raw, out, FaceDetector.from_config(config), crop=layout, multi=multi,
                         overwrite=overwrite, reporter=reporter_for(quiet))
    for name in report.empty_folders:
        err_console.print(f"empty person folder skipped: {name}", highlight=False)
    console.print(f"{report.faces_written} face crops written to {out} from {report.images} "
                  f"images; {len(report.no_face)} with no face, {len(report.multiple_faces)} "
                  f"with several, {len(report.unreadable)} unreadable, "
                  f"{len(report.kept_existing)} existing kept (see {out / PREPARE_REPORT}); "
                  f"{describe(layout)}")
    if not report.crops:
        raise FacecnnError(f"no face crop written or kept: nothing to train or enroll on "
                           f"(why in {out / PREPARE_REPORT})")


def _prepare_crop(crop: str | None, size: int | None, margin: float | None) -> dict:
    """prepare's layout: a model's or run's (--crop), else the template with --size/--margin."""
    from facecnn.apps.prepare import DEFAULT_CROP
    from facecnn.faces.crops import crop_for

    if crop is None:
        return {"size": size or DEFAULT_CROP["size"],
                "margin": DEFAULT_CROP["margin"] if margin is None else margin}
    if size is not None or margin is not None:
        raise FacecnnError("--crop sets the size and layout: drop --size/--margin")
    return crop_for(crop)


def enroll(
    faces: Path = typer.Argument(..., help="Photos or prepared crops, one folder per person."),
    gallery: GalleryLocation = gallery_option(..., "Gallery, created if missing."),
    embedder: str = embedder_option(),
    detector: str = DETECTOR,
    landmarks: str = LANDMARKS,
    upsample: int = UPSAMPLE,
    min_size: int = MIN_SIZE,
    crops: bool = CROPS,
    threshold: Optional[float] = typer.Option(None, help="Store this threshold instead of "
                                              "calibrating one."),
    calibrate: Optional[bool] = typer.Option(None, "--calibrate/--no-calibrate", help="Calibrate "
                                             "the unknown threshold from the enrolled people "
                                             "(leave-one-out). Default: yes, unless a "
                                             "threshold was set by hand with --threshold."),
    far: Optional[float] = typer.Option(None, min=0.0, max=0.5, help="Calibrate for this share "
                                        "of strangers' faces named (judged on the gallery's "
                                        "own people and on a shipped cohort of strangers' "
                                        "vectors: docs/models.md), kept for later changes. "
                                        "Default: what the gallery was calibrated for, else "
                                        "0.01."),
    min_quality: float = MIN_QUALITY,
    flip: bool = FLIP,
    jitter: int = JITTER,
    batch_size: int = FACE_BATCH_SIZE,
    workers: Optional[int] = WORKERS,
    quiet: bool = QUIET,
) -> None:
    """Embed every person's photos into a gallery (no training) and calibrate 'unknown'."""
    from facecnn.apps.enroll import enroll as run_enroll
    from facecnn.faces import embedders
    from facecnn.faces.detect import FaceDetector

    config = PipelineConfig(detector=detector, landmarks=landmarks, upsample=upsample,
                            min_size=min_size, crops=crops, embedder=embedder, flip=flip,
                            jitter=jitter, batch_size=batch_size, workers=workers)
    report = run_enroll(faces, gallery, embedders.from_config(config),
                        FaceDetector.from_config(config),
                        threshold=threshold, calibrate=calibrate, far=far, workers=workers,
                        min_quality=min_quality, reporter=reporter_for(quiet))
    for folder in report.empty_folders:
        err_console.print(f"empty person folder skipped: {folder}", highlight=False)
    for file in report.no_face:
        err_console.print(f"no face: {file}", highlight=False)
    for item in report.unreadable:
        err_console.print(f"unreadable: {item['file']} ({item['reason']})", highlight=False)
    for item in report.low_quality:
        err_console.print(f"low quality ({item['quality']:.2f} < {min_quality:g}), not "
                          f"enrolled: {item['file']}", highlight=False)
    added = {person: n for person, n in report.people.items() if n}
    skipped = "".join(f"; {_photos(n)} {'was' if n == 1 else 'were'} {why} (nothing added "
                      "for them)" for n, why in (
                          (len(report.already), "already enrolled"),
                          (len(report.low_quality), f"under quality {min_quality:g}"),
                          (report.by_another_run, "enrolled by another run meanwhile")) if n)
    if report.reused:
        skipped += f"; the faces of {_photos(report.reused)} came from an earlier run's cache"
    console.print(f"enrolled {sum(added.values())} new faces of {len(added)} people into "
                  f"{gallery}{skipped}; threshold {report.threshold:.4f} "
                  f"({report.threshold_source}){_expected(report.calibration)}", highlight=False)


def _photos(n: int) -> str:
    return f"{n} photo" if n == 1 else f"{n} photos"


def _expected(calibration: dict | None) -> str:
    """What a calibrated threshold is expected to do, in words."""
    if not calibration:
        return ""
    strangers = calibration.get("cohort", {}).get("expected_far", calibration.get("far"))
    if "frr" not in calibration:  # one person, or one photo a person: the cohort's alone
        return (f": expected {strangers:.1%} of strangers' faces named (how many of the "
                "enrolled people's other photos would be is not known from one photo each "
                "or one person)")
    return (f": expected {1 - calibration['frr']:.0%} of enrolled people's photos named, "
            f"{strangers:.1%} of strangers' faces")


def recognize(
    inputs: List[str] = typer.Argument(None, help="Images, folders of images, videos, or one "
                                       "stream URL (rtsp://..., http://... MJPEG)."),
    gallery: Optional[GalleryLocation] = gallery_option(None, "Gallery made by `facecnn enroll`."),
    model: Optional[Path] = typer.Option(None, help="A training run (seed C's classifier)."),
    camera: Optional[int] = typer.Option(None, help="Camera index for live recognition."),
    embedder: Optional[str] = embedder_option(None, "Search the gallery with this embedder "
                                       "(default: the one that made it); " + SAME_VECTORS),
    detector: str = DETECTOR,
    landmarks: str = LANDMARKS,
    upsample: int = UPSAMPLE,
    min_size: int = MIN_SIZE,
    crops: bool = CROPS,
    threshold: Optional[float] = typer.Option(None, help="Distance above which a face is "
                                              "unknown (default: the gallery's)."),
    min_confidence: float = typer.Option(0.5, help="--model: softmax below this is unknown."),
    save: Optional[Path] = typer.Option(None, help="Write annotated images/videos here, with "
                                        "each video track's best face crop and the JSON."),
    as_json: bool = JSON,
    every: int = typer.Option(5, min=1, help="Videos: look for faces at least every N-th "
                              "frame (sooner when a face is lost or something new moves); "
                              "faces are tracked in between, every frame is reported."),
    events: Optional[Path] = typer.Option(None, help="Videos and streams: write appeared/left "
                                          "events to this new .csv or .jsonl file."),
    show: Optional[bool] = typer.Option(None, "--show/--no-show", help="Live window with the "
                                        "frame rate (default: with --camera)."),
    retries: int = typer.Option(5, min=0, help="Streams: reconnect this many times when one "
                                "drops."),
    timeout: float = typer.Option(10.0, min=0.1, help="Streams: seconds to wait for a frame."),
    device: str = DEVICE,
    workers: Optional[int] = WORKERS,
    quiet: bool = QUIET,
) -> None:
    """Name every face in photos, videos, a camera or a stream; strangers are 'unknown'.
    Video faces are tracked and each track named once, from the votes of several views.
    --json: one document for files; a camera or stream prints a JSON line per frame as it
    goes, then one with its tracks."""
    from contextlib import nullcontext

    from facecnn.apps.sources import recognize_inputs, recognize_live
    from facecnn.data.folders import expand_inputs
    from facecnn.faces.recognize import Recognizer
    from facecnn.video import EventLog, TrackingOptions
    from facecnn.video.streams import is_stream_url, is_video

    live = camera if camera is not None else next(
        (p for p in inputs or [] if is_stream_url(p)), None)
    if live is None and not inputs:
        raise FacecnnError("give images, folders, videos or a stream URL to recognize, or "
                           "--camera N")
    if live is not None and len(inputs or []) > (camera is None):
        raise FacecnnError("a camera or stream is recognized on its own: give no other inputs")
    files = [] if live is not None else expand_inputs([Path(p) for p in inputs])
    config = PipelineConfig(detector=detector, landmarks=landmarks, upsample=upsample,
                            min_size=min_size, crops=crops, embedder=embedder, device=device,
                            workers=workers)
    photos = None if live is not None or any(is_video(f) for f in files) else len(files)
    recognizer = Recognizer.from_config(config, gallery=gallery, model=model,
                                        threshold=threshold,
                                        min_confidence=min_confidence, photos=photos)
    options = TrackingOptions(every=every)
    with EventLog(events) if events is not None else nullcontext() as log:
        if live is not None:
            found = recognize_live(recognizer, live, show=camera is not None if show is None
                                   else show, save=save, options=options, events=log,
                                   on_record=_json_line if as_json else None,
                                   timeout=timeout, retries=retries)
        else:
            found = recognize_inputs(recognizer, files, save=save, options=options,
                                     events=log, reporter=reporter_for(quiet or as_json))
    if as_json and live is not None:  # a JSON line per frame went out as it came
        _json_line(found.summary())
    elif as_json:
        print(json.dumps(found.document(), indent=2))
    else:
        _print_recognized(found)
    failed = [r for r in found.records if "error" in r]
    if failed and len(failed) == len(found.records):
        raise FacecnnError(f"none of the {len(failed)} images could be read "
                           f"({failed[0]['file']}: {failed[0]['error']})")
    if recognizer.gallery is not None and not quiet:  # on stderr, so --json stays one document
        err_console.print(f"unknown beyond {recognizer.current_threshold().describe()}",
                          highlight=False)
    for video in found.videos:
        if video.error:
            raise FacecnnError(video.error)


def _json_line(record: dict) -> None:
    print(json.dumps(record), flush=True)


def _print_recognized(found) -> None:
    """Photos one row each; videos one row per track (who, when), not one per frame."""
    photos = [r for r in found.records if "time" not in r]
    if photos:
        table = Table("file", "faces")
        for record in photos:
            names = ", ".join(f"{f['name']} ({f['score']:.2f})" for f in record["faces"])
            if "error" in record:
                names = Text(f"unreadable: {record['error']}", style="red")
            table.add_row(record["file"], names or "no face")
        console.print(table)
    if found.videos:
        crops = any(t["crop"] for t in found.tracks)
        table = Table("file", "track", "name", "score", "from (s)", "to (s)",
                      *["best crop"] * crops)
        for t in found.tracks:
            table.add_row(t["file"], str(t["track"]), t["name"],
                          f"{t['score']:.2f}", f"{t['first_time']:.2f}", f"{t['last_time']:.2f}",
                          *[t["crop"] or ""] * crops)
        console.print(table)
        for video in found.videos:
            dropped = f", {video.dropped} dropped (behind)" if video.dropped else ""
            console.print(f"{video.source}: {len(video.tracks)} tracks in "
                          f"{video.frames_read} frames at {video.rate:.1f} frames/s{dropped}",
                          highlight=False)


def verify(
    images: List[Path] = typer.Argument(None, help="Two photos to compare."),
    pairs: Optional[Path] = typer.Option(None, help="LFW-style pairs.txt."),
    root: Optional[Path] = typer.Option(None, help="Folder of <Name>/<Name>_0001.jpg."),
    gallery: Optional[GalleryLocation] = gallery_option(None, "Use this gallery's embedder and its "
                                            "threshold (as `recognize` and the server do)."),
    embedder: Optional[str] = embedder_option(None, EMBEDDER_HELP + " Default: the gallery's, "
                                       "else dlib."),
    detector: str = DETECTOR,
    landmarks: str = LANDMARKS,
    upsample: int = UPSAMPLE,
    threshold: Optional[float] = typer.Option(None, help="Same person at or below this "
                                              "distance (default: the gallery's, else the "
                                              "embedder's)."),
    pick: Optional[str] = typer.Option(None, help="The face of each photo: center (nearest "
                                       "the middle; the default with --pairs, as LFW's "
                                       "subjects are) or largest (the default otherwise)."),
    min_size: int = MIN_SIZE,
    crops: bool = CROPS,
    flip: bool = FLIP,
    jitter: int = JITTER,
    workers: Optional[int] = WORKERS,
    as_json: bool = JSON,
    project: str = PROJECT,
    name: str = NAME,
    quiet: bool = QUIET,
) -> None:
    """Same person? For two photos, or the LFW 10-fold protocol with --pairs and --root."""
    from contextlib import nullcontext

    from facecnn.apps.verify import REPORT_KEYS, verify_pairs, verify_two
    from facecnn.faces import embedders
    from facecnn.faces.embedders import DEFAULT_EMBEDDER
    from facecnn.faces.gallery import open_gallery
    from facecnn.faces.pipeline import FacePipeline

    config = PipelineConfig(detector=detector, landmarks=landmarks, upsample=upsample,
                            min_size=min_size, crops=crops, flip=flip, jitter=jitter,
                            workers=workers)
    with open_gallery(gallery) if gallery is not None else nullcontext() as opened:
        chosen = embedders.from_config(config, embedder or (opened.embedder if opened
                                                    else DEFAULT_EMBEDDER))
        if opened is not None:
            opened.check_embedder(chosen)
        pipeline = FacePipeline.from_config(config, chosen)
        if pairs is not None:
            if root is None:
                raise FacecnnError("--pairs needs --root, the folder holding the images")
            out, report = verify_pairs(pairs, root, pipeline, project=project, name=name,
                                       pick=pick or "center",
                                       reporter=reporter_for(quiet or as_json))
            if as_json:
                print(json.dumps({k: report[k] for k in REPORT_KEYS}, indent=2))
                return
            console.print(f"accuracy {report['mean_accuracy']:.4f} +- "
                          f"{report['std_accuracy']:.4f} over {report['pairs']} pairs "
                          f"({report['pairs_without_face']} without a face); TAR@FAR=1e-3 "
                          f"{report['tar_at_far_1e-3']:.4f}; threshold "
                          f"{report['threshold']:.4f}; ROC in {out}")
            return
        if not images or len(images) != 2:
            raise FacecnnError("give two photos, or --pairs FILE --root DIR")
        result = verify_two(images[0], images[1], pipeline, threshold, opened,
                            pick or "largest")
    if as_json:
        print(json.dumps(result, indent=2))
        return
    verdict = "same person" if result["same_person"] else "different people"
    console.print(f"{verdict}: distance {result['distance']:.4f} (threshold "
                  f"{result['threshold']:.4f}, {result['threshold_source']})")


def embed(
    inputs: List[Path] = typer.Argument(..., help="Photos or folders of photos."),
    out: Path = typer.Option(Path("vectors.npz"), help="Where the vectors go (.npz)."),
    embedder: str = embedder_option(),
    detector: str = DETECTOR,
    landmarks: str = LANDMARKS,
    upsample: int = UPSAMPLE,
    min_size: int = MIN_SIZE,
    crops: bool = CROPS,
    largest_only: bool = typer.Option(False, help="Only the largest face of each photo."),
    flip: bool = FLIP,
    batch_size: int = FACE_BATCH_SIZE,
    device: str = DEVICE,
    workers: Optional[int] = WORKERS,
    overwrite: bool = typer.Option(False, help="Replace OUT if it exists."),
    as_json: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """Write every face's file, box and vector to an .npz (numpy.load reads it)."""
    from facecnn.apps.embeddings import check_destination, embed_paths
    from facecnn.faces.pipeline import FacePipeline

    check_destination(out, overwrite)
    pipeline = FacePipeline.from_config(PipelineConfig(
        detector=detector, landmarks=landmarks, upsample=upsample, min_size=min_size, crops=crops,
        embedder=embedder, flip=flip, batch_size=batch_size, device=device, workers=workers))
    result = embed_paths(inputs, pipeline, largest_only=largest_only,
                         reporter=reporter_for(quiet or as_json))
    for file, why in result.skipped.items():
        err_console.print(f"{file}: {why}", highlight=False)
    if not result.files:
        raise FacecnnError(f"no face found in any of the {len(result.skipped)} files; "
                           f"{out} not written")
    result.save(out)
    if as_json:
        print(json.dumps(result.records()))
        return
    console.print(f"{len(result.files)} faces from {len(set(result.files))} files embedded "
                  f"with {result.embedder} -> {out}")


def capture(
    out: Path = typer.Argument(..., help="Folder of people; crops go to OUT/<person>/."),
    person: List[str] = typer.Option(..., help="Name of the person (repeat for several, one "
                                     "after another)."),
    count: int = typer.Option(50, min=1, help="Face crops to save per person."),
    camera: int = typer.Option(0, help="Camera index."),
    from_video: Optional[Path] = typer.Option(None, help="Read frames from a video file."),
    detector: str = DETECTOR,
    every: int = typer.Option(1, min=1, help="Look at every N-th frame."),
    quiet: bool = QUIET,
) -> None:
    """Save aligned crops of one person's face from a camera or video, for enroll and train.

    The first face seen is the person's; other faces, and frames too like one saved, are
    left out.
    """
    from facecnn.apps.capture import capture_faces
    from facecnn.faces import embedders
    from facecnn.faces.detect import FaceDetector
    from facecnn.faces.embedders import DEFAULT_EMBEDDER

    config = PipelineConfig(detector=detector, min_size=40, embedder=DEFAULT_EMBEDDER)
    saved = capture_faces(out, person, count=count,
                          source=str(from_video) if from_video else camera,
                          detector=FaceDetector.from_config(config),
                          embedder=embedders.from_config(config), every=every,
                          show=from_video is None, reporter=reporter_for(quiet))
    for name, files in saved.items():
        console.print(f"{name}: {len(files)} face crops saved to {out / name}")


def register(app: typer.Typer) -> None:
    for command in (prepare, capture, enroll, recognize, verify, embed):
        app.command()(command)
