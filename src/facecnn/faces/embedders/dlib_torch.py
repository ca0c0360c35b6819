"""dlib's face network and weights ported to PyTorch (facecnn.models.dlib_resnet): batched, on
any device, dlib's vectors to ~1e-6, so it shares dlib's galleries."""

from __future__ import annotations

from typing import Any

import numpy as np

from facecnn.faces import dlib_models
from facecnn.faces.embedders.base import register
from facecnn.faces.embedders.dlib import DlibEmbedder

# channels-last convolutions are faster on CPU for whole batches, much slower for one face
CHANNELS_LAST_MIN_BATCH = 8


@register("dlib_torch", help="dlib's ResNet in PyTorch: batched, GPU when present, dlib's "
                             "vectors")
class DlibTorchEmbedder(DlibEmbedder):
    """In float32, so its vectors equal dlib's to ~1e-6; whole batches in the main process."""

    embeds_in_workers = False

    def __init__(self, flip: bool = False, batch_size: int = 32, device: str = "auto",
                 landmarks: str = "dlib5") -> None:
        self.device = device
        super().__init__(flip, batch_size, 0, landmarks)

    def _network(self) -> Any:
        from facecnn.models.dlib_resnet import pretrained_dlib_resnet
        from facecnn.runtime import flush_denormals, select_device

        dlib_models.import_dlib()  # for the chips
        flush_denormals()
        self.device = select_device(self.device)
        model, self.mean = pretrained_dlib_resnet()
        return model.to(self.device)

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        import torch

        from facecnn.models.dlib_resnet import to_input

        x = to_input(torch.from_numpy(np.ascontiguousarray(chips)).to(self.device)
                     .permute(0, 3, 1, 2), self.mean)
        if len(x) >= CHANNELS_LAST_MIN_BATCH:
            x = x.contiguous(memory_format=torch.channels_last)
        # TF32 convolutions would cost the equality with dlib's vectors on recent GPUs
        with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True,
                                                                 allow_tf32=False):
            vectors = self.model(x)
        return vectors.float().cpu().numpy()
