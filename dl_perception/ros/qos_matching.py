"""
Input QoS that matches what the camera offers, so a mismatch never silently yields nothing.

A reliable subscription receives nothing from a best-effort publisher, while a best-effort
subscription receives from both. ``auto`` therefore picks best effort as soon as any
publisher on the topic is best effort and reliable when all are. With no publisher there is
nothing to match yet: the node waits for one (it re-checks the graph twice a second) and keeps
its subscription when a publisher goes away.
"""

from __future__ import annotations

from collections.abc import Iterable

from rclpy.qos import DurabilityPolicy
from rclpy.qos import HistoryPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from rclpy.topic_endpoint_info import TopicEndpointInfo

FIXED = {'reliable': ReliabilityPolicy.RELIABLE, 'best_effort': ReliabilityPolicy.BEST_EFFORT}


def choose_reliability(setting: str,
                       publishers: Iterable[TopicEndpointInfo]) -> ReliabilityPolicy | None:
    """Return the reliability to subscribe with; None when ``auto`` has nothing to match."""
    if setting in FIXED:
        return FIXED[setting]
    offered = [info.qos_profile.reliability for info in publishers]
    if not offered:
        return None
    if all(policy == ReliabilityPolicy.RELIABLE for policy in offered):
        return ReliabilityPolicy.RELIABLE
    return ReliabilityPolicy.BEST_EFFORT


def input_qos(reliability: ReliabilityPolicy, depth: int = 1) -> QoSProfile:
    """Keep-last, depth 1 by default: only the newest frame matters, older ones are stale."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability,
                      durability=DurabilityPolicy.VOLATILE)


def latched_qos() -> QoSProfile:
    """Transient local, so subscribers that join later still get the last message."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)
