"""
The launch files load with the standard launch/launch_ros API and start what they promise.

launch_ros is not installable from pip here, so these tests run where a ROS installation (or a
local build of launch/launch_ros) provides it and are skipped otherwise.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from dl_perception.demo import DEMO_DDS_ENVIRONMENT
import pytest

launch = pytest.importorskip('launch')
launch_ros = pytest.importorskip('launch_ros')

LAUNCH_DIR = Path(__file__).resolve().parents[1] / 'launch'


def description(name: str):
    spec = importlib.util.spec_from_file_location(name, LAUNCH_DIR / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def actions_of(description_, kind):
    return [entity for entity in description_.entities if isinstance(entity, kind)]


def test_classifier_launch_declares_its_arguments_and_starts_the_node():
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node
    described = description('classifier.launch.py')
    arguments = {a.name for a in actions_of(described, DeclareLaunchArgument)}
    assert arguments == {'model', 'image_topic', 'config', 'namespace'}
    [node] = actions_of(described, Node)
    assert (node.node_package, node.node_executable) == ('dl_perception', 'classifier_node')


def test_demo_launch_starts_source_classifier_and_monitor():
    from launch.actions import DeclareLaunchArgument
    from launch.actions import ExecuteProcess
    from launch_ros.actions import Node
    described = description('demo.launch.py')
    arguments = {a.name for a in actions_of(described, DeclareLaunchArgument)}
    assert {'model', 'frames', 'rate'} <= arguments
    defaults = {a.name: a.default_value[0].text
                for a in actions_of(described, DeclareLaunchArgument)
                if a.name in ('fastdds_transports', 'discovery_range')}
    assert (defaults['fastdds_transports'], defaults['discovery_range']) == (  # as make demo
        DEMO_DDS_ENVIRONMENT['FASTDDS_BUILTIN_TRANSPORTS'],
        DEMO_DDS_ENVIRONMENT['ROS_AUTOMATIC_DISCOVERY_RANGE'])
    nodes = {n.node_executable for n in actions_of(described, Node)}
    assert nodes == {'classifier_node', 'image_source_node'}
    processes = [a for a in actions_of(described, ExecuteProcess) if not isinstance(a, Node)]
    assert len(processes) == 1  # the monitor
