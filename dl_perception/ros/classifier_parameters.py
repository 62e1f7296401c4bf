"""
The classifier node's parameters (a ``ParameterTable``), their checks, and the model they load.

The checks here are the ones only this node needs; the table adds the shared ones (finite
numbers, choices) and the wording of every refusal.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dl_perception.inference.classifier import Classifier
from dl_perception.inference.providers import AUTO
from dl_perception.inference.providers import OPENVINO
from dl_perception.inference.providers import OPENVINO_PRECISIONS
from dl_perception.inference.providers import PROVIDER_CHOICES
from dl_perception.inference.providers import ProviderSettings
from dl_perception.preprocessing.spec import RESIZE_POLICIES
from dl_perception.ros.image_conversion import MAX_DECODED_PIXELS
from dl_perception.ros.parameter_table import Parameter
from dl_perception.ros.parameter_table import ParameterTable
from rclpy.exceptions import InvalidTopicNameException
from rclpy.validate_topic_name import validate_topic_name

MODES = ('classify', 'tiles')
RELIABILITIES = ('auto', 'reliable', 'best_effort')
CLASS_ID_FORMATS = ('index', 'name')


def _providers(values: list) -> str | None:
    try:
        ProviderSettings(tuple(values))
    except ValueError:
        return ('give [auto], or one or more of '
                f'{", ".join(p for p in PROVIDER_CHOICES if p not in (AUTO, OPENVINO))}, or '
                f'[{OPENVINO}] or [{OPENVINO}, cpu]')
    return None


def _topics(values: list) -> str | None:
    names = [v for v in values if v]
    if not names:
        return 'give at least one topic'
    for name in names:
        try:
            validate_topic_name(name)
        except InvalidTopicNameException as error:
            return f'{name!r} is not a valid topic name: {str(error).splitlines()[0]}'
    return None


# Per-channel mean and std are on pixel values scaled to 0..1; a std this small multiplies
# the input by a million or more, which no trained network expects.
MIN_STD = 1e-6


def _mean(values: list) -> str | None:
    if list(values) == [0.0]:
        return None
    if len(values) not in (1, 3) or not all(0.0 <= v <= 1.0 for v in values):
        return 'give 1 or 3 values from 0 to 1'
    return None


def _std(values: list) -> str | None:
    if list(values) == [0.0]:
        return None
    if len(values) not in (1, 3) or not all(v > MIN_STD for v in values):
        return f'give 1 or 3 values greater than {MIN_STD:g}'
    return None


PARAMETERS = ParameterTable(
    Parameter('model_path', '', 'ONNX classifier to load (a dl-perception export, or a '
              'foreign model with labels_path and the preprocessing overrides).'),
    Parameter('labels_path', '', 'Labels file (one per line, or JSON); empty = from the model '
              'metadata.'),
    Parameter('input_size', 0, 'Override: network input side in pixels; 0 = from metadata.',
              low=0, high=4096),
    Parameter('input_channels', '', 'Override: network input channels; empty = metadata.',
              choices=('', 'rgb', 'bgr', 'grey')),
    Parameter('mean', [0.0], 'Override: per-channel mean (0..1); [0.0] = from metadata.',
              check=_mean),
    Parameter('std', [0.0], 'Override: per-channel std (0..1); [0.0] = from metadata.',
              check=_std),
    Parameter('resize', '', 'Override: resize policy; empty = from metadata.',
              choices=('',) + RESIZE_POLICIES),
    Parameter('crop_fraction', 0.0, 'Override: center_crop keeps this fraction of the shorter '
              'side (e.g. 0.875 for ImageNet models); 0 = from metadata.', low=0.0, high=1.0),
    Parameter('output_kind', '', 'Override: what the network outputs; empty = metadata.',
              choices=('', 'logits', 'probabilities')),
    Parameter('providers', [AUTO], 'Execution providers, in order of preference: ONNX Runtime '
              "'s tensorrt, cuda, cpu, or openvino (the OpenVINO runtime, optionally followed by "
              'cpu); [auto] = the GPU providers whose driver and libraries are present here, '
              'else the CPU (what really runs is on /diagnostics).', check=_providers),
    Parameter('allow_cpu_fallback', False, 'With GPU providers or openvino named explicitly: run '
              "on ONNX Runtime's CPU provider (with a warning) when none of them starts, instead "
              'of failing.'),
    Parameter('device_id', 0, 'GPU index for the CUDA and TensorRT providers.', low=0, high=64),
    Parameter('tensorrt_fp16', True, 'Let TensorRT run in half precision.'),
    Parameter('tensorrt_cache_dir', '~/.cache/dl_perception/tensorrt', 'TensorRT engine '
              'cache folder (building an engine takes minutes); empty = no cache.'),
    Parameter('openvino_precision', 'f32', "OpenVINO's inference precision hint: f32 computes "
              'like ONNX Runtime; bf16 is faster where the CPU has it and moves the scores a '
              'little (measure with dl-perception evaluate).', choices=OPENVINO_PRECISIONS),
    Parameter('threads', 0, 'Inference threads (ONNX Runtime intra-op, OpenVINO '
              'INFERENCE_NUM_THREADS); 0 = the runtime default.', low=0, high=256),
    Parameter('cpu_spin_wait', False, 'Let ONNX Runtime CPU threads spin between frames: '
              'slightly lower latency, but cores kept busy while waiting for the next frame '
              '(OpenVINO has no such setting).'),
    Parameter('image_topics', ['image'], 'Input topics; names ending in /compressed carry '
              'sensor_msgs/CompressedImage, others sensor_msgs/Image. One model serves all.',
              read_only=True, check=_topics),
    Parameter('max_image_pixels', MAX_DECODED_PIXELS, 'Frames with more pixels are rejected '
              '(a compressed one from its header, before decoding), so one message cannot '
              'exhaust memory.', low=1, high=1 << 31),
    Parameter('queue_depth', 1, 'Input QoS depth per camera. 1 keeps only the newest frame '
              'even inside DDS; more lets bursts reach the node (which still classifies only '
              'the newest, counting the rest as dropped), so every message is accounted for.',
              low=1, high=100, read_only=True),
    Parameter('reliability', 'auto', 'Input QoS reliability; auto matches what the publishers '
              'offer.', choices=RELIABILITIES, read_only=True),
    Parameter('top_k', 5, 'Results per classification.', low=1, high=1000),
    Parameter('class_id_format', 'index', 'What class_id holds: index (the class number as '
              'text, mapped to names by label_info, the vision_msgs convention) or name (the '
              'label itself).', choices=CLASS_ID_FORMATS),
    Parameter('score_threshold', 0.0, 'Drop results below this probability.', low=0.0,
              high=1.0),
    Parameter('smoothing', 0.0, 'Temporal smoothing per camera: weight of the past in an '
              'exponential moving average of probabilities; 0 = off.', low=0.0, high=0.99),
    Parameter('mode', 'classify', 'classify: one result per image; tiles: classify tiles and '
              'publish detections.', choices=MODES),
    Parameter('tile_size', 0, 'tiles mode: tile side in pixels, about the size objects appear '
              'in the image; 0 = the model input size.', low=0, high=4096),
    Parameter('tile_stride', 0, 'tiles mode: step between tiles in pixels; 0 = a quarter of '
              'the tile (boxes within an eighth of a tile).', low=0, high=4096),
    Parameter('tile_threshold', 0.5, 'tiles mode: a tile counts only when its best class has '
              'at least this probability (score_threshold, if higher, wins).', low=0.0,
              high=1.0),
    Parameter('ignore_classes', [''], 'tiles mode: classes that never become detections '
              '(e.g. background).'),
    Parameter('max_rate_hz', 0.0, 'Process at most this many batches per second; 0 = as '
              'fast as frames come.', low=0.0, high=1000.0),
    Parameter('publish_overlay', True, 'Publish the image with its labels drawn on `overlay` '
              '(only computed while someone subscribes).'),
    Parameter('diagnostics_period', 1.0, 'Seconds between /diagnostics reports.', low=0.1,
              high=60.0, read_only=True),
    Parameter('autostart', True, 'Configure and activate on start-up.', read_only=True),
)

MODEL_PARAMETERS = ('model_path', 'labels_path', 'input_size', 'input_channels', 'mean', 'std',
                    'resize', 'crop_fraction', 'output_kind', 'providers', 'allow_cpu_fallback',
                    'device_id', 'tensorrt_fp16', 'tensorrt_cache_dir', 'openvino_precision',
                    'threads', 'cpu_spin_wait')


def preprocessing_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """Return the PreprocessingSpec fields the parameters set (empty/0 mean 'from metadata')."""
    overrides: dict[str, Any] = {}
    if values['input_size']:
        overrides['height'] = overrides['width'] = values['input_size']
    if values['input_channels']:
        overrides['channels'] = values['input_channels']
    for name in ('mean', 'std'):
        if list(values[name]) != [0.0]:
            overrides[name] = tuple(values[name])
    if values['resize']:
        overrides['resize'] = values['resize']
    if values['crop_fraction']:
        overrides['crop_fraction'] = values['crop_fraction']
    return overrides


def classifier_from_parameters(values: Mapping[str, Any]) -> Classifier:
    """
    Load the classifier the parameter values describe.

    :raises FileNotFoundError: model or labels file missing.
    :raises ValueError: the model is not usable with these settings (the message says why).
    :raises ProviderError: a GPU provider or OpenVINO was required and did not start.
    """
    if not values['model_path']:
        raise ValueError('model_path is empty: set it to an exported .onnx file')
    providers = ProviderSettings(
        tuple(values['providers']), device_id=values['device_id'],
        tensorrt_fp16=values['tensorrt_fp16'],
        tensorrt_cache_dir=(str(Path(values['tensorrt_cache_dir']).expanduser())
                            if values['tensorrt_cache_dir'] else None),
        allow_cpu_fallback=values['allow_cpu_fallback'], intra_op_threads=values['threads'],
        spin_wait=values['cpu_spin_wait'], openvino_precision=values['openvino_precision'])
    return Classifier(values['model_path'], labels=values['labels_path'] or None,
                      preprocessing=preprocessing_overrides(values),
                      output=values['output_kind'] or None, providers=providers)
