"""
The lecture's learning-rate rule from a planted too-low and a planted too-high rate.

    python -m benchmarks lecture.lr_tuning [--model lenet] [--low 1e-4] [--high 3.0]
        [--images 4000] [--epochs 2] [--output lecture-results]

For each planted rate, two real ``Trainer`` runs from the same seed (SGD with momentum 0.9,
batches of 64): one with ``lr_tuning.enabled`` (the rule of ``dl_perception.training.
lr_tuning``: trials of 60 steps, too high -> /10, too low -> x3, until the loss decreases
consistently) and one without, which keeps the planted rate (apart from the divergence
rollback's /10). The table lists the trials with their verdicts, the rate training ran at
and the final validation accuracy; the figure plots the rate of every trial and the
validation accuracy per epoch.
"""

from __future__ import annotations

from benchmarks.lecture.common import experiment_parser
from benchmarks.lecture.common import parse_options
from benchmarks.lecture.common import train_run
from benchmarks.lecture.common import write_outputs
from matplotlib.figure import Figure

MARKERS = {'diverging': 'x', 'oscillating': 's', 'slow': 'v', 'decreasing': 'o'}


def main(argv: list[str]) -> int:
    """Run the tuned and untuned runs from both planted rates; print, write JSON and PNG."""
    parser = experiment_parser('lr_tuning', __doc__.split('\n\n')[0])
    parser.add_argument('--model', default='lenet')
    parser.add_argument('--low', type=float, default=1e-4, help='planted too-low rate')
    parser.add_argument('--high', type=float, default=3.0, help='planted too-high rate')
    parser.add_argument('--images', type=int, default=4000, help='training images')
    parser.add_argument('--epochs', type=int, default=2)
    args = parse_options(parser, argv)
    rows, runs = [], {}
    for start in (args.low, args.high):
        for tuned in (True, False):
            name = f'{start:g} {"tuned" if tuned else "untuned"}'
            trainer, summary = train_run(args.output, f'lr_tuning-{start:g}-{tuned}', [
                f'model.name={args.model}', 'optimizer.name=momentum',
                f'optimizer.lr={start}', f'lr_tuning.enabled={str(tuned).lower()}',
                f'data.train_subset={args.images}', 'data.val_fraction=0.05',
                'data.test_subset=100', 'data.batch_size=64', f'epochs={args.epochs}',
                f'seed={args.seed}', 'divergence.max_retries=6'])
            history = trainer.state.history
            runs[name] = {'trials': summary['lr_tuning'], 'history': history,
                          'divergence_events': summary['divergence_events']}
            rows.append({
                'start_lr': start, 'tuning': 'on' if tuned else 'off',
                'trials': ', '.join(f'{t["lr"]:.3g} {t["verdict"]}'
                                    for t in summary['lr_tuning']) or '-',
                'trained_at_lr': history[-1]['lr'],
                'rollbacks': len(summary['divergence_events']),
                'val_accuracy': history[-1]['val_accuracy']})
    figure = Figure(figsize=(10, 4))
    rates, accuracy = figure.subplots(1, 2)
    for number, (name, run) in enumerate(runs.items()):
        trials = run['trials']
        if trials:
            rates.plot(range(1, len(trials) + 1), [t['lr'] for t in trials], color=f'C{number}')
            for index, trial in enumerate(trials, 1):
                rates.scatter(index, trial['lr'], marker=MARKERS[trial['verdict']], s=50,
                              color=f'C{number}')
        accuracy.plot([r['epoch'] for r in run['history']],
                      [r['val_accuracy'] for r in run['history']], marker='o', label=name,
                      color=f'C{number}')
    for verdict, marker in MARKERS.items():
        rates.scatter([], [], marker=marker, color='k', label=verdict)
    rates.set(xlabel='trial', ylabel='learning rate', yscale='log',
              title='trials from the planted rates')
    rates.legend(fontsize=7)
    accuracy.set(xlabel='epoch', ylabel='validation accuracy', title='training afterwards')
    accuracy.legend(fontsize=7)
    write_outputs(args, ['start_lr', 'tuning', 'trials', 'trained_at_lr', 'rollbacks',
                         'val_accuracy'], rows, {'runs': runs}, figure)
    return 0
