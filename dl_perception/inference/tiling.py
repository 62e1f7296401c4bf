"""
Find objects with a classifier: classify overlapping tiles, keep the confident ones, merge.

A classifier trained on object crops (plus a background class to ignore) becomes a coarse
detector. Boxes are (x, y, width, height) in pixels of the full image.

1. Tiles: by default the model's input size, a quarter of it apart, so that any object of
   that size has a tile within an eighth of its side (IoU >= 0.6).
2. Tiles without content (every channel nearly flat, such as a black or blank wall) are not
   run: a classifier has to name *some* class for them, and that name means nothing.
3. A tile counts when its best class is not ignored and reaches the threshold.
4. Grouping, per class: the tile with the most support (the summed scores of the same-class
   tiles that overlap it by IoU >= ``merge_iou``) takes those tiles, then the next, and so on;
   a group never reaches beyond its seed's neighbours, so a chain of tiles across the frame is
   not one box. A group's box is the score-weighted mean of its tiles' boxes and its score the
   mean of its own tiles' scores.
5. A group whose box overlaps a group with more support (of any class) by more than
   ``suppress_overlap`` of the smaller box is dropped: tiles half over an object, which the
   classifier names wrongly, lose to the tiles centred on it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from dl_perception.inference.classifier import Classifier
import numpy as np

THRESHOLD = 0.5  # a blank tile of a background-less model scores 0.2-0.45 (one class of ten)
MIN_CONTRAST = 4.0  # grey levels (standard deviation of a tile's channel) below = no content
MERGE_IOU = 0.3  # tiles half a tile apart overlap by IoU 1/3: one object
SUPPRESS_OVERLAP = 0.2  # a quarter-tile overlap already means "the same object"
STRIDE_FRACTION = 4  # default stride = tile side / 4


@dataclass(frozen=True)
class TileDetection:
    """One object found: its label, probability, and box (x, y, width, height) in pixels."""

    label: str
    score: float
    box: tuple[int, int, int, int]


def _starts(length: int, size: int, stride: int) -> list[int]:
    if size >= length:
        return [0]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)  # the last tile touches the far edge
    return starts


def tile_grid(height: int, width: int, size: int | tuple[int, int],
              stride: int | tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """
    Return tiles covering the whole image, row by row; edge tiles are shifted inwards.

    :param size: tile side, or (height, width).
    :param stride: step between tiles, or (vertical, horizontal).
    """
    size_y, size_x = (size, size) if isinstance(size, int) else size
    stride_y, stride_x = (stride, stride) if isinstance(stride, int) else stride
    if min(size_y, size_x, stride_y, stride_x) < 1:
        raise ValueError(f'tile size and stride must be >= 1, got {size} and {stride}')
    return [(x, y, min(size_x, width), min(size_y, height))
            for y in _starts(height, size_y, stride_y)
            for x in _starts(width, size_x, stride_x)]


def tile_layout(classifier: Classifier, size: int = 0,
                stride: int = 0) -> tuple[tuple[int, int], tuple[int, int]]:
    """
    Resolve tile size and stride; 0 = the model's input (height, width), and a quarter of it.

    :returns: ((tile height, tile width), (vertical stride, horizontal stride)).
    """
    shape = (size, size) if size else (classifier.spec.height, classifier.spec.width)
    steps = (stride, stride) if stride else tuple(max(1, s // STRIDE_FRACTION) for s in shape)
    return shape, steps


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x, y, width, height) boxes."""
    return float(_pairwise(np.array([a], float), np.array([b], float))[0][0, 0])


