"""
``Classifier``: an ONNX image classifier and the preprocessing its metadata prescribes.

Images are uint8 numpy arrays (H, W, C) or (H, W) of any size, in a named channel order
(rgb, bgr, grey, rgba, bgra). Preprocessing comes from the file's ``dlp.*`` metadata, or,
for a foreign model, from explicit ``labels`` and ``preprocessing`` arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
import json
import logging
from pathlib import Path

from dl_perception.inference.backend import Backend
from dl_perception.inference.backend import InferenceError
from dl_perception.inference.model_metadata import ModelMetadata
from dl_perception.inference.model_metadata import OUTPUT_KINDS
from dl_perception.inference.onnxruntime_backend import OnnxRuntimeBackend
from dl_perception.inference.openvino_backend import OpenVinoBackend
from dl_perception.inference.postprocess import Prediction
from dl_perception.inference.postprocess import rank
from dl_perception.inference.postprocess import softmax
from dl_perception.inference.providers import OPENVINO
from dl_perception.inference.providers import ProviderError
from dl_perception.inference.providers import ProviderSettings
from dl_perception.preprocessing import prepare
from dl_perception.preprocessing import PreprocessingSpec
import numpy as np

__all__ = ['Classifier', 'InferenceError', 'load_labels', 'open_backend']

logger = logging.getLogger(__name__)


def load_labels(path: str | Path) -> list[str]:
    """
    Read class labels: a JSON list, a JSON object {index: name}, or one label per line.

    :raises FileNotFoundError: no such file.
    :raises ValueError: the file holds no labels, or JSON indices are not 0..K-1.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'labels file not found: {path}')
    text = path.read_text(encoding='utf-8')
    if path.suffix.lower() == '.json':
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f'{path} is not valid JSON: {error}') from None
        if isinstance(data, dict):
            try:
                indexed = {int(key): str(value) for key, value in data.items()}
            except ValueError:
                raise ValueError(f'{path}: JSON object keys must be class indices') from None
            if sorted(indexed) != list(range(len(indexed))):
                raise ValueError(f'{path}: class indices must be 0..{len(indexed) - 1}')
            data = [indexed[i] for i in range(len(indexed))]
        if not isinstance(data, list):
            raise ValueError(f'{path}: expected a JSON list or object of labels')
        labels = [str(label) for label in data]
    else:
        labels = [line.strip() for line in text.splitlines()]
        while labels and not labels[-1]:
            labels.pop()
    if not labels:
        raise ValueError(f'{path} holds no labels')
    return labels


def open_backend(path: Path, settings: ProviderSettings) -> Backend:
    """
    Load the model in the backend the settings ask for first (see ``Backend.load``).

    A backend that is not available here (OpenVINO not installed) is a ``ProviderError``
    unless ``allow_cpu_fallback`` is set; then ONNX Runtime's CPU provider runs the model and
    a warning says why.
    """
    if settings.backend != OPENVINO:
        return OnnxRuntimeBackend.load(path, settings)
    try:
        return OpenVinoBackend.load(path, settings)
    except ProviderError as error:
        if not settings.allow_cpu_fallback:
            raise ProviderError(f"{error}; or set allow_cpu_fallback to run on ONNX Runtime's "
                                f'CPU provider instead') from None
        logger.warning("%s; running on ONNX Runtime's CPU provider because allow_cpu_fallback "
                       'is set', error)
    return OnnxRuntimeBackend.load(path, settings.cpu_fallback())


def _shape_text(shape: tuple[int | None, ...]) -> str:
    """Write a shape with its dynamic dimensions as '?'."""
    return '[' + ', '.join('?' if dim is None else str(dim) for dim in shape) + ']'


