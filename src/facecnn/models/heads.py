"""Classification heads from a short spec string, so the seeds' heads are one flag away.

Grammar: tokens joined by '-', applied in order, then a final Linear to the class count:
  gap            global average pooling (the default for zoo backbones; a no-op marker here,
                 the backbone already pools)
  bn             BatchNorm1d
  dense<N>       Linear(N) + ReLU
  dropout[<p>]   Dropout(p), p defaults to 0.5
Examples: seed B's Xception head `gap-bn-dense512-bn-dropout0.2`, its ResNet50 head
`gap-dense2048-dropout0.5-dense1024-dropout0.5`, MobileNet's `gap-dropout0.6`.
"""

from __future__ import annotations

import re

from torch import nn

from facecnn.errors import FacecnnError

_TOKEN = re.compile(r"^(gap|bn|dense(\d+)|dropout(\d*\.?\d*))$")


def build_head(spec: str, in_features: int, num_classes: int) -> nn.Sequential:
    """Build the head described by `spec` on top of `in_features` backbone features."""
    layers: list[nn.Module] = []
    width = in_features
    for token in [t for t in spec.split("-") if t]:
        match = _TOKEN.match(token)
        if not match:
            raise FacecnnError(
                f"unknown head token {token!r} in {spec!r}: use gap, bn, dense<N>, dropout[<p>]"
            )
        if token == "bn":
            layers.append(nn.BatchNorm1d(width))
        elif token.startswith("dense"):
            layers += [nn.Linear(width, int(match.group(2))), nn.ReLU(inplace=True)]
            width = int(match.group(2))
        elif token.startswith("dropout"):
            p = float(match.group(3)) if match.group(3) else 0.5
            if not 0.0 <= p < 1.0:
                raise FacecnnError(f"dropout rate must be in [0, 1): {token!r}")
            layers.append(nn.Dropout(p))
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)
