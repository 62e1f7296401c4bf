"""
The image source node's parameters (a ``ParameterTable``), all read once at start.

``Settings`` is the typed snapshot the node works from, one field per parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

from dl_perception.datasets import FASHION_MNIST_ROOT
from dl_perception.datasets.frame_sources import check_source
from dl_perception.ros.parameter_table import Parameter
from dl_perception.ros.parameter_table import ParameterTable

INT32_MAX = 2 ** 31 - 1
ENCODINGS = ('bgr8', 'rgb8', 'mono8')


def _positive(value: float) -> str | None:
    return None if value > 0.0 else 'must be > 0'


PARAMETERS = ParameterTable(
    Parameter('source', 'fashion-mnist:test', "What to replay: 'fashion-mnist:test' or "
              "'fashion-mnist:train', 'folder:/path', 'video:/path.mp4' or 'camera:0'.",
              read_only=True, check=check_source),
    Parameter('dataset_root', str(FASHION_MNIST_ROOT), 'Folder holding the Fashion-MNIST IDX '
              'files (apt-get install dataset-fashion-mnist).', read_only=True),
    Parameter('width', 640, 'Output frame width in pixels; 0 keeps the native size.', low=0,
              high=16384, read_only=True),
    Parameter('height', 480, 'Output frame height in pixels; 0 keeps the native size.', low=0,
              high=16384, read_only=True),
    Parameter('rate_hz', 30.0, 'Frames per second (> 0).', low=0.0, high=1000.0,
              read_only=True, check=_positive),
    Parameter('loop', False, 'Start again at the first frame when the source ends.',
              read_only=True),
    Parameter('max_frames', 0, 'Stop after this many frames; 0 sends them all.', low=0,
              high=INT32_MAX, read_only=True),
    Parameter('start_index', 0, 'Index of the first frame sent.', low=0, high=INT32_MAX,
              read_only=True),
    Parameter('shuffle', False, 'Send dataset or folder images in a random order.',
              read_only=True),
    Parameter('seed', 0, 'Seed of the shuffled order.', low=0, high=INT32_MAX, read_only=True),
    Parameter('encoding', 'bgr8', 'Raw image encoding.', choices=ENCODINGS, read_only=True),
    Parameter('compressed', False, 'Publish sensor_msgs/CompressedImage on image/compressed.',
              read_only=True),
    Parameter('compression', 'jpeg', 'Compressed format.', choices=('jpeg', 'png'),
              read_only=True),
    Parameter('jpeg_quality', 90, 'JPEG quality.', low=1, high=100, read_only=True),
    Parameter('frame_id', 'camera', 'frame_id of every header.', read_only=True),
    Parameter('reliability', 'reliable', 'Image QoS reliability.',
              choices=('reliable', 'best_effort'), read_only=True),
    Parameter('exit_when_done', True, 'Shut down (exit code 0) once the last frame is sent.',
              read_only=True),
    Parameter('startup_delay', 1.0, 'Seconds to wait before the first frame.', low=0.0,
              high=3600.0, read_only=True),
    Parameter('wait_for_subscribers', 0, 'Subscriber nodes (of image or ground_truth) to wait '
              'for before the first frame.', low=0, high=1000, read_only=True),
    Parameter('wait_timeout', 10.0, 'Seconds after start to stop waiting for subscribers.',
              low=0.0, high=3600.0, read_only=True),
)


@dataclass(frozen=True)
class Settings:
    """The values in force, typed; the table holds their defaults and bounds."""

    source: str
    dataset_root: str
    width: int
    height: int
    rate_hz: float
    loop: bool
    max_frames: int
    start_index: int
    shuffle: bool
    seed: int
    encoding: str
    compressed: bool
    compression: str
    jpeg_quality: int
    frame_id: str
    reliability: str
    exit_when_done: bool
    startup_delay: float
    wait_for_subscribers: int
    wait_timeout: float
