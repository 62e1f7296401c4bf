"""
The inference backend interface: load an ONNX file, run a batch, say what really runs.

``Classifier`` sees a runtime only through ``Backend``; one module per runtime implements it
(``onnxruntime_backend``, ``openvino_backend``). Both read the same ONNX file with the same
``dlp.*`` metadata, and take the same prepared batch, so preprocessing cannot depend on the
runtime.
"""

from __future__ import annotations

from abc import ABC
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
import logging
import os
from pathlib import Path
import re
import sys
import tempfile
import threading

from dl_perception.inference.providers import ProviderSettings
import numpy as np

logger = logging.getLogger(__name__)
_ANSI_ESCAPE = re.compile(r'\x1b\[[0-9;]*m')
_NATIVE_STDERR_LOCK = threading.Lock()


class InferenceError(RuntimeError):
    """The model failed on a batch: the model or that input is at fault, not the caller."""


@dataclass(frozen=True)
class TensorInfo:
    """
    A model input or output as a backend sees it.

    ``shape`` holds an int for a fixed dimension and None for a dynamic one (a batch axis);
    ``dtype`` is the numpy type to feed (float32 or float16), None for a type no backend here
    feeds; ``type_name`` is the runtime's own name of the element type, for messages.
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: type | None
    type_name: str


class Backend(ABC):
    """One ONNX model loaded in one runtime: its first input and output, and how to run it."""

    #: The errors ``run`` raises when the model fails on a batch (not the caller's fault).
    run_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, path: Path, inputs: TensorInfo, output: TensorInfo,
                 metadata_props: dict[str, str]) -> None:
        self.path = path
        self.input = inputs
        self.output = output
        self.metadata_props = metadata_props

    @classmethod
    @abstractmethod
    def load(cls, path: Path, settings: ProviderSettings) -> Backend:
        """
        Load the ONNX file at ``path`` with these settings.

        :raises FileNotFoundError: no file at ``path``.
        :raises ValueError: the file is not ONNX, is corrupt, or this runtime cannot run it.
        :raises ProviderError: the runtime, or what was asked of it, is not available here.
        """

    @abstractmethod
    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run a contiguous (N, C, H, W) batch of ``input.dtype``; return the first output."""

    @property
    @abstractmethod
    def in_use(self) -> list[str]:
        """Return what really runs the model (read back from the runtime), in priority order."""


def check_model_file(path: Path) -> None:
    """
    Refuse a missing file, and one that cannot be ONNX, before any runtime reads it.

    :raises FileNotFoundError: no file at ``path``.
    :raises ValueError: the file does not start like an ONNX ModelProto.
    """
    if not path.is_file():
        raise FileNotFoundError(f'model file not found: {path}')
    if not looks_like_onnx(path):
        raise ValueError(f'{path} is not an ONNX file')


def looks_like_onnx(path: Path) -> bool:
    """Whether the file starts like an ONNX ModelProto (its first field is ir_version)."""
    with open(path, 'rb') as stream:
        return stream.read(1) == b'\x08'


@contextmanager
def native_stderr_to_log(runtime: str) -> Iterator[None]:
    """
    Send what native code writes to stderr inside the block to this package's logger.

    Runtimes print their own errors and warnings (a GPU provider that cannot start) to file
    descriptor 2; a node must report them through its logger instead, with its name.
    Whatever another thread prints meanwhile is logged here too, not lost.

    :param runtime: the name each logged line starts with (``onnxruntime``, ``openvino``).
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
                logger.warning('%s: %s', runtime, line)
