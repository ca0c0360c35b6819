"""`facecnn predict RUN FILES`: the class of each image, as the run was trained to see it.

A run trained on face crops (`prepare`'s output: its layout is in the run's model file) sees
a face cut in that layout, so a photo is not squeezed whole into the model: its largest face
is found by the default detector and cut as the run's crops were (what `recognize --model`
does to every face), and a photo with no face is skipped, saying so. Images inside a folder
`prepare` wrote in the run's layout are crops already and go in as they are; so do all images
for a run trained on whole images.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from facecnn.data.crop_layout import crop_settings, same_layout

if TYPE_CHECKING:
    from facecnn.inference.base import ImageClassifier, Prediction


def predict_files(classifier: ImageClassifier, files: list[Path], top_k: int = 1
                  ) -> tuple[list[Prediction], list[dict[str, str]]]:
    """(predictions in file order, skipped files with why): see the module's docstring."""
    layout = classifier.meta.get("crop")
    photos = [f for f in files if layout is not None and not _prepared_as(f, layout)]
    if not photos:
        return classifier(files, top_k)
    crops = [f for f in files if f not in set(photos)]
    predictions, skipped = classifier(crops, top_k) if crops else ([], [])
    faces, missing = _largest_faces(classifier, photos)
    for file, inputs in faces:
        predictions += classifier.predict(inputs, [str(file)], top_k)
    skipped += missing
    order = {str(f): k for k, f in enumerate(files)}
    return sorted(predictions, key=lambda p: order[p.file]), skipped


def _prepared_as(file: Path, layout: dict) -> bool:
    """Whether `file` lies in a folder `prepare` wrote (out/<person>/<file>) in `layout`."""
    for folder in (file.parent, file.parent.parent):
        found = crop_settings(folder)
        if found is not None:
            return same_layout(found, layout)
    return False


def _largest_faces(classifier: ImageClassifier, photos: list[Path]):
    """(file, its largest face cut as the run's inputs) for the photos with a face, and the
    skipped ones with why."""
    from facecnn.data.decode import read_image
    from facecnn.faces.crops import classifier_inputs
    from facecnn.faces.detect import FaceDetector
    from facecnn.faces.pipeline import NO_FACE

    detector = FaceDetector()
    found, skipped = [], []
    for file in photos:
        try:
            image = read_image(file)
        except ValueError as exc:
            skipped.append({"file": str(file), "reason": str(exc)})
            continue
        faces = detector(image)
        if not faces:
            skipped.append({"file": str(file), "reason": NO_FACE})
            continue
        found.append((file, classifier_inputs(classifier.meta, [(image, faces[0])])))
    return found, skipped
