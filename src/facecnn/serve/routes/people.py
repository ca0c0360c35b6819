"""The gallery's people: list and look up (read keys), enrol and remove (admin keys)."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Depends, File, Security, UploadFile
from starlette.concurrency import run_in_threadpool

from facecnn.faces.names import check_name
from facecnn.faces.thumbnails import thumbnail
from facecnn.fileio import content_hash
from facecnn.serve.deps import API_KEY, admin, read, with_gallery
from facecnn.serve.schemas import ERRORS, Enrolment, People, Person, Removal
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
    gallery adds nothing."""
    name = check_name(name)
    found = await served.run(partial(served.largest_faces, all_needed=False),
                             [await read(upload) for upload in images])
    if not found.uploads:
        raise UploadError(422, "no face found in any uploaded image")
    added = await run_in_threadpool(_add, served, name, found)
    return {"name": name, "added": added, "no_face": found.missing}


def _add(served: Service, name: str, found: Largest) -> int:
    """The faces found added to `name`, each with its box and thumbnail (one transaction)."""
    boxes = [face.box for face in found.faces]
    return served.store.add(name, found.vectors, [f"upload:{u.name}" for u in found.uploads],
                            [content_hash(u.data) for u in found.uploads], boxes,
                            [thumbnail(image, box) for image, box in zip(found.images, boxes)])


@router.delete("/{name}", response_model=Removal, dependencies=[Depends(admin)])
def remove(name: str, served: Service = Depends(with_gallery)) -> dict:
    return {"name": name, "removed": served.store.remove(name)}
