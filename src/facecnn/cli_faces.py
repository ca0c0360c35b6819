"""The face commands of `facecnn`: prepare, capture, enroll, recognize, verify, gallery."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from facecnn.errors import FacecnnError
from facecnn.faces.detectors import DEFAULT_DETECTOR, DETECTORS
from facecnn.terminal import console, err_console, reporter_for

EMBEDDER_HELP = ("dlib, dlib_torch (dlib's network in PyTorch: batched, GPU), run:PATH or "
                 "onnx:PATH.")
SAME_VECTORS = "dlib and dlib_torch galleries are interchangeable (same vectors)."
DETECTOR_HELP = f"{', '.join(DETECTORS.names())} (what each is: `facecnn detectors`)."
LANDMARKS = typer.Option("auto", help="auto: the detector's five points, else MTCNN's O-Net "
                         "(MIT), and dlib chips from dlib's 5-point model (CC0); dlib68: "
                         "dlib's 68-point model for both (iBUG 300-W: non-commercial).")


def _detector(name: str, upsample: int, min_size: int, device: str = "auto",
              landmarks: str = "auto"):
    from facecnn.faces.detect import FaceDetector

    return FaceDetector(name, upsample=upsample, min_size=min_size, device=device,
                        landmarks=landmarks)


def _embedder(name: str, landmarks: str = "auto", **options):
    """The named embedder; dlib's chips come from the landmark model `--landmarks` names."""
    from facecnn.faces.embedders import create_embedder
    from facecnn.faces.landmarks import chip_shape

    return create_embedder(name, landmarks=chip_shape(landmarks), **options)


def _gallery_embedder(name: str | None, device: str):
    """The embedder a gallery is searched with when the user names one (else the gallery's)."""
    return None if name is None else _embedder(name, device=device)


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def prepare(
    raw: Path = typer.Argument(..., help="Photos, one folder per person."),
    out: Path = typer.Argument(..., help="Where the aligned face crops go (same layout)."),
    detector: str = typer.Option(DEFAULT_DETECTOR, help=DETECTOR_HELP),
    landmarks: str = LANDMARKS,
    upsample: int = typer.Option(1, min=0, help="Detector upsampling (finds smaller faces)."),
    min_size: int = typer.Option(20, min=1, help="Smallest face side kept, in pixels."),
    crop: Optional[str] = typer.Option(
        None, help="Cut faces as this model or run takes them: a model name (dlib_resnet: "
        "dlib's 150 px chips) or a run folder. Default: the ArcFace template, margin 0.2."),
    size: Optional[int] = typer.Option(None, min=16, help="Crop side in pixels [default: 160]."),
    margin: Optional[float] = typer.Option(None, min=0.0, max=1.0,
                                           help="Room around the face [default: 0.2]."),
    multi: str = typer.Option("largest", help="Photos with several faces: largest, all, skip."),
    overwrite: bool = typer.Option(False, help="Replace crops that already exist in OUT."),
    quiet: bool = typer.Option(False),
) -> None:
    """Find, align and crop every face; lists photos with no face or several faces."""
    from facecnn.faces.crops import describe
    from facecnn.faces.prepare import REPORT
    from facecnn.faces.prepare import prepare as run_prepare

    layout = _prepare_crop(crop, size, margin)
    report = run_prepare(raw, out, _detector(detector, upsample, min_size, landmarks=landmarks),
                         crop=layout, multi=multi, overwrite=overwrite,
                         reporter=reporter_for(quiet))
    for name in report.empty_folders:
        err_console.print(f"empty person folder skipped: {escape(name)}", highlight=False)
    console.print(f"{report.faces_written} face crops written to {out} from {report.images} "
                  f"images; {len(report.no_face)} with no face, {len(report.multiple_faces)} "
                  f"with several, {len(report.unreadable)} unreadable, "
                  f"{len(report.kept_existing)} existing kept (see {out / REPORT}); "
                  f"{describe(layout)}")
    if not report.crops:
        raise FacecnnError(f"no face crop written or kept: nothing to train or enroll on "
                           f"(why in {out / REPORT})")


