"""
Find objects with a classifier: classify overlapping tiles, keep the confident ones, merge.

A classifier trained on object crops (plus a background class to ignore) becomes a coarse
detector. Boxes are (x, y, width, height) in pixels of the full image.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from dl_perception.inference.classifier import Classifier
import numpy as np


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


def tile_grid(height: int, width: int, size: int,
              stride: int) -> list[tuple[int, int, int, int]]:
    """Return tiles covering the whole image, row by row; edge tiles are shifted inwards."""
    if size < 1 or stride < 1:
        raise ValueError(f'tile size and stride must be >= 1, got {size} and {stride}')
    return [(x, y, min(size, width), min(size, height))
            for y in _starts(height, size, stride) for x in _starts(width, size, stride)]


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return (a[0] < b[0] + b[2] and b[0] < a[0] + a[2]
            and a[1] < b[1] + b[3] and b[1] < a[1] + a[3])


def merge_overlapping(detections: list[TileDetection]) -> list[TileDetection]:
    """
    Merge each group of overlapping boxes of one label into their bounding box.

    Groups are connected components (A overlaps B, B overlaps C: one object); the merged
    score is the group's best.
    """
    parent = list(range(len(detections)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, first in enumerate(detections):
        for j in range(i + 1, len(detections)):
            second = detections[j]
            if first.label == second.label and _overlap(first.box, second.box):
                parent[root(j)] = root(i)
    groups: dict[int, list[TileDetection]] = {}
    for i, detection in enumerate(detections):
        groups.setdefault(root(i), []).append(detection)
    merged = []
    for members in groups.values():
        x0 = min(m.box[0] for m in members)
        y0 = min(m.box[1] for m in members)
        x1 = max(m.box[0] + m.box[2] for m in members)
        y1 = max(m.box[1] + m.box[3] for m in members)
        merged.append(TileDetection(members[0].label, max(m.score for m in members),
                                    (x0, y0, x1 - x0, y1 - y0)))
    return sorted(merged, key=lambda d: -d.score)


def detect_in_tiles(classifier: Classifier, image: np.ndarray, source_order: str, size: int,
                    stride: int, threshold: float,
                    ignore: Collection[str] = ()) -> list[TileDetection]:
    """
    Classify every tile of a uint8 image (H, W, C) in one batch and merge what was found.

    A tile counts when its best class is not ignored and its probability >= ``threshold``.
    """
    height, width = image.shape[:2]
    boxes = tile_grid(height, width, size, stride)
    crops = [image[y:y + h, x:x + w] for x, y, w, h in boxes]
    probabilities = classifier.predict_batch(crops, source_order)
    found = []
    for box, row in zip(boxes, probabilities):
        best = int(np.argmax(row))
        label = classifier.labels[best]
        if row[best] >= threshold and label not in ignore:
            found.append(TileDetection(label, float(row[best]), box))
    return merge_overlapping(found)
