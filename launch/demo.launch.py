"""
The demo: Fashion-MNIST test images as a 640x480 camera, the classifier, and the monitor.

Arguments: model (ONNX file), frames (how many, default 1000), rate (Hz, default 30),
config (classifier parameter file), fastdds_transports (default LARGE_DATA) and
discovery_range (ROS_AUTOMATIC_DISCOVERY_RANGE, default LOCALHOST), as make demo sets them
(``dl_perception.demo.DEMO_DDS_ENVIRONMENT``): LARGE_DATA processes with the default range
sometimes never discover each other (docs/nodes_and_parameters.md, "Raw frames"). Everything
stops when the monitor has its summary and the camera has ended by itself (or as soon as
either of them fails).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import EmitEvent
from launch.actions import ExecuteProcess
from launch.actions import LogInfo
from launch.actions import RegisterEventHandler
from launch.actions import SetEnvironmentVariable
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackagePrefix
from launch_ros.substitutions import FindPackageShare


def shutdown_after(*processes: ExecuteProcess) -> list[RegisterEventHandler]:
    """
    Shut the launch down once every one of ``processes`` has exited, or one has failed.

    The camera ends by itself after its last frame, usually just before the monitor prints its
    summary; a Shutdown sent then would SIGINT it while it is already exiting (it died of that
    SIGINT, exit -2, in about half the runs). Waiting for it means it is never signalled.
    """
    running = {id(process) for process in processes}

    def on_exit(event, context):
        running.discard(id(event.action))
        if event.returncode != 0 or not running:
            return [EmitEvent(event=Shutdown(reason=f'{event.action.name} exited'))]
        return None

    return [RegisterEventHandler(OnProcessExit(target_action=process, on_exit=on_exit))
            for process in processes]


def generate_launch_description() -> LaunchDescription:
    frames = LaunchConfiguration('frames')
    monitor = ExecuteProcess(
        cmd=[PathJoinSubstitution([FindPackagePrefix('dl_perception'), 'lib', 'dl_perception',
                                   'dl-perception']), 'monitor', '--frames', frames],
        name='monitor', output='screen')
    image_source = Node(
        package='dl_perception', executable='image_source_node', name='image_source',
        output='screen',
        parameters=[{'source': 'fashion-mnist:test',
                     'max_frames': ParameterValue(frames, value_type=int),
                     'rate_hz': ParameterValue(LaunchConfiguration('rate'), value_type=float),
                     'width': 640, 'height': 480, 'wait_for_subscribers': 2}])
    return LaunchDescription([
        DeclareLaunchArgument('model', description='ONNX classifier trained on Fashion-MNIST'),
        DeclareLaunchArgument('frames', default_value='1000', description='frames to send'),
        DeclareLaunchArgument('rate', default_value='30.0', description='frames per second'),
        DeclareLaunchArgument('config', default_value=PathJoinSubstitution(
            [FindPackageShare('dl_perception'), 'config', 'classifier.yaml'])),
        DeclareLaunchArgument('fastdds_transports', default_value='LARGE_DATA',
                              description='FASTDDS_BUILTIN_TRANSPORTS for every demo process'),
        DeclareLaunchArgument('discovery_range', default_value='LOCALHOST',
                              description='ROS_AUTOMATIC_DISCOVERY_RANGE for every demo process'),
        SetEnvironmentVariable('FASTDDS_BUILTIN_TRANSPORTS',
                               LaunchConfiguration('fastdds_transports')),
        SetEnvironmentVariable('ROS_AUTOMATIC_DISCOVERY_RANGE',
                               LaunchConfiguration('discovery_range')),
        LogInfo(msg=['FASTDDS_BUILTIN_TRANSPORTS=', LaunchConfiguration('fastdds_transports'),
                     ' ROS_AUTOMATIC_DISCOVERY_RANGE=', LaunchConfiguration('discovery_range'),
                     ': a shell with other settings sees none of these topics; to inspect '
                     'them (ros2 topic list/echo), first: export FASTDDS_BUILTIN_TRANSPORTS=',
                     LaunchConfiguration('fastdds_transports'), ' ROS_AUTOMATIC_DISCOVERY_RANGE=',
                     LaunchConfiguration('discovery_range')]),
        Node(package='dl_perception', executable='classifier_node', name='classifier',
             output='screen',
             # The monitor scores every frame, so the demo lets DDS hold two per camera: with
             # one, a reliable sample repaired at the stream's start replaces its successor
             # (1 frame of 300 missed in most runs here); a robot keeps the newest only.
             parameters=[LaunchConfiguration('config'),
                         {'model_path': LaunchConfiguration('model'), 'providers': ['cpu'],
                          'top_k': 3, 'queue_depth': 2}]),
        monitor,
        image_source,
        *shutdown_after(monitor, image_source),
    ])
