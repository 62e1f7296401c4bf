"""
Keep only the newest frame of each camera until the worker takes it.

Callbacks store, the worker takes; a frame that is replaced before the worker took it is
dropped and counted. So the node never works through a backlog of stale frames. The spinning
thread also waits here while every camera already has a frame waiting (``wait_while_full``):
taking more messages then would only replace frames, and under overload that Python work
starves the worker; the middleware keeps the newest frames meanwhile, at no cost.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
import threading
from typing import Any


@dataclass(frozen=True)
class ReceivedFrame:
    """A message as it arrived, with its arrival time (seconds, monotonic clock)."""

    message: Any
    arrived: float


class LatestFrames:
    """A one-slot mailbox per camera, shared by the subscription callbacks and the worker."""

    def __init__(self) -> None:
        self._slots: dict[Hashable, ReceivedFrame] = {}
        self._condition = threading.Condition()
        self.dropped: dict[Hashable, int] = {}

    def put(self, camera: Hashable, frame: ReceivedFrame) -> None:
        """Store a camera's newest frame; an untaken older one is dropped and counted."""
        with self._condition:
            if camera in self._slots:
                self.dropped[camera] = self.dropped.get(camera, 0) + 1
            self._slots[camera] = frame
            self._condition.notify_all()

    def take(self, timeout: float) -> dict[Hashable, ReceivedFrame]:
        """Wait up to ``timeout`` seconds for frames; return and clear all that are waiting."""
        with self._condition:
            if not self._slots:
                self._condition.wait(timeout)
            frames, self._slots = self._slots, {}
            self._condition.notify_all()
            return frames

    def wait_while_full(self, cameras: int, timeout: float) -> None:
        """Wait up to ``timeout`` seconds while ``cameras`` (or more) frames are waiting."""
        with self._condition:
            self._condition.wait_for(lambda: len(self._slots) < cameras, timeout)

    def clear(self) -> None:
        """Forget waiting frames (without counting them as dropped)."""
        with self._condition:
            self._slots = {}
