"""
``dl-perception doctor``: say plainly what this machine can and cannot run.

Robots and workstations differ (torch or not, GPU or not, a ROS installation or the pip
wheels); this report is the first thing to read when something does not start.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
from pathlib import Path
import platform

from dl_perception import __version__
from dl_perception.inference.openvino_backend import openvino_probe
from dl_perception.inference.providers import AUTO
from dl_perception.inference.providers import provider_request

FASHION_MNIST_DIR = Path('/usr/share/datasets/fashion-mnist')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``doctor``."""
    parser.add_argument('--json', action='store_true', help='print the report as JSON')


def _module_version(name: str) -> str:
    """Return the version of an importable module, or why it cannot be imported."""
    try:
        module = importlib.import_module(name)
    except ImportError as error:
        return f'not importable ({error})'
    return str(getattr(module, '__version__', 'present'))


def _torch_report() -> dict[str, str]:
    try:
        import torch
    except ImportError:
        return {'torch': 'not installed (not needed on a robot)'}
    report = {'torch': torch.__version__, 'torch.cuda': 'no GPU visible'}
    if torch.cuda.is_available():
        report['torch.cuda'] = ', '.join(
            torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return report


def _onnxruntime_report() -> dict[str, str]:
    try:
        import onnxruntime
    except ImportError as error:
        return {'onnxruntime': f'not importable ({error})'}
    gpu_visible = Path('/proc/driver/nvidia/version').exists()
    return {
        'onnxruntime': f'{onnxruntime.__version__} ({onnxruntime.get_device()} build)',
        'onnxruntime.providers_built': ', '.join(onnxruntime.get_available_providers()),
        'nvidia driver': 'present' if gpu_visible else
                         'absent: GPU providers will not run, only CPUExecutionProvider',
    }


def _backends_report(onnxruntime_found: bool) -> dict[str, str]:
    """Name the backends that can run here, and what the node's default (auto) picks."""
    openvino_found, openvino_finding = openvino_probe()
    available = [name for name, found in (('onnxruntime', onnxruntime_found),
                                          ('openvino', openvino_found)) if found]
    return {
        'openvino': openvino_finding,
        'backends available': ', '.join(available) or 'none: the node cannot run a model',
        'node picks (providers: [auto])': (
            f'onnxruntime: {provider_request((AUTO,))}' if onnxruntime_found else
            'nothing: onnxruntime is not importable'),
    }


def _ros_report() -> dict[str, str]:
    report = {
        'rclpy': _module_version('rclpy'),
        'RMW_IMPLEMENTATION': os.environ.get('RMW_IMPLEMENTATION', '(unset: ROS default)'),
        'ROS_DOMAIN_ID': os.environ.get('ROS_DOMAIN_ID', '(unset: 0)'),
    }
    try:
        from vision_msgs.msg import Classification
    except ImportError as error:
        report['vision_msgs'] = f'not importable ({error})'
    else:
        report['vision_msgs'] = str(Path(importlib.import_module(
            Classification.__module__).__file__).parents[1])
    return report


def collect() -> dict[str, str]:
    """Gather the report as an ordered mapping of name -> finding."""
    report = {
        'dl_perception': __version__,
        'python': f'{platform.python_version()} on {platform.machine()}',
        'numpy': _module_version('numpy'),
        'opencv': _module_version('cv2'),
    }
    report.update(_torch_report())
    report.update(_onnxruntime_report())
    report.update(_backends_report('not importable' not in report['onnxruntime']))
    report.update(_ros_report())
    report['fashion-mnist'] = (
        str(FASHION_MNIST_DIR) if any(FASHION_MNIST_DIR.glob('*-ubyte.gz'))
        else f'missing from {FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)')
    return report


def run(args: argparse.Namespace) -> int:
    """Print the report; always succeeds, since reporting problems is its job."""
    report = collect()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    width = max(len(name) for name in report)
    for name, finding in report.items():
        print(f'{name:<{width}}  {finding}')
    return 0
