"""Export: a real checkpoint becomes a checked, self-describing ONNX file, or nothing."""

from __future__ import annotations

import json
import subprocess

from dl_perception.export.onnx_export import export_checkpoint
from dl_perception.export.onnx_export import ExportOptions
from dl_perception.export.onnx_export import ParityError
from dl_perception.export.onnx_export import sha256_of
from dl_perception.inference.model_metadata import ModelMetadata
import numpy as np
import onnx
import onnxruntime
import pytest


def test_exported_file_describes_itself(tiny_checkpoint, tiny_onnx):
    model = onnx.load(str(tiny_onnx))
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')) >= 18
    props = {p.key: p.value for p in model.metadata_props}
    metadata = ModelMetadata.from_props(props)
    assert metadata.labels[0] == 'T-shirt/top' and len(metadata.labels) == 10
    assert metadata.preprocessing.channels == 'grey'
    assert (metadata.preprocessing.height, metadata.preprocessing.width) == (28, 28)
    assert metadata.preprocessing.mean[0] == pytest.approx(0.286, abs=0.01)
    assert metadata.architecture == 'lenet' and metadata.dataset == 'fashion-mnist'
    assert metadata.output == 'logits' and metadata.layout == 'NCHW'
    assert metadata.source_sha256 == sha256_of(tiny_checkpoint)
    assert 0.3 < metadata.metrics['best_val_accuracy'] <= 1.0
    assert 'test_accuracy' in metadata.metrics
    assert props['dlp.mirror_averaged'] == 'false' and not metadata.mirror_averaged


def test_metadata_written_before_mirror_averaged_existed_reads_as_plain(tiny_onnx):
    model = onnx.load(str(tiny_onnx))
    props = {p.key: p.value for p in model.metadata_props}
    del props['dlp.mirror_averaged']
    assert ModelMetadata.from_props(props).mirror_averaged is False
    with pytest.raises(ValueError, match='dlp.mirror_averaged is malformed: expected true or '
                                         "false, got 'yes'"):
        ModelMetadata.from_props({**props, 'dlp.mirror_averaged': 'yes'})


def test_batch_axis_is_dynamic(tiny_onnx):
    session = onnxruntime.InferenceSession(str(tiny_onnx), providers=['CPUExecutionProvider'])
    assert session.get_inputs()[0].shape[0] == 'batch'
    for batch in (1, 7):
        out = session.run(None, {'input': np.zeros((batch, 1, 28, 28), np.float32)})[0]
        assert out.shape == (batch, 10)


@pytest.mark.ros
@pytest.mark.slow
def test_export_cli_prints_parity_and_probabilities_sum_to_one(tiny_checkpoint, tmp_path):
    target = tmp_path / 'probs.onnx'
    result = subprocess.run(['dl-perception', 'export', str(tiny_checkpoint), '-o', str(target),
                             '--probabilities', '--parity-images', '50'],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert 'parity on 50 validation images (CPUExecutionProvider): max abs difference' in \
        result.stdout
    assert 'top-1 agreement 1.0000' in result.stdout
    session = onnxruntime.InferenceSession(str(target), providers=['CPUExecutionProvider'])
    probabilities = session.run(None, {'input': np.random.default_rng(0).normal(
        size=(4, 1, 28, 28)).astype(np.float32)})[0]
    assert probabilities.sum(axis=1) == pytest.approx(np.ones(4), abs=1e-5)
    props = {p.key: p.value for p in onnx.load(str(target)).metadata_props}
    assert props['dlp.output'] == 'probabilities'


def test_failed_parity_writes_nothing(tiny_checkpoint, tmp_path):
    target = tmp_path / 'half.onnx'
    with pytest.raises(ParityError, match='nothing was written'):
        # float16 cannot match float32 to 1e-7: the check must refuse the file
        export_checkpoint(tiny_checkpoint, ExportOptions(output=target, fp16=True,
                                                         tolerance=1e-7, parity_images=32))
    assert list(tmp_path.iterdir()) == []


def test_fp16_export_passes_its_own_tolerance(tiny_checkpoint, tmp_path):
    report = export_checkpoint(tiny_checkpoint, ExportOptions(
        output=tmp_path / 'half.onnx', fp16=True, tolerance=5e-2, parity_images=64))
    assert report.max_abs_diff < 5e-2 and report.top1_agreement >= 0.95
    session = onnxruntime.InferenceSession(str(report.path), providers=['CPUExecutionProvider'])
    assert session.get_inputs()[0].type == 'tensor(float16)'


def test_input_size_the_network_cannot_take_is_refused(tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError, match='does not accept 40x40 input'):
        export_checkpoint(tiny_checkpoint, ExportOptions(output=tmp_path / 'x.onnx',
                                                         input_size=40))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_onnx_evaluation_matches_the_checkpoint_on_the_full_test_set(tiny_checkpoint,
                                                                     tiny_onnx, tmp_path):
    accuracies = {}
    for name, path in (('checkpoint', tiny_checkpoint), ('onnx', tiny_onnx)):
        output = tmp_path / name
        result = subprocess.run(['dl-perception', 'evaluate', str(path), '--dataset',
                                 'fashion-mnist', '--output', str(output), '--workers', '0'],
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        evaluation = json.loads((output / 'evaluation.json').read_text())
        assert evaluation['images'] == 10_000
        accuracies[name] = evaluation['top1']
    assert abs(accuracies['onnx'] - accuracies['checkpoint']) <= 0.001
