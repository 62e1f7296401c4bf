"""
Training-time augmentation of uint8 image tensors (C, H, W), drawn from torch's RNG.

Runs inside DataLoader workers, whose seeds the trainer derives from (seed, epoch), so a
resumed run sees the same augmented images as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable

from dl_perception.preprocessing import PreprocessingSpec
from dl_perception.training.config import AugmentConfig
import torch
from torchvision.transforms import v2


def build_augmentation(config: AugmentConfig, spec: PreprocessingSpec
                       ) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Compose the configured augmentations; None when there are none."""
    steps = []
    if config.crop_padding:
        steps.append(v2.RandomCrop((spec.height, spec.width), padding=config.crop_padding))
    if config.horizontal_flip:
        steps.append(v2.RandomHorizontalFlip())
    if config.vertical_flip:
        steps.append(v2.RandomVerticalFlip())
    if config.random_erasing:
        steps.append(v2.RandomErasing(p=config.random_erasing, value=0))
    return v2.Compose(steps) if steps else None
