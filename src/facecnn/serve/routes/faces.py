"""Face work on uploaded photos: detect, recognize (videos too), verify, and the optional
classifier."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Query, Security, UploadFile

from facecnn.serve.deps import API_KEY, read, service, with_classifier, with_gallery
from facecnn.serve.schemas import ERRORS, Classification, Detections, Recognition, Verification
from facecnn.serve.security import UploadError
from facecnn.serve.service import Service
from facecnn.serve.video import video_container

router = APIRouter(prefix="/v1", dependencies=[Security(API_KEY)], responses=ERRORS)


@router.post("/detect", response_model=Detections, response_model_exclude_unset=True)
async def detect(image: UploadFile = File(...), served: Service = Depends(service)) -> dict:
    faces = await served.run(served.detect, await read(image))
    return {"faces": [face.to_dict(landmarks=True) for face in faces]}


@router.post("/recognize", response_model=Recognition, response_model_exclude_unset=True)
async def recognize(image: UploadFile | None = File(None, description="A photo or a video."),
                    video: UploadFile | None = File(None, description="A video (or a photo)."),
                    served: Service = Depends(with_gallery)) -> dict:
    """`facecnn recognize --json`'s answer: a photo's faces, "unknown" beyond the gallery's
    threshold; or a short video's (mp4, mov, webm, mkv, avi: told by its bytes) frames, each
    face with its track, and its tracks, each named once (`facecnn recognize clip.mp4`)."""
    if (image is None) == (video is None):
        raise UploadError(422, "send one photo or video, in the field `image` or `video`")
    upload = await read(image or video)
    container = video_container(upload.data)
    if container is not None:
        return await served.run(served.recognize_video, upload, container)
    result = await served.run(served.recognize, upload)
    return {"faces": [face.to_dict() for face in result.faces]}


@router.post("/verify", response_model=Verification)
async def verify(images: list[UploadFile] = File(...),
                 served: Service = Depends(with_gallery)) -> dict:
    """Are the largest faces of two photos the same person (`facecnn verify`)?"""
    if len(images) != 2:
        raise UploadError(422, "send exactly two files in the field `images`")
    return await served.run(served.verify, [await read(upload) for upload in images])


@router.post("/classify", response_model=Classification)
async def classify(image: UploadFile = File(...), top_k: int = Query(3, ge=1, le=1000),
                   served: Service = Depends(with_classifier)) -> dict:
    """The --model classifier's answer for the whole image, as `facecnn predict` gives it."""
    prediction = await served.run(served.classify, await read(image), top_k)
    return prediction.to_dict()
