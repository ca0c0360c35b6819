"""The gallery's people: list and look up, and a person's faces with their thumbnails (read
keys); enrol and remove people, forget or move one face (admin keys). With --clusters, the
cluster folder follows a face's edit (cluster/edits.py)."""

from __future__ import annotations

from functools import partial
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Response, Security, UploadFile
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from facecnn.cluster.edits import forget_faces, move_faces
from facecnn.faces.gallery.faces import FaceEntry
from facecnn.faces.names import check_name
from facecnn.faces.thumbnails import thumbnail
from facecnn.fileio import content_hash
from facecnn.serve.deps import API_KEY, admin, read, with_gallery
from facecnn.serve.schemas import (
    ERRORS,
    Enrolment,
    FaceChoice,
    FaceForgetting,
    FaceMove,
    FaceMoving,
    People,
    Person,
    PersonFaces,
    Removal,
)
from facecnn.serve.security import UploadError
from facecnn.serve.service import Largest, Service

router = APIRouter(prefix="/v1/people", dependencies=[Security(API_KEY)], responses=ERRORS)


@router.get("", response_model=People)
def people(served: Service = Depends(with_gallery)) -> dict:
    """Everyone enrolled, with face counts."""
    return {"people": [{"name": n, "faces": c} for n, c in served.store.people()]}


@router.get("/{name}", response_model=Person)
def person(name: str, served: Service = Depends(with_gallery)) -> dict:
    for person_name, count in served.store.people():
        if person_name == name:
            return {"name": name, "faces": count}
    raise UploadError(404, f"no such person: {name}")


@router.post("/{name}", response_model=Enrolment, dependencies=[Depends(admin)])
async def enrol(name: str, images: list[UploadFile] = File(...),
                served: Service = Depends(with_gallery)) -> dict:
    """Add the largest face of each photo to `name` (created if new); a photo already in the
    gallery adds nothing. The threshold is calibrated again for who is enrolled now."""
    name = check_name(name)
    found = await served.run(partial(served.largest_faces, all_needed=False),
                             [await read(upload) for upload in images])
    if not found.uploads:
        raise UploadError(422, "no face found in any uploaded image")
    added = await run_in_threadpool(_add, served, name, found)
    return {"name": name, "added": added, "no_face": found.missing,
            **await run_in_threadpool(served.refit)}


def _add(served: Service, name: str, found: Largest) -> int:
    """The faces found added to `name`, each with its box and thumbnail (one transaction)."""
    boxes = [face.box for face in found.faces]
    return served.store.add(name, found.vectors, [f"upload:{u.name}" for u in found.uploads],
                            [content_hash(u.data) for u in found.uploads], boxes,
                            [thumbnail(image, box) for image, box in zip(found.images, boxes)])


@router.delete("/{name}", response_model=Removal, dependencies=[Depends(admin)])
def remove(name: str, served: Service = Depends(with_gallery)) -> dict:
    removed = served.store.remove(name)
    return {"name": name, "removed": removed, **served.refit()}


def _shown(face: FaceEntry) -> dict:
    """A face as the API shows it: its thumbnail as a URL, as the page's own paths are."""
    where = f"v1/people/{quote(face.person, safe='')}/faces/{face.id}/thumbnail"
    return {**face.to_dict(), "thumbnail": where if face.thumbnail else None}


@router.get("/{name}/faces", response_model=PersonFaces)
def faces(name: str, served: Service = Depends(with_gallery)) -> dict:
    """A person's faces, as enrolled: photo, box, thumbnail."""
    return {"name": name, "faces": [_shown(f) for f in served.store.faces_of(name)]}


@router.get("/{name}/faces/{face}/thumbnail", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}, "description": "A JPEG."}})
def thumbnail_of(name: str, face: int = PathParam(ge=1, le=2**63 - 1),
                 served: Service = Depends(with_gallery)) -> Response:
    """One face's thumbnail, 96 px square."""
    data = served.store.thumbnail(name, face)
    if data is None:
        raise UploadError(404, f"face {face} has no thumbnail (enrolled before they were kept)")
    return Response(data, media_type="image/jpeg")


@router.post("/{name}/faces/forget", response_model=FaceForgetting,
             dependencies=[Depends(admin)])
async def forget(name: str, body: FaceChoice, served: Service = Depends(with_gallery)) -> dict:
    """Take wrong faces from a person, in one transaction."""
    gone = await served.run(forget_faces, served.store, name, body.faces, served.clusters)
    return {"name": name, "forgotten": [_shown(f) for f in gone],
            **await run_in_threadpool(served.threshold_now)}


@router.post("/{name}/faces/move", response_model=FaceMoving, dependencies=[Depends(admin)])
async def move(name: str, body: FaceMove, served: Service = Depends(with_gallery)) -> dict:
    """Move faces to another person (created if new), in one transaction."""
    to = check_name(body.to)
    moved = await served.run(move_faces, served.store, name, body.faces, to, served.clusters)
    return {"name": name, "to": to, "moved": [_shown(f) for f in moved],
            **await run_in_threadpool(served.threshold_now)}