def _prepare_crop(crop: str | None, size: int | None, margin: float | None) -> dict:
    """prepare's layout: a model's or run's (--crop), else the template with --size/--margin."""
    from facecnn.faces.crops import crop_for
    from facecnn.faces.prepare import DEFAULT_CROP

    if crop is None:
        return {"size": size or DEFAULT_CROP["size"],
                "margin": DEFAULT_CROP["margin"] if margin is None else margin}
    if size is not None or margin is not None:
        raise FacecnnError("--crop sets the size and layout: drop --size/--margin")
    return crop_for(crop)


def enroll(
    faces: Path = typer.Argument(..., help="Photos or prepared crops, one folder per person."),
    gallery: Path = typer.Option(..., help="Gallery file (SQLite), created if missing."),
    embedder: str = typer.Option("dlib", help=EMBEDDER_HELP),
    detector: str = typer.Option(DEFAULT_DETECTOR, help=DETECTOR_HELP),
    landmarks: str = LANDMARKS,
    upsample: int = typer.Option(1, min=0),
    min_size: int = typer.Option(20, min=1),
    threshold: Optional[float] = typer.Option(None, help="Store this threshold instead of "
                                              "calibrating one."),
    calibrate: Optional[bool] = typer.Option(None, "--calibrate/--no-calibrate", help="Calibrate "
                                             "the unknown threshold from the enrolled people "
                                             "(leave-one-out). Default: yes, unless a "
                                             "threshold was set by hand with --threshold."),
    far: float = typer.Option(0.01, min=0.0, max=0.5, help="Calibrate for this share of "
                              "strangers' faces named (judged on the gallery's own people and "
                              "on a shipped cohort of strangers' vectors: docs/models.md)."),
    flip: bool = typer.Option(False, help="Average each face with its mirror image."),
    jitter: int = typer.Option(0, min=0, help="dlib: average this many jittered copies."),
    batch_size: int = typer.Option(32, min=1),
    workers: Optional[int] = typer.Option(None, min=1, help="Processes for detection and "
                                          "embedding (default: one per core)."),
    quiet: bool = typer.Option(False),
) -> None:
    """Embed every person's photos into a gallery (no training) and calibrate 'unknown'."""
    from facecnn.faces.enroll import enroll as run_enroll

    reporter = reporter_for(quiet)
    report = run_enroll(faces, gallery, _embedder(embedder, landmarks, flip=flip, jitter=jitter,
                                                  batch_size=batch_size),
                        _detector(detector, upsample, min_size, landmarks=landmarks),
                        threshold=threshold, calibrate=calibrate, far=far, workers=workers,
                        reporter=reporter)
    for folder in report.empty_folders:
        err_console.print(f"empty person folder skipped: {folder}", highlight=False)
    for file in report.no_face:
        err_console.print(f"no face: {file}", highlight=False)
    for item in report.unreadable:
        err_console.print(f"unreadable: {item['file']} ({item['reason']})", highlight=False)
    added = {person: n for person, n in report.people.items() if n}
    already = (f"; {len(report.already)} photos were already enrolled (nothing added for them)"
               if report.already else "")
    console.print(f"enrolled {sum(added.values())} new faces of {len(added)} people into "
                  f"{gallery}{already}; threshold {report.threshold:.4f} "
                  f"({report.threshold_source}){_expected(report.calibration)}", highlight=False)


def _expected(calibration: dict | None) -> str:
    """What a calibrated threshold is expected to do, in words."""
    if not calibration:
        return ""
    strangers = calibration.get("cohort", {}).get("expected_far", calibration["far"])
    return (f": expected {1 - calibration['frr']:.0%} of enrolled people's photos named, "
            f"{strangers:.1%} of strangers' faces")


