"""Every module of dl_perception has a layer and imports downward; robots need no torch."""

from __future__ import annotations

import ast
from pathlib import Path
import re
import subprocess
import sys

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPOSITORY / 'dl_perception'
BENCHMARKS_DIR = REPOSITORY / 'benchmarks'
LAYERS = {'preprocessing', 'datasets', 'models', 'training', 'export', 'inference', 'ros'}

# unit (a folder, or a top-level module by its stem) -> the dl_perception units it may import,
# itself included; ``__init__`` (the package root: ``__version__``) is open to every unit.
ALLOWED_LAYERS = {
    'preprocessing': {'preprocessing'},
    'datasets': {'datasets'},
    'models': {'models'},
    'training': {'preprocessing', 'datasets', 'models', 'training'},
    'export': {'preprocessing', 'datasets', 'models', 'training', 'inference', 'export'},
    'inference': {'preprocessing', 'inference'},
    'ros': {'preprocessing', 'datasets', 'inference', 'ros'},
    '__init__': set(),
    # the applications sit on top: they use the layers, no layer uses them
    'doctor': {'inference', 'doctor'},  # it asks the backends what runs here
    'demo': {'datasets', 'inference', 'ros', 'demo'},
    'bench': {'bench'},  # it runs the checkout's benchmarks as a process
    'cli': LAYERS | {'demo', 'doctor', 'bench', 'cli'},
}
# unit -> third-party top-level modules it must never import
FORBIDDEN_MODULES = {
    'preprocessing': {'torch', 'torchvision', 'rclpy', 'onnxruntime'},
    'datasets': {'torch', 'torchvision', 'rclpy', 'onnxruntime'},
    'models': {'rclpy', 'onnxruntime'},
    'training': {'rclpy', 'onnxruntime'},
    'export': {'rclpy'},
    'inference': {'torch', 'torchvision', 'rclpy'},
    'ros': {'torch', 'torchvision'},
    '__init__': {'torch', 'torchvision', 'rclpy', 'onnxruntime'},
    'doctor': set(),  # it reports which of them import
    'demo': {'torch', 'torchvision', 'rclpy'},  # it trains and runs nodes as processes
    'bench': {'torch', 'torchvision', 'rclpy', 'onnxruntime'},
    'cli': {'torch', 'torchvision', 'rclpy', 'onnxruntime'},  # `--help` stays fast
}
# A string naming a module, as cli's sub-commands and the processes demo starts do.
MODULE_NAME = re.compile(r'(dl_perception|benchmarks)(\.\w+)+')


def imported_names(path: Path) -> set[str]:
    """Every absolute module name a source file imports or names, at any depth of the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f'{node.module}.{alias.name}' for alias in node.names)
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and MODULE_NAME.fullmatch(node.value)):
            names.add(node.value)
    return names


def unit_files(unit: str) -> list[Path]:
    """Return the source files of a unit: a folder's, or the one top-level module."""
    folder = PACKAGE_DIR / unit
    return sorted(folder.rglob('*.py')) if folder.is_dir() else [PACKAGE_DIR / f'{unit}.py']


def test_every_module_and_folder_has_a_layer():
    units = {path.stem for path in PACKAGE_DIR.glob('*.py')} | {
        path.name for path in PACKAGE_DIR.iterdir() if path.is_dir()
        and path.name != '__pycache__'}
    assert units == ALLOWED_LAYERS.keys() == FORBIDDEN_MODULES.keys()


@pytest.mark.parametrize('unit', sorted(ALLOWED_LAYERS))
def test_layer_imports_only_downward(unit):
    violations = []
    for path in unit_files(unit):
        for name in imported_names(path):
            parts = name.split('.')
            if parts[0] == 'dl_perception':
                target = parts[1] if len(parts) > 1 and parts[1] in ALLOWED_LAYERS else '__init__'
                if target not in ALLOWED_LAYERS[unit] | {'__init__'}:
                    violations.append(f'{path.relative_to(PACKAGE_DIR)} imports {name}')
            elif parts[0] in FORBIDDEN_MODULES[unit] | {'benchmarks'}:
                violations.append(f'{path.relative_to(PACKAGE_DIR)} imports {name}')
    assert not violations, '\n'.join(violations)


def test_benchmarks_import_only_existing_units():
    # benchmarks/ is a consumer on top of everything, so any unit is allowed (and the check
    # above keeps dl_perception from importing it back); a moved unit must not go unnoticed.
    unknown = sorted(f'{path.relative_to(REPOSITORY)} imports {name}'
                     for path in sorted(BENCHMARKS_DIR.glob('*.py'))
                     for name in imported_names(path)
                     if name.startswith('dl_perception.')
                     and name.split('.')[1] not in ALLOWED_LAYERS.keys() | {'__version__'})
    assert not unknown, '\n'.join(unknown)


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


@pytest.mark.ros
def test_robot_path_imports_without_torch():
    result = subprocess.run([sys.executable, '-c', WITHOUT_TORCH], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == 'ok []'
    assert 'dl_perception.ros.vision_messages' in lines
