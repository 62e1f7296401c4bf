"""The layers of DESIGN.md import downward only, and the robot path never needs torch."""

from __future__ import annotations

import ast
from pathlib import Path
import subprocess
import sys

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / 'dl_perception'

# layer -> the dl_perception layers it may import (itself included)
ALLOWED_LAYERS = {
    'preprocessing': {'preprocessing'},
    'datasets': {'datasets'},
    'models': {'models'},
    'training': {'preprocessing', 'datasets', 'models', 'training'},
    'export': {'preprocessing', 'datasets', 'models', 'training', 'inference', 'export'},
    'inference': {'preprocessing', 'inference'},
    'ros': {'preprocessing', 'datasets', 'inference', 'ros'},
    # the benchmarks sit on top: they measure every layer, and no layer may depend on them
    'bench': {'preprocessing', 'datasets', 'models', 'training', 'export', 'inference', 'ros',
              'bench'},
}
# layer -> third-party top-level modules it must never import
FORBIDDEN_MODULES = {
    'preprocessing': {'torch', 'torchvision', 'rclpy', 'onnxruntime'},
    'datasets': {'torch', 'torchvision', 'rclpy', 'onnxruntime'},
    'models': {'rclpy', 'onnxruntime'},
    'training': {'rclpy', 'onnxruntime'},
    'export': {'rclpy'},
    'inference': {'torch', 'torchvision', 'rclpy'},
    'ros': {'torch', 'torchvision'},
    'bench': set(),
}


def imported_names(path: Path) -> set[str]:
    """Every absolute module name a source file imports, at any depth of the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f'{node.module}.{alias.name}' for alias in node.names)
    return names


@pytest.mark.parametrize('layer', sorted(ALLOWED_LAYERS))
def test_layer_imports_only_downward(layer):
    violations = []
    for path in sorted((PACKAGE_DIR / layer).rglob('*.py')):
        for name in imported_names(path):
            parts = name.split('.')
            if parts[0] == 'dl_perception' and len(parts) > 1 and parts[1] in ALLOWED_LAYERS:
                if parts[1] not in ALLOWED_LAYERS[layer]:
                    violations.append(f'{path.relative_to(PACKAGE_DIR)} imports {name}')
            elif parts[0] in FORBIDDEN_MODULES[layer]:
                violations.append(f'{path.relative_to(PACKAGE_DIR)} imports {name}')
    assert not violations, '\n'.join(violations)


# Runs in a fresh interpreter: torch is made unimportable, then every module of the robot
# path is imported, and torch must still be absent afterwards.
WITHOUT_TORCH = """
import importlib, pkgutil, sys
for name in ('torch', 'torchvision'):
    sys.modules[name] = None  # makes `import torch` raise ImportError
import dl_perception
for package_name in ('dl_perception.preprocessing', 'dl_perception.datasets',
                     'dl_perception.inference', 'dl_perception.ros'):
    package = importlib.import_module(package_name)
    for module in pkgutil.walk_packages(package.__path__, package_name + '.'):
        importlib.import_module(module.name)
        print(module.name)
print('ok', [name for name, module in sys.modules.items()
             if module is not None and name.split('.')[0] in ('torch', 'torchvision')])
"""


def test_robot_path_imports_without_torch():
    result = subprocess.run([sys.executable, '-c', WITHOUT_TORCH], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == 'ok []'
    assert 'dl_perception.ros.vision_messages' in lines
