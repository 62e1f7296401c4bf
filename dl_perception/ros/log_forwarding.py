"""
Route the Python ``logging`` records of dl_perception's lower layers to a node's ROS logger.

``inference`` knows nothing of ROS and logs with ``logging`` (the runtimes' own messages
included, see ``backend.native_stderr_to_log``); inside a node those lines must reach the
console and /rosout under the node's name, like everything else the node says.
"""

from __future__ import annotations

import logging

PACKAGE_LOGGER = 'dl_perception'


class _RosHandler(logging.Handler):
    """A logging handler that writes each record to a ROS logger at the matching level."""

    def __init__(self, ros_logger) -> None:
        super().__init__(logging.INFO)
        self._ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if record.levelno >= logging.ERROR:
            self._ros_logger.error(text)
        elif record.levelno >= logging.WARNING:
            self._ros_logger.warning(text)
        else:
            self._ros_logger.info(text)


class PythonLogForwarding:
    """Send INFO and above from the ``dl_perception`` loggers to ``ros_logger``, until closed."""

    def __init__(self, ros_logger) -> None:
        self._handler = _RosHandler(ros_logger)
        self._logger = logging.getLogger(PACKAGE_LOGGER)
        self._logger.addHandler(self._handler)
        if self._logger.level == logging.NOTSET or self._logger.level > logging.INFO:
            self._logger.setLevel(logging.INFO)

    def close(self) -> None:
        """Stop forwarding."""
        self._logger.removeHandler(self._handler)
