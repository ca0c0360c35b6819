"""Video: frames per second and the people named, on the real hamilton.mp4 (640x360) and on a
1080p copy of it, for three ways of recognizing every frame, in one run on one machine:

  face_recognition   its example's per-frame loop: detect (HOG) + encode every face of every
                     frame, then compare with the known encodings (tolerance 0.6);
  facecnn per-frame  facecnn before tracking: `recognize clip.mp4` ran detect + embed + gallery
                     search on every frame (Recognizer called per frame);
  facecnn tracked    `recognize clip.mp4` now: detect every few frames (adaptive), track in
                     between, embed a track's face every few frames, one name per track.

Nobody in the clip is in a shipped gallery, so the people are found first: face_recognition's
encodings of every frame are clustered as its clustering example does (dlib's chinese
whispers, linked within 0.5) and each cluster of at least 10 faces becomes a person p1, p2...
(the singer seen far off in the first scene and close up in the third is one person: grouping
by running means split him in two, with his close-ups enrolled under both names); five of
their faces (from frames spread over the clip) are enrolled into a facecnn gallery at
face_recognition's tolerance (0.6: the pipelines are compared, not the thresholds; a
threshold calibrated from five faces a person is far stricter), and face_recognition knows
each person by their cluster's encodings (nearest within 0.6). "names" lists who
each method named anywhere in the clip; "agree" is the share of face_recognition's named faces
(frame by frame) that the method gives the same name; "load" is the machine's 1-minute
load average after each row (other work on the cores lowers frames/s, not the ratios).

Needs face_recognition (`pip install --no-deps face_recognition`); its model package's
pkg_resources (gone from setuptools 81) is stood in for by the package's own folder.

    python benchmarks/video.py [--data ../shared/data/videos/hamilton.mp4] [--frames-1080 120]
        [--detectors mtcnn,hog] [--out benchmarks/results/video.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from datapath import SHARED, require

GROUP_DISTANCE = 0.5
MIN_GROUP = 10
TOLERANCE = 0.6  # face_recognition's compare_faces default, and the facecnn gallery's threshold


def frames_of(video: Path, limit: int | None = None, size: tuple[int, int] | None = None):
    capture = cv2.VideoCapture(str(video))
    count = 0
    while limit is None or count < limit:
        ok, frame = capture.read()
        if not ok:
            break
        yield frame if size is None else cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC)
        count += 1
    capture.release()


def make_1080p(video: Path, target: Path, limit: int) -> Path:
    fps = cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS)
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, (1920, 1080))
    for frame in frames_of(video, limit, (1920, 1080)):
        writer.write(frame)
    writer.release()
    return target


def import_face_recognition():
    """face_recognition, its models found without pkg_resources (setuptools >= 81 has none)."""
    import importlib.util
    import types

    if "pkg_resources" not in sys.modules and importlib.util.find_spec("pkg_resources") is None:
        models = Path(importlib.util.find_spec("face_recognition_models").origin).parent
        stand_in = types.ModuleType("pkg_resources")
        stand_in.resource_filename = lambda package, name: str(models / name)
        sys.modules["pkg_resources"] = stand_in
    import face_recognition

    return face_recognition


def face_recognition_loop(video: Path) -> tuple[list[list], float]:
    """Per frame: [(box, encoding)], and the seconds the loop took (face_recognition's
    example: every frame detected with HOG and every face encoded)."""
    face_recognition = import_face_recognition()

    found, start = [], time.perf_counter()
    for frame in frames_of(video):
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        locations = face_recognition.face_locations(rgb)
        found.append(list(zip(locations, face_recognition.face_encodings(rgb, locations))))
    return found, time.perf_counter() - start


def people_of(found: list[list]) -> list[np.ndarray]:
    """The clip's people as face_recognition's clustering example finds them: dlib's chinese
    whispers on every face's encoding (linked within 0.5); clusters of MIN_GROUP faces or
    more are the people, each known by its members' encodings."""
    import dlib

    encodings = [encoding for faces in found for _, encoding in faces]
    labels = np.array(dlib.chinese_whispers_clustering(
        [dlib.vector(e.tolist()) for e in encodings], GROUP_DISTANCE))
    sizes = np.bincount(labels)
    return [np.array(encodings)[labels == k] for k in np.argsort(-sizes)
            if sizes[k] >= MIN_GROUP]


