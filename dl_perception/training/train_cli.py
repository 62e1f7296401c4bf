"""
``dl-perception train``: train a network from a YAML config, or resume a stopped run.

Exit status: 0 trained; 2 bad config, data or checkpoint (nothing was created for a new run);
3 training kept diverging; 4 training finished but the model is dead (final validation
accuracy at chance, or a loss that never fell); 130 interrupted.
"""

from __future__ import annotations

import argparse
from datetime import datetime
import logging
from pathlib import Path
import signal
import textwrap

from dl_perception.training.config import config_to_dict
from dl_perception.training.config import describe_options
from dl_perception.training.config import load_config
from dl_perception.training.distributed import init_distributed
from dl_perception.training.distributed import shutdown_distributed
from dl_perception.training.recovery import DivergenceError
from dl_perception.training.trainer import Trainer
import torch
import yaml

logger = logging.getLogger(__name__)

EXIT_DIVERGED = 3
EXIT_DEAD_MODEL = 4
EXIT_INTERRUPTED = 130
EXIT_STATUS_HELP = ('exit status: 0 trained; 2 bad config, data or checkpoint (a new run creates '
                    'no folder then); 3 training kept diverging; 4 training finished but the '
                    'model is dead (final validation accuracy at chance, or a training loss '
                    'that never fell below its start: see summary.json dead_model); '
                    '130 interrupted (resume with --resume RUN_DIR)')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``train``; the epilog lists every config key."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (textwrap.fill(EXIT_STATUS_HELP, 79)
                     + '\n\nconfig keys (set in the YAML file or with --set):\n'
                     + '\n'.join(describe_options()))
    parser.add_argument('--config', help='YAML config file (e.g. config/train/lenet.yaml)')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE', help='override a config key, e.g. optimizer.lr=0.01'
                                                  ' (repeatable; values are YAML)')
    parser.add_argument('--resume', metavar='RUN_DIR', type=Path,
                        help='continue a stopped run from RUN_DIR/last.pt (only --set epochs=N '
                             'may change)')
    parser.add_argument('--pretrained', metavar='PATH',
                        help='torchvision-format state dict to start from (= model.pretrained)')
    parser.add_argument('--freeze-backbone', action='store_true',
                        help='train only the new classifier head (= model.freeze_backbone)')


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _new_run_folder(config_output_dir: str, name: str) -> Path:
    """Where a new run goes; refuses a file standing where a folder must be."""
    output = Path(config_output_dir)
    run_dir = output / name
    for path in (output, run_dir):
        if path.exists() and not path.is_dir():
            raise ValueError(f'{path} is not a folder; choose another output_dir or run_name')
    return run_dir


def run(args: argparse.Namespace) -> int:
    """Train; exit 0 on success, 3 diverged, 4 dead model, 130 interrupted."""
    overrides = list(args.overrides)
    if args.pretrained:
        overrides.append(f'model.pretrained={args.pretrained}')
    if args.freeze_backbone:
        overrides.append('model.freeze_backbone=true')
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    context = init_distributed(torch.cuda.is_available())
    run_dir = args.resume
    try:
        if args.resume is not None:
            trainer = Trainer.resume(args.resume, overrides, context)
        else:
            config = load_config(args.config, overrides)
            stamp = datetime.now().strftime('%Y%m%d-%H%M%S')
            name = context.broadcast(config.run_name or f'{config.model.name}-{stamp}')
            target = _new_run_folder(config.output_dir, name)
            # Everything that can fail on the config (data, model, weights) fails here,
            # before the run folder exists.
            trainer = Trainer(config, target, context=context)
            run_dir = target
            if context.is_main:
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / 'config.yaml').write_text(yaml.safe_dump(
                    config_to_dict(config), sort_keys=False))
        logger.info('run folder: %s', run_dir)
        summary = trainer.fit()
    except DivergenceError as error:
        logger.error('%s', error)
        return EXIT_DIVERGED
    except KeyboardInterrupt:
        if run_dir is not None and (run_dir / 'last.pt').exists():
            logger.warning('interrupted; finished epochs are saved. Continue with: '
                           'dl-perception train --resume %s', run_dir)
        else:
            logger.warning('interrupted before the first epoch finished; nothing to resume')
        return EXIT_INTERRUPTED
    finally:
        shutdown_distributed(context)
    if summary:
        split = 'test' if 'test_accuracy' in summary else 'val'
        print(f'{summary["model"]}: {split} accuracy {summary[f"{split}_accuracy"]:.4f} '
              f'(top-5 {summary[f"{split}_top5"]:.4f}) after {summary["epochs_run"]} epochs, '
              f'{summary["train_seconds"]:.0f} s of training; results in {summary["run_dir"]}')
        if summary.get('dead_model'):
            logger.warning('exit status %d: the run finished with a dead model (see '
                           'dead_model in %s/summary.json)', EXIT_DEAD_MODEL, summary['run_dir'])
            return EXIT_DEAD_MODEL
    return 0
