"""
Build vision_msgs messages from plain Python values.

Pure functions, no node: each is testable on its own, and the nodes only call them.
Conventions (vision_msgs 4.x): a result's header is the source image's header, so
``message_filters`` can pair them; ``class_id`` carries the class index as text (or, if the
node is told so, the label name), which LabelInfo's class map turns into the name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from std_msgs.msg import Header
from vision_msgs.msg import BoundingBox2D
from vision_msgs.msg import Classification
from vision_msgs.msg import Detection2D
from vision_msgs.msg import Detection2DArray
from vision_msgs.msg import LabelInfo
from vision_msgs.msg import ObjectHypothesis
from vision_msgs.msg import ObjectHypothesisWithPose
from vision_msgs.msg import VisionClass
from vision_msgs.msg import VisionInfo

UINT16_MAX = 65535


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels: centre and size, as vision_msgs describes it."""

    center_x: float
    center_y: float
    width: float
    height: float


def hypotheses(scored_labels: Iterable[tuple[str, float]]) -> list[ObjectHypothesis]:
    """Turn (label, score) pairs into ObjectHypothesis messages, keeping their order."""
    return [ObjectHypothesis(class_id=label, score=float(score)) for label, score in scored_labels]


def classification_msg(header: Header,
                       scored_labels: Iterable[tuple[str, float]]) -> Classification:
    """Build a Classification whose header is the source image's header."""
    return Classification(header=header, results=hypotheses(scored_labels))


def detection_msg(header: Header, box: Box, scored_labels: Iterable[tuple[str, float]],
                  detection_id: str = '') -> Detection2D:
    """Build one Detection2D; the pose of each hypothesis is left at identity."""
    bbox = BoundingBox2D(size_x=float(box.width), size_y=float(box.height))
    bbox.center.position.x = float(box.center_x)
    bbox.center.position.y = float(box.center_y)
    results = [ObjectHypothesisWithPose(hypothesis=h) for h in hypotheses(scored_labels)]
    return Detection2D(header=header, results=results, bbox=bbox, id=detection_id)


def detection_array_msg(header: Header, detections: Sequence[Detection2D]) -> Detection2DArray:
    """Wrap detections of one image into a Detection2DArray with the image's header."""
    return Detection2DArray(header=header, detections=list(detections))


def label_info_msg(header: Header, labels: Sequence[str], threshold: float) -> LabelInfo:
    """
    Build the LabelInfo class map: class index -> label name.

    :raises ValueError: more labels than a uint16 class id can number.
    """
    if len(labels) > UINT16_MAX + 1:
        raise ValueError(f'LabelInfo numbers classes with uint16; got {len(labels)} labels, '
                         f'at most {UINT16_MAX + 1} fit')
    class_map = [VisionClass(class_id=index, class_name=name) for index, name in enumerate(labels)]
    return LabelInfo(header=header, class_map=class_map, threshold=float(threshold))


def vision_info_msg(header: Header, method: str, database_location: str,
                    database_version: int) -> VisionInfo:
    """Build VisionInfo: which model runs, where its labels live, and their version."""
    return VisionInfo(header=header, method=method, database_location=database_location,
                      database_version=int(database_version))
