"""The answers of the REST API as pydantic models, so /docs shows real schemas. Their fields
are the CLI's JSON shapes (`facecnn recognize --json`, `verify --json`, `predict`); the face
models are built from the face record's own table of fields (faces/result.py)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, create_model

from facecnn.faces.result import FACE_FIELDS


class Error(BaseModel):
    detail: str = Field(description="One line saying what was wrong.")


class Health(BaseModel):
    status: str = "ok"
    gallery: bool | None = Field(None, description="Serving a gallery (callers with a key).")
    classifier: bool | None = Field(None, description="Serving a classifier (with a key).")
    in_flight: int | None = Field(None, description="Model requests this process holds now.")
    capacity: int | None = Field(None, description="Beyond this many recognitions waiting, "
                                 "requests get 503 (enrolments have a share of their own).")
    gallery_version: int | None = Field(None, description="The gallery's change count its "
                                                          "search index is current with.")


def face_model(name: str, required: tuple[str, ...], optional: tuple[str, ...],
               **described: str) -> Any:
    """A face's answer with these fields of the record (`described` rewords some)."""
    fields: dict[str, Any] = {}
    for key in required + optional:
        kind, text = FACE_FIELDS[key]
        text = described.get(key, text)
        fields[key] = ((kind, Field(description=text)) if key in required
                       else (kind | None, Field(None, description=text)))
    return create_model(name, **fields)


DetectedFace = face_model("DetectedFace", ("box", "confidence", "landmarks"), ("quality",))
NamedFace = face_model("NamedFace", ("box", "name", "score", "distance"),
                       ("confidence", "landmarks", "quality"))
TrackedFace = face_model("TrackedFace", ("box", "name", "score", "distance", "track"),
                         ("confidence", "quality"))


class Detections(BaseModel):
    faces: list[DetectedFace]


class VideoFrame(BaseModel):
    file: str = Field(description="The upload's name.")
    frame: int
    time: float = Field(description="Seconds into the video.")
    faces: list[TrackedFace]


class VideoTrack(BaseModel):
    file: str
    track: int
    name: str = Field(description='The person, "unknown", or "uncertain" (its views disagree).')
    score: float
    distance: float | None
    votes: int = Field(description="Views of the face that were embedded and voted.")
    shares: dict[str, float] = Field(description="Each name's share of the votes' weight.")
    first_frame: int
    last_frame: int
    first_time: float
    last_time: float
    crop: str | None = Field(description="Its best view's file (None: not saved).")


class Recognition(BaseModel):
    """A photo's faces, or a video's frames and tracks, as `facecnn recognize --json` gives
    them; the answer has the one or the other."""

    faces: list[NamedFace] | None = Field(None, description="A photo's faces.")
    frames: list[VideoFrame] | None = Field(None, description="A video's frames, every one.")
    tracks: list[VideoTrack] | None = Field(None, description="A video's tracks, one name each.")
    dropped_frames: int | None = Field(None, description="A video: frames not processed (0).")


class Verification(BaseModel):
    distance: float
    threshold: float
    threshold_source: str = Field(description="given, the gallery's calibrated, manual or "
                                               "default one, or embedder (its default).")
    same_person: bool
    embedder: str


class Person(BaseModel):
    name: str
    faces: int


class People(BaseModel):
    people: list[Person]


class GalleryChange(BaseModel):
    """What every change to who is enrolled answers with besides: the threshold after it."""

    threshold: float = Field(description="The gallery's threshold now: calibrated again for "
                                         "the faces enrolled after this change, unless set by "
                                         "hand.")
    threshold_source: str = Field(description="calibrated, manual or default (the embedder's, "
                                               "where it cannot be calibrated yet).")


class Enrolment(GalleryChange):
    name: str
    added: int = Field(description="Faces added (a photo already enrolled adds none).")
    no_face: list[str] = Field(description="Uploads in which no face was found.")


class Removal(GalleryChange):
    name: str
    removed: int = Field(description="Faces removed with the person.")


FaceId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class GalleryFace(BaseModel):
    id: FaceId = Field(description="The face's id in the gallery: what forget and move take.")
    person: str
    source: str | None = Field(description="The photo it was enrolled from (None: not "
                                           "recorded).")
    box: list[int] | None = Field(description="x1, y1, x2, y2 in that photo (None: enrolled "
                                               "before boxes were kept).")
    created: str | None = Field(description="When it was enrolled (ISO 8601, UTC).")
    thumbnail: str | None = Field(description="Its thumbnail (JPEG), relative to the server's "
                                              "root (None: none kept).")


class PersonFaces(BaseModel):
    name: str
    faces: list[GalleryFace] = Field(description="As enrolled, oldest first.")


class FaceChoice(BaseModel):
    faces: list[FaceId] = Field(min_length=1, max_length=10_000,
                                description="Ids of the person's faces.")


class FaceMove(FaceChoice):
    to: str = Field(description="The person they are (created if new).")


class FaceForgetting(GalleryChange):
    name: str
    forgotten: list[GalleryFace] = Field(description="The faces taken from the person (one "
                                                     "who has none left goes).")


class FaceMoving(GalleryChange):
    name: str
    to: str
    moved: list[GalleryFace] = Field(description="The faces moved, now the other person's.")


class Classification(BaseModel):
    file: str
    label: str
    score: float
    top_k: list[tuple[str, float]]


class Cluster(BaseModel):
    cluster: str = Field(description="Its folder's name in the --clusters folder.")
    size: int = Field(description="Faces in it.")
    cohesion: float | None = Field(description="Share of its pairs of faces closer than the "
                                               "threshold (1: they all look alike).")
    sheet: str = Field(description="Its contact sheet (PNG), relative to the server's root, "
                                   "as the page's own paths are.")


class Clusters(BaseModel):
    clusters: list[Cluster] = Field(description="The clusters not named or dismissed yet, "
                                                "biggest first.")


class ClusterName(BaseModel):
    name: str = Field(description="The person the cluster's faces are enrolled as.")


class ClusterMerge(BaseModel):
    clusters: list[str] = Field(min_length=2, description="Two or more clusters to make one.")


class Naming(GalleryChange):
    cluster: str
    name: str
    added: int = Field(description="Faces enrolled (a face already in the gallery adds none).")


class Merging(BaseModel):
    cluster: str = Field(description="The cluster kept, now holding all their faces.")
    merged: list[str] = Field(description="The clusters merged into it (gone now).")


class Dismissal(BaseModel):
    cluster: str
    dismissed: bool = True


class EnrolledFace(BaseModel):
    person: str
    source: str | None = Field(description="The photo it was enrolled from (None: not "
                                           "recorded).")
    distance: float = Field(description="Euclidean, to the uploaded photo's largest face.")


# What /docs lists beside each /v1 answer; every one carries an Error.
ERRORS: dict[int | str, dict] = {status: {"model": Error, "description": text} for status, text in (
    (401, "No key, or a wrong one."), (403, "A read key where an admin key is needed, or a "
                                            "foreign page on a server without keys."),
    (404, "Not served here, or no such person."), (413, "Upload or image too large."),
    (415, "Not an image."), (422, "Bad request, bad name, or no face found."),
    (503, "Busy, or the gallery's database out of reach (see Retry-After).")
)}
