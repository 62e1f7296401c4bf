"""
Export: a trained checkpoint -> a self-describing ONNX file, checked against PyTorch.

Belongs here: ONNX conversion, the metadata written into the file, the parity check, and
``dl-perception evaluate``, which measures checkpoints and exported files alike.
May import torch, onnx, ``models``, ``training`` and ``inference`` (to verify the file the way a
robot will run it); never ros.
"""
