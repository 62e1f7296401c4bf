"""
``dl-perception export``: checkpoint -> verified, self-describing ONNX file.

With ``--quantize int8`` the ``-o`` file is the int8 model and the verified float32 model is
kept beside it as ``<stem>.fp32.onnx`` (``-o model.onnx`` writes ``model.onnx`` and
``model.fp32.onnx``); if int8 loses more accuracy than allowed, neither is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dl_perception.export.onnx_export import export_checkpoint
from dl_perception.export.onnx_export import ExportOptions
from dl_perception.export.onnx_export import MIN_OPSET
from dl_perception.export.onnx_export import ParityError
from dl_perception.export.quantize import AccuracyDropError
from dl_perception.export.quantize import CALIBRATION_SPLITS
from dl_perception.export.quantize import export_int8
from dl_perception.export.quantize import QuantizationOptions
from dl_perception.export.quantize import QuantizationReport


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``export``."""
    parser.add_argument('checkpoint', type=Path, help='a .pt checkpoint (usually best.pt)')
    parser.add_argument('-o', '--output', type=Path, required=True, help='the .onnx file')
    parser.add_argument('--input-size', type=int,
                        help='input side in pixels (default: the training size)')
    parser.add_argument('--fp16', action='store_true', help='half-precision weights and input')
    parser.add_argument('--probabilities', action='store_true',
                        help='end the graph in softmax (default: logits)')
    parser.add_argument('--opset', type=int, default=MIN_OPSET,
                        help=f'ONNX opset, >= {MIN_OPSET} (default {MIN_OPSET})')
    parser.add_argument('--parity-images', type=int, default=256,
                        help='validation images for the ONNX Runtime vs PyTorch check')
    parser.add_argument('--tolerance', type=float,
                        help='largest allowed output difference (default 1e-4, 5e-2 with --fp16)')
    parser.add_argument('--root', help='dataset folder for the parity (and int8) images '
                                       '(default: the one the checkpoint was trained on)')
    parser.add_argument('--quantize', choices=('int8',),
                        help='static int8 (QDQ) to -o, float32 kept as <stem>.fp32.onnx')
    parser.add_argument('--calibration', type=int, default=500, metavar='N',
                        help='int8: calibration images (default 500)')
    parser.add_argument('--calibration-split', choices=CALIBRATION_SPLITS, default='train',
                        help='int8: split the calibration images come from (default train)')
    parser.add_argument('--max-accuracy-drop', type=float, default=0.5, metavar='POINTS',
                        help='int8: largest allowed top-1 loss on the test split, in '
                             'percentage points (default 0.5)')


def _print_quantization(report: QuantizationReport) -> None:
    print(f'wrote {report.path} ({report.path.stat().st_size / 1e6:.2f} MB): int8, calibrated '
          f'on {report.calibration_images} images; float32 kept as {report.fp32_path}')
    print(f'top-1 on {report.evaluation_images} {report.evaluation_split} images: fp32 '
          f'{report.fp32_top1:.4f}, int8 {report.int8_top1:.4f} '
          f'({report.accuracy_change_points:+.2f} points)')


def run(args: argparse.Namespace) -> int:
    """Export and print parity (and int8 accuracy); exit 1 when a check fails, writing nothing."""
    tolerance = args.tolerance or (5e-2 if args.fp16 else 1e-4)
    options = ExportOptions(output=args.output, input_size=args.input_size, fp16=args.fp16,
                            probabilities=args.probabilities, opset=args.opset,
                            parity_images=args.parity_images, tolerance=tolerance,
                            dataset_root=args.root)
    quantization = None
    try:
        if args.quantize:
            report, quantization = export_int8(args.checkpoint, options, QuantizationOptions(
                calibration_images=args.calibration, calibration_split=args.calibration_split,
                max_accuracy_drop=args.max_accuracy_drop))
        else:
            report = export_checkpoint(args.checkpoint, options)
    except ParityError as error:
        print(f'dl-perception export: parity check failed: {error}')
        return 1
    except AccuracyDropError as error:
        print(f'dl-perception export: int8 accuracy check failed: {error}')
        return 1
    meta = report.metadata
    print(f'wrote {report.path} ({report.path.stat().st_size / 1e6:.2f} MB): '
          f'{meta.architecture}, {len(meta.labels)} classes, input '
          f'{meta.preprocessing.num_channels}x{meta.preprocessing.height}x'
          f'{meta.preprocessing.width} {meta.preprocessing.channels}, output {meta.output}'
          + (', mirror-averaged (two forward passes per image)' if meta.mirror_averaged else ''))
    print(f'parity on {report.images} validation images ({", ".join(report.providers)}): '
          f'max abs difference {report.max_abs_diff:.3g}, top-1 agreement '
          f'{report.top1_agreement:.4f}')
    if quantization is not None:
        _print_quantization(quantization)
    return 0
