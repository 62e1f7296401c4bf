"""
Where camera frames come from: a dataset split, an image folder, a video file or a camera.

``open_frames`` turns a ``source`` string into a frame sequence, and ``render_frame`` is the
pure function that makes the published frame from a source image, so an offline evaluation
can reproduce the exact pixels the image source sends.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
from dl_perception.datasets import FASHION_MNIST_CLASSES
from dl_perception.datasets import FileImages
from dl_perception.datasets import IMAGE_SUFFIXES
from dl_perception.datasets import ImageSource
from dl_perception.datasets import load_fashion_mnist
from dl_perception.datasets import load_folder
import numpy as np

FASHION_MNIST_SPLITS = ('test', 'train')
_TO_BGR = {'bgr': None, 'rgb': cv2.COLOR_RGB2BGR, 'grey': cv2.COLOR_GRAY2BGR}


@dataclass(frozen=True)
class SourceOptions:
    """What to replay and in which order (the image source's parameters that concern it)."""

    source: str
    dataset_root: str
    loop: bool = False
    shuffle: bool = False
    seed: int = 0
    start_index: int = 0


def check_source(spec: str) -> str | None:
    """Return why a ``source`` value is malformed (the value itself not repeated), or None."""
    kind, colon, target = spec.partition(':')
    if not colon or kind not in _OPENERS or not target:
        return ("must be 'fashion-mnist:<split>', 'folder:<path>', 'video:<path>' or "
                "'camera:<index or device>'")
    if kind == 'fashion-mnist' and target not in FASHION_MNIST_SPLITS:
        return f'the fashion-mnist split must be one of {FASHION_MNIST_SPLITS}'
    return None


def _fit_on_black(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale a uint8 (H, W) plane to fit width x height, keeping its shape, centred on black."""
    rows, cols = plane.shape
    scale = min(width / cols, height / rows)
    size_x = max(1, min(width, round(cols * scale)))
    size_y = max(1, min(height, round(rows * scale)))
    left, top = (width - size_x) // 2, (height - size_y) // 2
    canvas = np.zeros((height, width), np.uint8)
    canvas[top:top + size_y, left:left + size_x] = cv2.resize(
        plane, (size_x, size_y), interpolation=cv2.INTER_LINEAR)
    return canvas


def render_frame(image: np.ndarray, order: str, width: int, height: int) -> np.ndarray:
    """
    Return the camera frame made from a source image: uint8 BGR (height, width, 3).

    A grey image (a dataset's object on black) is scaled with cv2.INTER_LINEAR, keeping its
    aspect ratio, to the largest size that fits (a height x height square for a square image
    in a landscape frame) and centred on a black canvas. A colour image is stretched to
    width x height. Either way, a width or height of 0 keeps the native size.

    :param image: uint8 (H, W) or (H, W, C) in channel order ``order``.
    :param order: 'grey' (C = 1), 'bgr' or 'rgb' (C = 3).
    :raises ValueError: for another order or dtype, or a shape that does not fit the order.
    """
    if order not in _TO_BGR:
        raise ValueError(f"image order must be one of {', '.join(_TO_BGR)}, got {order!r}")
    channels = 1 if order == 'grey' else 3
    fits = (image.ndim == 3 and image.shape[2] == channels) or (image.ndim == 2 and channels == 1)
    if image.dtype != np.uint8 or not fits or image.size == 0:
        raise ValueError(f'expected a uint8 {order} image of {channels} channel(s), got '
                         f'{image.dtype} {image.shape}')
    plane = image.reshape(image.shape[:2]) if channels == 1 else image
    if width > 0 and height > 0:
        if order == 'grey':
            plane = _fit_on_black(plane, width, height)
        elif plane.shape[:2] != (height, width):
            plane = cv2.resize(plane, (width, height), interpolation=cv2.INTER_LINEAR)
    code = _TO_BGR[order]
    return np.ascontiguousarray(plane) if code is None else cv2.cvtColor(plane, code)


@dataclass(frozen=True)
class SourceFrame:
    """One source image (uint8 (H, W, C) in ``order``) and its label name, if labelled."""

    image: np.ndarray
    order: str
    label: str | None


class IndexedFrames:
    """The images of an indexable source, in name or shuffled order, from ``start_index``."""

    def __init__(self, images: ImageSource, class_names: Sequence[str] | None,
                 options: SourceOptions) -> None:
        if options.start_index >= len(images):
            raise ValueError(f'start_index {options.start_index} is past the last of the '
                             f'{len(images)} images')
        self._images, self._class_names, self._loop = images, class_names, options.loop
        count = len(images)
        self._order = (np.random.default_rng(options.seed).permutation(count)
                       if options.shuffle else np.arange(count))
        self._position = options.start_index
        self.labelled = class_names is not None

    def read_next(self) -> SourceFrame | None:
        """Return the next frame, or None at the end of a source that does not loop."""
        if self._position >= len(self._order):
            if not self._loop:
                return None
            self._position = 0
        index = int(self._order[self._position])
        self._position += 1
        label = None if self._class_names is None else self._class_names[
            int(self._images.labels[index])]
        return SourceFrame(self._images.read(index), self._images.order, label)

    def close(self) -> None:
        """Release nothing: the images are in memory or read one file at a time."""


class CaptureFrames:
    """Frames read in sequence from an OpenCV capture: a video file (seekable) or a camera."""

    labelled = False

    def __init__(self, capture: cv2.VideoCapture, options: SourceOptions, seekable: bool) -> None:
        self._capture, self._seekable, self._loop = capture, seekable, options.loop
        if options.start_index and seekable:
            capture.set(cv2.CAP_PROP_POS_FRAMES, options.start_index)

    def read_next(self) -> SourceFrame | None:
        """Return the next frame, or None when the capture ends (a video rewinds if looping)."""
        ok, image = self._capture.read()
        if not ok and self._loop and self._seekable:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._capture.read()
        return SourceFrame(image, 'bgr', None) if ok else None

    def close(self) -> None:
        """Release the capture (the file or the device)."""
        self._capture.release()


def _open_fashion_mnist(split: str, options: SourceOptions) -> IndexedFrames:
    images = load_fashion_mnist(Path(options.dataset_root), split)
    return IndexedFrames(images, FASHION_MNIST_CLASSES, options)


def _open_folder(target: str, options: SourceOptions) -> IndexedFrames:
    """Replay a flat folder of images unlabelled, else a labelled folder's test split."""
    root = Path(target)
    if not root.is_dir():
        raise FileNotFoundError(f'image folder not found: {root}')
    flat = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if flat:
        return IndexedFrames(FileImages(flat, [0] * len(flat)), None, options)
    splits, classes = load_folder(root)
    split = next(name for name in ('test', 'val', 'train') if name in splits)
    return IndexedFrames(splits[split], classes, options)


def _open_capture(target: int | str, what: str, options: SourceOptions,
                  seekable: bool) -> CaptureFrames:
    if options.shuffle or (options.start_index and not seekable):
        raise ValueError(f'shuffle and start_index need a dataset, folder or video source, '
                         f'not a {what}')
    capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        raise ValueError(f'OpenCV cannot open {what} {target!r}')
    return CaptureFrames(capture, options, seekable)


def _open_video(target: str, options: SourceOptions) -> CaptureFrames:
    if not Path(target).is_file():
        raise FileNotFoundError(f'video file not found: {target}')
    return _open_capture(target, 'video file', options, seekable=True)


def _open_camera(target: str, options: SourceOptions) -> CaptureFrames:
    device = int(target) if target.isdigit() else target
    return _open_capture(device, 'camera', options, seekable=False)


_OPENERS: dict[str, Callable[[str, SourceOptions], IndexedFrames | CaptureFrames]] = {
    'fashion-mnist': _open_fashion_mnist,
    'folder': _open_folder,
    'video': _open_video,
    'camera': _open_camera,
}


def open_frames(options: SourceOptions) -> IndexedFrames | CaptureFrames:
    """
    Open the frame sequence that ``options.source`` names.

    :raises FileNotFoundError: when the dataset, folder or video is missing.
    :raises ValueError: for a malformed source, an unreadable one, or options it cannot honour.
    """
    problem = check_source(options.source)
    if problem:
        raise ValueError(f'source {options.source!r}: {problem}')
    kind, _, target = options.source.partition(':')
    return _OPENERS[kind](target, options)
