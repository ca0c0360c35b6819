"""Video and streams: clips made from real AT&T faces (panned, zoomed, cut between, a person
walking in, with every frame's people known), the real hamilton.mp4, and a fake MJPEG camera
on 127.0.0.1 that drops and comes back. Tracks, names, events, adaptive detection, bad input."""

from __future__ import annotations

import csv
import json
import os
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest
from PIL import Image

from facecnn.faces.config import PipelineConfig
from facecnn.faces.detect import FaceDetector
from facecnn.faces.detectors import DETECTORS
from facecnn.faces.recognize import Recognizer
from facecnn.video import TrackingOptions, VideoRecognizer, VideoSource
from facecnn.video.votes import Votes
from helpers import ATT_FACES, invoke_cli, run_cli, write_photos

HAMILTON = ATT_FACES.parents[1] / "data" / "videos" / "hamilton.mp4"
PEOPLE = ["s1", "s3", "s4"]  # dlib's HOG finds every one of their photos
WIDTH, HEIGHT, FPS = 320, 240, 10
HOG = ("--detector", "hog")


def frame(background: int, faces: list[tuple[str, int, float, float, float]]) -> np.ndarray:
    """An RGB frame: each (person, photo, centre x, centre y, scale) AT&T face pasted in."""
    out = np.full((HEIGHT, WIDTH, 3), background, np.uint8)
    for person, index, cx, cy, scale in faces:
        face = Image.open(ATT_FACES / person / f"{index}.pgm").convert("RGB")
        face = np.asarray(face.resize((round(92 * scale), round(112 * scale))))
        top, left = round(cy - face.shape[0] / 2), round(cx - face.shape[1] / 2)
        out[top:top + face.shape[0], left:left + face.shape[1]] = face
    return out


