"""``dl-perception export``: checkpoint -> verified, self-describing ONNX file."""

from __future__ import annotations

import argparse
from pathlib import Path

from dl_perception.export.onnx_export import export_checkpoint
from dl_perception.export.onnx_export import ExportOptions
from dl_perception.export.onnx_export import MIN_OPSET
from dl_perception.export.onnx_export import ParityError


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
    parser.add_argument('--root', help='dataset folder for the parity images (default: the '
                                       'one the checkpoint was trained on)')


def run(args: argparse.Namespace) -> int:
    """Export and print the parity figures; exit 1 when parity fails (nothing written)."""
    tolerance = args.tolerance or (5e-2 if args.fp16 else 1e-4)
    options = ExportOptions(output=args.output, input_size=args.input_size, fp16=args.fp16,
                            probabilities=args.probabilities, opset=args.opset,
                            parity_images=args.parity_images, tolerance=tolerance,
                            dataset_root=args.root)
    try:
        report = export_checkpoint(args.checkpoint, options)
    except ParityError as error:
        print(f'dl-perception export: parity check failed: {error}')
        return 1
    meta = report.metadata
    print(f'wrote {report.path} ({report.path.stat().st_size / 1e6:.2f} MB): '
          f'{meta.architecture}, {len(meta.labels)} classes, input '
          f'{meta.preprocessing.num_channels}x{meta.preprocessing.height}x'
          f'{meta.preprocessing.width} {meta.preprocessing.channels}, output {meta.output}')
    print(f'parity on {report.images} validation images ({", ".join(report.providers)}): '
          f'max abs difference {report.max_abs_diff:.3g}, top-1 agreement '
          f'{report.top1_agreement:.4f}')
    return 0
