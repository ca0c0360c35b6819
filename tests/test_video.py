"""Video and streams: clips made from real AT&T faces (panned, zoomed, cut between, a person
walking in, with every frame's people known), the real hamilton.mp4, and a fake MJPEG camera
on 127.0.0.1 that drops and comes back. Tracks, names, events, adaptive detection, bad input."""

from __future__ import annotations

import csv
import json
import socket
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


def write_clip(path: Path, frames: list[np.ndarray]) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
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


@pytest.mark.parametrize("name", DETECTORS.names())
def test_any_detector_tracks_one_face(name: str, gallery: Path) -> None:
    """Every registered detector drives the tracker: s1 panning, one track, named."""
    frames = [frame(90, [("s1", 8, 120 + 10 * k, 120, 1.2)]) for k in range(6)]
    recognizer = Recognizer(gallery=gallery, detector=FaceDetector(name, upsample=0, min_size=40))
    result = VideoRecognizer(recognizer, TrackingOptions(every=3)).run(
        VideoSource(str(write_clip(gallery.parent / f"pan_{name}.avi", frames))))
    assert [t.votes.decision().name for t in result.tracks] == ["s1"], name


def test_hamilton_scenes_and_people(work: Path, gallery: Path) -> None:
    """The real clip: three cuts, one face then up to four at once; nobody is enrolled."""
    recognizer = Recognizer(gallery=gallery, detector=FaceDetector("hog", upsample=0))
    result = VideoRecognizer(recognizer).run(VideoSource(str(HAMILTON)))
    assert result.frames_read == 275
    tracks = result.track_records()
    assert all(t["name"] == "unknown" for t in tracks)
    # no track runs across a cut (frames 20, 82, 211)
    for cut in (20, 82, 211):
        assert not any(t["first_frame"] < cut <= t["last_frame"] for t in tracks), cut
    longest = max(tracks, key=lambda t: t["last_frame"] - t["first_frame"])
    assert longest["first_frame"] <= 90 and longest["last_frame"] >= 200  # followed 4 s


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
    document = json.loads(result.stdout)  # what was seen is still reported
    assert len(document["frames"]) + document["dropped_frames"] > _Camera.frames  # both visits
    assert {t["name"] for t in document["tracks"]} == {"s1"}
    events = [json.loads(line) for line in (work / "live.jsonl").read_text().splitlines()]
    assert {e["event"] for e in events} == {"appeared", "left"}
    assert all(e["name"] == "s1" and e["at"] for e in events)


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


def test_the_command_in_a_fresh_process(work: Path, gallery: Path, clip: tuple) -> None:
    """`facecnn recognize clip --json --quiet | jq .tracks`: one JSON document on stdout."""
    result = run_cli("recognize", str(clip[0]), "--gallery", str(gallery), *HOG, "--json",
                     "--quiet", cwd=work)
    assert result.returncode == 0, result.stderr
    assert sorted(t["name"] for t in json.loads(result.stdout)["tracks"]) == sorted(PEOPLE)