def recognize(
    inputs: List[str] = typer.Argument(None, help="Images, folders of images or videos."),
    gallery: Optional[Path] = typer.Option(None, help="Gallery made by `facecnn enroll`."),
    model: Optional[Path] = typer.Option(None, help="A training run (seed C's classifier)."),
    camera: Optional[int] = typer.Option(None, help="Camera index for live recognition."),
    embedder: Optional[str] = typer.Option(None, help="Search the gallery with this embedder "
                                           "(default: the one that made it); " + SAME_VECTORS),
    detector: str = typer.Option(DEFAULT_DETECTOR, help=DETECTOR_HELP),
    landmarks: str = LANDMARKS,
    upsample: int = typer.Option(1, min=0),
    min_size: int = typer.Option(20, min=1),
    threshold: Optional[float] = typer.Option(None, help="Distance above which a face is "
                                              "unknown (default: the gallery's)."),
    mode: str = typer.Option("nearest", help="nearest or mean (per-person mean vector)."),
    min_confidence: float = typer.Option(0.5, help="--model: softmax below this is unknown."),
    save: Optional[Path] = typer.Option(None, help="Write annotated images/videos here."),
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON."),
    every: int = typer.Option(1, min=1, help="Videos: recognise every N-th frame."),
    device: str = typer.Option("auto"),
    workers: Optional[int] = typer.Option(None, min=1, help="Processes for detection and "
                                          "embedding (default: one per core)."),
    quiet: bool = typer.Option(False),
) -> None:
    """Name every face in photos, videos or a live camera; strangers are 'unknown'."""
    from facecnn.faces.recognize import Recognizer
    from facecnn.faces.sources import recognize_camera, recognize_inputs

    if camera is None and not inputs:
        raise FacecnnError("give images, folders or videos to recognize, or --camera N")
    recognizer = Recognizer(gallery=gallery, model=model, threshold=threshold, mode=mode,
                            min_confidence=min_confidence, device=device, workers=workers,
                            detector=_detector(detector, upsample, min_size, device, landmarks),
                            embedder=_gallery_embedder(embedder, device))
    if camera is not None:
        recognize_camera(recognizer, camera, save=save)
        return
    records = recognize_inputs(recognizer, [Path(p) for p in inputs], save=save, every=every,
                               reporter=reporter_for(quiet or as_json))
    if as_json:
        print(json.dumps(records, indent=2))
    else:
        table = Table("file", "frame", "faces")
        for record in records:
            names = ", ".join(f"{f['name']} ({f['score']:.2f})" for f in record["faces"])
            if "error" in record:
                names = f"[red]unreadable: {escape(record['error'])}[/red]"
            if record["faces"] or record["frame"] == 0:
                table.add_row(escape(record["file"]), str(record["frame"]), names or "no face")
        console.print(table)
    failed = [r for r in records if "error" in r]
    if failed and len(failed) == len(records):
        raise FacecnnError(f"none of the {len(failed)} images could be read "
                           f"({failed[0]['file']}: {failed[0]['error']})")
    if recognizer.gallery is not None and not quiet:  # on stderr, so --json stays one document
        err_console.print(f"unknown beyond {recognizer.current_threshold().describe()}",
                          highlight=False)


