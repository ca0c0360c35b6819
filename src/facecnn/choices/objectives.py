"""The objectives by name, here and not beside their nn.Module classes in objectives.py, so
`--help` lists them and a config is checked without loading torch; each class is imported
when a run builds it."""

from __future__ import annotations

from typing import Any

from facecnn.registry import Lazy, Registry

OBJECTIVE_CHOICES: Registry[Any] = Registry("objective")
OBJECTIVE_CHOICES.add("softmax", Lazy("facecnn.train.objectives:Softmax"),
                      "cross-entropy on the classifier's logits")
OBJECTIVE_CHOICES.add("arcface", Lazy("facecnn.train.objectives:ArcFace"),
                      "additive angular margin on L2-normalised features: trains the embedding")
OBJECTIVE_CHOICES.add("triplet", Lazy("facecnn.train.objectives:Triplet"),
                      "batch-hard triplet loss on people x images batches: trains the embedding")
