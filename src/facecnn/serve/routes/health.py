"""The web page and /healthz: neither needs a key, and neither waits on a model."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from facecnn.serve.deps import caller, service
from facecnn.serve.schemas import Health
from facecnn.serve.service import Service

STATIC = Path(__file__).resolve().parents[1] / "static"
router = APIRouter()


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    """The web page needs no key to load; its API calls send the one typed into it."""
    return FileResponse(STATIC / "index.html")


@router.get("/healthz", response_model=Health, response_model_exclude_none=True)
async def healthz(role: str | None = Depends(caller),
                  served: Service = Depends(service)) -> Health:
    """Status only, unless the caller has a key: then what is served and how busy it is.
    Runs on the event loop, so it answers however busy the models are."""
    if role is None:
        return Health()
    return Health(gallery=served.recognizer is not None,
                  classifier=served.classifier is not None,
                  in_flight=served.admission.in_flight, capacity=served.admission.capacity["read"],
                  gallery_version=served.gallery_version())