def verify(
    images: List[Path] = typer.Argument(None, help="Two photos to compare."),
    pairs: Optional[Path] = typer.Option(None, help="LFW-style pairs.txt."),
    root: Optional[Path] = typer.Option(None, help="Folder of <Name>/<Name>_0001.jpg."),
    gallery: Optional[Path] = typer.Option(None, help="Use this gallery's embedder and its "
                                           "threshold (as `recognize` and the server do)."),
    embedder: Optional[str] = typer.Option(None, help=EMBEDDER_HELP + " Default: the "
                                           "gallery's, else dlib."),
    detector: str = typer.Option(DEFAULT_DETECTOR, help=DETECTOR_HELP),
    landmarks: str = LANDMARKS,
    upsample: int = typer.Option(1, min=0),
    threshold: Optional[float] = typer.Option(None, help="Same person at or below this "
                                              "distance (default: the gallery's, else the "
                                              "embedder's)."),
    pick: Optional[str] = typer.Option(None, help="The face of each photo: center (nearest "
                                       "the middle; the default with --pairs, as LFW's "
                                       "subjects are) or largest (the default otherwise)."),
    min_size: int = typer.Option(20, min=1),
    flip: bool = typer.Option(False, help="Average each face with its mirror image."),
    jitter: int = typer.Option(0, min=0, help="dlib: average this many jittered copies."),
    workers: Optional[int] = typer.Option(None, min=1, help="Processes for detection and "
                                          "embedding (default: one per core)."),
    as_json: bool = typer.Option(False, "--json"),
    project: str = typer.Option("runs"),
    name: str = typer.Option("exp"),
    quiet: bool = typer.Option(False),
) -> None:
    """Same person? For two photos, or the LFW 10-fold protocol with --pairs and --root."""
    from contextlib import nullcontext

    from facecnn.faces.embedders import DEFAULT_EMBEDDER
    from facecnn.faces.gallery import Gallery
    from facecnn.faces.pipeline import FacePipeline
    from facecnn.faces.verify import REPORT_KEYS, verify_pairs, verify_two

    with Gallery.open(gallery) if gallery is not None else nullcontext() as opened:
        chosen = _embedder(embedder or (opened.embedder if opened else DEFAULT_EMBEDDER),
                           landmarks, flip=flip, jitter=jitter)
        if opened is not None:
            opened.check_embedder(chosen)
        pipeline = FacePipeline(_detector(detector, upsample, min_size, landmarks=landmarks),
                                chosen, workers)
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
    embedder: str = typer.Option("dlib", help=EMBEDDER_HELP),
    detector: str = typer.Option(DEFAULT_DETECTOR, help=DETECTOR_HELP),
    landmarks: str = LANDMARKS,
    upsample: int = typer.Option(1, min=0),
    min_size: int = typer.Option(20, min=1),
    largest_only: bool = typer.Option(False, help="Only the largest face of each photo."),
    flip: bool = typer.Option(False, help="Average each face with its mirror image."),
    batch_size: int = typer.Option(32, min=1),
    device: str = typer.Option("auto", help="dlib_torch/run embedders: cpu, cuda, auto."),
    workers: Optional[int] = typer.Option(None, min=1, help="Processes for detection and "
                                          "embedding (default: one per core)."),
    overwrite: bool = typer.Option(False, help="Replace OUT if it exists."),
    as_json: bool = typer.Option(False, "--json", help="Also print the faces as JSON."),
    quiet: bool = typer.Option(False),
) -> None:
    """Write every face's file, box and vector to an .npz (numpy.load reads it)."""
    from facecnn.faces.embeddings import check_destination, embed_paths
    from facecnn.faces.pipeline import FacePipeline

    check_destination(out, overwrite)
    pipeline = FacePipeline(_detector(detector, upsample, min_size, device, landmarks),
                            _embedder(embedder, landmarks, flip=flip, batch_size=batch_size,
                                      device=device), workers)
    result = embed_paths(inputs, pipeline, largest_only=largest_only,
                         reporter=reporter_for(quiet or as_json))
    for file, why in result.skipped.items():
        err_console.print(escape(f"{file}: {why}"), highlight=False)
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
    out: Path = typer.Argument(..., help="Folder of people; frames go to OUT/<person>/."),
    person: List[str] = typer.Option(..., help="Name of the person (repeat for several)."),
    count: int = typer.Option(50, min=1, help="Frames to save per person."),
    camera: int = typer.Option(0, help="Camera index."),
    from_video: Optional[Path] = typer.Option(None, help="Read frames from a video file."),
    detector: str = typer.Option("haar", help=DETECTOR_HELP),
    every: int = typer.Option(1, min=1, help="Look at every N-th frame."),
    quiet: bool = typer.Option(False),
) -> None:
    """Save frames that show exactly one face, for each person (seed C's face_capture)."""
    from facecnn.faces.sources import capture_faces

    saved = capture_faces(out, person, count=count,
                          source=str(from_video) if from_video else camera,
                          detector=_detector(detector, 1, 40), every=every,
                          show=from_video is None, reporter=reporter_for(quiet))
    for name, files in saved.items():
        console.print(f"{name}: {len(files)} frames saved to {out / name}")


