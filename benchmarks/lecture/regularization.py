"""
Regularization on a deliberately small training set: L1, L2, max-norm, dropout, early stop.

    python -m benchmarks lecture.regularization [--model lenet] [--images 500] [--epochs 30]
        [--output lecture-results]

``--images`` Fashion-MNIST training images are few enough for the network to learn them by
heart (training accuracy near 1 while the validation loss turns up: over-fitting). Each arm
is a real ``Trainer`` run from the same seed with one regularizer of the library switched on
(its strength in the table), validated on 3,000 held-out images every epoch. Early stopping
watches the validation loss with a patience of 3 epochs and restores the best weights. The
table gives, at the weights each run keeps (best validation loss), the training and
validation accuracy and loss and the gap between the two accuracies; the figure shows the
training and validation loss curves side by side.
"""

from __future__ import annotations

from benchmarks.lecture.common import add_training_options
from benchmarks.lecture.common import experiment_parser
from benchmarks.lecture.common import parse_options
from benchmarks.lecture.common import train_run
from benchmarks.lecture.common import write_outputs
from matplotlib.figure import Figure

ARMS = {
    'none': [], 'l1': ['regularization.l1=1e-4'], 'l2': ['regularization.l2=1e-3'],
    'max_norm': ['regularization.max_norm=1.0'], 'dropout': ['model.dropout=0.5'],
    'early_stopping': ['regularization.early_stopping_patience=3'],
}


def main(argv: list[str]) -> int:
    """Train every arm; print the table, write the JSON and the PNG."""
    parser = experiment_parser('regularization', __doc__.split('\n\n')[0])
    add_training_options(parser, ARMS, images=500, epochs=30)
    args = parse_options(parser, argv)
    rows, curves = [], {}
    for arm in args.arms:
        trainer, summary = train_run(args.output, f'regularization-{arm}', [
            f'model.name={args.model}', 'optimizer.name=momentum', 'optimizer.lr=0.05',
            *ARMS[arm], 'regularization.early_stopping_metric=loss',
            f'data.train_subset={args.images}', 'data.val_fraction=0.05',
            'data.test_subset=100', 'data.batch_size=32', f'epochs={args.epochs}',
            f'seed={args.seed}'])
        history = trainer.state.history
        curves[arm] = history
        kept = min(history, key=lambda row: row['val_loss'])
        rows.append({'arm': arm, 'setting': ' '.join(ARMS[arm]) or '-',
                     'epochs_run': len(history), 'kept_epoch': kept['epoch'],
                     'train_accuracy': kept['train_accuracy'],
                     'val_accuracy': kept['val_accuracy'], 'train_loss': kept['train_loss'],
                     'val_loss': kept['val_loss'],
                     'accuracy_gap': kept['train_accuracy'] - kept['val_accuracy'],
                     'final_val_loss': history[-1]['val_loss']})
    figure = Figure(figsize=(10, 4))
    train_axis, val_axis = figure.subplots(1, 2, sharey=True)
    for number, (arm, history) in enumerate(curves.items()):
        epochs = [row['epoch'] for row in history]
        train_axis.plot(epochs, [r['train_loss'] for r in history], color=f'C{number}',
                        label=arm)
        val_axis.plot(epochs, [r['val_loss'] for r in history], color=f'C{number}',
                      label=arm)
    train_axis.set(xlabel='epoch', ylabel='loss', title=f'training loss ({args.images} images)')
    val_axis.set(xlabel='epoch', title='validation loss (3,000 images)')
    val_axis.legend(fontsize=7)
    write_outputs(args, ['arm', 'setting', 'epochs_run', 'kept_epoch', 'train_accuracy',
                         'val_accuracy', 'train_loss', 'val_loss', 'accuracy_gap',
                         'final_val_loss'], rows, {'histories': curves}, figure)
    return 0
