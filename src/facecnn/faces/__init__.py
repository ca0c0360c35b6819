"""Faces: detect, align, embed, keep in a gallery, and recognize (the flat API is below)."""

from facecnn.faces.align import align_face
from facecnn.faces.detect import Face, FaceDetector, detect_faces
from facecnn.faces.embed import create_embedder, embed_faces
from facecnn.faces.gallery import Gallery
from facecnn.faces.recognize import Recognizer

__all__ = ["Face", "FaceDetector", "Gallery", "Recognizer", "align_face", "create_embedder",
           "detect_faces", "embed_faces"]
