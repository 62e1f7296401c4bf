"""
Start classifier_node with its parameter file.

Arguments: model (ONNX file), image_topic (input, default `image`), config (parameter file,
default the package's config/classifier.yaml), namespace.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    default_config = PathJoinSubstitution(
        [FindPackageShare('dl_perception'), 'config', 'classifier.yaml'])
    return LaunchDescription([
        DeclareLaunchArgument('model', description='ONNX classifier (dl-perception export)'),
        DeclareLaunchArgument('image_topic', default_value='image',
                              description='camera topic to classify'),
        DeclareLaunchArgument('config', default_value=default_config,
                              description='classifier_node parameter file'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the node and its topics'),
        Node(package='dl_perception', executable='classifier_node', name='classifier',
             namespace=LaunchConfiguration('namespace'), output='screen',
             parameters=[LaunchConfiguration('config'),
                         {'model_path': LaunchConfiguration('model')}],
             remappings=[('image', LaunchConfiguration('image_topic'))]),
    ])
