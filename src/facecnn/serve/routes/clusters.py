"""The clusters of `facecnn serve --clusters DIR` (a `facecnn cluster` output folder), for
the page's Unnamed tab: the open ones (neither named nor dismissed) and their contact sheets
(read keys); name one into the gallery, merge several, dismiss one (admin keys).

cluster/edits.py does the work and locks the folder; every request is checked first against
what its `list_clusters` says (404: no such cluster, 409: named or dismissed already), so only
names and sheet files it lists ever reach the file system."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Depends, Security
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from facecnn.cluster.edits import dismiss_cluster, list_clusters, merge_clusters, name_cluster
from facecnn.cluster.groups import UNSORTED_NAME
from facecnn.errors import FacecnnError
from facecnn.faces.gallery import GalleryBusy, GalleryUnavailable
from facecnn.faces.names import check_name
from facecnn.serve.deps import API_KEY, admin, service, with_gallery
from facecnn.serve.schemas import (
    ERRORS,
    ClusterMerge,
    ClusterName,
    Clusters,
    Dismissal,
    Error,
    Merging,
    Naming,
)
from facecnn.serve.security import UploadError
from facecnn.serve.service import Service

T = TypeVar("T")
CONFLICT = {409: {"model": Error, "description": "A cluster named or dismissed already, or "
                                                 "changed meanwhile."}}
router = APIRouter(prefix="/v1/clusters", dependencies=[Security(API_KEY)],
                   responses={**ERRORS, **CONFLICT})


async def with_clusters(served: Service = Depends(service)) -> Service:
    if served.clusters is None:
        raise UploadError(404, "this server has no cluster folder (start the server with "
                               "--clusters DIR)")
    return served


def _entries(folder: Path) -> dict[str, dict[str, Any]]:
    """The folder's clusters by number; the unsorted faces are none."""
    return {e["cluster"]: e for e in list_clusters(folder) if e["cluster"] != UNSORTED_NAME}


def _known(entries: dict[str, dict[str, Any]], cluster: str) -> dict[str, Any]:
    if cluster not in entries:
        raise UploadError(404, f"no such cluster: {cluster}")
    return entries[cluster]


def _edit(folder: Path, clusters: list[str], work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` once every cluster named is open. What the folder's edits still refuse
    of a request checked here is a conflict with the folder as it is now (409); a gallery
    busy or out of reach keeps its 503."""
    entries = _entries(folder)
    for cluster in clusters:
        entry = _known(entries, cluster)
        if entry["name"] is not None:
            raise UploadError(409, f"{cluster} is named {entry['name']} already")
        if entry["dismissed"]:
            raise UploadError(409, f"{cluster} was dismissed")
    try:
        return work(*args)
    except (GalleryBusy, GalleryUnavailable):
        raise
    except FacecnnError as exc:
        raise UploadError(409, str(exc)) from None


@router.get("", response_model=Clusters)
def clusters(served: Service = Depends(with_clusters)) -> dict:
    """The clusters still to name, biggest first, each with its contact sheet's URL."""
    open_ = [e for e in _entries(served.clusters).values()
             if e["name"] is None and not e["dismissed"]]
    return {"clusters": [{"cluster": e["cluster"], "size": e["size"], "cohesion": e["cohesion"],
                          "sheet": f"v1/clusters/{quote(e['cluster'], safe='')}/sheet"}
                         for e in sorted(open_, key=lambda e: -e["size"])]}


@router.get("/{cluster}/sheet", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}}, "description": "A PNG."}})
def sheet(cluster: str, served: Service = Depends(with_clusters)) -> FileResponse:
    """A cluster's contact sheet: its faces, best first."""
    name = _known(_entries(served.clusters), cluster)["sheet"]
    path = served.clusters / name
    if Path(name).name != name or not path.is_file():  # only files right in the folder
        raise UploadError(404, f"{cluster} has no contact sheet")
    return FileResponse(path, media_type="image/png")


@router.post("/merge", response_model=Merging, dependencies=[Depends(admin)])
async def merge(body: ClusterMerge, served: Service = Depends(with_clusters)) -> dict:
    """Several clusters of one person made one: the first given, holding all their faces."""
    if len(set(body.clusters)) < len(body.clusters):
        raise UploadError(422, "name each cluster to merge once")
    kept = await served.run(_edit, served.clusters, body.clusters, merge_clusters,
                            served.clusters, body.clusters)
    return {"cluster": kept, "merged": [c for c in body.clusters if c != kept]}


@router.post("/{cluster}/name", response_model=Naming,
             dependencies=[Depends(admin), Depends(with_gallery)])
async def name(cluster: str, body: ClusterName,
               served: Service = Depends(with_clusters)) -> dict:
    """Enrol the cluster's faces into the server's gallery as `name` (new or known); the
    next recognition knows them, as the search index syncs before every answer."""
    person = check_name(body.name)
    added = await served.run(_edit, served.clusters, [cluster], name_cluster, served.clusters,
                             cluster, served.location, person)
    return {"cluster": cluster, "name": person, "added": added,
            **await run_in_threadpool(served.threshold_now)}


@router.post("/{cluster}/dismiss", response_model=Dismissal, dependencies=[Depends(admin)])
async def dismiss(cluster: str, served: Service = Depends(with_clusters)) -> dict:
    """Nobody to name (strangers, posters): no longer offered, here or after reruns; its
    faces stay in the folder."""
    await served.run(_edit, served.clusters, [cluster], dismiss_cluster, served.clusters,
                     cluster)
    return {"cluster": cluster}
