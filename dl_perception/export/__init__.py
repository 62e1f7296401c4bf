"""
Export: a trained checkpoint -> a self-describing ONNX file, checked against PyTorch.

Belongs here: ONNX conversion, the metadata written into the file, the parity check.
May import torch, onnx, ``models``, ``training`` and ``inference`` (to verify the file the way a
robot will run it); never ros.
"""
