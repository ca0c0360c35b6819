"""A second look at small images in which the detector found no face. Many such images are a
face themselves: a crop cut tight (the detector has no room around it), an aligned chip, a
face in hard light. Each step runs only on the images the one before left without a face:

1. the image inside a border of its mean colour, a quarter of its side wide;
2. the same, its contrast equalized locally (CLAHE on the grey levels): a face half in shadow
   shows both halves (for detectors that score each face, MTCNN: HOG takes the equalized
   contrast itself for faces);
3. the same, its grey levels spread over the whole range (histogram equalization): a faded
   or washed-out face, whose few grey levels CLAHE's clip limit cannot spread (MTCNN sees raw
   pixel values, so a face in 40 grey levels is no face to it);
4. the whole image as the face: MTCNN's O-Net looks at it (as it is, equalized locally, and
   brightened then equalized: a face lit from one steep side, most of it near black), gives
   its five points and a box, and says how sure it is that a face is there at all, so an
   image with no face stays "no face" (`WHOLE_FACE_SCORE`, O-Net's own threshold in MTCNN).
   The spread grey levels are left out here: alone, O-Net took more patches of wall and
   clothing for faces with them, and MTCNN's whole cascade in step 3 finds the faded faces
   anyway. The brightened look found 11 of 71 lfw_dev crops relit from a steep angle that
   the others missed, and took none of 2,456 LFW photo corners (819 of them darkened) or 100
   group-photo patches for a face that the others had not.

Images over RETRY_MAX_SIDE (landscapes, group photos) are not looked at twice. With `--crops`
(FaceDetector(crops=True)) the detector is skipped and every image is taken as one face
(step 3, whatever O-Net's score).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from facecnn.faces.detectors import Detection

if TYPE_CHECKING:
    from facecnn.models.mtcnn import MTCNNDetector

RETRY_MAX_SIDE = 512
PAD_SHARE = 0.25
WHOLE_FACE_SCORE = 0.7
BRIGHT_MEDIAN = 0.45  # where `brightened` lifts a dark image's median grey level
MIN_GAMMA = 0.25  # the strongest lift: a median of 0.04 reaches 0.45


def padded(image: np.ndarray) -> tuple[np.ndarray, int]:
    """The image inside a border of its mean colour a quarter of its longer side wide, and
    the border's width."""
    import cv2

    pad = int(round(PAD_SHARE * max(image.shape[:2])))
    colour = [int(v) for v in image.reshape(-1, 3).mean(0)]
    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                              value=colour), pad


def equalized(image: np.ndarray) -> np.ndarray:
    """The grey levels with their contrast equalized in 4 x 4 tiles, as RGB."""
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    flat = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(4, 4)).apply(grey)
    return np.repeat(flat[:, :, None], 3, axis=2)


def stretched(image: np.ndarray) -> np.ndarray:
    """The grey levels spread over 0-255 by their histogram, as RGB."""
    import cv2

    flat = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    return np.repeat(flat[:, :, None], 3, axis=2)


def brightened(image: np.ndarray) -> np.ndarray:
    """A dark image's grey levels lifted by a gamma curve until the median is BRIGHT_MEDIAN,
    then equalized locally (CLAHE alone cannot lift a face lit from a steep side out of the
    few grey levels near black)."""
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    median = float(np.median(grey)) / 255
    if 0 < median < BRIGHT_MEDIAN:
        power = max(np.log(BRIGHT_MEDIAN) / np.log(median), MIN_GAMMA)
        grey = (255 * (np.arange(256) / 255) ** power).astype(np.uint8)[grey]
    return equalized(np.repeat(grey[:, :, None], 3, axis=2))


CONTRASTS = (equalized, stretched)  # the detector's looks at an image's contrast, in order


def unpadded(found: list[Detection], pad: int) -> list[Detection]:
    """Detections on a padded copy, in the image's own pixels."""
    return [Detection(tuple(v - pad for v in d.box), d.score,
                      None if d.landmarks is None else d.landmarks - pad) for d in found]


def whole_faces(onet: MTCNNDetector, images: list[np.ndarray],
                accept: float | None = WHOLE_FACE_SCORE) -> list[Detection | None]:
    """Each image taken as one face: O-Net's box, points and score, on the image or on its
    equalized or brightened copy (whichever O-Net is surer of). None where O-Net's score is
    under `accept` (no face there); `accept=None` takes every image, as the whole image where
    O-Net is unsure."""
    if not images:
        return []
    looks = [onet.look_at(copies, [[(0.0, 0.0, float(i.shape[1]), float(i.shape[0]))]
                                   for i in copies])
             for copies in (images, [equalized(i) for i in images],
                            [brightened(i) for i in images])]
    found: list[Detection | None] = []
    for image, *seen in zip(images, *looks):
        points, box, score = max(seen, key=lambda look: float(look[2][0]))
        score = float(score[0])
        if accept is not None and score < accept:
            found.append(None)
            continue
        height, width = image.shape[:2]
        whole = (0.0, 0.0, float(width), float(height))
        edges = (tuple(float(v) for v in np.clip(box[0], 0, [width, height, width, height]))
                 if score >= WHOLE_FACE_SCORE else whole)
        found.append(Detection(edges, score, points[0]))
    return found
