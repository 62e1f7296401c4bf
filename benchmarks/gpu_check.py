"""The GPU checks as one step for a lent GPU machine: runs ``gpu_check.sh`` beside this file."""

from __future__ import annotations

import argparse
from pathlib import Path
import subprocess


def main(argv: list[str] | None = None) -> int:
    """Run the script (from the repository root) and return its exit status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('output', nargs='?',
                        help='output folder (default: $OUT, else ./gpu_check)')
    args = parser.parse_args(argv)
    script = Path(__file__).with_name('gpu_check.sh')
    return subprocess.call(['bash', str(script), *([args.output] if args.output else [])])
