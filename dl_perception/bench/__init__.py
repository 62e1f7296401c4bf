"""
Benchmarks that compare the whole inference path with its floor and with the alternatives.

Belongs here: ``dl-perception bench`` (raw ONNX Runtime, ``Classifier``, the ROS node across
processes, a typical hand-written PyTorch node, OpenVINO) and the soak test. It composes the
other layers and, for the baseline it measures against, imports torch; nothing imports it.
"""
