"""
Benchmarks: scripts that measure the package and write JSON, kept out of the installed package.

Start one with ``python -m benchmarks NAME`` from the repository root (``__main__`` lists them).
They compose every layer of ``dl_perception`` and, for the baseline they measure against,
import torch; ``dl_perception`` never imports them, so robots install none of this.
"""
