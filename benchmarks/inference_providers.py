"""
ONNX Runtime execution providers side by side: agreement with the CPU and images/s.

    python -m benchmarks inference_providers [--model resnet18] [--size 224] \
        [--batches 1 8 32] [--output inference_providers.json]

Exports the model (random weights, seed 0: agreement and speed do not need trained ones) with
the dl_perception metadata, then for every provider ONNX Runtime offers (tensorrt, cuda,
cpu) it loads ``inference.Classifier`` asking for that provider alone, reports the providers
really in use, the top-1 agreement and max abs difference of the probabilities against the
CPU on the same images, and the median images/s of ``Classifier.probabilities`` per batch
size. Made for the GPU machine; on a CPU-only machine it measures the CPU alone.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import statistics
import tempfile
import time

from benchmarks.machine import describe_machine
from dl_perception.inference.classifier import Classifier
from dl_perception.inference.model_metadata import ModelMetadata
from dl_perception.inference.providers import ProviderError
from dl_perception.inference.providers import ProviderSettings
from dl_perception.models import build_model
from dl_perception.preprocessing import PreprocessingSpec
import numpy as np
import onnx
import onnxruntime
import torch

IMAGENET = {'mean': (0.485, 0.456, 0.406), 'std': (0.229, 0.224, 0.225)}


def export(name: str, size: int, path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_classes=1000, input_size=size).eval()
    example = torch.zeros(1, 3, size, size)
    torch.onnx.export(model, (example,), str(path), dynamo=True, input_names=['input'],
                      dynamic_shapes=({0: torch.export.Dim('batch')},), verbose=False)
    spec = PreprocessingSpec(size, size, 'rgb', resize='center_crop', crop_fraction=0.875,
                             **IMAGENET)
    metadata = ModelMetadata(labels=tuple(f'class_{i}' for i in range(1000)),
                             preprocessing=spec, architecture=name, dataset='none')
    graph = onnx.load(str(path))
    onnx.helper.set_model_props(graph, metadata.to_props())
    onnx.save(graph, str(path))


def images_per_second(classifier: Classifier, batch: np.ndarray, repeats: int) -> float:
    classifier.probabilities(batch)  # warm-up (TensorRT builds its engine here)
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        classifier.probabilities(batch)
        timings.append(time.perf_counter() - started)
    return len(batch) / statistics.median(timings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default='resnet18')
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 8, 32])
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--output', type=Path, default=Path('inference_providers.json'))
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix='dlp-providers-'))
    path = folder / f'{args.model}.onnx'
    export(args.model, args.size, path)
    frames = np.random.default_rng(0).integers(0, 256, (max(args.batches), 480, 640, 3),
                                               dtype=np.uint8)
    offered = onnxruntime.get_available_providers()
    names = [n for n, p in (('tensorrt', 'TensorrtExecutionProvider'),
                            ('cuda', 'CUDAExecutionProvider'),
                            ('cpu', 'CPUExecutionProvider')) if p in offered]
    reference = Classifier(path)
    prepared = np.stack([reference.preprocess(frame, 'bgr') for frame in frames])
    expected = reference.probabilities(prepared)
    rows = []
    for name in names:
        settings = ProviderSettings((name,), tensorrt_cache_dir=str(folder / 'trt'))
        try:
            classifier = Classifier(path, providers=settings)
        except ProviderError as error:
            rows.append({'provider': name, 'error': str(error)})
            continue
        actual = classifier.probabilities(prepared)
        row = {'provider': name, 'in_use': classifier.providers_in_use,
               'max_abs_diff_vs_cpu': float(np.abs(actual - expected).max()),
               'top1_agreement_vs_cpu': float((actual.argmax(1) == expected.argmax(1)).mean())}
        for size in args.batches:
            row[f'images_per_s_batch_{size}'] = round(
                images_per_second(classifier, prepared[:size], args.repeats), 1)
        rows.append(row)
    print(f'onnxruntime {onnxruntime.__version__} ({onnxruntime.get_device()}), offered: '
          f'{", ".join(offered)}')
    for row in rows:
        print(json.dumps(row))
    args.output.write_text(json.dumps({
        'machine': describe_machine(), 'onnxruntime': onnxruntime.__version__,
        'offered_providers': offered, 'model': args.model, 'input_size': args.size,
        'results': rows}, indent=2) + '\n')
    print(f'written: {args.output}')
    return 0
