"""
ONNX Runtime execution providers: ask by name, then check what the session really got.

ONNX Runtime quietly falls back to the CPU when a GPU provider cannot start (after printing
errors), and ``get_available_providers()`` lists providers that were built, not ones that
work. So the truth is read back from the session, and a missing GPU is an error unless the
caller allowed the CPU fallback.

``auto`` stands for the GPU providers that can really start here, then the CPU: the NVIDIA
driver (a device that ``cuInit`` finds) and, for TensorRT, its library are probed before
ONNX Runtime is asked, so a CPU machine never sees CUDA library errors.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
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
PROVIDER_CHOICES = (AUTO, *PROVIDER_NAMES)
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
    """A requested GPU provider is not running and CPU fallback was not allowed."""


@dataclass(frozen=True)
class ProviderSettings:
    """
    Which execution providers to ask for, in order of preference, and their options.

    ``providers`` holds short names: tensorrt, cuda, cpu, or auto (the GPU providers that
    can start here, then the CPU; never an error). Thread counts of 0 leave ONNX
    Runtime's defaults. ``spin_wait`` keeps ONNX Runtime's CPU threads spinning between runs
    (its default): a little less latency when runs come back to back, but the cores stay busy
    between them, so a node sharing a robot's CPU turns it off.
    """

    providers: tuple[str, ...] = ('cpu',)
    device_id: int = 0
    tensorrt_fp16: bool = False
    tensorrt_cache_dir: str | None = None
    allow_cpu_fallback: bool = False
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    spin_wait: bool = True

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
        for name in ('device_id', 'intra_op_threads', 'inter_op_threads'):
            if getattr(self, name) < 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')

    def resolved(self) -> tuple[str, ...]:
        """Return the short provider names to ask for, with ``auto`` replaced by the probe."""
        if self.providers == (AUTO,):
            return (*gpu_probe()[0], 'cpu')
        return self.providers

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
        return [(PROVIDER_NAMES[name], options[name]) for name in self.resolved()]

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


def provider_request(providers: tuple[str, ...] | list[str]) -> str:
    """Describe what was asked for; for ``auto`` with what the probe found."""
    if tuple(providers) == (AUTO,):
        found, why = gpu_probe()
        return f'auto -> {", ".join((*found, "cpu"))} ({why})'
    return ', '.join(providers)
