"""
``Classifier``: an ONNX image classifier and the preprocessing its metadata prescribes.

Images are uint8 numpy arrays (H, W, C) or (H, W) of any size, in a named channel order
(rgb, bgr, grey, rgba, bgra). Preprocessing comes from the file's ``dlp.*`` metadata, or,
for a foreign model, from explicit ``labels`` and ``preprocessing`` arguments.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
import json
import logging
import os
from pathlib import Path
import re
import sys
import tempfile
import threading

from dl_perception.inference.model_metadata import ModelMetadata
from dl_perception.inference.model_metadata import OUTPUT_KINDS
from dl_perception.inference.postprocess import Prediction
from dl_perception.inference.postprocess import rank
from dl_perception.inference.postprocess import softmax
from dl_perception.inference.providers import ProviderSettings
from dl_perception.preprocessing import prepare
from dl_perception.preprocessing import PreprocessingSpec
import numpy as np
import onnxruntime
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

INPUT_TYPES = {'tensor(float)': np.float32, 'tensor(float16)': np.float16}
_LOAD_ERRORS = (ort_errors.InvalidProtobuf, ort_errors.InvalidGraph, ort_errors.Fail,
                ort_errors.InvalidArgument, ort_errors.NotImplemented, ort_errors.NoModel)
# What InferenceSession.run raises when the model fails on a batch (a shape it cannot take,
# a kernel error, a device failure).
_RUN_ERRORS = (ort_errors.Fail, ort_errors.InvalidArgument, ort_errors.RuntimeException,
               ort_errors.EngineError, ort_errors.EPFail, ort_errors.NotImplemented,
               ort_errors.DeviceReset)


logger = logging.getLogger(__name__)
# A failed run raises with the whole message; ONNX Runtime need not print it to stderr too.
_QUIET_RUN = onnxruntime.RunOptions()
_QUIET_RUN.log_severity_level = 4
_ANSI_ESCAPE = re.compile(r'\x1b\[[0-9;]*m')
_NATIVE_STDERR_LOCK = threading.Lock()


@contextmanager
def native_stderr_to_log() -> Iterator[None]:
    """
    Send what native code writes to stderr inside the block to this module's logger.

    ONNX Runtime prints its own errors and warnings (a GPU provider that cannot start) to
    file descriptor 2; a node must report them through its logger instead, with its name.
    Whatever another thread prints meanwhile is logged here too, not lost.
    """
    with _NATIVE_STDERR_LOCK, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = _ANSI_ESCAPE.sub('', sink.read().decode('utf-8', 'replace'))
            for line in filter(None, (line.strip() for line in text.splitlines())):
                logger.warning('onnxruntime: %s', line)


class InferenceError(RuntimeError):
    """The model failed on a batch: the model or that input is at fault, not the caller."""


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


def _load_failure(path: Path, message: str) -> str:
    """Say what kind of file ONNX Runtime could not load, from its error message."""
    if 'is not a registered function/op' in message:
        return ('uses an operator ONNX Runtime does not provide (a custom operator: register '
                'its library, or export without it)')
    if 'External data path' in message or 'external data' in message.lower():
        return 'keeps its weights in external data that is missing or unreadable'
    with open(path, 'rb') as stream:
        looks_onnx = stream.read(1) == b'\x08'  # ModelProto starts with ir_version
    return 'is a truncated or corrupt ONNX file' if looks_onnx else 'is not an ONNX file'


def open_session(path: Path, settings: ProviderSettings) -> onnxruntime.InferenceSession:
    """
    Open an ONNX Runtime session with the requested providers, checking what it got.

    :raises FileNotFoundError: no file at ``path``.
    :raises ValueError: the file is not ONNX, or is truncated or corrupt.
    :raises ProviderError: see ``ProviderSettings.check``.
    """
    if not path.is_file():
        raise FileNotFoundError(f'model file not found: {path}')
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    if not settings.spin_wait:
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        options.add_session_config_entry('session.inter_op.allow_spinning', '0')
    try:
        with native_stderr_to_log():
            session = onnxruntime.InferenceSession(str(path), sess_options=options,
                                                   providers=settings.session_providers())
    except _LOAD_ERRORS as error:
        raise ValueError(f'{path} {_load_failure(path, str(error))}: {error}') from None
    settings.check(session.get_providers())
    return session


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
        :raises ValueError: the model does not look like an image classifier, or labels /
            preprocessing are missing or do not fit it.
        """
        self.path = Path(model_path)
        self.session = open_session(self.path, providers)
        props = self.session.get_modelmeta().custom_metadata_map
        self.metadata = ModelMetadata.from_props(props)
        self._input = self.session.get_inputs()[0]
        self._check_io()
        if isinstance(labels, (str, Path)):
            labels = load_labels(labels)
        self.labels = tuple(labels) if labels is not None else self._from_metadata('labels')
        self.spec = self._resolve_spec(preprocessing)
        self.output = output or (self.metadata.output if self.metadata else 'logits')
        if self.output not in OUTPUT_KINDS:
            raise ValueError(f'output must be one of {OUTPUT_KINDS}, got {self.output!r}')
        self._check_fit()
        self.input_dtype = INPUT_TYPES[self._input.type]
        self.fixed_batch = isinstance(self._input.shape[0], int)
        self._check_runs()

    @property
    def providers_in_use(self) -> list[str]:
        """Return the execution providers the session really runs on, in priority order."""
        return self.session.get_providers()

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
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] not in (1, 3)):
            raise ValueError(f'{self.path}: input {self._input.name} has shape {shape}; an '
                             f'image classifier takes (N, 1 or 3, H, W)')
        if self._input.type not in INPUT_TYPES:
            raise ValueError(f'{self.path}: input type {self._input.type} is not supported; '
                             f'expected {" or ".join(INPUT_TYPES)}')
        outputs = self.session.get_outputs()
        if len(outputs[0].shape) != 2:
            raise ValueError(f'{self.path}: output {outputs[0].name} has shape '
                             f'{outputs[0].shape}; a classifier gives (N, classes)')

    def _check_fit(self) -> None:
        _, channels, height, width = self._input.shape
        classes = self.session.get_outputs()[0].shape[1]
        if isinstance(classes, int) and classes != len(self.labels):
            raise ValueError(f'{self.path} outputs {classes} classes but {len(self.labels)} '
                             f'labels were given')
        if isinstance(channels, int) and channels != self.spec.num_channels:
            raise ValueError(f'{self.path} takes {channels}-channel input, preprocessing '
                             f'gives {self.spec.channels} ({self.spec.num_channels})')
        for name, expected, actual in (('height', height, self.spec.height),
                                       ('width', width, self.spec.width)):
            if isinstance(expected, int) and expected != actual:
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

        :raises InferenceError: ONNX Runtime failed on the batch, or the model's output does
            not fit its labels.
        """
        batch = np.ascontiguousarray(batch, dtype=self.input_dtype)
        if self.fixed_batch and len(batch) != self._input.shape[0]:
            return np.concatenate([self.probabilities(item[None]) for item in batch])
        try:
            scores = self.session.run(None, {self._input.name: batch},
                                      _QUIET_RUN)[0].astype(np.float32)
        except _RUN_ERRORS as error:
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
