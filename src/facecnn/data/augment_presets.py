"""The augmentation presets by name, as the parameters of `transforms.Augment`.

Here, away from the torch code that applies them, so `--help` lists them and a config is
checked without loading torch.
"""

from __future__ import annotations

from typing import Any

from facecnn.registry import Registry

AUGMENT_CHOICES: Registry[dict[str, Any]] = Registry("augmentation")
AUGMENT_CHOICES.add("none", {}, "no augmentation")
AUGMENT_CHOICES.add("seed_b_flowers", dict(crop_scale=(0.8, 1.0), rot90_p=0.2, hflip_p=0.5,
                                           vflip_p=0.5, transpose_p=0.25),
                    "seed B level 1, for flowers, which have no upright: random crop, quarter "
                    "turns, both flips and transpose")
AUGMENT_CHOICES.add("seed_b_faces", dict(rotate_deg=10, zoom=(0.9, 1.1), shift=0.1, hflip_p=0.5),
                    "seed B level 2, Keras' ImageDataGenerator: rotation 10, zoom 0.1, shifts "
                    "0.1, horizontal flips")
AUGMENT_CHOICES.add("seed_c", dict(rotate_deg=10, hflip_p=0.5, brightness=0.2, contrast=0.2,
                                   saturation=0.2),
                    "seed C, torchvision's: RandomRotation 10, RandomHorizontalFlip, "
                    "ColorJitter 0.2")
AUGMENT_CHOICES.add("faces", dict(hflip_p=0.5, rotate_deg=8, zoom=(0.95, 1.1), shift=0.05,
                                  brightness=0.3, contrast=0.3, saturation=0.2, grayscale_p=0.1),
                    "recommended for aligned face crops: mild geometry, as alignment did the "
                    "rest, no vertical flips, stronger lighting changes, occasional grayscale")
AUGMENT_CHOICES.add("digits", dict(rotate_deg=10, zoom=(0.9, 1.1), shift=0.08),
                    "handwritten digits, for the demo: small shifts, turns and zooms; no flips, "
                    "as a flipped digit is another")