def person_of(people: list[np.ndarray], encoding: np.ndarray) -> tuple[int, float]:
    """The nearest person (index, distance to their nearest face)."""
    distances = [float(np.linalg.norm(p - encoding, axis=1).min()) for p in people]
    best = int(np.argmin(distances))
    return best, distances[best]


def names_by_face_recognition(found: list[list], people: list[np.ndarray]) -> list[list]:
    """Per frame: [(box as x1, y1, x2, y2, name)], named as its example names (nearest known
    encoding within 0.6; a person's encodings are their cluster's)."""
    out = []
    for faces in found:
        named = []
        for (top, right, bottom, left), encoding in faces:
            best, distance = person_of(people, encoding)
            name = f"p{best + 1}" if distance <= TOLERANCE else "unknown"
            named.append(((left, top, right, bottom), name))
        out.append(named)
    return out


def write_gallery_photos(video: Path, found: list[list], people: list[np.ndarray],
                         root: Path) -> Path:
    """Five faces of each person (of their own cluster), from frames spread over the clip,
    with room around them."""
    frames = list(frames_of(video))
    for k, person in enumerate(people):
        mine = [(i, box) for i, faces in enumerate(found) for box, enc in faces
                if np.linalg.norm(person - enc, axis=1).min() == 0.0]
        folder = root / f"p{k + 1}"
        folder.mkdir(parents=True)
        for j in np.linspace(0, len(mine) - 1, 5).round().astype(int):
            i, (top, right, bottom, left) = mine[j]
            side = max(right - left, bottom - top)
            y1, x1 = max(top - side, 0), max(left - side, 0)
            cv2.imwrite(str(folder / f"{i}.jpg"), frames[i][y1:bottom + side, x1:right + side])
    return root


def agreement(reference: list[list], named: list[list]) -> float:
    """Share of the reference's named faces that `named` gives the same name (IoU >= 0.3)."""
    from facecnn.faces.boxes import iou

    hits = total = 0
    for ref, mine in zip(reference, named):
        for box, name in ref:
            if name == "unknown":
                continue
            total += 1
            hits += any(n == name and iou(box, b) >= 0.3 for b, n in mine)
    return hits / max(total, 1)


