"""Build the background cohort that `enroll` calibrates against: vectors (not photos) of
faces of people no gallery is likely to hold, one file per embedder family.

The dlib cohort is every boxed face of dlib's example group photos (PASCAL VOC 2007-2009,
shipped by dlib under the Boost Software License, ../shared/data/dlib_faces): each box's
chip cut as the `dlib` embedder cuts it (dlib's 5-point landmarks) and embedded by dlib.

    python tools/build_cohort.py [--data ../shared/data/dlib_faces]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from facecnn.data.decode import read_image
from facecnn.faces.boxes import read_boxes
from facecnn.faces.cohort import COHORTS, ORIGIN
from facecnn.faces.detect import Face
from facecnn.faces.embedders.dlib import DlibEmbedder
from facecnn.fileio import atomic_write

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dlib_faces"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    embedder, vectors, sources = DlibEmbedder(), [], []
    for box_file in ("training.xml", "testing.xml"):
        for path, truth in read_boxes(args.data / box_file).items():
            image = read_image(path)
            faces = [Face(tuple(float(v) for v in box), 1.0) for box in truth.faces]
            vectors.append(embedder.embed([(image, face) for face in faces]))
            sources += [f"{path.name} {' '.join(str(round(v)) for v in box)}"
                        for box in truth.faces]
    out = COHORTS / "dlib.npz"

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:
            np.savez_compressed(file, vectors=np.concatenate(vectors).astype(np.float32),
                                sources=np.array(sources), origin=np.array(ORIGIN["dlib"]))

    atomic_write(out, write)
    print(f"{len(sources)} faces -> {out}")


if __name__ == "__main__":
    main()