class Classifier:
    """Classify images with an ONNX model; preprocessing and labels from its metadata."""

    def __init__(self, model_path: str | Path, *,
                 labels: Sequence[str] | str | Path | None = None,
                 preprocessing: PreprocessingSpec | Mapping | None = None,
                 output: str | None = None,
                 providers: ProviderSettings = ProviderSettings()) -> None:
        """
        Load the model and work out how to feed it.

        :param labels: class names (or a labels file) overriding the file's metadata;
            required for a model without dl_perception metadata.
        :param preprocessing: a whole spec replacing the metadata's (required for a foreign
            model), or a mapping of PreprocessingSpec fields overriding some of it.
        :param output: 'logits' or 'probabilities', overriding the metadata (default logits).
        :param providers: the backend and execution providers to run it with (ONNX Runtime on
            the CPU by default; ``('openvino',)`` for OpenVINO).
        :raises FileNotFoundError: no file at ``model_path``, or no labels file.
        :raises ValueError: the model does not look like an image classifier, or labels /
            preprocessing are missing or do not fit it.
        :raises ProviderError: what ``providers`` insists on does not run here.
        """
        self.path = Path(model_path)
        self.provider_settings = providers
        self.backend = open_backend(self.path, providers)
        self.metadata = ModelMetadata.from_props(self.backend.metadata_props)
        self._input = self.backend.input
        self._check_io()
        if isinstance(labels, (str, Path)):
            labels = load_labels(labels)
        self.labels = tuple(labels) if labels is not None else self._from_metadata('labels')
        self.spec = self._resolve_spec(preprocessing)
        self.output = output or (self.metadata.output if self.metadata else 'logits')
        if self.output not in OUTPUT_KINDS:
            raise ValueError(f'output must be one of {OUTPUT_KINDS}, got {self.output!r}')
        self._check_fit()
        self.input_dtype = self._input.dtype
        self.fixed_batch = self._input.shape[0] is not None
        self._check_runs()

    @property
    def providers_in_use(self) -> list[str]:
        """
        Return what really runs the model, in priority order.

        ONNX Runtime's execution providers (``['CPUExecutionProvider']``), or OpenVINO's
        device and precision (``['OpenVINO CPU (f32)']``).
        """
        return self.backend.in_use

    @property
    def session(self):
        """Return the ONNX Runtime InferenceSession; AttributeError when another backend runs."""
        return self.backend.session

    def _from_metadata(self, name: str):
        if self.metadata is None:
            raise ValueError(f'{self.path} carries no dl_perception metadata: give {name} '
                             f'explicitly (labels file, preprocessing parameters)')
        return getattr(self.metadata, name)

    def _resolve_spec(self, preprocessing: PreprocessingSpec | Mapping | None
                      ) -> PreprocessingSpec:
        if isinstance(preprocessing, PreprocessingSpec):
            return preprocessing
        overrides = dict(preprocessing or {})
        if self.metadata is not None:
            return replace(self.metadata.preprocessing, **overrides)
        if not overrides:
            return self._from_metadata('preprocessing')
        try:
            return PreprocessingSpec(**overrides)
        except TypeError as error:
            raise ValueError(f'{self.path} carries no dl_perception metadata, so the '
                             f'preprocessing must be complete: {error}') from None

    def _check_io(self) -> None:
        shape = self._input.shape
        if len(shape) != 4 or (shape[1] is not None and shape[1] not in (1, 3)):
            raise ValueError(f'{self.path}: input {self._input.name} has shape '
                             f'{_shape_text(shape)}; an image classifier takes (N, 1 or 3, H, W)')
        if self._input.dtype is None:
            raise ValueError(f'{self.path}: input type {self._input.type_name} is not '
                             f'supported; expected float32 or float16')
        output = self.backend.output
        if len(output.shape) != 2:
            raise ValueError(f'{self.path}: output {output.name} has shape '
                             f'{_shape_text(output.shape)}; a classifier gives (N, classes)')

    def _check_fit(self) -> None:
        _, channels, height, width = self._input.shape
        classes = self.backend.output.shape[1]
        if classes is not None and classes != len(self.labels):
            raise ValueError(f'{self.path} outputs {classes} classes but {len(self.labels)} '
                             f'labels were given')
        if isinstance(channels, int) and channels != self.spec.num_channels:
            raise ValueError(f'{self.path} takes {channels}-channel input, preprocessing '
                             f'gives {self.spec.channels} ({self.spec.num_channels})')
        for name, expected, actual in (('height', height, self.spec.height),
                                       ('width', width, self.spec.width)):
            if expected is not None and expected != actual:
                raise ValueError(f'{self.path} takes input {name} {expected}, preprocessing '
                                 f'gives {actual}')

    def _check_runs(self) -> None:
        """
        Run one blank batch of the configured input size.

        A model that loads can still fail on every frame (a Reshape that needs another size):
        that must show when it is loaded, not on the first frame.
        """
        blank = np.zeros((1, self.spec.num_channels, self.spec.height, self.spec.width),
                         self.input_dtype)
        try:
            self.probabilities(blank)
        except (InferenceError, ValueError) as error:
            raise ValueError(f'{self.path} loads but fails on a {blank.shape} input (the '
                             f'configured preprocessing): {error}') from None

    def preprocess(self, image: np.ndarray, source_order: str) -> np.ndarray:
        """One uint8 image -> network input, shape (C, H, W), in the model's input dtype."""
        return prepare(image, source_order, self.spec).astype(self.input_dtype, copy=False)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """
        Run a prepared batch (N, C, H, W); return float32 (N, K) class probabilities.

        :raises InferenceError: the backend failed on the batch, or the model's output does
            not fit its labels.
        """
        batch = np.ascontiguousarray(batch, dtype=self.input_dtype)
        if self.fixed_batch and len(batch) != self._input.shape[0]:
            return np.concatenate([self.probabilities(item[None]) for item in batch])
        try:
            scores = self.backend.run(batch).astype(np.float32)
        except self.backend.run_errors as error:
            raise InferenceError(f'{self.path.name} failed on a batch of shape {batch.shape}: '
                                 f'{error}') from None
        if scores.ndim != 2 or scores.shape[1] != len(self.labels):
            raise InferenceError(f'{self.path} gave scores of shape {scores.shape} for '
                                 f'{len(self.labels)} labels')
        return softmax(scores) if self.output == 'logits' else scores

    def predict_batch(self, images: Sequence[np.ndarray],
                      source_orders: Sequence[str] | str) -> np.ndarray:
        """Preprocess raw images and run them in one batch: float32 (N, K) probabilities."""
        orders = ([source_orders] * len(images) if isinstance(source_orders, str)
                  else list(source_orders))
        if len(orders) != len(images):
            raise ValueError(f'{len(images)} images but {len(orders)} channel orders')
        if not len(images):
            return np.zeros((0, len(self.labels)), np.float32)
        batch = np.stack([self.preprocess(image, order) for image, order in zip(images, orders)])
        return self.probabilities(batch)

    def classify_batch(self, images: Sequence[np.ndarray], source_orders: Sequence[str] | str,
                       top_k: int = 5, threshold: float = 0.0) -> list[Prediction]:
        """Classify several images in one run; ``source_orders`` per image or one for all."""
        return [Prediction(row, rank(row, self.labels, top_k, threshold))
                for row in self.predict_batch(images, source_orders)]

    def classify(self, image: np.ndarray, source_order: str = 'bgr', top_k: int = 5,
                 threshold: float = 0.0) -> Prediction:
        """Classify one image."""
        return self.classify_batch([image], source_order, top_k, threshold)[0]
