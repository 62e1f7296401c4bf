"""
What every lecture experiment shares: options, Fashion-MNIST tensors, trainer runs, outputs.

Each experiment writes into ``--output`` (default ``lecture-results/``) ``NAME.txt`` (the
printed table), ``NAME.json`` (the table's rows, every curve, the options and
``describe_machine()``) and ``NAME.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from benchmarks.machine import describe_machine
from dl_perception.datasets.fashion_mnist import load_fashion_mnist
from dl_perception.training.config import DataConfig
from dl_perception.training.config import parse_config
from dl_perception.training.trainer import Trainer
from matplotlib.figure import Figure
import numpy as np
import torch

FASHION_MNIST = Path(DataConfig().root)
# Fashion-MNIST's training mean and std (of pixel / 255)
MEAN, STD = 0.2860, 0.3530


def experiment_parser(name: str, description: str) -> argparse.ArgumentParser:
    """Return a parser with the options every experiment has (--output, --seed)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--output', type=Path, default=Path('lecture-results'),
                        help='folder that receives NAME.txt, NAME.json and NAME.png')
    parser.add_argument('--seed', type=int, default=0, help='seed of data and weights')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads (1: on a shared 2-core machine two threads wait '
                             'on each other and wall times stretch several fold)')
    parser.set_defaults(name=name)
    return parser


def add_training_options(parser: argparse.ArgumentParser, arms: dict, images: int,
                         epochs: int) -> None:
    """Add --model, --images, --epochs and --arms, the options of the training experiments."""
    parser.add_argument('--model', default='lenet')
    parser.add_argument('--images', type=int, default=images, help='training images')
    parser.add_argument('--epochs', type=int, default=epochs)
    parser.add_argument('--arms', nargs='+', default=list(arms), choices=list(arms))


def parse_options(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse the options and apply --threads."""
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args


def fashion_tensors(count: int, seed: int, split: str = 'train'
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Return ``count`` seeded Fashion-MNIST images, normalized, and their labels.

    :returns: images float32 (count, 1, 28, 28) and labels int64 (count,).
    """
    source = load_fashion_mnist(FASHION_MNIST, split)
    chosen = np.random.default_rng(seed).choice(len(source.labels), count, replace=False)
    images = torch.from_numpy(np.asarray(source.images)[chosen]).float().div(255)
    images = (images.permute(0, 3, 1, 2) - MEAN) / STD
    return images, torch.from_numpy(np.asarray(source.labels)[chosen].astype(np.int64))


def train_run(output: Path, run_name: str, overrides: list[str]) -> tuple[Trainer, dict]:
    """
    Train one quiet run into ``output / 'runs' / run_name``; returns trainer and summary.

    The package's log level is lowered for the run only: an experiment run in-process (the
    tests do) must not silence the warnings of whatever runs after it.
    """
    config = parse_config(None, ['progress=false', 'data.workers=0', 'device=cpu',
                                 f'output_dir={output / "runs"}', f'run_name={run_name}',
                                 *overrides])
    package = logging.getLogger('dl_perception')
    level = package.level
    package.setLevel(logging.ERROR)
    try:
        trainer = Trainer(config, output / 'runs' / run_name)
        return trainer, trainer.fit()
    finally:
        package.setLevel(level)


def load_average() -> float:
    """Return the machine's 1-minute load average (other processes slow wall times)."""
    return round(os.getloadavg()[0], 2)


def format_table(columns: list[str], rows: list[dict]) -> str:
    """Return rows as a Markdown table (numbers to 4 significant digits)."""
    def cell(value: object) -> str:
        return f'{value:.4g}' if isinstance(value, float) else str(value)
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    lines += ['| ' + ' | '.join(cell(row[c]) for c in columns) + ' |' for row in rows]
    return '\n'.join(lines)


def write_outputs(args: argparse.Namespace, columns: list[str], rows: list[dict],
                  details: dict, figure: Figure) -> str:
    """Print the table and write NAME.txt, NAME.json and NAME.png; returns the table."""
    args.output.mkdir(parents=True, exist_ok=True)
    table = format_table(columns, rows)
    print(table)
    options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    (args.output / f'{args.name}.txt').write_text(table + '\n')
    document = {'experiment': args.name, 'options': options, 'machine': describe_machine(),
                'load_average_at_end': os.getloadavg(),
                'columns': columns, 'rows': rows, **details}
    (args.output / f'{args.name}.json').write_text(json.dumps(document, indent=1) + '\n')
    figure.tight_layout()
    figure.savefig(args.output / f'{args.name}.png', dpi=80)
    return table
