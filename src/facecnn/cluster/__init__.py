"""Unlabelled photos -> people: faces embedded once (a vector cache), grouped by a registered
algorithm (algorithms.py), kept stable across reruns (assign.py), written as folders, contact
sheets and clusters.json (output.py), and searched by face (search.py)."""

from facecnn.cluster.algorithms import ALGORITHMS, DEFAULT_ALGORITHM, Settings, cluster_vectors
from facecnn.cluster.metrics import Scores, score
from facecnn.cluster.search import Hit, search_faces
from facecnn.cluster.workflow import ClusterReport, cluster_photos

__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHM", "ClusterReport", "Hit", "Scores", "Settings",
           "cluster_photos", "cluster_vectors", "score", "search_faces"]
