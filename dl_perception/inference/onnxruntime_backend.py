"""
The ONNX Runtime backend: CPU, CUDA and TensorRT execution providers.

What runs is read back from the session (``session.get_providers()``), since ONNX Runtime
falls back to the CPU quietly; ``ProviderSettings.check`` turns a missing GPU into an error
unless the CPU fallback was allowed.
"""

from __future__ import annotations

from pathlib import Path

from dl_perception.inference.backend import Backend
from dl_perception.inference.backend import check_model_file
from dl_perception.inference.backend import native_stderr_to_log
from dl_perception.inference.backend import TensorInfo
from dl_perception.inference.providers import ProviderSettings
import numpy as np
import onnxruntime
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

ELEMENT_TYPES = {'tensor(float)': np.float32, 'tensor(float16)': np.float16}
_LOAD_ERRORS = (ort_errors.InvalidProtobuf, ort_errors.InvalidGraph, ort_errors.Fail,
                ort_errors.InvalidArgument, ort_errors.NotImplemented, ort_errors.NoModel)
# What InferenceSession.run raises when the model fails on a batch (a shape it cannot take,
# a kernel error, a device failure).
_RUN_ERRORS = (ort_errors.Fail, ort_errors.InvalidArgument, ort_errors.RuntimeException,
               ort_errors.EngineError, ort_errors.EPFail, ort_errors.NotImplemented,
               ort_errors.DeviceReset)
# A failed run raises with the whole message; ONNX Runtime need not print it to stderr too.
_QUIET_RUN = onnxruntime.RunOptions()
_QUIET_RUN.log_severity_level = 4


def _load_failure(message: str) -> str:
    """Say what kind of file ONNX Runtime could not load, from its error message."""
    if 'is not a registered function/op' in message:
        return ('uses an operator ONNX Runtime does not provide (a custom operator: register '
                'its library, or export without it)')
    if 'External data path' in message or 'external data' in message.lower():
        return 'keeps its weights in external data that is missing or unreadable'
    return 'is a truncated or corrupt ONNX file'


def open_session(path: Path, settings: ProviderSettings) -> onnxruntime.InferenceSession:
    """
    Open an ONNX Runtime session with the requested providers, checking what it got.

    :raises FileNotFoundError: no file at ``path``.
    :raises ValueError: the file is not ONNX, or is truncated or corrupt.
    :raises ProviderError: see ``ProviderSettings.check``.
    """
    check_model_file(path)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    if not settings.spin_wait:
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        options.add_session_config_entry('session.inter_op.allow_spinning', '0')
    try:
        with native_stderr_to_log('onnxruntime'):
            session = onnxruntime.InferenceSession(str(path), sess_options=options,
                                                   providers=settings.session_providers())
    except _LOAD_ERRORS as error:
        raise ValueError(f'{path} {_load_failure(str(error))}: {error}') from None
    settings.check(session.get_providers())
    return session


def _tensor_info(node: onnxruntime.NodeArg) -> TensorInfo:
    shape = tuple(dim if isinstance(dim, int) else None for dim in node.shape)
    return TensorInfo(node.name, shape, ELEMENT_TYPES.get(node.type), node.type)


class OnnxRuntimeBackend(Backend):
    """An ONNX Runtime session; ``session`` is open to callers that need ONNX Runtime itself."""

    run_errors = _RUN_ERRORS

    def __init__(self, path: Path, session: onnxruntime.InferenceSession) -> None:
        super().__init__(path, _tensor_info(session.get_inputs()[0]),
                         _tensor_info(session.get_outputs()[0]),
                         dict(session.get_modelmeta().custom_metadata_map))
        self.session = session

    @classmethod
    def load(cls, path: Path, settings: ProviderSettings) -> OnnxRuntimeBackend:
        """Open a session with the settings' execution providers (see ``open_session``)."""
        return cls(path, open_session(path, settings))

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run the batch; return the first output as ONNX Runtime gives it."""
        return self.session.run(None, {self.input.name: batch}, _QUIET_RUN)[0]

    @property
    def in_use(self) -> list[str]:
        """Return the execution providers the session really runs on, in priority order."""
        return self.session.get_providers()