def scripted_clip() -> tuple[list[np.ndarray], list[set[str]]]:
    """6 s at 10 frames/s, the people of every frame known: s1 pans right and comes nearer
    (0-2.9 s, its photos changing like a face turning); a cut to another scene with s3, and
    s4 walking in at 3.8 s; both gone from 5.0 s (no cut: the scene stays)."""
    frames, people = [], []
    for k in range(30):
        frames.append(frame(90, [("s1", 6 + k // 6, 90 + 4.5 * k, 120, 1.0 + 0.008 * k)]))
        people.append({"s1"})
    for k in range(30, 50):
        faces = [("s3", 6 + (k - 30) // 5, 90, 115 + 0.5 * (k - 30), 1.0)]
        if k >= 38:
            faces.append(("s4", 6 + (k - 38) // 3, 235, 120, 1.0))
        frames.append(frame(170, faces))
        people.append({f[0] for f in faces})
    frames += [frame(170, [])] * 10
    people += [set()] * 10
    return frames, people


def write_clip(path: Path, frames: list[np.ndarray], codec: str = "MJPG") -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), FPS, (WIDTH, HEIGHT))
    for image in frames:
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("video")


@pytest.fixture(scope="module")
def gallery(work: Path) -> Path:
    """s1, s3, s4 and a fourth person enrolled from photos 1-5 (the clips show 6-10)."""
    photos = write_photos(work / "enroll", [*PEOPLE, "s5"], range(1, 6))
    result = invoke_cli("enroll", str(photos), "--gallery", str(work / "team.db"), *HOG,
                        "--quiet", cwd=work)
    assert result.returncode == 0, result.stderr
    return work / "team.db"


@pytest.fixture(scope="module")
def clip(work: Path) -> tuple[Path, list[set[str]]]:
    frames, people = scripted_clip()
    return write_clip(work / "scripted.avi", frames), people


@pytest.fixture(scope="module")
def tracked(work: Path, gallery: Path, clip: tuple[Path, list[set[str]]]) -> dict:
    """The scripted clip through the CLI: JSON, events, annotated video and crops."""
    result = invoke_cli("recognize", str(clip[0]), "--gallery", str(gallery), *HOG, "--json",
                        "--every", "8", "--events", str(work / "events.csv"), "--save",
                        str(work / "out"), "--quiet", cwd=work)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.e2e
def test_tracks_are_continuous_and_named_once(tracked: dict, clip: tuple) -> None:
    people = clip[1]
    tracks = {t["track"]: t for t in tracked["tracks"]}
    assert sorted(t["name"] for t in tracks.values()) == sorted(PEOPLE)  # 3 tracks, no more
    by_name = {t["name"]: t for t in tracks.values()}
    frames = tracked["frames"]
    assert [f["frame"] for f in frames] == list(range(60))  # every frame, detected or not
    for k, (record, present) in enumerate(zip(frames, people)):
        # a box is its own track's person, once (three tracks for three people: no switch);
        # faces that just went are followed until the next look misses them
        names = [tracks[face["track"]]["name"] for face in record["faces"]]
        assert len(set(names)) == len(names) and set(names) <= (present or {"s3", "s4"}), k
        assert all(face["name"] == tracks[face["track"]]["name"] for face in record["faces"])
        assert not names or k < 50 + 8
    assert (by_name["s1"]["first_frame"], by_name["s1"]["last_frame"]) == (0, 29)  # to the cut
    assert by_name["s3"]["first_frame"] == 30
    # s4 walks in at frame 38, between two looks 8 frames apart: motion brings the look forward
    assert 38 <= by_name["s4"]["first_frame"] <= 41
    for name in ("s3", "s4"):  # gone at frame 50 without a cut: missed by the next look
        assert 49 <= by_name[name]["last_frame"] < 50 + 8
    shown = {n: sum(n in {tracks[f["track"]]["name"] for f in r["faces"]} for r in frames)
             for n in PEOPLE}
    assert shown["s1"] == 30 and shown["s3"] >= 20 and shown["s4"] >= 9  # never lost
    assert all(t["votes"] >= 2 and t["shares"][t["name"]] == 1.0 for t in tracks.values())


@pytest.mark.e2e
def test_events_and_saved_outputs(tracked: dict, work: Path) -> None:
    with (work / "events.csv").open() as handle:
        events = list(csv.DictReader(handle))
    by_track = {t["track"]: t for t in tracked["tracks"]}
    assert [e["event"] for e in events].count("appeared") == 3
    for event in events:
        track = by_track[int(event["track"])]
        assert event["name"] == track["name"]
        when = track["first_time"] if event["event"] == "appeared" else track["last_time"]
        assert float(event["time"]) == pytest.approx(when)
    s1 = [e for e in events if e["name"] == "s1"]
    assert [(e["event"], float(e["time"])) for e in s1] == [("appeared", 0.0), ("left", 2.9)]
    assert [float(e["time"]) for e in events] == sorted(float(e["time"]) for e in events)
    out = work / "out"
    annotated = cv2.VideoCapture(str(out / "scripted.mp4"))
    assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == 60
    for track in tracked["tracks"]:
        crop = Path(track["crop"])
        assert crop.parent == out / "scripted_tracks" and track["name"] in crop.name
        assert cv2.imread(str(crop)).shape[0] >= 100  # the face, with some room around it
    assert json.loads((out / "scripted.json").read_text())["tracks"] == tracked["tracks"]
    again = invoke_cli("recognize", str(work / "scripted.avi"), "--gallery",
                       str(work / "team.db"), *HOG, "--events", str(work / "events.csv"),
                       cwd=work)
    assert again.returncode == 2 and "exists" in again.stderr  # never overwritten


def test_votes_that_disagree_say_uncertain() -> None:
    crop = np.zeros((4, 4, 3), np.uint8)
    votes = Votes()
    for name, weight in (("s1", 3.0), ("s1", 1.0), ("s3", 1.0)):
        votes.add(name, 0.9, 0.3, weight, crop)
    assert votes.decision().name == "s1" and votes.decision().shares == {"s1": 0.8, "s3": 0.2}
    votes.add("s3", 0.9, 0.3, 4.0, crop)  # a heavier (larger, sharper) view of someone else
    assert votes.decision().name == "uncertain"


@pytest.mark.e2e
@pytest.mark.parametrize("name", DETECTORS.names())
def test_any_detector_tracks_one_face(name: str, gallery: Path) -> None:
    """Every registered detector drives the tracker: s1 panning, one track, named."""
    frames = [frame(90, [("s1", 8, 120 + 10 * k, 120, 1.2)]) for k in range(6)]
    recognizer = Recognizer(gallery=gallery, detector=FaceDetector(name, upsample=0, min_size=40))
    result = VideoRecognizer(recognizer, TrackingOptions(every=3)).run(
        VideoSource(str(write_clip(gallery.parent / f"pan_{name}.avi", frames))))
    assert [t.votes.decision().name for t in result.tracks] == ["s1"], name
    # where the time went: every step timed, adding up to the whole
    assert set(result.stages) == {"decode", "detect", "embed", "write", "track"}
    assert result.stages["detect"] > 0 and result.stages["embed"] > 0
    assert sum(result.stages.values()) == pytest.approx(result.seconds, rel=1e-6)


def hamilton_frames(step: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    capture = cv2.VideoCapture(str(HAMILTON))
    k = 0
    while (ok := capture.read())[0]:
        if k % step == 0:
            yield k, ok[1]
        k += 1
    capture.release()


@pytest.fixture(scope="module")
def hamilton(work: Path) -> dict:
    """hamilton.mp4 named frame by frame (every 4th frame, as the per-frame loop did before
    tracking) and tracked, with HOG and a gallery of its two people made from that loop's
    faces: the singer (close-ups in the third scene), the laughing guest (the fourth)."""
    detector = FaceDetector("hog")
    found = {k: (image, detector(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
             for k, image in hamilton_frames(step=4)}
    for name, scene in (("singer", range(82, 211)), ("guest", range(211, 275))):
        views = [(k, faces[0].box) for k, (_, faces) in found.items()
                 if k in scene and len(faces) == 1]
        (work / "hamilton" / name).mkdir(parents=True)
        for k, (x1, y1, x2, y2) in views[::max(len(views) // 4, 1)][:4]:
            side = x2 - x1
            image = found[k][0]
            cv2.imwrite(str(work / "hamilton" / name / f"{k}.jpg"),
                        image[max(int(y1 - side), 0):int(y2 + side),
                              max(int(x1 - side), 0):int(x2 + side)])
    enrolled = invoke_cli("enroll", str(work / "hamilton"), "--gallery",
                          str(work / "hamilton.db"), *HOG, "--threshold", "0.6", "--quiet",
                          cwd=work)
    assert enrolled.returncode == 0, enrolled.stderr
    recognizer = Recognizer(gallery=work / "hamilton.db", detector=detector)
    every_frame = {k: recognizer.name_faces(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), faces)
                   if faces else [] for k, (image, faces) in found.items()}
    return {"every_frame": every_frame,
            "tracked": VideoRecognizer(recognizer).run(VideoSource(str(HAMILTON)))}


@pytest.mark.e2e
def test_hamilton_tracked_covers_the_every_frame_loop(hamilton: dict) -> None:
    """The real clip (three cuts; turning, moving, gesturing people): the tracked path names
    the people the per-frame loop names, on the frames that loop finds them, and more."""
    from facecnn.faces.boxes import iou

    result = hamilton["tracked"]
    assert result.frames_read == 275
    named = {k: result.faces(k) for k in range(len(result.frames))}
    def people(frames: Iterator[list]) -> set[str]:
        return {r.name for faces in frames for r in faces} - {"unknown", "uncertain"}

    assert people(hamilton["every_frame"].values()) == people(named.values()) == {
        "singer", "guest"}
    loop = [(k, r) for k, faces in hamilton["every_frame"].items() for r in faces]
    boxed = [[f for f in named[k] if iou(f.box, r.box) >= 0.3] for k, r in loop]
    assert len(loop) >= 35 and np.mean([bool(b) for b in boxed]) >= 0.9
    same = [any(f.name == r.name for f in b) for (_, r), b in zip(loop, boxed)
            if r.name != "unknown"]
    assert len(same) >= 30 and np.mean(same) >= 0.9
    # ... and it shows a face on at least as many of those frames as the loop finds one
    shown = sum(bool(named[k]) for k in hamilton["every_frame"])
    assert shown >= sum(bool(faces) for faces in hamilton["every_frame"].values())


@pytest.mark.e2e
def test_hamilton_scenes_and_tracks(hamilton: dict) -> None:
    tracks = hamilton["tracked"].track_records()
    # no track runs across a cut (frames 20, 82, 211)
    for cut in (20, 82, 211):
        assert not any(t["first_frame"] < cut <= t["last_frame"] for t in tracks), cut
    longest = max(tracks, key=lambda t: t["last_frame"] - t["first_frame"])
    assert longest["first_frame"] <= 90 and longest["last_frame"] >= 200  # followed 4 s
    assert longest["name"] == "singer" and longest["shares"] == {"singer": 1.0}
    # a track stops embedding once enough views agree
    assert all(t["votes"] <= TrackingOptions().enough_views for t in tracks
               if t["name"] != "uncertain")


@pytest.mark.e2e
def test_a_trained_classifier_names_tracks(work: Path, clip: tuple) -> None:
    """--model: seed C's classifier instead of a gallery, same tracks."""
    photos = write_photos(work / "raw", PEOPLE, range(1, 6))
    trained = invoke_cli("train", str(photos), "--model", "seed_face_cnn3", "--img-size", "64",
                         "--epochs", "1", "--batch-size", "8", "--no-amp", "--quiet",
                         "--project", str(work / "runs"), "--name", "cnn", cwd=work)
    assert trained.returncode == 0, trained.stderr
    result = invoke_cli("recognize", str(clip[0]), "--model", str(work / "runs/train/cnn"),
                        *HOG, "--json", "--quiet", cwd=work)
    assert result.returncode == 0, result.stderr
    tracks = json.loads(result.stdout)["tracks"]
    assert len(tracks) == 3
    assert {t["name"] for t in tracks} <= {*PEOPLE, "unknown", "uncertain"}


# ---- streams -----------------------------------------------------------------------------
class _Camera(BaseHTTPRequestHandler):
    """An MJPEG camera: each connection gets `frames` JPEGs and is then cut off, as a camera
    on a flaky network is; after `sessions` connections it answers 404 (gone for good)."""

    frames, sessions = 25, 2
    served: list[int] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if len(self.served) >= self.sessions:
            self.send_error(404)
            return
        self.served.append(0)
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        image = cv2.cvtColor(frame(90, [("s1", 7, 160, 120, 1.0)]), cv2.COLOR_RGB2BGR)
        jpeg = cv2.imencode(".jpg", image)[1].tobytes()
        for _ in range(self.frames):
            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                             + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
            self.served[-1] += 1
            time.sleep(0.04)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def camera() -> Iterator[tuple[str, list[int]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Camera)
    _Camera.served = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/video.mjpg", _Camera.served
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.e2e
def test_a_dropped_stream_is_reconnected(work: Path, gallery: Path) -> None:
    with camera() as (url, served):
        result = invoke_cli("recognize", url, "--gallery", str(gallery), *HOG, "--json",
                            "--retries", "2", "--timeout", "2", "--events",
                            str(work / "live.jsonl"), cwd=work)
    assert len(served) == 2  # connected, dropped, connected again, dropped, then gone
    assert "dropped; reconnecting (try 1 of 2)" in " ".join(result.stderr.split())
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: stream {url} dropped and did not come back after 2 tries")
    # a JSON line per frame as it came (none kept in memory), then the tracks: what was seen
    # is still reported
    *frames, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(frames) + summary["dropped_frames"] > _Camera.frames  # both visits
    assert [f["frame"] for f in frames] == sorted({f["frame"] for f in frames})
    assert {t["name"] for t in summary["tracks"]} == {"s1"} and "frames" not in summary
    assert {face["name"] for f in frames for face in f["faces"]} <= {"s1", "uncertain"}
    events = [json.loads(line) for line in (work / "live.jsonl").read_text().splitlines()]
    assert {e["event"] for e in events} == {"appeared", "left"}
    assert all(e["name"] == "s1" and e["at"] for e in events)


@pytest.mark.e2e
@pytest.mark.parametrize("case", ["silent_url", "unreadable_video", "no_such_video"])
def test_bad_sources_fail_in_one_line(case: str, work: Path, gallery: Path) -> None:
    listener = socket.socket()  # accepts connections, never says a word
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    source = {"silent_url": f"rtsp://127.0.0.1:{listener.getsockname()[1]}/stream",
              "unreadable_video": str(work / "broken.mp4"),
              "no_such_video": str(work / "none.mp4")}[case]
    (work / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 but not really a video")
    try:
        result = invoke_cli("recognize", source, "--gallery", str(gallery), "--timeout", "1",
                            cwd=work)
    finally:
        listener.close()
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert {"silent_url": "no video within 1 s", "unreadable_video": "cannot open video",
            "no_such_video": "no such file"}[case] in result.stderr


@pytest.mark.e2e
def test_the_command_in_a_fresh_process(work: Path, gallery: Path, clip: tuple) -> None:
    """`facecnn recognize clip --json --quiet | jq .tracks`: one JSON document on stdout."""
    result = run_cli("recognize", str(clip[0]), "--gallery", str(gallery), *HOG, "--json",
                     "--quiet", cwd=work)
    assert result.returncode == 0, result.stderr
    assert sorted(t["name"] for t in json.loads(result.stdout)["tracks"]) == sorted(PEOPLE)


# ---- the server -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(gallery: Path, work: Path, monkeypatch_module: pytest.MonkeyPatch) -> Iterator:
    """`facecnn serve --gallery team.db --detector hog --max-upload-mb 1`, in this process;
    uploads go to a temporary folder of the test's own, to see them removed."""
    from fastapi.testclient import TestClient

    from facecnn.serve.settings import ServeSettings

    monkeypatch_module.setattr(tempfile, "tempdir", str(work / "tmp"))
    (work / "tmp").mkdir()
    app = ServeSettings(gallery=str(gallery), pipeline=PipelineConfig(detector="hog"),
                        max_upload_mb=1.0).app()
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def upload(client, name: str, data: bytes, field: str = "video") -> tuple[int, dict]:
    answer = client.post("/v1/recognize", files={field: (name, data)})
    assert not list((Path(tempfile.gettempdir())).iterdir())  # the upload's file is gone
    return answer.status_code, answer.json()


@pytest.mark.e2e
def test_a_video_upload_gives_the_commands_tracks(client, work: Path, gallery: Path) -> None:
    """POST /v1/recognize with an mp4 (s1 panning), and with a photo: the very JSON of
    `facecnn recognize clip.mp4 --json` and of `facecnn recognize photo.jpg --json`."""
    frames = [frame(90, [("s1", 8, 100 + 8 * k, 120, 1.1)]) for k in range(12)]
    clip = write_clip(work / "upload.mp4", frames, "mp4v")
    status, answer = upload(client, "pan.mp4", clip.read_bytes())
    assert status == 200, answer
    command = invoke_cli("recognize", str(clip), "--gallery", str(gallery), *HOG, "--json",
                         "--quiet", cwd=work)
    assert command.returncode == 0, command.stderr
    expected = json.loads(command.stdout)
    for document in (answer, expected):
        for record in document["frames"] + document["tracks"]:
            record.pop("file")
    assert answer == expected
    assert [t["name"] for t in answer["tracks"]] == ["s1"] and len(answer["frames"]) == 12
    assert all(f["faces"][0]["track"] == 1 for f in answer["frames"][2:])
    still = work / "still.jpg"
    still.write_bytes(cv2.imencode(".jpg", frames[0])[1].tobytes())
    status, photo = upload(client, "s1.jpg", still.read_bytes(), field="image")
    assert status == 200 and photo["faces"][0]["name"] == "s1" and "tracks" not in photo
    command = invoke_cli("recognize", str(still), "--gallery", str(gallery), *HOG, "--json",
                         "--quiet", cwd=work)
    assert json.loads(command.stdout)[0]["faces"] == photo["faces"]  # the same numbers


@pytest.mark.e2e
def test_bad_video_uploads_are_refused_in_one_line(client, work: Path) -> None:
    from facecnn.serve.video import VideoLimits

    clip = write_clip(work / "long.avi", [frame(90, [])] * 20).read_bytes()  # 2 s
    served = client.app.state.service
    cases = [  # (limits, upload, data, status, detail)
        (VideoLimits(seconds=1.5), "long.avi", clip, 413, "video of 2.0 s (20 frames) is over"),
        (VideoLimits(frames=10), "long.avi", clip, 413, "is over 30 s or 10 frames"),
        # its header says 20 frames; FFmpeg reads on through the copies after it
        (VideoLimits(frames=25), "copies.avi", clip * 3, 413, "video over 30 s or 25 frames"),
        (VideoLimits(), "big.avi", clip + os.urandom(2**21), 413, "upload over 1 MB"),
        (VideoLimits(), "cut.avi", clip[:3000], 422, "the video could not be decoded"),
        (VideoLimits(), "notes.mp4", b"just some text, named like a video", 415, "not an image")]
    for limits, name, data, expected, detail in cases:
        served.video_limits = limits
        status, answer = upload(client, name, data)
        assert status == expected and detail in answer["detail"], (name, answer)
        assert "\n" not in answer["detail"]
    served.video_limits = VideoLimits()


@pytest.mark.e2e
def test_serve_video_limits_reach_every_worker(gallery: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """--max-video-seconds/--max-video-frames travel to `--workers N` processes' settings."""
    from facecnn.serve.settings import SETTINGS_ENV, ServeSettings, app_from_env
    from facecnn.serve.video import VideoLimits

    for name in (SETTINGS_ENV, "OMP_NUM_THREADS"):  # export sets both
        monkeypatch.delenv(name, raising=False)
    ServeSettings(gallery=str(gallery), pipeline=PipelineConfig(detector="hog"),
                  max_video_seconds=2.5, max_video_frames=60).export(2)
    service = app_from_env().state.service
    assert service.video_limits == VideoLimits(2.5, 60)
    assert service.detector.config == PipelineConfig(detector="hog")  # whole, to each worker
    help_text = invoke_cli("serve", "--help", cwd=gallery.parent).stdout
    assert "--max-video-seconds" in help_text and "--max-video-frames" in help_text
