"""
Which runtime and execution providers run a model: ask by name, then check what really runs.

ONNX Runtime quietly falls back to the CPU when a GPU provider cannot start (after printing
errors), and ``get_available_providers()`` lists providers that were built, not ones that
work. So the truth is read back from the session, and a missing GPU is an error unless the
caller allowed the CPU fallback.

``auto`` stands for the GPU providers that can really start here, then the CPU: the NVIDIA
driver (a device that ``cuInit`` finds) and, for TensorRT, its library are probed before
ONNX Runtime is asked, so a CPU machine never sees CUDA library errors.

``openvino`` names the other backend, the OpenVINO runtime (an optional package): it comes
first, and only ONNX Runtime's ``cpu`` may follow it. Without OpenVINO that is an error too,
unless the CPU fallback is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
import ctypes
from dataclasses import dataclass
from dataclasses import replace
from functools import lru_cache
import logging

logger = logging.getLogger(__name__)

PROVIDER_NAMES = {
    'tensorrt': 'TensorrtExecutionProvider',
    'cuda': 'CUDAExecutionProvider',
    'cpu': 'CPUExecutionProvider',
}
GPU_PROVIDERS = ('tensorrt', 'cuda')
AUTO = 'auto'
OPENVINO = 'openvino'
PROVIDER_CHOICES = (AUTO, OPENVINO, *PROVIDER_NAMES)
# OpenVINO's INFERENCE_PRECISION_HINT values offered: f32 computes like ONNX Runtime; bf16
# (on CPUs with AVX512_BF16 or AMX, where OpenVINO picks it by default) runs ResNet-18 2-3x
# as fast and changes the scores a little (measure the accuracy with `dl-perception evaluate`).
OPENVINO_PRECISIONS = ('f32', 'bf16')
OPENVINO_LABEL = 'OpenVINO'
# The OpenVINO device the backend compiles for (the only one tested here).
OPENVINO_DEVICE = 'CPU'
TENSORRT_LIBRARY = 'libnvinfer.so.10'


def _loads(library: str) -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(library)
    except OSError:
        return None


@lru_cache(maxsize=1)
def gpu_probe() -> tuple[tuple[str, ...], str]:
    """
    Return the GPU providers that can start on this machine, and why the others cannot.

    Probed once per process, without ONNX Runtime: the CUDA driver library must load and
    find a device; TensorRT needs its library too.
    """
    cuda = _loads('libcuda.so.1')
    if cuda is None:
        return (), 'no NVIDIA driver (libcuda.so.1 not found)'
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or not count.value:
        return (), 'the NVIDIA driver finds no GPU'
    if _loads(TENSORRT_LIBRARY) is None:
        return ('cuda',), f'{count.value} GPU(s); no TensorRT ({TENSORRT_LIBRARY} not found)'
    return ('tensorrt', 'cuda'), f'{count.value} GPU(s) with TensorRT'


class ProviderError(RuntimeError):
    """A requested GPU provider or backend is not running and CPU fallback was not allowed."""


@dataclass(frozen=True)
class ProviderSettings:
    """
    Which execution providers to ask for, in order of preference, and their options.

    ``providers`` holds short names: tensorrt, cuda, cpu, or auto (the GPU providers that
    can start here, then the CPU; never an error), or openvino (the OpenVINO runtime on the
    CPU, optionally followed by cpu). Thread counts of 0 leave the runtime's defaults
    (OpenVINO has one count, ``intra_op_threads``). ``spin_wait`` keeps ONNX Runtime's CPU
    threads spinning between runs (its default): a little less latency when runs come back
    to back, but the cores stay busy between them, so a node sharing a robot's CPU turns it
    off. ``openvino_precision`` is OpenVINO's inference precision hint.
    """

    providers: tuple[str, ...] = ('cpu',)
    device_id: int = 0
    tensorrt_fp16: bool = False
    tensorrt_cache_dir: str | None = None
    allow_cpu_fallback: bool = False
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    spin_wait: bool = True
    openvino_precision: str = 'f32'

    def __post_init__(self) -> None:
        object.__setattr__(self, 'providers', tuple(self.providers))
        unknown = [name for name in self.providers if name not in PROVIDER_CHOICES]
        if not self.providers or unknown:
            raise ValueError(f'providers must be a non-empty list of {list(PROVIDER_CHOICES)}, '
                             f'got {list(self.providers)}')
        if AUTO in self.providers and len(self.providers) > 1:
            raise ValueError(f'providers: auto stands alone (it picks tensorrt, cuda and cpu '
                             f'itself), got {list(self.providers)}')
        if len(set(self.providers)) != len(self.providers):
            raise ValueError(f'providers lists a name twice: {list(self.providers)}')
        if OPENVINO in self.providers and self.providers not in ((OPENVINO,),
                                                                 (OPENVINO, 'cpu')):
            raise ValueError(f'providers: openvino comes first, and only cpu (ONNX Runtime) '
                             f'may follow it, got {list(self.providers)}')
        if self.openvino_precision not in OPENVINO_PRECISIONS:
            raise ValueError(f'openvino_precision must be one of {list(OPENVINO_PRECISIONS)}, '
                             f'got {self.openvino_precision!r}')
        for name in ('device_id', 'intra_op_threads', 'inter_op_threads'):
            if getattr(self, name) < 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')

    def resolved(self) -> tuple[str, ...]:
        """Return the short provider names to ask for, with ``auto`` replaced by the probe."""
        if self.providers == (AUTO,):
            return (*gpu_probe()[0], 'cpu')
        return self.providers

    @property
    def backend(self) -> str:
        """Return the runtime these settings ask for first: ``openvino`` or ``onnxruntime``."""
        return OPENVINO if self.providers[0] == OPENVINO else 'onnxruntime'

    def cpu_fallback(self) -> ProviderSettings:
        """Return these settings with ONNX Runtime's CPU provider alone."""
        return replace(self, providers=('cpu',))

    def session_providers(self) -> list[tuple[str, dict[str, str]]]:
        """Return the (provider, options) list for ``onnxruntime.InferenceSession``."""
        options = {
            'tensorrt': {'device_id': str(self.device_id),
                         'trt_fp16_enable': str(self.tensorrt_fp16),
                         'trt_engine_cache_enable': str(self.tensorrt_cache_dir is not None),
                         'trt_engine_cache_path': self.tensorrt_cache_dir or ''},
            'cuda': {'device_id': str(self.device_id)},
            'cpu': {},
        }
        return [(PROVIDER_NAMES[name], options[name]) for name in self.resolved()
                if name in PROVIDER_NAMES]

    def check(self, in_use: list[str]) -> None:
        """
        Compare the providers a session runs with the ones asked for.

        :param in_use: ``session.get_providers()``.
        :raises ProviderError: a GPU provider was asked for, none runs, and CPU fallback is
            not allowed.
        """
        if self.providers == (AUTO,):
            return  # whatever started is what auto means
        asked_gpu = [name for name in self.providers if name in GPU_PROVIDERS]
        running_gpu = [name for name in asked_gpu if PROVIDER_NAMES[name] in in_use]
        missing = [PROVIDER_NAMES[name] for name in asked_gpu if name not in running_gpu]
        if not asked_gpu or not missing:
            return
        if running_gpu:
            logger.warning('%s did not start; running on %s', ', '.join(missing),
                           ', '.join(in_use))
            return
        message = (f'asked for {", ".join(missing)} but the session runs on '
                   f'{", ".join(in_use)}: no usable GPU (driver, CUDA/cuDNN/TensorRT '
                   f'libraries or device {self.device_id})')
        if not self.allow_cpu_fallback:
            raise ProviderError(message + '; set allow_cpu_fallback to run on the CPU instead')
        logger.warning('%s; running on the CPU because allow_cpu_fallback is set', message)

    def shortfall(self, in_use: Sequence[str]) -> str:
        """
        Return how what runs falls short of what was asked for; empty when it does not.

        :param in_use: what the backend reports running (``Backend.in_use``).
        """
        if self.backend == OPENVINO:
            running = [name for name in in_use if name.startswith(OPENVINO_LABEL)]
            if not running:
                return f'running on {", ".join(in_use)}: openvino did not start'
            if running[0] != openvino_label(OPENVINO_DEVICE, self.openvino_precision):
                return (f'{running[0]} runs, not the {self.openvino_precision} precision '
                        f'asked for (not supported by this device)')
            return ''
        wanted_gpu = [PROVIDER_NAMES[name] for name in self.providers if name in GPU_PROVIDERS]
        if wanted_gpu and not set(wanted_gpu) & set(in_use):
            return 'running on the CPU: no requested GPU provider started'
        return ''


def openvino_label(device: str, precision: str) -> str:
    """Name OpenVINO running on a device at a precision, as ``Backend.in_use`` reports it."""
    return f'{OPENVINO_LABEL} {device} ({precision})'


def provider_request(providers: Sequence[str], openvino_precision: str = 'f32') -> str:
    """Describe what was asked for; for ``auto`` with what the probe found."""
    if tuple(providers) == (AUTO,):
        found, why = gpu_probe()
        return f'auto -> {", ".join((*found, "cpu"))} ({why})'
    return ', '.join(f'{name} ({openvino_precision})' if name == OPENVINO else name
                     for name in providers)
