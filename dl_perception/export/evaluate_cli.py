"""
``dl-perception evaluate``: measure a checkpoint (.pt) or an exported model (.onnx).

An ONNX file is measured the way a robot runs it: raw dataset images go through
``inference.Classifier`` (its own preprocessing from the file's metadata, on the backend
``--providers`` names), so the number checks the deployed path, not the training one. On
OpenVINO with ``--openvino-precision bf16`` the same images also run at f32, and the change
of top-1 is reported, as for an int8 export.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from dl_perception.export.onnx_export import check_output_file
from dl_perception.export.onnx_export import describe_unloadable_onnx
from dl_perception.inference.classifier import Classifier
from dl_perception.inference.providers import OPENVINO
from dl_perception.inference.providers import OPENVINO_PRECISIONS
from dl_perception.inference.providers import ProviderError
from dl_perception.inference.providers import ProviderSettings
from dl_perception.preprocessing import PreprocessingSpec
from dl_perception.training.checkpoint import load_checkpoint
from dl_perception.training.checkpoint import reading_checkpoint
from dl_perception.training.data import load_split
from dl_perception.training.data import PreparedImages
from dl_perception.training.evaluation import BatchNormalizer
from dl_perception.training.evaluation import evaluate
from dl_perception.training.evaluation import Evaluation
from dl_perception.training.model_setup import build_from_spec
from dl_perception.training.model_setup import inference_network
from dl_perception.training.plots import plot_confusion
from dl_perception.training.run_records import write_json
import numpy as np
import torch
from torch.utils.data import DataLoader

DATASET_ROOTS = {'fashion-mnist': '/usr/share/datasets/fashion-mnist'}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``evaluate``."""
    parser.add_argument('model', type=Path, help='a .pt checkpoint or an exported .onnx file')
    parser.add_argument('--dataset', choices=('fashion-mnist', 'folder'),
                        help='dataset kind (default: the one it was trained on)')
    parser.add_argument('--root', help='dataset folder (default: the one it was trained on)')
    parser.add_argument('--split', default='test', choices=('train', 'val', 'test'),
                        help='split to measure (default test)')
    parser.add_argument('--batch-size', type=int, default=256, help='batch size (default 256)')
    parser.add_argument('--workers', type=int, default=2, help='DataLoader workers (default 2)')
    parser.add_argument('--providers', default='cpu',
                        help='ONNX only: comma-separated execution providers (tensorrt,cuda,cpu), '
                             'or openvino for the OpenVINO runtime (default cpu)')
    parser.add_argument('--openvino-precision', default='f32', choices=OPENVINO_PRECISIONS,
                        help='ONNX on openvino: the precision hint; bf16 also measures f32 on '
                             'the same images and reports the change (default f32)')
    parser.add_argument('--output', type=Path,
                        help='folder for evaluation.json and the confusion matrix PNG '
                             '(default: beside the model)')


def report(result: Evaluation, classes: list[str]) -> str:
    """Human-readable top-1/top-5 and per-class accuracy."""
    lines = [f'images: {result.count}', f'top-1 accuracy: {result.top1:.4f}',
             f'top-5 accuracy: {result.top5:.4f}', f'mean loss: {result.loss:.4f}',
             'per-class accuracy:']
    width = max(len(name) for name in classes)
    lines += [f'  {name:<{width}}  {accuracy:.4f}'
              for name, accuracy in zip(classes, result.per_class_accuracy)]
    return '\n'.join(lines)


def evaluate_onnx(classifier: Classifier, dataset: PreparedImages,
                  batch_size: int) -> Evaluation:
    """Classify the split's raw images through the runtime path; same measures as torch."""
    classes = len(classifier.labels)
    confusion = np.zeros((classes, classes), np.int64)
    loss_sum, top5 = 0.0, 0
    labels = dataset.labels
    for start in range(0, len(dataset), batch_size):
        positions = range(start, min(start + batch_size, len(dataset)))
        images = [dataset.source.read(int(dataset.indices[p])) for p in positions]
        batch = np.stack([classifier.preprocess(image, dataset.source.order) for image in images])
        probabilities = classifier.probabilities(batch)
        truth = labels[start:start + len(images)]
        predicted = probabilities.argmax(axis=1)
        np.add.at(confusion, (truth, predicted), 1)
        picked = probabilities[np.arange(len(truth)), truth]
        loss_sum += float(-np.log(np.maximum(picked, 1e-12)).sum())
        best5 = np.argsort(-probabilities, axis=1)[:, :5]
        top5 += int((best5 == truth[:, None]).any(axis=1).sum())
    count = max(int(confusion.sum()), 1)
    return Evaluation(loss_sum / count, float(np.trace(confusion)) / count, top5 / count,
                      confusion)


