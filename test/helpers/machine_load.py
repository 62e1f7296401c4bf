"""
How long a test would have taken on an idle machine: its wall time less what others took.

The slow-test limit is about the test, not about whoever else shares the machine. Over the
test, the CPU time that the rest of the machine used (all busy time in /proc/stat, less this
process's and its descendants') is taken out, spread over the cores. On an idle machine
the estimate equals the wall time; without /proc/stat it always does.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path
import time

PROC_STAT = Path('/proc/stat')
# Fields of the first line of /proc/stat that are not busy time: idle and iowait.
IDLE_FIELDS = (3, 4)


def _machine_busy_s() -> float | None:
    """Return the CPU seconds all processes have used since boot (None if unknown)."""
    try:
        fields = PROC_STAT.read_text().split('\n', 1)[0].split()[1:]
    except OSError:
        return None
    ticks = sum(int(value) for index, value in enumerate(fields[:8]) if index not in IDLE_FIELDS)
    return ticks / os.sysconf('SC_CLK_TCK')


def _live_descendants_cpu_s() -> float:
    """Return the CPU seconds of this process's descendants that are still running."""
    parents, ticks = {}, {}
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            text = stat.read_text()
        except OSError:
            continue  # it exited meanwhile
        fields = text[text.rindex(')') + 2:].split()  # after the command name
        pid = int(stat.parent.name)
        parents[pid], ticks[pid] = int(fields[1]), int(fields[11]) + int(fields[12])
    mine, total = {os.getpid()}, 0
    for pid in sorted(parents):  # children have higher pids, except after wrap-around
        if parents[pid] in mine:
            mine.add(pid)
            total += ticks[pid]
    return total / os.sysconf('SC_CLK_TCK')


def _own_cpu_s() -> float:
    """Return this process's CPU seconds and its children's, reaped or running."""
    times = os.times()
    return (times.user + times.system + times.children_user + times.children_system
            + _live_descendants_cpu_s())


@dataclass(frozen=True)
class LoadMeter:
    """A reading taken when a test starts; ``finish`` turns it into idle-machine seconds."""

    wall: float
    machine_busy: float | None
    own_cpu: float

    @classmethod
    def start(cls) -> LoadMeter:
        return cls(time.monotonic(), _machine_busy_s(), _own_cpu_s())

    def finish(self) -> tuple[float, float]:
        """Return (wall seconds, wall seconds less the other processes' share)."""
        wall = time.monotonic() - self.wall
        busy = _machine_busy_s()
        if busy is None or self.machine_busy is None:
            return wall, wall
        others = max(0.0, (busy - self.machine_busy) - (_own_cpu_s() - self.own_cpu))
        return wall, max(0.0, wall - others / (os.cpu_count() or 1))
