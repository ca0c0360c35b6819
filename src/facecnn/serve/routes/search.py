"""Searching the gallery by face: `facecnn search FACE --gallery DB` over HTTP (read keys)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Query, Security, UploadFile

from facecnn.serve.deps import API_KEY, read, with_gallery
from facecnn.serve.schemas import ERRORS, EnrolledFace
from facecnn.serve.service import Service

router = APIRouter(prefix="/v1", dependencies=[Security(API_KEY)], responses=ERRORS)


@router.post("/search", response_model=list[EnrolledFace])
async def search(image: UploadFile = File(...), top: int = Query(20, ge=1, le=1000),
                 served: Service = Depends(with_gallery)) -> list[dict]:
    """The `top` enrolled faces nearest to the photo's largest face, nearest first (person,
    source, distance), as `facecnn search --gallery --json` lists them."""
    return await served.run(served.search, await read(image), top)
