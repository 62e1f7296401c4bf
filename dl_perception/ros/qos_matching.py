"""
Input QoS that matches what the camera offers, so a mismatch never silently yields nothing.

A reliable subscription receives nothing from a best-effort publisher, while a best-effort
subscription receives from both. ``auto`` therefore subscribes at once with best effort, which
hears any publisher even while discovery lags, and re-matches when the graph shows what the
publishers offer (the node re-checks twice a second): reliable when all of them are, best
effort as soon as one is not. When the publishers go away it keeps what it has.
"""

from __future__ import annotations

from collections.abc import Iterable

from rclpy.qos import DurabilityPolicy
from rclpy.qos import HistoryPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from rclpy.topic_endpoint_info import TopicEndpointInfo

FIXED = {'reliable': ReliabilityPolicy.RELIABLE, 'best_effort': ReliabilityPolicy.BEST_EFFORT}


def choose_reliability(setting: str, publishers: Iterable[TopicEndpointInfo],
                       current: ReliabilityPolicy | None = None) -> ReliabilityPolicy:
    """Return the reliability to subscribe with, given the topic's publishers and ``current``."""
    if setting in FIXED:
        return FIXED[setting]
    offered = [info.qos_profile.reliability for info in publishers]
    if not offered:
        return current or ReliabilityPolicy.BEST_EFFORT
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
