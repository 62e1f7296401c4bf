"""
``dl-perception bench``: the inference benchmark (``python -m benchmarks pipeline``).

The benchmarks live in the repository's ``benchmarks/`` folder, outside the package (they
start nodes, baselines and alternatives that a robot does not need), so this command runs
them from the source checkout the package was installed from, and says so when there is none.
Every argument is the benchmark's (``dl-perception bench --help`` lists them).
"""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

import dl_perception


def source_checkout() -> Path | None:
    """Return the repository the package runs from when it has ``benchmarks/``, else None."""
    root = Path(dl_perception.__file__).resolve().parents[1]
    return root if (root / 'benchmarks' / 'pipeline.py').is_file() else None


def run(argv: list[str]) -> int:
    """Run the checkout's pipeline benchmark here (paths stay the caller's); return its status."""
    root = source_checkout()
    if root is None:
        raise FileNotFoundError(
            f'dl-perception bench needs the source checkout: the benchmarks are in the '
            f"repository's benchmarks/ folder, not in the installed package "
            f'({Path(dl_perception.__file__).parent})')
    path = os.pathsep.join(filter(None, (str(root), os.environ.get('PYTHONPATH'))))
    return subprocess.call([sys.executable, '-m', 'benchmarks', 'pipeline', *argv],
                           env=dict(os.environ, PYTHONPATH=path))
