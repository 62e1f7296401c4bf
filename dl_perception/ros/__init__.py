"""
ROS 2 interface: nodes, message conversion and the monitor.

Belongs here: everything that imports rclpy or ROS message packages. Uses ``inference`` for
the actual work and never re-implements it; never imports torch, ``training`` or ``export``.
"""
