"""
Train configs on the full Fashion-MNIST and record test accuracy, wall time and images/s.

    python -m benchmarks train_fashion_mnist config/train/fashion_mnist_10min.yaml \
        [more configs] [--set key=value ...] [--output results.json]

Wall time counts everything the run does (data loading, training, validation, test, plots).
Prints a table and writes JSON with the machine's description.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
import tempfile
import time

from benchmarks.machine import describe_machine
from dl_perception.training.config import load_config
from dl_perception.training.trainer import Trainer

PUBLISHED = {'alexnet': 0.899, 'vgg16': 0.935, 'vgg16_bn': 0.935, 'googlenet': 0.937,
             'resnet18': 0.949}


def run_one(config_path: str, overrides: list[str], output_dir: Path) -> dict:
    config = load_config(config_path, [*overrides, f'output_dir={output_dir}', 'progress=false'])
    started = time.perf_counter()
    summary = Trainer(config, output_dir / Path(config_path).stem).fit()
    wall = time.perf_counter() - started
    return {
        'config': config_path, 'model': config.model.name, 'epochs': summary['epochs_run'],
        'test_accuracy': summary['test_accuracy'], 'test_top5': summary['test_top5'],
        'wall_seconds': round(wall, 1), 'train_seconds': round(summary['train_seconds'], 1),
        'images_per_s_median': round(summary['images_per_s_median'], 1),
        'published_bar': PUBLISHED.get(config.model.name),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('configs', nargs='+', help='training config YAML files')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE', help='override applied to every config')
    parser.add_argument('--output', type=Path, default=Path('train_fashion_mnist.json'),
                        help='JSON results file (default ./train_fashion_mnist.json)')
    parser.add_argument('--runs-dir', type=Path, help='keep the run folders here')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix='dlp-bench-'))
    results = [run_one(path, args.overrides, runs_dir) for path in args.configs]
    print(f'\n{"config":<40} {"epochs":>6} {"test acc":>9} {"wall s":>8} {"img/s":>8}')
    for row in results:
        print(f'{row["config"]:<40} {row["epochs"]:>6} {row["test_accuracy"]:>9.4f} '
              f'{row["wall_seconds"]:>8.1f} {row["images_per_s_median"]:>8.0f}')
    args.output.write_text(json.dumps({'machine': describe_machine(), 'results': results},
                                      indent=2) + '\n')
    print(f'written: {args.output}')
    return 0
