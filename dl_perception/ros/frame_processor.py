"""
The classifier node's work on one batch of frames: decode, classify, build messages.

Kept apart from the node so it runs (and is tested) without one: frames in, vision_msgs out.
A frame that cannot be decoded is rejected and counted; the others still go through.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from dataclasses import field
from functools import lru_cache
import time
from typing import Any

import cv2
from dl_perception.inference.classifier import Classifier
from dl_perception.inference.overlay import draw_results
from dl_perception.inference.postprocess import ProbabilitySmoother
from dl_perception.inference.postprocess import rank
from dl_perception.inference.tiling import detect_in_tiles
from dl_perception.preprocessing import convert_channels
from dl_perception.ros import vision_messages
from dl_perception.ros.image_conversion import image_from_compressed
from dl_perception.ros.image_conversion import image_from_msg
from dl_perception.ros.image_conversion import ImageConversionError
from dl_perception.ros.latest_frames import ReceivedFrame
from dl_perception.ros.node_statistics import NodeStatistics
import numpy as np
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import Header
from vision_msgs.msg import Classification
from vision_msgs.msg import Detection2DArray


@dataclass(frozen=True)
class ProcessingSettings:
    """The parameters the worker reads for every batch (a snapshot, swapped as a whole)."""

    top_k: int
    score_threshold: float
    mode: str
    tile_size: int
    tile_stride: int
    tile_threshold: float
    ignore_classes: frozenset[str]
    smoothing: float
    publish_overlay: bool
    max_image_pixels: int
    max_rate_hz: float
    class_id_format: str

    @classmethod
    def from_parameters(cls, values: Mapping[str, Any]) -> ProcessingSettings:
        """Take the relevant parameter values (empty ignore_classes entries are dropped)."""
        return cls(values['top_k'], values['score_threshold'], values['mode'],
                   values['tile_size'], values['tile_stride'], values['tile_threshold'],
                   frozenset(c for c in values['ignore_classes'] if c), values['smoothing'],
                   values['publish_overlay'], values['max_image_pixels'],
                   values['max_rate_hz'], values['class_id_format'])


@dataclass
class Results:
    """Messages for one batch; overlays are (header, BGR uint8 image) pairs."""

    classifications: list[Classification] = field(default_factory=list)
    detections: list[Detection2DArray] = field(default_factory=list)
    overlays: list[tuple[Header, np.ndarray]] = field(default_factory=list)


@dataclass(frozen=True)
class _Decoded:
    camera: Hashable
    header: Header
    image: np.ndarray
    order: str


@lru_cache(maxsize=8)
def class_ids(labels: tuple[str, ...], class_id_format: str) -> tuple[str, ...]:
    """Return what each class's ``class_id`` says: its index as text (vision_msgs) or name."""
    return labels if class_id_format == 'name' else tuple(str(i) for i in range(len(labels)))


# A frame that fails on its way to the network: malformed, or too much for OpenCV.
FRAME_ERRORS = (ImageConversionError, ValueError, TypeError, cv2.error, MemoryError)


def decode(message: Any, max_pixels: int) -> tuple[np.ndarray, str]:
    """Image or CompressedImage -> uint8 (H, W, C) image and its channel order."""
    if isinstance(message, CompressedImage):
        return image_from_compressed(message, max_pixels)
    return image_from_msg(message, max_pixels)


