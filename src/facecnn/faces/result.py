"""One record per face, enriched stage by stage, and one per image: what every command's
--json, the server's answers, video frames and cluster outputs are written from.

A `Face` starts as a detector's box, confidence and five points, gains a quality where it is
measured, a vector when embedded, and a name, score and distance when named (a track in
videos). `Result` holds one image's (or video frame's) faces: `result.faces`,
`result.plot()`, `result.save(folder)`, `result.to_json()`.

The JSON rules live here only: boxes as whole pixels, scores and distances to 4 decimals,
points to 1; a field appears once its stage has filled it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from facecnn.faces.names import UNKNOWN

Box = tuple[float, float, float, float]
UNCERTAIN = "uncertain"  # a video track whose views disagree (facecnn.video.votes)
DECIMALS = 4

# The JSON fields of a face: (type, description). The server's response models are built
# from this table (serve/schemas.py), so the API and the CLI cannot drift apart.
FACE_FIELDS: dict[str, tuple[Any, str]] = {
    "box": (list[int], "x1, y1, x2, y2 in image pixels."),
    "confidence": (float, "The detector's score (absent where no detector found the box: a "
                          "face given whole, a video track between looks)."),
    "landmarks": (list[list[float]], "Eyes, nose tip, mouth corners (x, y), image-left first."),
    "quality": (float, "How usable the face is for recognition, 0 to 1 (where measured)."),
    "name": (str, 'The person, "unknown", or in videos "uncertain" (the track\'s views '
                  'disagree).'),
    "score": (float, "At least 0.5 exactly when the face is named."),
    "distance": (float | None, "To the person named or nearest: their mean direction (the "
                               "nearest enrolled face in galleries made before); null: "
                               "nobody is enrolled."),
    "track": (int, "In videos: its track, one person followed from frame to frame."),
    "vector": (list[float], "The embedding (only where asked for)."),
}


def json_number(value: float | None) -> float | None:
    """A score, distance or quality as every output writes it (null when not known: JSON
    has no NaN)."""
    if value is None or np.isnan(value):
        return None
    return round(float(value), DECIMALS)


def json_box(box: Box | np.ndarray) -> list[int]:
    """A box as every output writes it: whole pixels."""
    return [int(round(float(v))) for v in box]


@dataclass
class Face:
    """One face. `landmarks`: the five ArcFace points in image pixels (None until found);
    `confidence`: the detector's score (None where no detector drew the box); `name`,
    `score`, `distance`: the recognizer's answer (None until named)."""

    box: Box
    confidence: float | None = None
    landmarks: np.ndarray | None = None
    quality: float | None = None
    vector: np.ndarray | None = None
    name: str | None = None
    score: float | None = None
    distance: float | None = None
    track: int | None = None

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])

    @property
    def known(self) -> bool:
        return self.name is not None and self.name not in (UNKNOWN, UNCERTAIN)

    def named(self, name: str, score: float, distance: float | None) -> Face:
        """This face with the recognizer's answer (in place: the record is enriched)."""
        self.name, self.score, self.distance = name, float(score), distance
        return self

    def to_dict(self, *, landmarks: bool = False, vector: bool = False) -> dict[str, Any]:
        """The face's JSON: every field its stages filled (points and vector when asked)."""
        out: dict[str, Any] = {"box": json_box(self.box)}
        if self.confidence is not None:
            out["confidence"] = json_number(self.confidence)
        if landmarks and self.landmarks is not None:
            out["landmarks"] = np.round(np.asarray(self.landmarks, np.float64), 1).tolist()
        if self.quality is not None:
            out["quality"] = json_number(self.quality)
        if self.name is not None:
            out.update(name=self.name, score=json_number(self.score),
                       distance=json_number(self.distance))
        if self.track is not None:
            out["track"] = self.track
        if vector and self.vector is not None:
            out["vector"] = np.asarray(self.vector, np.float64).tolist()
        return out


@dataclass
class Result:
    """The faces of one image or video frame, largest first, from `file` (a path, an upload's
    name, a stream's); `error` says why there are none to be had. `image` (RGB) is kept where
    the image was in memory anyway, for `plot`."""

    file: Path | str
    faces: list[Face] = field(default_factory=list)
    error: str | None = None
    frame: int = 0
    time: float | None = None  # seconds into a video
    image: np.ndarray | None = field(default=None, repr=False, compare=False)
    chips: np.ndarray | None = field(default=None, repr=False, compare=False)  # to embed

    def __iter__(self) -> Iterator[Face]:
        return iter(self.faces)

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, k: int) -> Face:
        return self.faces[k]

    @property
    def boxes(self) -> list[Box]:
        return [f.box for f in self.faces]

    @property
    def vectors(self) -> np.ndarray:
        """The faces' vectors, one row each."""
        return np.stack([f.vector for f in self.faces]) if self.faces else np.zeros((0, 0))

    def to_dict(self, *, landmarks: bool = False, vector: bool = False) -> dict[str, Any]:
        """The record every command prints: {"file", "frame", ["time"], "faces", ["error"]}."""
        out: dict[str, Any] = {"file": str(self.file), "frame": self.frame}
        if self.time is not None:
            out["time"] = round(self.time, 3)
        out["faces"] = [f.to_dict(landmarks=landmarks, vector=vector) for f in self.faces]
        if self.error:
            out["error"] = self.error
        return out

    def to_json(self, **options: Any) -> str:
        return json.dumps(self.to_dict(**options))

    def plot(self) -> np.ndarray:
        """The image (BGR, for OpenCV) with each face's box and label drawn."""
        import cv2

        if self.image is None:
            from facecnn.data.decode import read_image

            self.image = read_image(Path(self.file))
        return draw(cv2.cvtColor(self.image, cv2.COLOR_RGB2BGR), self.faces)

    def save(self, folder: Path | str) -> Path:
        """Write the plotted image into `folder` as <stem>.jpg (never over another file)."""
        import cv2

        from facecnn.fileio import free_path

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        target = free_path(folder, f"{Path(str(self.file)).stem or 'image'}.jpg")
        if not cv2.imwrite(str(target), self.plot()):
            raise OSError(f"could not write {target}")
        return target


def draw(image_bgr: np.ndarray, faces: list[Face]) -> np.ndarray:
    """Seed C's display: green box with 'name score' for known faces, red 'unknown' (orange
    'uncertain' for a video track whose views disagree), after the track's number; a face
    not named yet gets a white box."""
    import cv2

    out = image_bgr.copy()
    thickness = max(1, round(max(out.shape[:2]) / 400))
    for face in faces:
        colour = {UNKNOWN: (0, 0, 255), UNCERTAIN: (0, 140, 255),
                  None: (255, 255, 255)}.get(face.name, (0, 200, 0))
        x1, y1, x2, y2 = json_box(face.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        label = f"{face.name} {face.score:.2f}" if face.known else face.name or ""
        if face.track is not None:
            label = f"#{face.track} {label}"
        if not label:
            continue
        scale = 0.4 * thickness + 0.1
        (w, h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(y1 - h - base - 2, 0)
        cv2.rectangle(out, (x1, top), (x1 + w + 2, top + h + base + 2), colour, cv2.FILLED)
        cv2.putText(out, label, (x1 + 1, top + h + 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thickness, cv2.LINE_AA)
    return out
