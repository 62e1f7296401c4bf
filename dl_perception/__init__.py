"""
dl_perception: classic CNNs trained offline and served on ROS 2 robots.

The package is layered; each layer imports only the layers below it (``test/test_layers.py``):

- ``preprocessing``: resize, colour order, normalization; shared by training and the robot.
- ``datasets``: Fashion-MNIST IDX files and image folders (numpy; OpenCV for image files).
- ``models``: what a network is (torch only).
- ``training``: how it learns (torch only).
- ``export``: torch -> self-describing ONNX file, float32 or INT8.
- ``inference``: how it runs (numpy, onnxruntime, opencv; never torch, never rclpy).
- ``ros``: how it talks (rclpy nodes; uses ``inference``, never ``training``).

``cli``, ``demo`` and ``doctor`` sit on top; ``cli`` imports a layer only when its sub-command
runs. The benchmarks live outside the package, in the repository's ``benchmarks/``.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version('dl_perception')
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = '0+unknown'