class FrameProcessor:
    """Turns waiting frames into results with the current classifier and settings."""

    def __init__(self, statistics: NodeStatistics,
                 on_reject: Callable[[Hashable, str], None]) -> None:
        self._statistics = statistics
        self._on_reject = on_reject
        self._smoother: ProbabilitySmoother | None = None

    def reset_smoothing(self, smoothing: float) -> None:
        """Start the per-camera averages afresh (after a model or smoothing change)."""
        self._smoother = ProbabilitySmoother(1.0 - smoothing) if smoothing > 0 else None

    def process(self, classifier: Classifier, frames: Mapping[Hashable, ReceivedFrame],
                settings: ProcessingSettings, want_overlay: bool) -> Results:
        """
        Classify every decodable frame; reject (and count) the others.

        :raises InferenceError: the model failed on the batch.
        """
        taken = time.monotonic()
        stages = {'wait': [], 'convert': [], 'preprocess': [], 'infer': [], 'postprocess': []}
        decoded, inputs = [], []
        for camera, frame in frames.items():
            stages['wait'].append((taken - frame.arrived) * 1e3)
            try:
                started = time.perf_counter()
                image, order = decode(frame.message, settings.max_image_pixels)
                converted = time.perf_counter()
                stages['convert'].append((converted - started) * 1e3)
                if settings.mode == 'classify':
                    inputs.append(classifier.preprocess(image, order))
                    stages['preprocess'].append((time.perf_counter() - converted) * 1e3)
            except FRAME_ERRORS as error:
                self._on_reject(camera, str(error))
                continue
            decoded.append(_Decoded(camera, frame.message.header, image, order))
        results = Results()
        try:
            if decoded:
                self._run_model(classifier, decoded, inputs, settings, want_overlay, results,
                                stages)
        finally:  # a batch the model failed on still took its time
            self._statistics.on_batch(len(decoded), stages)
        return results

    def _run_model(self, classifier: Classifier, decoded: list[_Decoded],
                   inputs: list[np.ndarray], settings: ProcessingSettings, want_overlay: bool,
                   results: Results, stages: dict[str, list[float]]) -> None:
        """Classify (or tile) the decoded frames into ``results``, timing infer/postprocess."""
        started = time.perf_counter()
        if settings.mode == 'tiles':  # tiles are cut, classified and merged in one go: infer
            self._detect(classifier, decoded, settings, want_overlay, results)
            stages['infer'].append((time.perf_counter() - started) * 1e3)
            return
        probabilities = classifier.probabilities(np.stack(inputs))
        inferred = time.perf_counter()
        stages['infer'].append((inferred - started) * 1e3)
        self._classify(classifier, decoded, probabilities, settings, want_overlay, results)
        stages['postprocess'].append((time.perf_counter() - inferred) * 1e3)

    def _classify(self, classifier: Classifier, decoded: list[_Decoded],
                  probabilities: np.ndarray, settings: ProcessingSettings, want_overlay: bool,
                  results: Results) -> None:
        ids = class_ids(classifier.labels, settings.class_id_format)
        for item, row in zip(decoded, probabilities):
            if self._smoother is not None:
                row = self._smoother.update(item.camera, row)
            ranked = rank(row, ids, settings.top_k, settings.score_threshold)
            results.classifications.append(vision_messages.classification_msg(item.header,
                                                                              ranked))
            if want_overlay:
                bgr = convert_channels(item.image, item.order, 'bgr')
                named = rank(row, classifier.labels, settings.top_k, settings.score_threshold)
                results.overlays.append((item.header, draw_results(bgr, named)))

    def _detect(self, classifier: Classifier, decoded: list[_Decoded],
                settings: ProcessingSettings, want_overlay: bool, results: Results) -> None:
        ids = class_ids(classifier.labels, settings.class_id_format)
        id_of = {name: ids[index] for index, name in reversed(list(enumerate(classifier.labels)))}
        for item in decoded:
            found = detect_in_tiles(classifier, item.image, item.order, settings.tile_size,
                                    settings.tile_stride,
                                    max(settings.tile_threshold, settings.score_threshold),
                                    settings.ignore_classes)
            detections = [
                vision_messages.detection_msg(
                    item.header, vision_messages.Box(x + w / 2, y + h / 2, w, h),
                    [(id_of[d.label], d.score)], detection_id=str(index))
                for index, d in enumerate(found) for x, y, w, h in [d.box]]
            results.detections.append(vision_messages.detection_array_msg(item.header,
                                                                          detections))
            if want_overlay:
                bgr = convert_channels(item.image, item.order, 'bgr')
                boxes = [(d.label, d.score, d.box) for d in found]
                results.overlays.append((item.header, draw_results(bgr, (), boxes)))
