"""
"Adam struggles on VGG/AlexNet; SGD with a schedule is used": both, on both networks.

    python -m benchmarks lecture.adam_vs_sgd [--models vgg16 alexnet] [--images 1000]
        [--epochs 2] [--adam-lr 1e-3] [--sgd-lr 0.01] [--output lecture-results]

Each network is the library's (VGG-16 without batch norm, 15.2 M parameters; AlexNet,
4.6 M, both in their small-input form at 28x28) trained by real ``Trainer`` runs from the
same seed on the same ``--images`` Fashion-MNIST images: Adam at a constant ``--adam-lr``
against SGD with momentum 0.9 at ``--sgd-lr`` under a cosine schedule, with the dropout of
the family default. The table gives the final validation accuracy and loss and the best
validation accuracy (on 2 % of the training set, 1,200 images); the figure plots validation
accuracy against epochs. On two CPU cores the default is 32 steps a run: what it shows is
the start of training, and the claim is about whole runs (run longer with
``--images 60000 --epochs 30`` on a GPU).
"""

from __future__ import annotations

from benchmarks.lecture.common import experiment_parser
from benchmarks.lecture.common import parse_options
from benchmarks.lecture.common import train_run
from benchmarks.lecture.common import write_outputs
from matplotlib.figure import Figure


def main(argv: list[str]) -> int:
    """Train Adam and SGD + schedule on each network; print, write JSON and PNG."""
    parser = experiment_parser('adam_vs_sgd', __doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', default=['vgg16', 'alexnet'])
    parser.add_argument('--images', type=int, default=1000, help='training images')
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--adam-lr', type=float, default=1e-3)
    parser.add_argument('--sgd-lr', type=float, default=0.01)
    parser.add_argument('--val-fraction', type=float, default=0.02,
                        help='share of the 60,000 training images held out for validation')
    args = parse_options(parser, argv)
    arms = {'adam': ['optimizer.name=adam', f'optimizer.lr={args.adam_lr}'],
            'sgd+cosine': ['optimizer.name=momentum', f'optimizer.lr={args.sgd_lr}',
                           'schedule.name=cosine']}
    rows, curves = [], {}
    for model in args.models:
        for arm, overrides in arms.items():
            trainer, summary = train_run(args.output, f'adam_vs_sgd-{model}-{arm}', [
                f'model.name={model}', *overrides, 'model.batch_norm=false',
                f'data.train_subset={args.images}', f'data.val_fraction={args.val_fraction}',
                'data.test_subset=100', 'data.batch_size=64', f'epochs={args.epochs}',
                f'seed={args.seed}'])
            history = trainer.state.history
            curves[f'{model} {arm}'] = history
            rows.append({'model': model, 'arm': arm,
                         'val_accuracy': history[-1]['val_accuracy'],
                         'val_loss': history[-1]['val_loss'],
                         'best_val_accuracy': summary['best_val_accuracy'],
                         'steps': trainer.state.global_step,
                         'seconds': sum(row['epoch_seconds'] for row in history),
                         'rollbacks': len(summary['divergence_events'])})
    figure = Figure(figsize=(6, 4))
    axis = figure.subplots()
    for name, history in curves.items():
        axis.plot([0] + [r['epoch'] for r in history],
                  [0.1] + [r['val_accuracy'] for r in history], marker='o', label=name)
    axis.set(xlabel='epoch', ylabel='validation accuracy', title='Adam vs SGD + cosine')
    axis.legend(fontsize=7)
    write_outputs(args, ['model', 'arm', 'val_accuracy', 'val_loss', 'best_val_accuracy',
                         'steps', 'seconds', 'rollbacks'], rows, {'histories': curves}, figure)
    return 0
