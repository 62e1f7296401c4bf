"""
Training images/s of the Trainer against a plain PyTorch loop, measured in the same run.

    python -m benchmarks train_throughput [--models lenet resnet20 alexnet] [--batches N] \
        [--repeats 5] [--set key=value ...] [--output train_throughput.json]

Per model, a ``Trainer`` is built from the default config on the CPU, with ``model.name`` set
and ``data.train_subset`` chosen so that one epoch is ``--batches`` batches of 128
Fashion-MNIST images at 28x28 (``--set`` adds overrides, e.g. ``channels_last=true``). The
plain loop trains a copy of the same initial network, with the same optimizer settings, batch
size and memory format, on the same images held in memory as one uint8 tensor: each epoch it
draws a random order and slices it into batches; per batch it normalizes with the run's mean
and std, then runs forward, cross-entropy, backward and the optimizer step, nothing else.
Neither augments: a config that asks for augmentation is refused.

What is timed: a trainer slice is one whole training epoch on the subset, that is
``train_loader(epoch)`` (the DataLoader; it starts worker processes only for batches that need
per-image work, which those of the default config do not) and ``train_one_epoch``
(normalizing the uint8 batch, forward, loss, divergence watch, accuracy count, backward,
update, learning-rate and gradient-norm records). A plain slice is one epoch of the plain loop
over the same images. Validation, checkpoints and model construction are not timed. After an
untimed warm-up round the two alternate for ``--repeats`` rounds, which one goes first
alternating too, so that a drift in the machine's load hurts both alike. The table gives the
median images/s of each, their ratio, and the time one full epoch (the 54,000 training images
left after the validation hold-out) would take at the trainer's median rate. The JSON holds
every slice, the machine, and its load average before and after each model: other processes
on the machine slow both loops, and unevenly.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
import statistics
import tempfile
import time

from benchmarks.machine import describe_machine
from dl_perception.training.config import parse_config
from dl_perception.training.model_setup import build_from_spec
from dl_perception.training.optimizers import create_optimizer
from dl_perception.training.trainer import Trainer
import torch
from torch import nn

BATCH_SIZE = 128
# Batches per slice: about 2 to 10 s each on two cores.
DEFAULT_BATCHES = {'lenet': 300, 'resnet20': 24, 'alexnet': 40}
FALLBACK_BATCHES = 8


class PlainLoop:
    """The reference: a textbook training loop over images already in memory."""

    def __init__(self, trainer: Trainer) -> None:
        dataset, config = trainer.data.train, trainer.config
        self.model = build_from_spec(trainer.model_spec)
        self.model.load_state_dict(trainer.model.state_dict())
        self.memory_format = (torch.channels_last if trainer.channels_last
                              else torch.contiguous_format)
        self.model.to(memory_format=self.memory_format)
        optim = config.optimizer
        self.optimizer = create_optimizer(
            optim.name, self.model.parameters(), lr=optim.lr, momentum=optim.momentum,
            betas=tuple(optim.betas), eps=optim.eps, alpha=optim.alpha)
        self.criterion = nn.CrossEntropyLoss()
        self.batch_size = config.data.batch_size
        # uint8 (N, C, H, W) and int64 (N,): the subset's images before any augmentation.
        self.images = torch.stack([
            torch.from_numpy(dataset.image(i)).permute(2, 0, 1) for i in range(len(dataset))])
        self.labels = torch.from_numpy(dataset.labels)
        self.mean = torch.tensor(dataset.spec.mean).view(1, -1, 1, 1)
        self.std = torch.tensor(dataset.spec.std).view(1, -1, 1, 1)

    def run_epoch(self, seed: int) -> None:
        """Train one pass over the images in a random order."""
        self.model.train()
        order = torch.randperm(len(self.images), generator=torch.Generator().manual_seed(seed))
        for start in range(0, len(order), self.batch_size):
            picks = order[start:start + self.batch_size]
            inputs = (self.images[picks].float() / 255 - self.mean) / self.std
            inputs = inputs.contiguous(memory_format=self.memory_format)
            loss = self.criterion(self.model(inputs), self.labels[picks])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()


def build_trainer(model: str, batches: int, overrides: list[str], run_dir: Path) -> Trainer:
    """Build a CPU Trainer whose epoch is ``batches`` batches; refuse augmentation."""
    config = parse_config(None, [
        f'model.name={model}', f'data.train_subset={batches * BATCH_SIZE}',
        f'data.batch_size={BATCH_SIZE}', 'device=cpu', 'progress=false',
        f'output_dir={run_dir}', *overrides])
    augment = config.data.augment
    if (augment.crop_padding or augment.horizontal_flip or augment.vertical_flip
            or augment.random_erasing):
        raise ValueError('the plain loop has no augmentation; compare without data.augment.*')
    return Trainer(config, run_dir / model)


def time_trainer_epoch(trainer: Trainer, epoch: int) -> float:
    """Seconds of one training epoch: loader start, loading and every step."""
    started = time.perf_counter()
    trainer.train_epoch(epoch)
    return time.perf_counter() - started


def time_plain_epoch(loop: PlainLoop, epoch: int) -> float:
    """Seconds of one pass of the plain loop."""
    started = time.perf_counter()
    loop.run_epoch(epoch)
    return time.perf_counter() - started


def full_epoch_images(trainer: Trainer) -> int:
    """Training images of an epoch without ``train_subset``: the source minus the hold-out."""
    train, val = trainer.data.train, trainer.data.val
    held_out = len(val) if val.source is train.source else 0
    return len(train.source) - held_out


def compare(model: str, batches: int, repeats: int, overrides: list[str],
            run_dir: Path) -> dict:
    """Alternate trainer and plain-loop epochs; returns every timing and the medians."""
    load_before = os.getloadavg()
    trainer = build_trainer(model, batches, overrides, run_dir)
    loop = PlainLoop(trainer)
    images = len(trainer.data.train)
    time_trainer_epoch(trainer, 0)
    time_plain_epoch(loop, 0)
    rates = {'trainer': [], 'plain': []}
    for round_ in range(1, repeats + 1):
        slices = [('trainer', time_trainer_epoch, trainer), ('plain', time_plain_epoch, loop)]
        for name, timer, subject in slices[::-1] if round_ % 2 == 0 else slices:
            rates[name].append(images / timer(subject, round_))
        print(f'  {model} round {round_}/{repeats}: trainer {rates["trainer"][-1]:.0f} img/s, '
              f'plain {rates["plain"][-1]:.0f} img/s', flush=True)
    trainer_rate = statistics.median(rates['trainer'])
    plain_rate = statistics.median(rates['plain'])
    return {
        'model': model, 'batches': batches, 'images_per_slice': images,
        'workers': trainer.config.data.workers, 'torch_threads': torch.get_num_threads(),
        'trainer_images_per_s': [round(r, 1) for r in rates['trainer']],
        'plain_images_per_s': [round(r, 1) for r in rates['plain']],
        'trainer_median': round(trainer_rate, 1), 'plain_median': round(plain_rate, 1),
        'ratio': round(trainer_rate / plain_rate, 3),
        'projected_epoch_s': round(full_epoch_images(trainer) / trainer_rate, 1),
        'load_average_before': load_before, 'load_average_after': os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', default=list(DEFAULT_BATCHES),
                        help='architectures (default: lenet resnet20 alexnet)')
    parser.add_argument('--batches', type=int,
                        help=f'batches per slice (default per model: {DEFAULT_BATCHES}, '
                             f'else {FALLBACK_BATCHES})')
    parser.add_argument('--repeats', type=int, default=5, help='timed rounds (default 5)')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE', help='trainer config override, e.g. data.workers=1')
    parser.add_argument('--output', type=Path, default=Path('train_throughput.json'),
                        help='JSON results file (default ./train_throughput.json)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='%(message)s')
    run_dir = Path(tempfile.mkdtemp(prefix='dlp-throughput-'))
    results = []
    for model in args.models:
        batches = args.batches or DEFAULT_BATCHES.get(model, FALLBACK_BATCHES)
        results.append(compare(model, batches, args.repeats, args.overrides, run_dir))
    print(f'\n{"model":<10} {"batches":>7} {"trainer img/s":>13} {"plain img/s":>11} '
          f'{"ratio":>6} {"epoch s":>8}')
    for row in results:
        print(f'{row["model"]:<10} {row["batches"]:>7} {row["trainer_median"]:>13.0f} '
              f'{row["plain_median"]:>11.0f} {row["ratio"]:>6.2f} '
              f'{row["projected_epoch_s"]:>8.0f}')
    settings = {'batch_size': BATCH_SIZE, 'repeats': args.repeats, 'overrides': args.overrides}
    args.output.write_text(json.dumps({'machine': describe_machine(), 'settings': settings,
                                       'results': results}, indent=2) + '\n')
    print(f'written: {args.output}')
    return 0