def serve(
    gallery: Optional[Path] = typer.Option(None, help="Gallery for recognize/verify/people "
                                           "(created, empty, if missing)."),
    model: Optional[Path] = typer.Option(None, help="A run or model.onnx for /v1/classify."),
    host: Optional[str] = typer.Option(None, help="Default 0.0.0.0 with keys, else 127.0.0.1."),
    port: int = typer.Option(8000),
    api_key_file: Optional[Path] = typer.Option(None, help=escape("Lines `KEY [read|admin]` "
                                                "(or $FACECNN_API_KEYS).")),
    max_upload_mb: float = typer.Option(10.0, min=0.01, help="Largest upload (413 beyond)."),
    max_pixels: int = typer.Option(40_000_000, min=1),
    embedder: Optional[str] = typer.Option(None, help="Search the gallery with this embedder "
                                           "(default: the one that made it, but dlib_torch for "
                                           "dlib galleries: same vectors, ~3.5x faster); a new "
                                           "gallery is made for it (default dlib)."),
    detector: str = typer.Option(DEFAULT_DETECTOR, help=DETECTOR_HELP),
    workers: int = typer.Option(1, min=1, help="Server processes (one per core serves about "
                                "that many times more requests; the gallery is shared)."),
    max_queue: int = typer.Option(32, min=0, help="Model requests each process holds beyond "
                                  "the two it works on; more get 503 with Retry-After."),
) -> None:
    """REST API, web page at / and OpenAPI docs at /docs, on one port."""
    import uvicorn

    from facecnn.serve.security import KeyStore
    from facecnn.serve.settings import ServeSettings, log_config

    keys = KeyStore.load(api_key_file)
    local = ("127.0.0.1", "localhost")
    if keys is None and host not in (None, *local):
        raise FacecnnError("without API keys the server only listens on 127.0.0.1; give "
                           "--api-key-file to serve other machines")
    host = host or ("0.0.0.0" if keys else "127.0.0.1")

    def text(path: Path | None) -> str | None:
        return str(path.resolve()) if path is not None else None

    settings = ServeSettings(text(gallery), text(model), text(api_key_file), max_upload_mb,
                             max_pixels, detector, embedder, max_queue)
    if gallery is not None and not gallery.exists():
        made_for = settings.new_gallery()
        console.print(f"created the empty gallery {escape(str(gallery))} ({made_for}): enrol "
                      "people with POST /v1/people/NAME or on the web page", highlight=False)
    if workers == 1:
        app = settings.app()
    else:
        problem = settings.problem()  # one line here rather than a traceback from every worker
        if problem:
            raise FacecnnError(problem)
        settings.export(workers)
        app = "facecnn.serve.settings:app_from_env"
    if host in local:
        reach = "this machine only" + ("; no API keys" if keys is None else "")
    else:
        reach = "reachable from the network; every /v1 call needs an API key"
    console.print(f"serving http://{host}:{port} ({reach})", highlight=False)
    uvicorn.run(app, factory=workers > 1, workers=workers, host=host, port=port,
                log_level="warning", log_config=log_config())


gallery_app = typer.Typer(help="List, rename or remove the people of a gallery.",
                          no_args_is_help=True)


