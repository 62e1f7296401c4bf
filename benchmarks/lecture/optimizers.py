"""
Optimizers on one network: GD, SGD, mini-batch SGD, momentum, Adagrad, RMSProp, Adam.

    python -m benchmarks lecture.optimizers [--model lenet] [--images 2000] [--epochs 5]
        [--arms gd sgd ...] [--output lecture-results]

Each arm is a real ``Trainer`` run of the same network from the same seed on the same
``--images`` Fashion-MNIST training images (validation: 5 % of the training set, 3,000
images). ``gd`` takes one full-batch step per epoch, ``sgd`` one step per image (batch size
1), the others batches of 64. The learning rates are the usual starting points of each
method (the table names them). The table gives the final epoch's training loss, validation
loss and accuracy and the training seconds; the figure plots the training loss (each epoch's
mean over its steps) against epochs and against cumulative training wall time; ``load`` is
the machine's 1-minute load average after each arm (other processes stretch wall times).
"""

from __future__ import annotations

from benchmarks.lecture.common import add_training_options
from benchmarks.lecture.common import experiment_parser
from benchmarks.lecture.common import load_average
from benchmarks.lecture.common import parse_options
from benchmarks.lecture.common import train_run
from benchmarks.lecture.common import write_outputs
from matplotlib.figure import Figure

ARMS = {  # name -> (optimizer, batch size, learning rate)
    'gd': ('gd', 64, 0.5), 'sgd': ('sgd', 1, 0.005), 'minibatch_sgd': ('sgd', 64, 0.05),
    'momentum': ('momentum', 64, 0.02), 'adagrad': ('adagrad', 64, 0.02),
    'rmsprop': ('rmsprop', 64, 0.001), 'adam': ('adam', 64, 0.001),
}


def main(argv: list[str]) -> int:
    """Train every arm, print the table, write the JSON and the PNG."""
    parser = experiment_parser('optimizers', __doc__.split('\n\n')[0])
    add_training_options(parser, ARMS, images=2000, epochs=5)
    args = parse_options(parser, argv)
    rows, curves = [], {}
    for arm in args.arms:
        name, batch, lr = ARMS[arm]
        trainer, summary = train_run(args.output, f'optimizers-{arm}', [
            f'model.name={args.model}', f'optimizer.name={name}', f'optimizer.lr={lr}',
            f'data.batch_size={batch}', f'data.train_subset={args.images}',
            'data.val_fraction=0.05', 'data.test_subset=100', f'epochs={args.epochs}',
            f'seed={args.seed}'])
        history = trainer.state.history
        curves[arm] = history
        last = history[-1]
        rows.append({'arm': arm, 'optimizer': name, 'batch': batch, 'lr': lr,
                     'train_loss': last['train_loss'], 'val_loss': last['val_loss'],
                     'val_accuracy': last['val_accuracy'],
                     'seconds': sum(row['epoch_seconds'] for row in history),
                     'rollbacks': len(summary['divergence_events']), 'load': load_average()})
    figure = Figure(figsize=(10, 4))
    by_epoch, by_time = figure.subplots(1, 2)
    for arm, history in curves.items():
        epochs = [row['epoch'] for row in history]
        losses = [row['train_loss'] for row in history]
        seconds, total = [], 0.0
        for row in history:
            total += row['epoch_seconds']
            seconds.append(total)
        by_epoch.plot(epochs, losses, marker='o', label=arm)
        by_time.plot(seconds, losses, marker='o', label=arm)
    by_epoch.set(xlabel='epoch', ylabel='training loss', title='loss against epochs')
    by_time.set(xlabel='training seconds', ylabel='training loss', xscale='log',
                title='loss against wall time')
    by_epoch.legend(fontsize=7)
    write_outputs(args, ['arm', 'optimizer', 'batch', 'lr', 'train_loss', 'val_loss',
                         'val_accuracy', 'seconds', 'rollbacks', 'load'], rows,
                  {'histories': curves}, figure)
    return 0
