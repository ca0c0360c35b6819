"""The one shape every facecnn model has: a backbone producing a flat feature vector and a head."""

from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    """`backbone(x)` -> (B, F) features; `head` -> logits, ending with one `nn.Linear`.

    Keeping the split explicit is what lets `--freeze backbone|all-but-head`, `--head`,
    penultimate-feature embeddings and head replacement work the same for every model.
    """

    def __init__(self, backbone: nn.Module, head: nn.Sequential) -> None:
        super().__init__()
        if not isinstance(head[-1], nn.Linear):
            raise ValueError("a Classifier head must end with nn.Linear")
        self.backbone = backbone
        self.head = head

    @property
    def classifier(self) -> nn.Linear:
        """The final layer that maps features to class logits."""
        return self.head[-1]

    @property
    def num_classes(self) -> int:
        return self.classifier.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (the input of the last Linear): the model's embedding."""
        return self.head[:-1](self.backbone(x))
