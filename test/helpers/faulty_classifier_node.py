"""
classifier_node with a fault injected on purpose: its first N batches raise KeyError.

    faulty_classifier_node.py N --ros-args ...   (N = -1: every batch fails)

Nothing in the node expects a KeyError from its work, so this stands for any bug or
failure the worker meets; the node must report it, survive it, and go on classifying.
"""

from __future__ import annotations

import sys

from dl_perception.ros import classifier_node
from dl_perception.ros.spinning import run_node


class FaultyClassifierNode(classifier_node.ClassifierNode):
    """The real node, whose batch processing fails the first ``faults`` times."""

    def __init__(self, faults: int) -> None:
        super().__init__()
        self._faults_left = faults

    def _process(self, frames) -> None:
        if self._faults_left != 0:
            self._faults_left -= 1
            raise KeyError(f'injected fault, {self._faults_left} left')
        super()._process(frames)


if __name__ == '__main__':
    faults = int(sys.argv[1])
    sys.exit(run_node(lambda: FaultyClassifierNode(faults), sys.argv[:1] + sys.argv[2:],
                      name='classifier',
                      spin=classifier_node._start_and_spin))
