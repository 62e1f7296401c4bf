"""
The OpenVINO backend: the ``openvino`` runtime package, on the CPU, from the same ONNX file.

OpenVINO is optional (``requirements/openvino.txt``): it is imported only when asked for, and
without it ``load`` raises ``ProviderError`` saying how to install it. The model is compiled
for a node: the LATENCY performance hint (one stream, since batches come one at a time),
``INFERENCE_NUM_THREADS`` from ``intra_op_threads``, no CPU pinning (a node shares the robot's
cores), and the precision hint from the settings, always explicit: OpenVINO's own default on
CPUs with bf16 is bf16, which changes the scores. The batch axis stays dynamic, so every
batch the ``Classifier`` forms (one frame per camera) runs without recompiling. What runs is
read back from the compiled model: its execution devices and inference precision.
"""

from __future__ import annotations

from pathlib import Path
import threading
from types import ModuleType

from dl_perception.inference.backend import Backend
from dl_perception.inference.backend import check_model_file
from dl_perception.inference.backend import native_stderr_to_log
from dl_perception.inference.backend import TensorInfo
from dl_perception.inference.providers import OPENVINO_DEVICE
from dl_perception.inference.providers import openvino_label
from dl_perception.inference.providers import OPENVINO_PRECISIONS
from dl_perception.inference.providers import ProviderError
from dl_perception.inference.providers import ProviderSettings
import numpy as np

INSTALL_HINT = 'pip install -r requirements/openvino.txt (or: pip install openvino)'
ELEMENT_TYPES = {'f32': np.float32, 'f16': np.float16}
# How the CPU device's OPTIMIZATION_CAPABILITIES names each precision hint.
CAPABILITY_NAMES = {'f32': 'FP32', 'bf16': 'BF16'}


def openvino_runtime() -> ModuleType:
    """
    Return the ``openvino`` module.

    :raises ProviderError: it is not installed (the message says how to install it).
    """
    try:
        import openvino
    except ImportError as error:
        raise ProviderError(f'asked for openvino but the OpenVINO runtime is not importable '
                            f'({error}): {INSTALL_HINT}') from None
    return openvino


def openvino_probe() -> tuple[bool, str]:
    """Return whether OpenVINO can run models here, and what it found (for ``doctor``)."""
    try:
        openvino = openvino_runtime()
    except ProviderError:
        return False, f'not installed (optional: {INSTALL_HINT})'
    core = openvino.Core()
    version = openvino.get_version().split('-')[0]
    if OPENVINO_DEVICE not in core.available_devices:
        return False, f'{version}, but no {OPENVINO_DEVICE} device (found: ' \
                      f'{", ".join(core.available_devices) or "none"})'
    capabilities = core.get_property(OPENVINO_DEVICE, 'OPTIMIZATION_CAPABILITIES')
    precisions = [name for name in OPENVINO_PRECISIONS if CAPABILITY_NAMES[name] in capabilities]
    name = core.get_property(OPENVINO_DEVICE, 'FULL_DEVICE_NAME')
    return True, f'{version} on {OPENVINO_DEVICE} ({name}; precisions {", ".join(precisions)})'


def compile_config(settings: ProviderSettings) -> dict[str, object]:
    """Return the compile properties the settings stand for (see the module docstring)."""
    config: dict[str, object] = {'PERFORMANCE_HINT': 'LATENCY',
                                 'INFERENCE_PRECISION_HINT': settings.openvino_precision,
                                 'ENABLE_CPU_PINNING': False}
    if settings.intra_op_threads:
        config['INFERENCE_NUM_THREADS'] = settings.intra_op_threads
    return config


def _message(error: BaseException) -> str:
    """Return OpenVINO's message without its source locations, on one line."""
    lines = [line.strip() for line in str(error).splitlines()]
    kept = [line for line in lines if line and not line.startswith(('Exception from', 'Check '))]
    return ' '.join(kept) or ' '.join(lines)


def _tensor_info(port) -> TensorInfo:
    partial = port.get_partial_shape()
    shape = () if partial.rank.is_dynamic else tuple(
        dim.get_length() if dim.is_static else None for dim in partial)
    element = port.get_element_type().get_type_name()
    return TensorInfo(port.get_any_name(), shape, ELEMENT_TYPES.get(element), element)


class OpenVinoBackend(Backend):
    """An ONNX model compiled by OpenVINO for the CPU, with one inference request."""

    run_errors = (RuntimeError,)

    def __init__(self, path: Path, model, compiled) -> None:
        framework = (model.get_rt_info()['framework']
                     if model.has_rt_info(['framework']) else {})
        super().__init__(path, _tensor_info(compiled.inputs[0]),
                         _tensor_info(compiled.outputs[0]),
                         {key: value.astype(str) for key, value in framework.items()})
        self.compiled = compiled
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()  # one request: runs from several threads take turns
        precision = compiled.get_property('INFERENCE_PRECISION_HINT').get_type_name()
        self._in_use = [openvino_label(device, precision)
                        for device in compiled.get_property('EXECUTION_DEVICES')]

    @classmethod
    def load(cls, path: Path, settings: ProviderSettings) -> OpenVinoBackend:
        """
        Read the ONNX file and compile it for the CPU (see ``Backend.load``).

        :raises ProviderError: OpenVINO is not installed, or finds no CPU device.
        """
        check_model_file(path)
        openvino = openvino_runtime()
        core = openvino.Core()
        if OPENVINO_DEVICE not in core.available_devices:
            raise ProviderError(f'asked for openvino but OpenVINO finds no {OPENVINO_DEVICE} '
                                f'device (found: {", ".join(core.available_devices) or "none"})')
        try:
            with native_stderr_to_log('openvino'):
                model = core.read_model(str(path))
                compiled = core.compile_model(model, OPENVINO_DEVICE, compile_config(settings))
        except RuntimeError as error:
            raise ValueError(f'{path} does not load in OpenVINO: {_message(error)}') from None
        return cls(path, model, compiled)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run the batch; return a copy of the first output."""
        with self._lock:
            try:
                return self._request.infer({0: batch})[0]
            except RuntimeError as error:
                raise RuntimeError(_message(error)) from None

    @property
    def in_use(self) -> list[str]:
        """Return OpenVINO's execution devices and precision, e.g. ``OpenVINO CPU (f32)``."""
        return list(self._in_use)
