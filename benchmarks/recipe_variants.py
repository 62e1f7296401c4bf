"""
A training config's variants side by side: training images/s and validation seconds.

    python -m benchmarks recipe_variants config/train/fashion_mnist_10min.yaml \
        --variant plain= --variant no-augment=data.augment.crop_padding=0,\
data.augment.horizontal_flip=false [--batches 60] [--rounds 5] [--output variants.json]

Each ``--variant NAME=KEY=VALUE,KEY=VALUE`` (possibly empty) builds one ``Trainer`` from the
config with those overrides and ``data.train_subset`` set to ``--batches`` batches. A round
times, for every variant in turn, one training epoch on that subset (``train_epoch``: data
loading, augmentation and every step) and one per-epoch validation pass
(``evaluate_split(val, final=False)``), the order of the variants reversed every other round
so that a drift in the machine's speed hurts all alike. The first round warms up and is not
counted. The table gives the medians and each variant's ratio to the first; the JSON holds
every round and the machine. This is what tells ingredients of the CPU recipe apart on a
machine whose speed varies by 15 % between whole runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import statistics
import tempfile
import time

from benchmarks.machine import describe_machine
from dl_perception.training.config import load_config
from dl_perception.training.trainer import Trainer


def parse_variant(text: str) -> tuple[str, list[str]]:
    """Split ``NAME=K=V,K=V`` into the name and its overrides."""
    name, _, overrides = text.partition('=')
    if not name:
        raise argparse.ArgumentTypeError(f'a variant needs a name: {text!r}')
    return name, [item for item in overrides.split(',') if item]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='training config YAML file')
    parser.add_argument('--variant', dest='variants', action='append', type=parse_variant,
                        required=True, metavar='NAME=KEY=VALUE,...')
    parser.add_argument('--batches', type=int, default=60, help='batches per timed epoch')
    parser.add_argument('--rounds', type=int, default=5, help='timed rounds after the warm-up')
    parser.add_argument('--output', type=Path, default=Path('recipe_variants.json'))
    args = parser.parse_args(argv)
    runs_dir = Path(tempfile.mkdtemp(prefix='dlp-variants-'))
    subset = args.batches * load_config(args.config, []).data.batch_size
    trainers = {}
    for name, overrides in args.variants:
        config = load_config(args.config, [*overrides, f'output_dir={runs_dir}',
                                           'progress=false', f'data.train_subset={subset}'])
        trainers[name] = Trainer(config, runs_dir / name)
    rounds = {name: [] for name in trainers}
    for number in range(args.rounds + 1):
        order = list(trainers) if number % 2 == 0 else list(reversed(trainers))
        for name in order:
            trainer = trainers[name]
            metrics = trainer.train_epoch(number)
            started = time.perf_counter()
            trainer.evaluate_split(trainer.data.val, final=False)
            if number:  # the first round warms up
                rounds[name].append({'images_per_s': metrics['images_per_s'],
                                     'validation_seconds': time.perf_counter() - started})
    first = next(iter(trainers))
    medians = {name: {key: statistics.median(row[key] for row in rows)
                      for key in ('images_per_s', 'validation_seconds')}
               for name, rows in rounds.items()}
    print(f'\n{"variant":<24} {"train img/s":>12} {"ratio":>6} {"val s":>7} {"ratio":>6}')
    for name, median in medians.items():
        print(f'{name:<24} {median["images_per_s"]:>12.0f} '
              f'{median["images_per_s"] / medians[first]["images_per_s"]:>6.2f} '
              f'{median["validation_seconds"]:>7.2f} '
              f'{median["validation_seconds"] / medians[first]["validation_seconds"]:>6.2f}')
    args.output.write_text(json.dumps({
        'machine': describe_machine(), 'config': args.config, 'batches': args.batches,
        'variants': dict(args.variants), 'medians': medians, 'rounds': rounds},
        indent=2) + '\n')
    print(f'written: {args.output}')
    return 0
