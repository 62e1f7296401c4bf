"""Export and evaluate: clear errors for bad outputs and models, and the usual file modes."""

from __future__ import annotations

import os
from pathlib import Path
import stat

from dl_perception import cli
from dl_perception.export.onnx_export import export_checkpoint
from dl_perception.export.onnx_export import ExportOptions
import onnx
from onnx import helper
from onnx import TensorProto
import pytest


def main_exit(argv: list[str]) -> int:
    """Run ``dl-perception ARGV`` in this process; its exit status."""
    try:
        return cli.main(argv)
    except SystemExit as stop:
        return stop.code


def with_umask(mask: int, action):
    previous = os.umask(mask)
    try:
        return action()
    finally:
        os.umask(previous)


def test_an_output_whose_parent_is_a_file_is_refused(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / 'plain').write_text('not a folder')
    assert main_exit(['export', str(tiny_checkpoint), '-o',
                      str(tmp_path / 'plain' / 'x.onnx')]) == 2
    err = capsys.readouterr().err
    assert 'is not a folder' in err and 'Traceback' not in err
    assert (tmp_path / 'plain').read_text() == 'not a folder'


@pytest.mark.parametrize('kind', ['folder', 'fifo', 'symlink'])
def test_an_output_that_is_not_a_regular_file_is_never_replaced(tiny_checkpoint, tmp_path,
                                                                capsys, kind):
    target = tmp_path / 'model.onnx'
    if kind == 'folder':
        target.mkdir()
    elif kind == 'fifo':
        os.mkfifo(target)
    else:
        (tmp_path / 'elsewhere.onnx').write_text('kept')
        target.symlink_to(tmp_path / 'elsewhere.onnx')
    before = os.lstat(target).st_mode
    assert main_exit(['export', str(tiny_checkpoint), '-o', str(target),
                      '--parity-images', '8']) == 2
    err = capsys.readouterr().err
    assert 'not a regular file' in err and 'Traceback' not in err
    assert os.lstat(target).st_mode == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith('.')) == []


@pytest.mark.parametrize('option, value', [('--batch-size', '-1'), ('--batch-size', '0'),
                                           ('--workers', '-1')])
def test_evaluate_refuses_a_nonsensical_count(tiny_checkpoint, tmp_path, capsys, option,
                                              value):
    assert main_exit(['evaluate', str(tiny_checkpoint), option, value,
                      '--output', str(tmp_path / 'out')]) == 2
    assert f'{option} must be' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_evaluate_refuses_an_output_that_is_a_file(tiny_onnx, tmp_path, capsys):
    (tmp_path / 'out').write_text('x')
    assert main_exit(['evaluate', str(tiny_onnx), '--output', str(tmp_path / 'out')]) == 2
    assert 'is not a folder' in capsys.readouterr().err


def test_a_custom_operator_model_is_named_as_such(tmp_path, capsys):
    graph = helper.make_graph(
        [helper.make_node('Frobnicate', ['input'], ['logits'], domain='com.example.vision')],
        'custom', [helper.make_tensor_value_info('input', TensorProto.FLOAT, [1, 1, 28, 28])],
        [helper.make_tensor_value_info('logits', TensorProto.FLOAT, [1, 10])])
    opsets = [helper.make_opsetid('', 18), helper.make_opsetid('com.example.vision', 1)]
    # IR version 10: one ONNX Runtime reads, so only the custom operator stands in the way
    model = helper.make_model(graph, ir_version=10, opset_imports=opsets)
    path = tmp_path / 'custom.onnx'
    onnx.save(model, str(path))
    assert main_exit(['evaluate', str(path), '--dataset', 'fashion-mnist']) == 2
    err = capsys.readouterr().err
    assert 'custom operator' in err and 'com.example.vision' in err and 'Frobnicate' in err
    assert 'truncated or corrupt' not in err


def test_missing_external_data_is_named_as_such(tiny_onnx, tmp_path, capsys):
    model = onnx.load(str(tiny_onnx))
    path = tmp_path / 'split.onnx'
    onnx.save(model, str(path), save_as_external_data=True, location='split.weights',
              size_threshold=0)
    (tmp_path / 'split.weights').unlink()
    assert main_exit(['evaluate', str(path)]) == 2
    err = capsys.readouterr().err
    assert 'external data' in err and 'split.weights' in err
    assert 'truncated or corrupt' not in err


@pytest.mark.parametrize('mask', [0o022, 0o027])
def test_an_exported_file_gets_the_mode_the_umask_gives(tiny_checkpoint, tmp_path, mask):
    target = tmp_path / 'model.onnx'
    with_umask(mask, lambda: export_checkpoint(
        tiny_checkpoint, ExportOptions(output=target, parity_images=8)))
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


def test_int8_export_writes_both_files_with_the_usual_mode(tiny_checkpoint, tmp_path):
    from dl_perception.export.quantize import export_int8
    from dl_perception.export.quantize import QuantizationOptions
    target = tmp_path / 'model.onnx'
    with_umask(0o022, lambda: export_int8(
        tiny_checkpoint, ExportOptions(output=target, parity_images=8),
        QuantizationOptions(calibration_images=16, evaluation_images=200,
                            max_accuracy_drop=100.0)))
    for path in (target, tmp_path / 'model.fp32.onnx'):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    written = sorted(p.name for p in Path(tmp_path).iterdir())
    assert written == ['model.fp32.onnx', 'model.onnx']
