"""
``python -m benchmarks NAME [options]``: the one place that lists every benchmark.

Without a name it prints the list. Each benchmark is the module ``benchmarks.NAME``, whose
``main(argv)`` parses the options and returns the exit status; ``make bench`` runs those the
README quotes. Run from the repository root, where ``benchmarks`` is importable.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    'pipeline': 'inference path on 640x480 frames: raw ONNX Runtime to node, PyTorch '
                'baseline node, OpenVINO, ROS floor',
    'overload': 'classifier_node flooded by one camera at rising rates: output must hold '
                '>= 0.9x its saturated rate',
    'soak': 'classifier_node fed at 30 Hz for minutes: memory growth, frames accounted for',
    'int8_speed': 'float32 vs int8 ONNX (and OpenVINO) images/s, file sizes',
    'train_throughput': 'Trainer images/s against a plain PyTorch loop, same run',
    'train_fashion_mnist': 'train configs on Fashion-MNIST: test accuracy, wall time',
    'recipe_variants': "a training config's variants side by side: train images/s, "
                       'validation seconds',
    'inference_providers': 'ONNX Runtime execution providers side by side (GPU machine)',
    'gpu_training': 'training images/s with AMP + channels_last vs float32 (GPU machine)',
    'gpu_check': 'every GPU benchmark in one go, for a lent GPU machine',
    'lecture.vanishing_gradients': 'deep plain net, sigmoid vs ReLU, batch norm, residual: '
                                   'gradient norm per layer, loss',
    'lecture.optimizers': 'GD, SGD, mini-batch, momentum, Adagrad, RMSProp, Adam: loss '
                          'against epochs and wall time',
    'lecture.adam_vs_sgd': 'VGG and AlexNet: Adam vs SGD with a schedule',
    'lecture.lr_tuning': "the lecture's learning-rate rule from a too-low and a too-high rate",
    'lecture.regularization': 'L1, L2, max-norm, dropout, early stopping on a small '
                              'training set: train/validation curves',
}


def main(argv: list[str]) -> int:
    """Run the benchmark named first in ``argv`` with the rest as its options."""
    if not argv or argv[0] not in BENCHMARKS:
        listing_asked = not argv or argv[0] in ('-h', '--help')
        if not listing_asked:
            print(f'unknown benchmark: {argv[0]}', file=sys.stderr)
        print('usage: python -m benchmarks NAME [options]   (NAME --help for its options)\n')
        for name, summary in BENCHMARKS.items():
            print(f'  {name:<28} {summary}')
        return 0 if listing_asked else 2
    name, options = argv[0], argv[1:]
    sys.argv[0] = f'python -m benchmarks {name}'  # what argparse shows as the program
    return importlib.import_module(f'benchmarks.{name}').main(options)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
