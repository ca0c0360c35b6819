"""How faces are found and embedded, as one typed value: built once from the shared flags
or by hand, and handed whole to worker processes, the server and video, which build their
detector (`FaceDetector.from_config`) and embedder (`embedders.from_config`) from it rather
than from a dict of arguments each."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from facecnn.faces.detectors import DEFAULT_DETECTOR, DEFAULT_MIN_SIZE


@dataclass(frozen=True)
class PipelineConfig:
    """detector: a registered detector (`facecnn detectors`); landmarks: where the five points
    come from (auto: the detector's own, else MTCNN's O-Net; onet; dlib68); upsample: look for
    smaller faces; min_size: smallest face side kept, in pixels; max_side: images are
    downscaled to this longest side for detection; embedder: a registered embedder, None for
    the gallery's own; flip, jitter: average each face with its mirror / jittered copies;
    batch_size: face crops per forward pass; device: auto, cpu, cuda, mps; workers: processes
    for folders of photos (None: one per core); crops: every image is one face already (no
    detection)."""

    detector: str = DEFAULT_DETECTOR
    landmarks: str = "auto"
    upsample: int = 1
    min_size: int = DEFAULT_MIN_SIZE
    max_side: int = 1280
    embedder: str | None = None
    flip: bool = False
    jitter: int = 0
    batch_size: int = 32
    device: str = "auto"
    workers: int | None = None
    crops: bool = False

    def but(self, **changes: Any) -> PipelineConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PipelineConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})
