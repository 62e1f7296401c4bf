"""Describe the machine a benchmark ran on, for the JSON it writes."""

from __future__ import annotations

import os
from pathlib import Path
import platform


def describe_machine() -> dict:
    """CPU model, core count, memory, OS and Python; GPU when torch sees one."""
    cpu = next((line.split(':', 1)[1].strip()
                for line in Path('/proc/cpuinfo').read_text().splitlines()
                if line.startswith('model name')), platform.processor())
    memory_kb = next((int(line.split()[1]) for line in Path('/proc/meminfo').read_text()
                      .splitlines() if line.startswith('MemTotal')), 0)
    description = {
        'cpu': cpu, 'cores': os.cpu_count(), 'memory_gib': round(memory_kb / 2 ** 20, 1),
        'os': platform.platform(), 'python': platform.python_version(),
    }
    try:
        import torch
    except ImportError:
        return description
    description['torch'] = torch.__version__
    description['torch_threads'] = torch.get_num_threads()
    if torch.cuda.is_available():
        description['gpu'] = torch.cuda.get_device_name(0)
    return description
