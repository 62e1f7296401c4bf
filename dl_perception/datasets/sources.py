"""
Random access to the images of a dataset: in memory or in files, with their labels.

Images come back as uint8 numpy arrays (H, W, C) in the source's channel order; numpy and
OpenCV only, so training and the robot-side image source both use them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


class ImageSource:
    """Random access to uint8 images (H, W, C) of one channel order, with their labels."""

    order: str
    labels: np.ndarray

    def read(self, index: int) -> np.ndarray:
        """Return image ``index`` as uint8 (H, W, C) in ``self.order``."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.labels)


class ArrayImages(ImageSource):
    """Images held in memory: uint8 (N, H, W) grey or (N, H, W, 3) RGB."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = images if images.ndim == 4 else images[..., None]
        self.order = 'grey' if self.images.shape[-1] == 1 else 'rgb'
        self.labels = labels.astype(np.int64)

    def read(self, index: int) -> np.ndarray:
        return self.images[index]


class FileImages(ImageSource):
    """Images read from files on demand (OpenCV decodes them as BGR)."""

    order = 'bgr'

    def __init__(self, paths: Sequence[Path], labels: Sequence[int]) -> None:
        self.paths = list(paths)
        self.labels = np.asarray(labels, np.int64)

    def read(self, index: int) -> np.ndarray:
        # Imported here so that in-memory datasets load where OpenCV is not installed
        # (benchmarks/gpu_check.sh on a bare GPU machine).
        import cv2
        image = cv2.imread(str(self.paths[index]), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f'cannot decode image file {self.paths[index]}')
        return image
