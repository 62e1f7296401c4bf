"""
INT8 vs float32 on the CPU: ONNX Runtime images/s, and OpenVINO on the same fp32 file.

    python -m benchmarks int8_speed [--checkpoint best.pt] [--openvino-path /tmp/ov] \
        [--batches 1 8] [--runs 40] [--output int8_speed.json]

ResNet-18 at 224x224 (10 classes, random weights, seed 0: speed does not need trained ones)
is exported with the dl_perception metadata and quantized by ``export.quantize`` with the
same settings as ``dl-perception export --quantize int8``, calibrated on 32 random camera
frames prepared by the runtime (the calibration data changes the scales, not the speed). With
``--checkpoint`` the trained model is exported and quantized the real way as well, and its
top-1 on the whole test split is reported for both files. Speed is ``Classifier.probabilities``
on prepared batches: the median of ``--runs`` runs per file and batch size, the files
taking turns in blocks of 8 runs in this one process, so load from other processes hits them
alike. OpenVINO (the environment's, which ``make setup`` installs, or one in the folder
``--openvino-path`` names) compiles the fp32 ONNX file for its CPU device with default
settings, recorded in the JSON (on a CPU with avx512_bf16 those compute in bfloat16).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time

from benchmarks.machine import describe_machine
from dl_perception.export.onnx_export import export_checkpoint
from dl_perception.export.onnx_export import ExportOptions
from dl_perception.export.quantize import CalibrationImages
from dl_perception.export.quantize import QuantizationOptions
from dl_perception.export.quantize import quantize_model
from dl_perception.export.quantize import quantize_onnx
from dl_perception.inference.classifier import Classifier
from dl_perception.inference.model_metadata import ModelMetadata
from dl_perception.models import build_model
from dl_perception.preprocessing import PreprocessingSpec
import numpy as np
import onnx
import onnxruntime
import torch

IMAGENET = {'mean': (0.485, 0.456, 0.406), 'std': (0.229, 0.224, 0.225)}
RESNET_CALIBRATION_FRAMES = 32
BLOCK = 8  # timed runs per turn
CPU_FLAGS = ('avx2', 'avx512f', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'amx_int8')


def cpu_flags() -> dict[str, bool]:
    """Return which of the instruction sets int8 kernels care about the CPU reports."""
    flags = next((line.split(':', 1)[1].split()
                  for line in Path('/proc/cpuinfo').read_text().splitlines()
                  if line.startswith('flags')), [])
    return {name: name in flags for name in CPU_FLAGS}


def export_resnet18(path: Path) -> None:
    """Write a random-weight ResNet-18 (10 classes, 224x224 RGB) with our metadata."""
    torch.manual_seed(0)
    model = build_model('resnet18', num_classes=10, in_channels=3, input_size=224).eval()
    torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), str(path), dynamo=True,
                      input_names=['input'], output_names=['logits'], external_data=False,
                      dynamic_shapes=({0: torch.export.Dim('batch')},), verbose=False)
    spec = PreprocessingSpec(224, 224, 'rgb', resize='center_crop', crop_fraction=0.875,
                             **IMAGENET)
    metadata = ModelMetadata(labels=tuple(f'class_{i}' for i in range(10)),
                             preprocessing=spec, architecture='resnet18', dataset='none')
    graph = onnx.load(str(path))
    onnx.helper.set_model_props(graph, metadata.to_props())
    onnx.save(graph, str(path))


def quantize_on_frames(fp32: Path, int8: Path, frames: np.ndarray) -> None:
    """Quantize with the export settings, calibrated on camera frames the runtime prepared."""
    classifier = Classifier(fp32)
    batches = (classifier.preprocess(frame, 'bgr')[None] for frame in frames)
    quantize_model(fp32, int8, CalibrationImages('input', batches))


def openvino_runner(fp32: Path, path: str | None) -> tuple[object, dict]:
    """Compile the fp32 file with OpenVINO's CPU defaults; (None, why) when it cannot."""
    if path is not None:
        sys.path.append(path)
    try:
        import openvino
    except ImportError as error:
        return None, {'error': f'openvino does not import (from {path or "the environment"}): '
                               f'{error}'}
    compiled = openvino.Core().compile_model(str(fp32), 'CPU')
    settings = {name: str(compiled.get_property(name)) for name in (
        'PERFORMANCE_HINT', 'INFERENCE_NUM_THREADS', 'INFERENCE_PRECISION_HINT')}
    return compiled, {'version': openvino.__version__, 'settings': settings}


