"""INT8 quantization: a real exported LeNet becomes a checked, described int8 file, or nothing."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess

from dl_perception.export.evaluate_cli import DATASET_ROOTS
from dl_perception.export.quantize import AccuracyDropError
from dl_perception.export.quantize import CalibrationImages
from dl_perception.export.quantize import fp32_companion
from dl_perception.export.quantize import prepared_batches
from dl_perception.export.quantize import QUANTIZATION_KEY
from dl_perception.export.quantize import QuantizationOptions
from dl_perception.export.quantize import quantize_onnx
from dl_perception.inference.classifier import Classifier
from dl_perception.training.data import load_split
import numpy as np
import onnx
import pytest

OPTIONS = QuantizationOptions(calibration_images=64, evaluation_images=2000)


def _props(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_int8_file_keeps_the_metadata_and_describes_its_quantization(tiny_onnx, int8):
    model = onnx.load(str(int8.path))
    onnx.checker.check_model(model, full_check=True)
    props = _props(int8.path)
    for key, value in _props(tiny_onnx).items():
        assert props[key] == value, key
    described = json.loads(props[QUANTIZATION_KEY])
    assert described['format'] == 'QDQ' and described['dtype'] == 'int8'
    assert described['calibration'] == {'images': 64, 'split': 'train', 'seed': 0}
    assert described['accuracy'] == {'split': 'test', 'images': 2000,
                                     'fp32_top1': int8.fp32_top1, 'int8_top1': int8.int8_top1,
                                     'change_points': int8.accuracy_change_points}


def test_int8_graph_holds_quantize_nodes_and_int8_weights(tiny_onnx, int8):
    model = onnx.load(str(int8.path))
    ops = {node.op_type for node in model.graph.node}
    assert {'QuantizeLinear', 'DequantizeLinear'} <= ops
    int8_weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 5  # 2 convolutions and 3 fully connected layers
    assert int8.path.stat().st_size < tiny_onnx.stat().st_size / 2


def test_classifier_runs_int8_and_agrees_with_fp32(tiny_onnx, int8):
    fp32, quantized = Classifier(tiny_onnx), Classifier(int8.path)
    assert quantized.input_dtype == np.float32 and quantized.labels == fp32.labels
    test = load_split('fashion-mnist', DATASET_ROOTS['fashion-mnist'], 'test', fp32.spec,
                      fp32.labels, seed=0, val_fraction=0.1)
    images = [test.source.read(i) for i in range(500)]
    expected = fp32.predict_batch(images, 'grey').argmax(axis=1)
    actual = quantized.predict_batch(images, 'grey').argmax(axis=1)
    assert (actual == expected).mean() >= 0.95
    assert quantized.classify(images[0], 'grey').ranked[0][0] in fp32.labels


def test_accuracy_change_is_measured_on_the_test_split(int8):
    assert int8.evaluation_split == 'test' and int8.evaluation_images == 2000
    assert int8.calibration_images == 64
    assert 0.5 < int8.fp32_top1 <= 1.0 and 0.5 < int8.int8_top1 <= 1.0
    assert int8.accuracy_change_points == pytest.approx(100 * (int8.int8_top1 - int8.fp32_top1))
    assert abs(int8.accuracy_change_points) < 2.0


def test_a_drop_beyond_the_limit_fails_and_writes_nothing(tiny_onnx, int8, tmp_path):
    # Same settings, so the same int8 model and drop; demand 0.05 points more than it gives.
    limit = -int8.accuracy_change_points - 0.05
    with pytest.raises(AccuracyDropError, match='nothing was written'):
        quantize_onnx(tiny_onnx, tmp_path / 'lenet.onnx',
                      QuantizationOptions(calibration_images=64, evaluation_images=2000,
                                          max_accuracy_drop=limit))
    assert list(tmp_path.iterdir()) == []


def test_calibration_feeds_what_the_runtime_prepares(tiny_onnx):
    classifier = Classifier(tiny_onnx)
    train = load_split('fashion-mnist', DATASET_ROOTS['fashion-mnist'], 'train',
                       classifier.spec, classifier.labels, seed=0, val_fraction=0.1)
    positions = np.arange(20)
    reader = CalibrationImages('input', prepared_batches(classifier, train, positions))
    feeds = list(iter(reader.get_next, None))
    assert [feed['input'].shape for feed in feeds] == [(8, 1, 28, 28)] * 2 + [(4, 1, 28, 28)]
    first = feeds[0]['input'][0]
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first, classifier.preprocess(train.source.read(0), 'grey'))
    pixels = np.concatenate([feed['input'].ravel() for feed in feeds])
    assert abs(pixels.mean()) < 0.5 and 0.5 < pixels.std() < 1.5  # normalized, not 0..255


@pytest.mark.parametrize('field, value', [('calibration_images', 0),
                                          ('calibration_split', 'test'),
                                          ('max_accuracy_drop', float('nan')),
                                          ('evaluation_images', 0), ('val_fraction', 1.0)])
def test_options_are_validated(field, value):
    with pytest.raises(ValueError, match=field.split('_')[0]):
        QuantizationOptions(**{field: value})


def test_a_file_without_metadata_is_refused(tiny_onnx, tmp_path):
    model = onnx.load(str(tiny_onnx))
    del model.metadata_props[:]
    foreign = tmp_path / 'foreign.onnx'
    onnx.save(model, str(foreign))
    with pytest.raises(ValueError, match='dl_perception metadata'):
        quantize_onnx(foreign, tmp_path / 'int8.onnx', OPTIONS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['foreign.onnx']


def test_fp32_companion_sits_beside_the_int8_file():
    assert fp32_companion(Path('out/model.onnx')) == Path('out/model.fp32.onnx')


@pytest.mark.slow
def test_cli_writes_int8_and_keeps_fp32(tiny_checkpoint, tmp_path):
    target = tmp_path / 'model.onnx'
    result = subprocess.run(['dl-perception', 'export', str(tiny_checkpoint), '-o', str(target),
                             '--quantize', 'int8', '--calibration', '64', '--parity-images',
                             '32'], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f'int8, calibrated on 64 images; float32 kept as {tmp_path / "model.fp32.onnx"}' \
        in result.stdout
    assert 'top-1 on 10000 test images: fp32 0.' in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model.fp32.onnx', 'model.onnx']
    assert QUANTIZATION_KEY in _props(target)
    assert QUANTIZATION_KEY not in _props(tmp_path / 'model.fp32.onnx')
    assert Classifier(target).classify(np.zeros((28, 28), np.uint8), 'grey').ranked


@pytest.mark.slow
def test_cli_refuses_an_impossible_accuracy_limit_and_writes_nothing(tiny_checkpoint,
                                                                     tmp_path):
    # A gain of 100 points is impossible: int8 must fail whatever it measures.
    result = subprocess.run(['dl-perception', 'export', str(tiny_checkpoint), '-o',
                             str(tmp_path / 'model.onnx'), '--quantize', 'int8',
                             '--calibration', '16', '--parity-images', '32',
                             '--max-accuracy-drop', '-100'],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'int8 accuracy check failed' in result.stdout
    assert 'nothing was written' in result.stdout
    assert list(tmp_path.iterdir()) == []
