"""
The ``dl-perception`` command: one entry point, one sub-command per job.

Each sub-command lives in the layer that does the work and is imported only when it runs,
so ``dl-perception --help`` stays fast and a robot without torch can still use the
sub-commands that do not need it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import importlib
import logging
import sys

from dl_perception import __version__


@dataclass(frozen=True)
class SubCommand:
    """
    A sub-command: its name, a one-line summary, and the module that implements it.

    The module provides ``add_arguments(parser)`` and ``run(args) -> int``; a ``forwarding``
    one wraps another program and gets the argument list as given, ``run(argv) -> int``.
    """

    name: str
    summary: str
    module: str
    forwarding: bool = False


SUBCOMMANDS: tuple[SubCommand, ...] = (
    SubCommand('train', 'train a network from a YAML config, or resume a run',
               'dl_perception.training.train_cli'),
    SubCommand('evaluate', 'measure a checkpoint or ONNX file: top-1/5, per class, confusion',
               'dl_perception.export.evaluate_cli'),
    SubCommand('export', 'export a checkpoint to a verified, self-describing ONNX file',
               'dl_perception.export.export_cli'),
    SubCommand('lr-find', 'learning-rate range test: plot loss vs rate, suggest a rate',
               'dl_perception.training.lr_find_cli'),
    SubCommand('monitor', 'pair classifications with true labels on ROS topics: live accuracy',
               'dl_perception.ros.monitor'),
    SubCommand('demo', 'train (if needed), export, and classify a camera stream through ROS 2',
               'dl_perception.demo'),
    SubCommand('doctor', 'report what this machine can run: libraries, providers, ROS',
               'dl_perception.doctor'),
    SubCommand('bench', 'the inference benchmark: every backend and node side by side, goals '
                        'judged', 'dl_perception.bench', forwarding=True),
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser; sub-command modules are imported when they run."""
    parser = argparse.ArgumentParser(
        prog='dl-perception',
        description='Train classic CNNs, export self-describing ONNX files and run them on '
                    'ROS 2 robots.',
    )
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND')
    for command in SUBCOMMANDS:
        commands.add_parser(command.name, help=command.summary, description=command.summary,
                            add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen sub-command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    top, rest = parser.parse_known_args(argv)
    if top.command is None:
        if rest:
            parser.error(f'unrecognized arguments: {" ".join(rest)}')
        parser.print_help()
        return 0
    command = next(c for c in SUBCOMMANDS if c.name == top.command)
    module = importlib.import_module(command.module)
    if command.forwarding:
        try:
            return module.run(rest)
        except FileNotFoundError as error:
            print(f'dl-perception {command.name}: error: {error}', file=sys.stderr)
            return 2
    sub_parser = argparse.ArgumentParser(prog=f'dl-perception {command.name}',
                                         description=command.summary)
    module.add_arguments(sub_parser)
    args = sub_parser.parse_args(rest)
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    logging.getLogger('dl_perception').setLevel(logging.INFO)
    try:
        return module.run(args)
    except (ValueError, FileNotFoundError) as error:
        sub_parser.exit(2, f'{sub_parser.prog}: error: {error}\n')


if __name__ == '__main__':
    sys.exit(main())
