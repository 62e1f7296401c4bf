"""``dl-perception lr-find``: the learning-rate range test for a training config."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from dl_perception.training.config import load_config
from dl_perception.training.lr_finder import run_range_test
from dl_perception.training.plots import plot_lr_range_test
from dl_perception.training.run_records import write_json
from dl_perception.training.trainer import Trainer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``lr-find``."""
    parser.add_argument('--config', help='YAML training config (its model, data, optimizer)')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE', help='override a config key (repeatable)')
    parser.add_argument('--lr-min', type=float, default=1e-6, help='first rate (default 1e-6)')
    parser.add_argument('--lr-max', type=float, default=10.0, help='last rate (default 10)')
    parser.add_argument('--steps', type=int, default=200, help='steps (default 200)')
    parser.add_argument('--output', type=Path,
                        help='folder for lr_find.png / lr_find.json (default runs/lr-find-...)')


def run(args: argparse.Namespace) -> int:
    """Run the range test, write the plot and the curve, print the suggestion."""
    config = load_config(args.config, args.overrides)
    stamp = datetime.now().strftime('%Y%m%d-%H%M%S')
    output = args.output or Path(config.output_dir) / f'lr-find-{config.model.name}-{stamp}'
    trainer = Trainer(config, output)
    result = run_range_test(trainer, args.lr_min, args.lr_max, args.steps)
    output.mkdir(parents=True, exist_ok=True)
    plot_lr_range_test(result.rates, result.losses, result.suggestion, output / 'lr_find.png')
    write_json({'rates': result.rates, 'smoothed_losses': result.losses,
                'suggested_lr': result.suggestion}, output / 'lr_find.json')
    print(f'suggested learning rate: {result.suggestion:.3g} '
          f'(plot: {output / "lr_find.png"}; set it with --set optimizer.lr=...)')
    return 0