def _evaluate_checkpoint(args: argparse.Namespace) -> tuple[Evaluation, list[str], str]:
    checkpoint = load_checkpoint(args.model)
    spec = PreprocessingSpec.from_json(checkpoint['preprocessing'])
    classes = list(checkpoint['classes'])
    config = checkpoint['config']
    dataset = load_split(args.dataset or checkpoint['dataset']['name'],
                         args.root or checkpoint['dataset']['root'], args.split, spec, classes,
                         config['seed'], config['data']['val_fraction'])
    with reading_checkpoint(args.model):
        model = build_from_spec(checkpoint['model_spec'])
        model.load_state_dict(checkpoint['model'])
    model = inference_network(model, checkpoint['model_spec'])
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers)
    result = evaluate(model, loader, BatchNormalizer(spec), len(classes), torch.device('cpu'))
    return result, classes, checkpoint['model_spec']['name']


def _open_onnx(path: Path, providers: ProviderSettings) -> Classifier:
    try:
        return Classifier(path, providers=providers)
    except ValueError:
        reason = describe_unloadable_onnx(path)
        if reason is None:
            raise
        raise ValueError(f'{path} {reason}') from None


def _evaluate_onnx_file(args: argparse.Namespace) -> tuple[Evaluation, list[str], str, dict]:
    """Evaluate the file on the backend asked for; the dict says what ran (and bf16's change)."""
    if args.split == 'val':
        raise ValueError('an ONNX file does not record the validation split its training '
                         'held out; evaluate it on test (or evaluate the checkpoint on val)')
    providers = ProviderSettings(tuple(p.strip() for p in args.providers.split(',')),
                                 openvino_precision=args.openvino_precision)
    if providers.backend != OPENVINO and args.openvino_precision != 'f32':
        raise ValueError(f'--openvino-precision {args.openvino_precision} needs --providers '
                         f'openvino, got --providers {args.providers}')
    classifier = _open_onnx(args.model, providers)
    metadata = classifier.metadata
    name = args.dataset or (metadata.dataset if metadata else None)
    root = args.root or DATASET_ROOTS.get(name)
    if name is None or root is None:
        raise ValueError(f'{args.model}: say which data to use with --dataset and --root')
    dataset = load_split(name, root, args.split, classifier.spec, classifier.labels, seed=0,
                         val_fraction=0.1)
    print(f'providers in use: {", ".join(classifier.providers_in_use)}')
    result = evaluate_onnx(classifier, dataset, args.batch_size)
    details = {'providers_in_use': classifier.providers_in_use}
    if providers.backend == OPENVINO and args.openvino_precision != 'f32':
        reference = evaluate_onnx(_open_onnx(args.model, replace(providers,
                                                                 openvino_precision='f32')),
                                  dataset, args.batch_size)
        change = 100.0 * (result.top1 - reference.top1)
        print(f'top-1 on {result.count} {args.split} images on OpenVINO: f32 '
              f'{reference.top1:.4f}, {args.openvino_precision} {result.top1:.4f} '
              f'({change:+.2f} points)')
        details['precision'] = {'precision': args.openvino_precision,
                                'f32_top1': reference.top1, 'top1': result.top1,
                                'change_points': change}
    return result, list(classifier.labels), metadata.architecture if metadata else 'onnx', details


def _output_folder(args: argparse.Namespace) -> Path:
    """Check the counts and where the results go, before any work; returns the folder."""
    if args.batch_size < 1:
        raise ValueError(f'--batch-size must be >= 1, got {args.batch_size}')
    if args.workers < 0:
        raise ValueError(f'--workers must be >= 0, got {args.workers}')
    output = args.output or args.model.parent / f'evaluation-{args.model.stem}-{args.split}'
    if output.exists() and not output.is_dir():
        raise ValueError(f'--output {output} is not a folder')
    for name in ('evaluation.json', 'confusion_matrix.png'):
        check_output_file(output / name)
    return output


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the report, write JSON and the confusion-matrix PNG."""
    output = _output_folder(args)
    details: dict = {}
    if args.model.suffix == '.onnx':
        try:
            result, classes, name, details = _evaluate_onnx_file(args)
        except ProviderError as error:
            print(f'dl-perception evaluate: {error}')
            return 2
    else:
        result, classes, name = _evaluate_checkpoint(args)
    print(report(result, classes))
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f'cannot create --output {output}: {error.strerror}') from None
    write_json({'model': str(args.model), 'split': args.split, 'images': result.count,
                'top1': result.top1, 'top5': result.top5, 'loss': result.loss,
                'per_class_accuracy': dict(zip(classes, result.per_class_accuracy.tolist())),
                'confusion_matrix': result.confusion.tolist(), **details},
               output / 'evaluation.json')
    plot_confusion(result.confusion, classes, output / 'confusion_matrix.png',
                   f'{name} on {args.split} (top-1 {result.top1:.4f})')
    print(f'written: {output / "evaluation.json"}, {output / "confusion_matrix.png"}')
    return 0
