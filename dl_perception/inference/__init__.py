"""
Run time: load an ONNX classifier and turn camera images into class scores.

Belongs here: the backends (ONNX Runtime and its execution providers, OpenVINO), preprocessing
derived from the model's metadata, post-processing. May import numpy, onnxruntime, opencv,
openvino (optional: only when asked for) and ``dl_perception.preprocessing``; never torch
(robots do not install it) and never rclpy (this layer knows nothing about ROS).
"""
