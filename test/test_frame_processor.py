"""The classifier node's batch work, in-process: frames in, vision_msgs out, faults contained."""

from __future__ import annotations

import subprocess
import sys

import cv2
from dl_perception.inference.classifier import Classifier
from dl_perception.inference.classifier import InferenceError
from dl_perception.ros.classifier_parameters import PARAMETERS
from dl_perception.ros.frame_processor import FrameProcessor
from dl_perception.ros.frame_processor import ProcessingSettings
from dl_perception.ros.image_conversion import image_to_msg
from dl_perception.ros.latest_frames import ReceivedFrame
from dl_perception.ros.node_statistics import NodeStatistics
import faulty_models
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import Header


def settings(**overrides) -> ProcessingSettings:
    values = {p.name: p.default for p in PARAMETERS}
    values.update(overrides)
    return ProcessingSettings.from_parameters(values)


class Processor:
    """A FrameProcessor with its statistics and a record of rejections."""

    def __init__(self) -> None:
        self.statistics = NodeStatistics()
        self.rejected: list[tuple[str, str]] = []
        self.processor = FrameProcessor(self.statistics,
                                        lambda camera, why: self.rejected.append((camera, why)))

    def run(self, classifier: Classifier, messages: dict, **overrides):
        frames = {camera: ReceivedFrame(message, 0.0) for camera, message in messages.items()}
        return self.processor.process(classifier, frames, settings(**overrides), False)


def grey_msg(image: np.ndarray, frame_id: str = 'f') -> object:
    return image_to_msg(image, 'mono8', Header(frame_id=frame_id))


def png_msg(image: np.ndarray) -> CompressedImage:
    return CompressedImage(format='png', data=cv2.imencode('.png', image)[1].tobytes())


@pytest.fixture(scope='module')
def fails_on_bright(tmp_path_factory) -> Classifier:
    return Classifier(faulty_models.fails_on_bright(tmp_path_factory.mktemp('m') / 'f.onnx'))


def test_a_model_failing_on_a_batch_raises_inference_error(fails_on_bright):
    processor = Processor()
    dark = processor.run(fails_on_bright, {'/a': grey_msg(np.zeros((28, 28), np.uint8))})
    assert len(dark.classifications) == 1
    with pytest.raises(InferenceError, match='failed on a batch of shape'):
        processor.run(fails_on_bright, {'/a': grey_msg(np.full((28, 28), 200, np.uint8))})


def test_a_model_that_cannot_run_its_configured_input_is_refused_at_load(tmp_path):
    path = faulty_models.needs_32x32(tmp_path / 'n.onnx')
    with pytest.raises(ValueError, match=r'loads but fails on a \(1, 1, 28, 28\) input'):
        Classifier(path)
    assert Classifier(path, preprocessing={'height': 32, 'width': 32}).spec.height == 32


def test_row_and_column_images_are_classified(tiny_onnx):
    classifier = Classifier(tiny_onnx, preprocessing={'resize': 'center_crop'})
    processor = Processor()
    results = processor.run(classifier, {
        '/row': grey_msg(np.full((1, 2_000_000), 255, np.uint8)),
        '/column': grey_msg(np.full((2_000_000, 1), 255, np.uint8)),
        '/png': png_msg(np.full((1, 1_000_000), 255, np.uint8))})
    assert len(results.classifications) == 3 and processor.rejected == []


def test_frames_over_max_image_pixels_are_rejected_before_decoding(tiny_onnx):
    classifier = Classifier(tiny_onnx)
    processor = Processor()
    results = processor.run(classifier, {
        '/raw': grey_msg(np.zeros((1, 2_000_000), np.uint8)),
        '/png': png_msg(np.zeros((1, 1_000_000), np.uint8)),
        '/ok': grey_msg(np.zeros((100, 100), np.uint8), 'ok')}, max_image_pixels=500_000)
    assert [m.header.frame_id for m in results.classifications] == ['ok']
    assert sorted(camera for camera, _ in processor.rejected) == ['/png', '/raw']
    assert all('more than max_image_pixels = 500000 pixels' in why
               for _, why in processor.rejected)


@pytest.mark.ros
def test_center_crop_of_a_row_image_allocates_no_more_than_the_input():
    """In a fresh process, so the peak resident memory belongs to this one call."""
    script = '\n'.join([
        'import resource, numpy as np',
        'from dl_perception.preprocessing import PreprocessingSpec, resize_to_input',
        "spec = PreprocessingSpec(28, 28, 'grey', (0.5,), (0.5,), resize='center_crop')",
        'before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss',
        'row = np.full((1, 2_000_000, 1), 255, np.uint8)',
        'out = resize_to_input(row, spec)',
        'after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss',
        'print(out.shape, int(out.min()), (after - before) // 1024)'])
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            timeout=60)
    shape, low, grown_mib = result.stdout.rsplit(' ', 2)
    assert shape == '(28, 28, 1)' and low == '255', result.stderr
    assert int(grown_mib) < 50  # the row itself is 2 MB; scaling it whole took 1,500 MB


def test_each_stage_of_a_batch_is_timed_and_its_size_counted(tiny_onnx):
    processor = Processor()
    frames = {camera: grey_msg(np.full((28, 28), 80, np.uint8)) for camera in ('/a', '/b')}
    processor.run(Classifier(tiny_onnx), frames)
    values = processor.statistics.report({})
    assert values['batch sizes (size: batches)'] == '2: 1'
    for stage in ('wait', 'convert', 'preprocess', 'infer', 'postprocess'):
        assert values[f'{stage} p50 / p95 (ms)'] != 'n/a', stage
    assert values['publish p50 / p95 (ms)'] == 'n/a'  # the node publishes, not the processor