def measure(runners: dict[str, object], batch: np.ndarray, runs: int) -> dict[str, float]:
    """
    Median images/s of each runner on ``batch``, runners taking turns in blocks of runs.

    Each block starts with an untimed run: after a run, ONNX Runtime's pool threads keep
    spinning for a while, and timing a session right after another one's run would charge
    it for the other's spinning (run-by-run turns halved the float32 batch-1 figure).
    """
    timings = {name: [] for name in runners}
    rounds = max(1, runs // BLOCK)
    for round_ in range(rounds):
        order = list(runners.items())
        for name, run in order if round_ % 2 == 0 else order[::-1]:
            run(batch)
            for _ in range(BLOCK):
                started = time.perf_counter()
                run(batch)
                timings[name].append(time.perf_counter() - started)
    return {name: round(len(batch) / statistics.median(t), 1) for name, t in timings.items()}


def benchmark(name: str, fp32: Path, int8: Path, frames: np.ndarray,
              args: argparse.Namespace) -> dict:
    """Measure one model: fp32 and int8 in ONNX Runtime, fp32 in OpenVINO when present."""
    fp32_classifier, int8_classifier = Classifier(fp32), Classifier(int8)
    runners = {'ort_fp32': fp32_classifier.probabilities,
               'ort_int8': int8_classifier.probabilities}
    compiled, openvino_info = openvino_runner(fp32, args.openvino_path)
    if compiled is not None:
        runners['openvino_fp32'] = compiled
    prepared = np.stack([fp32_classifier.preprocess(frame, 'bgr') for frame in frames])
    row = {'model': name, 'fp32_mb': round(fp32.stat().st_size / 1e6, 2),
           'int8_mb': round(int8.stat().st_size / 1e6, 2), 'openvino': openvino_info,
           'images_per_s': {}}
    for size in args.batches:
        load = os.getloadavg()[0]
        row['images_per_s'][f'batch_{size}'] = {
            **measure(runners, prepared[:size], args.runs), 'load_average_1min': load}
    return row


def print_table(rows: list[dict]) -> None:
    """One line per model and batch size in images/s; OV is OpenVINO on the fp32 file."""
    print(f'{"model":<10} {"batch":>5} {"ORT fp32":>9} {"ORT int8":>9} {"int8/fp32":>9} '
          f'{"OV":>8} {"int8/OV":>8} {"load":>5}')
    for row in rows:
        for batch, speeds in row['images_per_s'].items():
            fp32, int8 = speeds['ort_fp32'], speeds['ort_int8']
            openvino = speeds.get('openvino_fp32')
            ov_text = (f'{openvino:>8.1f} {int8 / openvino:>7.2f}x' if openvino
                       else f'{"-":>8} {"-":>8}')
            print(f'{row["model"]:<10} {batch.split("_")[1]:>5} {fp32:>9.1f} {int8:>9.1f} '
                  f'{int8 / fp32:>8.2f}x {ov_text} {speeds["load_average_1min"]:>5.1f}')
        if 'accuracy' in row:
            accuracy = row['accuracy']
            print(f'{row["model"]}: top-1 on {accuracy["images"]} test images: fp32 '
                  f'{accuracy["fp32_top1"]:.4f}, int8 {accuracy["int8_top1"]:.4f} '
                  f'({accuracy["change_points"]:+.2f} points)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', type=Path, help='a trained .pt (e.g. the demo best.pt)')
    parser.add_argument('--openvino-path', help='folder holding the openvino package')
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 8])
    parser.add_argument('--runs', type=int, default=40)
    parser.add_argument('--calibration', type=int, default=500,
                        help='calibration images of the --checkpoint model (default 500)')
    parser.add_argument('--output', type=Path, default=Path('int8_speed.json'))
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix='dlp-int8-') as work:
        folder = Path(work)
        rng = np.random.default_rng(0)
        frames = rng.integers(0, 256, (max(args.batches), 480, 640, 3), dtype=np.uint8)
        export_resnet18(folder / 'resnet18.fp32.onnx')
        calibration = rng.integers(0, 256, (RESNET_CALIBRATION_FRAMES, 480, 640, 3), np.uint8)
        quantize_on_frames(folder / 'resnet18.fp32.onnx', folder / 'resnet18.onnx', calibration)
        rows = [benchmark('resnet18', folder / 'resnet18.fp32.onnx', folder / 'resnet18.onnx',
                          frames, args)]
        if args.checkpoint is not None:
            export_checkpoint(args.checkpoint, ExportOptions(output=folder / 'demo.fp32.onnx'))
            report = quantize_onnx(folder / 'demo.fp32.onnx', folder / 'demo.onnx',
                                   QuantizationOptions(calibration_images=args.calibration))
            row = benchmark(Classifier(report.path).metadata.architecture, report.fp32_path,
                            report.path, frames, args)
            row['accuracy'] = {'images': report.evaluation_images, 'fp32_top1': report.fp32_top1,
                               'int8_top1': report.int8_top1,
                               'change_points': report.accuracy_change_points}
            rows.append(row)
    print_table(rows)
    args.output.write_text(json.dumps({
        'machine': {**describe_machine(), 'cpu_flags': cpu_flags()},
        'onnxruntime': onnxruntime.__version__, 'runs': args.runs, 'results': rows},
        indent=2) + '\n')
    print(f'written: {args.output}')
    return 0
