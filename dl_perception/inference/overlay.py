"""Draw results onto a copy of the camera image, for people watching the `overlay` topic."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

TEXT_COLOUR = (255, 255, 255)
SHADOW_COLOUR = (0, 0, 0)
BOX_COLOUR = (0, 200, 255)


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    thickness = max(1, round(scale * 2))
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, SHADOW_COLOUR,
                thickness + 2, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOUR, thickness,
                cv2.LINE_AA)


def draw_results(image_bgr: np.ndarray, ranked: Sequence[tuple[str, float]],
                 boxes: Sequence[tuple[str, float, tuple[int, int, int, int]]] = ()
                 ) -> np.ndarray:
    """
    Return a copy of a uint8 BGR image (H, W, 3) with results drawn on it.

    ``ranked`` lines go top-left, one per (label, score); ``boxes`` are (label, score,
    (x, y, width, height)) detections.
    """
    canvas = np.array(image_bgr, dtype=np.uint8, copy=True)
    scale = max(0.4, canvas.shape[0] / 600)
    line_height = int(30 * scale)
    for row, (label, score) in enumerate(ranked):
        _text(canvas, f'{label} {score:.2f}', (8, line_height * (row + 1)), scale)
    for label, score, (x, y, width, height) in boxes:
        cv2.rectangle(canvas, (x, y), (x + width - 1, y + height - 1), BOX_COLOUR, 2)
        _text(canvas, f'{label} {score:.2f}', (x + 4, y + line_height), scale)
    return canvas