def _pairwise(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) and (M, 4) boxes -> (IoU, intersection over the smaller box), each (N, M)."""
    width = (np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
             - np.maximum(a[:, None, 0], b[None, :, 0])).clip(0)
    height = (np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
              - np.maximum(a[:, None, 1], b[None, :, 1])).clip(0)
    inter = width * height
    area_a, area_b = (a[:, 2] * a[:, 3])[:, None], (b[:, 2] * b[:, 3])[None, :]
    return inter / (area_a + area_b - inter), inter / np.minimum(area_a, area_b)


def merge_tiles(tiles: list[TileDetection], merge_iou: float = MERGE_IOU,
                suppress_overlap: float = SUPPRESS_OVERLAP) -> list[TileDetection]:
    """
    Group the tiles of each object into one box; strongest object first.

    :param merge_iou: same-class tiles overlapping a group's seed by at least this IoU join it.
    :param suppress_overlap: a group covering more than this share of the smaller box of a
        group with more support is dropped (1.0 = never).
    """
    if not tiles:
        return []
    boxes = np.array([t.box for t in tiles], float)
    scores = np.array([t.score for t in tiles])
    labels = np.array([t.label for t in tiles])
    near = (_pairwise(boxes, boxes)[0] >= merge_iou) & (labels[:, None] == labels[None, :])
    support = near.astype(float) @ scores
    free = np.ones(len(tiles), bool)
    groups = []
    for seed in np.lexsort((np.arange(len(tiles)), -scores, -support)):
        if not free[seed]:
            continue
        members = np.flatnonzero(near[seed] & free)
        free[members] = False
        weights = scores[members] / scores[members].sum()
        x0, y0 = weights @ boxes[members, :2]
        x1, y1 = weights @ (boxes[members, :2] + boxes[members, 2:])
        box = (round(x0), round(y0), round(x1 - x0), round(y1 - y0))
        groups.append((scores[members].sum(), TileDetection(str(labels[seed]),
                                                            float(scores[members].mean()), box)))
    groups.sort(key=lambda group: -group[0])  # stable: ties keep the seeds' order
    kept: list[TileDetection] = []
    for _, group in groups:
        if kept:
            overlap = _pairwise(np.array([group.box], float),
                                np.array([k.box for k in kept], float))[1]
            if overlap.max() > suppress_overlap:
                continue
        kept.append(group)
    return kept


def has_content(tile: np.ndarray, min_contrast: float = MIN_CONTRAST) -> bool:
    """Return whether some channel of a uint8 tile varies by at least ``min_contrast``."""
    return float(tile.reshape(-1, tile.shape[-1]).std(axis=0).max()) >= min_contrast


def detect_in_tiles(classifier: Classifier, image: np.ndarray, source_order: str, size: int = 0,
                    stride: int = 0, threshold: float = THRESHOLD,
                    ignore: Collection[str] = (), *, min_contrast: float = MIN_CONTRAST,
                    merge_iou: float = MERGE_IOU,
                    suppress_overlap: float = SUPPRESS_OVERLAP) -> list[TileDetection]:
    """
    Classify the tiles of a uint8 image (H, W, C) that have content, in one batch, and merge.

    :param size: tile side in pixels; 0 = the model's input size.
    :param stride: step between tiles; 0 = a quarter of the tile.
    :param threshold: a tile counts when its best class reaches this probability.
    :param ignore: classes that never count (e.g. background).
    :param min_contrast: tiles whose every channel has a smaller standard deviation (grey
        levels) are not classified; 0 = classify all.
    """
    height, width = image.shape[:2]
    boxes = tile_grid(height, width, *tile_layout(classifier, size, stride))
    crops = [image[y:y + h, x:x + w] for x, y, w, h in boxes]
    if image.ndim == 2:
        crops = [crop[:, :, None] for crop in crops]
    chosen = [i for i, crop in enumerate(crops) if has_content(crop, min_contrast)]
    probabilities = classifier.predict_batch([crops[i] for i in chosen], source_order)
    found = []
    for i, row in zip(chosen, probabilities):
        best = int(np.argmax(row))
        label = classifier.labels[best]
        if row[best] >= threshold and label not in ignore:
            found.append(TileDetection(label, float(row[best]), boxes[i]))
    return merge_tiles(found, merge_iou, suppress_overlap)
