"""
From network output to ranked, labelled scores: softmax, top-k, threshold, smoothing.

Arrays: ``scores`` float32 (N, K) network outputs; ``probabilities`` float32 (N, K) rows that
sum to 1.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of float (N, K) logits, computed stably in float32."""
    shifted = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Prediction:
    """
    The classification of one image.

    ``probabilities`` is float32 (K,) over all classes; ``ranked`` holds the best (label,
    probability) pairs, highest first, after top-k and the score threshold (it may be empty).
    """

    probabilities: np.ndarray
    ranked: tuple[tuple[str, float], ...]

    @property
    def class_index(self) -> int:
        """Return the index of the most probable class."""
        return int(np.argmax(self.probabilities))

    @property
    def score(self) -> float:
        """Return the probability of the most probable class."""
        return float(self.probabilities[self.class_index])


def rank(probabilities: np.ndarray, labels: Sequence[str], top_k: int,
         threshold: float) -> tuple[tuple[str, float], ...]:
    """Return the ``top_k`` most probable (label, probability) pairs >= ``threshold``."""
    if top_k < 1:
        raise ValueError(f'top_k must be >= 1, got {top_k}')
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f'threshold must be in [0, 1], got {threshold}')
    count = min(top_k, len(probabilities))
    best = np.argpartition(-probabilities, count - 1)[:count]
    best = best[np.argsort(-probabilities[best], kind='stable')]
    return tuple((labels[i], float(probabilities[i])) for i in best
                 if probabilities[i] >= threshold)


class ProbabilitySmoother:
    """
    Exponential moving average of class probabilities, one state per stream (camera).

    ``alpha`` is the weight of the newest frame: 1.0 means no smoothing. Steadies the label of
    a camera that looks at one thing, at the price of a short lag after the scene changes.
    """

    def __init__(self, alpha: float) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f'smoothing alpha must be in (0, 1], got {alpha}')
        self.alpha = alpha
        self._state: dict[Hashable, np.ndarray] = {}

    def update(self, stream: Hashable, probabilities: np.ndarray) -> np.ndarray:
        """Blend a stream's new probabilities (K,) into its average and return the average."""
        previous = self._state.get(stream)
        if previous is None or previous.shape != probabilities.shape:
            smoothed = probabilities.astype(np.float32)
        else:
            smoothed = (self.alpha * probabilities + (1 - self.alpha) * previous).astype(
                np.float32)
        self._state[stream] = smoothed
        return smoothed

    def reset(self, stream: Hashable | None = None) -> None:
        """Forget one stream's history, or every stream's."""
        if stream is None:
            self._state.clear()
        else:
            self._state.pop(stream, None)