@gallery_app.command("list")
def gallery_list(gallery: Path = typer.Argument(...),
                 as_json: bool = typer.Option(False, "--json")) -> None:
    """People and their face counts."""
    from facecnn.faces.gallery import Gallery

    with Gallery.open(gallery) as g:
        people = g.people()
        info = {"embedder": g.embedder, "threshold": g.threshold,
                "people": [{"name": n, "faces": c} for n, c in people]}
    if as_json:
        print(json.dumps(info, indent=2))
        return
    table = Table("person", "faces", title=f"{gallery} ({info['embedder']}, threshold "
                  f"{info['threshold']})")
    for name, faces in people:
        table.add_row(name, str(faces))
    console.print(table)


@gallery_app.command("index")
def gallery_index(gallery: Path,
                  exact_limit: int = typer.Option(50_000, help="Exact search up to this many "
                                                  "faces, IVF above.")) -> None:
    """Build or refresh the FAISS index beside the gallery (a cache of the database)."""
    from facecnn.faces.gallery import Gallery
    from facecnn.faces.index import GalleryIndex

    with Gallery.open(gallery) as g:
        index = GalleryIndex.for_gallery(g, exact_limit=exact_limit)
    console.print(f"{index.kind} index of {len(index)} faces: {gallery}.faiss", highlight=False)


@gallery_app.command("rename")
def gallery_rename(gallery: Path, old: str, new: str) -> None:
    """Rename a person."""
    from facecnn.faces.gallery import Gallery

    with Gallery.open(gallery) as g:
        g.rename(old, new)
    console.print(f"renamed {old} to {new}")


@gallery_app.command("remove")
def gallery_remove(gallery: Path, name: str) -> None:
    """Remove a person and all their faces."""
    from facecnn.faces.gallery import Gallery

    with Gallery.open(gallery) as g:
        removed = g.remove(name)
    console.print(f"removed {name} ({removed} faces)")


def _model_files(files) -> list[dict[str, str]]:
    return [{"file": m.name, "from": m.source, "licence": m.licence} for m in files]


def _print_rows(rows: list[dict], columns: dict[str, str], as_json: bool) -> None:
    """The rows as JSON, or as a table of `columns` (key -> heading); model files last."""
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(*columns.values(), "model files (licence)")
    for row in rows:
        files = "; ".join(f"{m['file']} from {m['from']} ({m['licence']})" for m in row["models"])
        table.add_row(*(escape(str(row[key])) for key in columns), escape(files))
    console.print(table)


def detectors(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every face detector: what it is, its landmarks, speed, model files and licences."""
    from facecnn.faces.detect import DEFAULT_LANDMARKER
    from facecnn.faces.landmarks import LANDMARKERS

    step = LANDMARKERS.get(DEFAULT_LANDMARKER)
    rows = [{"name": e.name, "description": e.help,
             "landmarks": "own 5 points" if e.value.gives_landmarks else
             f"{DEFAULT_LANDMARKER} on its boxes", "speed_2_cpu_cores": e.value.speed,
             "models": _model_files(e.value.models if e.value.gives_landmarks
                                    else (*e.value.models, *step.models))}
            for e in DETECTORS.entries()]
    _print_rows(rows, {"name": "detector", "description": "what it is",
                       "landmarks": "landmarks", "speed_2_cpu_cores": "speed"}, as_json)


def embedders(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every face embedder: what it is, its default threshold, model files and licences."""
    from facecnn.faces.embedders import EMBEDDERS

    rows = [{"name": e.name + (":PATH" if e.name in ("run", "onnx") else ""),
             "description": e.help, "default_threshold": e.value.default_threshold,
             "same_vectors_as": [o.name for o in EMBEDDERS.entries() if o.name != e.name
                                 and e.value.family and o.value.family == e.value.family],
             "models": _model_files(e.value.models)} for e in EMBEDDERS.entries()]
    _print_rows(rows, {"name": "embedder", "description": "what it is",
                       "default_threshold": "threshold"}, as_json)


def register(app: typer.Typer) -> None:
    for command in (prepare, capture, enroll, recognize, verify, embed, serve, detectors,
                    embedders):
        app.command()(command)
    app.add_typer(gallery_app, name="gallery")
