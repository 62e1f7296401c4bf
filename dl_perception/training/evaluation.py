"""
Measure a model on a split: loss, top-1/top-5 accuracy, per-class accuracy, confusion matrix.

Batches arrive as uint8 (N, C, H, W); ``BatchNormalizer`` turns them into network input with
the very constants the runtime uses (``preprocessing.normalization_constants``).
"""

from __future__ import annotations

from dataclasses import dataclass

from dl_perception.preprocessing import normalization_constants
from dl_perception.preprocessing import PreprocessingSpec
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader


class BatchNormalizer(nn.Module):
    """uint8 (N, C, H, W) -> float32 input: pixel * scale + offset, per channel."""

    def __init__(self, spec: PreprocessingSpec) -> None:
        super().__init__()
        scale, offset = normalization_constants(spec)
        self.register_buffer('scale', torch.from_numpy(scale).view(1, -1, 1, 1))
        self.register_buffer('offset', torch.from_numpy(offset).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.offset, images.float(), self.scale)


@dataclass
class Evaluation:
    """Results on one split; ``confusion[true, predicted]`` counts images."""

    loss: float
    top1: float
    top5: float
    confusion: np.ndarray

    @property
    def count(self) -> int:
        """Return the number of images evaluated."""
        return int(self.confusion.sum())

    @property
    def per_class_accuracy(self) -> np.ndarray:
        """Recall of each class, float64 (K,); NaN for a class with no images."""
        totals = self.confusion.sum(axis=1)
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.diag(self.confusion) / totals


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, k: int) -> int:
    """Count rows whose target is among the k highest logits (k capped at the class count)."""
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return int((top == targets[:, None]).any(dim=1).sum())


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, normalizer: BatchNormalizer,
             num_classes: int, device: torch.device, channels_last: bool = False,
             dtype: torch.dtype | None = None) -> Evaluation:
    """
    Run the model over a loader in eval mode (restoring the previous mode afterwards).

    :param dtype: autocast to this precision (the training's, for validation); None runs
        float32, as the exported model does.
    """
    was_training = model.training
    model.eval()
    loss_sum, top1, top5 = 0.0, 0, 0
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for images, targets in loader:
        images = normalizer(images.to(device, non_blocking=True))
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = targets.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model(images).float()
        loss_sum += float(nn.functional.cross_entropy(logits, targets, reduction='sum'))
        top1 += topk_correct(logits, targets, 1)
        top5 += topk_correct(logits, targets, 5)
        pairs = targets.cpu() * num_classes + logits.argmax(dim=1).cpu()
        confusion += torch.bincount(pairs, minlength=num_classes ** 2).view_as(confusion)
    model.train(was_training)
    count = max(int(confusion.sum()), 1)
    return Evaluation(loss_sum / count, top1 / count, top5 / count, confusion.numpy())
