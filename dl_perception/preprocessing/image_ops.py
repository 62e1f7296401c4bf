"""
Apply a PreprocessingSpec to uint8 images with numpy and OpenCV.

Images are numpy arrays, uint8, shape (height, width, channels) or (height, width) for grey.
"""

from __future__ import annotations

import cv2
from dl_perception.preprocessing.spec import PreprocessingSpec
import numpy as np

SOURCE_ORDERS = ('rgb', 'bgr', 'grey', 'rgba', 'bgra')

_CONVERSIONS = {
    ('rgb', 'bgr'): cv2.COLOR_RGB2BGR, ('bgr', 'rgb'): cv2.COLOR_BGR2RGB,
    ('rgb', 'grey'): cv2.COLOR_RGB2GRAY, ('bgr', 'grey'): cv2.COLOR_BGR2GRAY,
    ('grey', 'rgb'): cv2.COLOR_GRAY2RGB, ('grey', 'bgr'): cv2.COLOR_GRAY2BGR,
    ('rgba', 'rgb'): cv2.COLOR_RGBA2RGB, ('rgba', 'bgr'): cv2.COLOR_RGBA2BGR,
    ('rgba', 'grey'): cv2.COLOR_RGBA2GRAY, ('bgra', 'rgb'): cv2.COLOR_BGRA2RGB,
    ('bgra', 'bgr'): cv2.COLOR_BGRA2BGR, ('bgra', 'grey'): cv2.COLOR_BGRA2GRAY,
}


def as_hwc(image: np.ndarray) -> np.ndarray:
    """Check a uint8 image (1, 3 or 4 channels, some pixels); give it a channel axis."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError(f'expected a uint8 numpy image, got '
                        f'{getattr(image, "dtype", type(image).__name__)}')
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f'expected an image of shape (H, W), (H, W, 1), (H, W, 3) or '
                         f'(H, W, 4), got {image.shape}')
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f'image has no pixels: shape {image.shape}')
    return image


def convert_channels(image: np.ndarray, source: str, target: str) -> np.ndarray:
    """
    Convert the channel order of an image; returns uint8 (H, W, 3) or (H, W, 1).

    ``source`` is one of rgb, bgr, grey, rgba, bgra; ``target`` is rgb, bgr or grey.
    """
    image = as_hwc(image)
    if source not in SOURCE_ORDERS:
        raise ValueError(f'source channel order must be one of {SOURCE_ORDERS}, got {source!r}')
    expected = {'grey': 1, 'rgb': 3, 'bgr': 3, 'rgba': 4, 'bgra': 4}[source]
    if image.shape[2] != expected:
        raise ValueError(f'a {source} image has {expected} channels, got shape {image.shape}')
    if source == target:
        return image
    converted = cv2.cvtColor(np.ascontiguousarray(image), _CONVERSIONS[source, target])
    return converted[:, :, None] if converted.ndim == 2 else converted


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == (width, height):
        return image
    shrinking = width <= image.shape[1] and height <= image.shape[0]
    resized = cv2.resize(image, (width, height),
                         interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return resized[:, :, None] if resized.ndim == 2 else resized


def resize_to_input(image: np.ndarray, spec: PreprocessingSpec) -> np.ndarray:
    """Resize by the spec's policy to uint8 (spec.height, spec.width, C)."""
    image = as_hwc(image)
    in_height, in_width = image.shape[:2]
    if spec.resize == 'stretch':
        return _resize(image, spec.width, spec.height)
    if spec.resize == 'center_crop':
        # Cut the source window that becomes the input, then resize only that: scaling the
        # whole image first would allocate 28 x 28,000,000 pixels for a 1 x 1,000,000 frame.
        scale = max(spec.height / in_height, spec.width / in_width) / spec.crop_fraction
        window_w = min(in_width, max(1, round(spec.width / scale)))
        window_h = min(in_height, max(1, round(spec.height / scale)))
        top, left = (in_height - window_h) // 2, (in_width - window_w) // 2
        return _resize(image[top:top + window_h, left:left + window_w], spec.width,
                       spec.height)
    scale = min(spec.height / in_height, spec.width / in_width)
    fitted_w = min(spec.width, max(1, round(in_width * scale)))
    fitted_h = min(spec.height, max(1, round(in_height * scale)))
    fitted = _resize(image, fitted_w, fitted_h)
    canvas = np.full((spec.height, spec.width, image.shape[2]), spec.pad_value, np.uint8)
    top, left = (spec.height - fitted_h) // 2, (spec.width - fitted_w) // 2
    canvas[top:top + fitted_h, left:left + fitted_w] = fitted
    return canvas


def normalization_constants(spec: PreprocessingSpec) -> tuple[np.ndarray, np.ndarray]:
    """
    Per-channel ``scale`` and ``offset``, float32 shape (C,): input = pixel * scale + offset.

    Equal to (pixel / 255 - mean) / std; training normalizes batches with the same constants.
    """
    std = np.asarray(spec.std, np.float64)
    scale = (1.0 / (255.0 * std)).astype(np.float32)
    offset = (-np.asarray(spec.mean, np.float64) / std).astype(np.float32)
    return scale, offset


def normalize(images: np.ndarray, spec: PreprocessingSpec) -> np.ndarray:
    """Turn uint8 images (..., H, W, C) into float32 network input (..., C, H, W)."""
    scale, offset = normalization_constants(spec)
    # Transposing the uint8 pixels first and scaling in place is about 20x faster than
    # converting a strided float view: the float work then runs over contiguous memory.
    chw = np.ascontiguousarray(np.moveaxis(images, -1, -3)).astype(np.float32)
    chw *= scale.reshape(-1, 1, 1)
    chw += offset.reshape(-1, 1, 1)
    return chw


def prepare(image: np.ndarray, source: str, spec: PreprocessingSpec) -> np.ndarray:
    """Apply the whole spec to one uint8 image: float32 (C, spec.height, spec.width)."""
    resized = resize_to_input(image, spec)
    return normalize(convert_channels(resized, source, spec.channels), spec)
