"""
ROS 2 interface: the classifier and image source nodes, their parts, and the monitor.

Belongs here: what imports rclpy or ROS message packages: the nodes, their parameters,
message conversion, QoS choices, diagnostics bookkeeping and the spin helper. Offline code
never needs this package: frames from datasets live in ``datasets.frame_sources``, drawing
in ``inference.overlay``, scoring in ``inference.scoreboard``. Uses ``inference`` for the
actual work and never re-implements it; never imports torch, ``training`` or ``export``.
"""