def facecnn_per_frame(video: Path, gallery: Path, detector: str) -> tuple[list[list], float]:
    """facecnn before tracking: the Recognizer on every frame."""
    from facecnn.faces.detect import FaceDetector
    from facecnn.faces.recognize import Recognizer

    recognizer = Recognizer(gallery=gallery, detector=FaceDetector(detector))
    out, start = [], time.perf_counter()
    for frame in frames_of(video):
        results = recognizer(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        out.append([(r.box, r.name) for r in results])
    return out, time.perf_counter() - start


def facecnn_tracked(video: Path, gallery: Path, detector: str
                    ) -> tuple[list[list], float, int, dict[str, float]]:
    from facecnn.faces.detect import FaceDetector
    from facecnn.faces.recognize import Recognizer
    from facecnn.video import VideoRecognizer, VideoSource

    # as `recognize clip.mp4` does: dlib's vectors from its PyTorch port for videos
    recognizer = Recognizer(gallery=gallery, detector=FaceDetector(detector))
    start = time.perf_counter()
    result = VideoRecognizer(recognizer).run(VideoSource(str(video)))
    seconds = time.perf_counter() - start
    return ([[(f.box, f.name) for f in result.faces(k)] for k in range(len(result.frames))],
            seconds, len(result.tracks), result.stages)


def named_people(frames: list[list]) -> list[str]:
    return sorted({name for faces in frames for _, name in faces
                   if name not in ("unknown", "uncertain")})


def measure(video: Path, label: str, gallery: Path, reference: list[list], reference_s: float,
            detectors: list[str]) -> list[dict]:
    count = len(reference)
    rows = [{"clip": label, "method": "face_recognition per-frame (hog)",
             "fps": count / reference_s, "names": named_people(reference), "agree": 1.0,
             "load": os.getloadavg()[0]}]
    for detector in detectors:
        named, seconds = facecnn_per_frame(video, gallery, detector)
        rows.append({"clip": label, "method": f"facecnn per-frame ({detector})",
                     "fps": count / seconds, "names": named_people(named),
                     "agree": agreement(reference, named), "load": os.getloadavg()[0]})
        loop_fps = rows[-1]["fps"]
        named, seconds, tracks, stages = facecnn_tracked(video, gallery, detector)
        rows.append({"clip": label, "method": f"facecnn tracked ({detector})",
                     "fps": count / seconds, "names": named_people(named),
                     "agree": agreement(reference, named), "tracks": tracks,
                     "load": os.getloadavg()[0], "x_facecnn_per_frame": count / seconds / loop_fps,
                     "ms_per_frame": {k: round(1000 * v / count, 2) for k, v in stages.items()}})
    base = rows[0]["fps"]
    for row in rows:
        row["speedup"] = row["fps"] / base
        print_row(row)
    return rows


def print_row(row: dict) -> None:
    print(f"{row['clip']:<22} {row['method']:<34} {row['fps']:8.2f} {row['speedup']:7.2f} "
          f"{row['agree']:6.2f} {row['load']:5.1f}  {','.join(row['names'])}"
          + (f"  ({row['tracks']} tracks)" if "tracks" in row else ""), flush=True)
    if "ms_per_frame" in row:
        steps = ", ".join(f"{k} {v:.1f}" for k, v in row["ms_per_frame"].items())
        print(f"{'':<23}{row['x_facecnn_per_frame']:.2f}x facecnn per-frame; "
              f"ms a frame: {steps}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED / "videos" / "hamilton.mp4",
                        help="The clip (a 640x360 video with several people).")
    parser.add_argument("--frames-1080", type=int, default=120,
                        help="Frames of the 1080p copy (face_recognition takes ~1 s each).")
    parser.add_argument("--detectors", default="mtcnn,hog")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/video.json"))
    args = parser.parse_args()
    require(args.data, what="a video (hamilton.mp4)")
    detectors = args.detectors.split(",")
    rows = []
    print(f"{'clip':<22} {'method':<34} {'frames/s':>8} {'x loop':>7} {'agree':>6} {'load':>5}"
          "  names")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        found, seconds = face_recognition_loop(args.data)
        people = people_of(found)
        photos = write_gallery_photos(args.data, found, people, root / "people")
        gallery = root / "people.db"
        subprocess.run([sys.executable, "-m", "facecnn", "enroll", str(photos), "--gallery",
                        str(gallery), "--threshold", str(TOLERANCE), "--quiet"], check=True,
                       stdout=subprocess.DEVNULL)
        reference = names_by_face_recognition(found, people)
        rows += measure(args.data, "hamilton 640x360", gallery, reference, seconds, detectors)
        big = make_1080p(args.data, root / "hamilton_1080p.mp4", args.frames_1080)
        found_big, seconds_big = face_recognition_loop(big)
        rows += measure(big, f"1080p ({args.frames_1080} frames)", gallery,
                        names_by_face_recognition(found_big, people), seconds_big, detectors)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cores": os.cpu_count(), "people": len(people),
                                    "rows": rows}, indent=2) + "\n")
    print(f"{len(people)} people found in the clip; written {args.out}")


if __name__ == "__main__":
    main()
