# Put the development environment made by `make setup` into the current shell:
#   source tools/activate.sh
# Afterwards dl-perception, the node executables, rclpy with the built vision_msgs, pytest and
# (when make setup built the tooling) `ros2` are on the PATH, and ROS logs go to a writable
# folder.

source "$(dirname "${BASH_SOURCE[0]}")/env_paths.sh"

if [ ! -f "$DLP_OVERLAY/install/setup.bash" ]; then
  echo "dl_perception: no environment at $DLP_ENV yet; run 'make setup' first." >&2
  return 1 2>/dev/null || exit 1
fi

export VIRTUAL_ENV="$DLP_VENV"
export PATH="$DLP_VENV/bin:$PATH"
export AMENT_PREFIX_PATH="$DLP_VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# colcon's setup files read unset variables; they must not run under `set -u`.
case $- in *u*) _dlp_nounset=1 ;; *) _dlp_nounset='' ;; esac
set +u
# Upstream launch/launch_ros/ros2cli (test infrastructure, when `make setup` built them): under
# the overlay, so `ros2 launch dl_perception ...` finds this clone's package.
if [ -f "$DLP_TOOLING/.stamp" ]; then
  source "$DLP_TOOLING/install/local_setup.bash"
  export DLP_TOOLING_PREFIX="$DLP_TOOLING/install"
fi
source "$DLP_OVERLAY/install/setup.bash"
if [ -n "$_dlp_nounset" ]; then set -u; fi
unset _dlp_nounset
export PATH="$DLP_OVERLAY/install/dl_perception/lib/dl_perception:$PATH"
# The pip wheels ship Fast DDS only; ROS needs it named.
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# For tests: upstream vision_msgs, a prefix that a consumer process sources instead of ours.
if [ -f "$DLP_UPSTREAM_VM/.stamp" ]; then
  export DLP_UPSTREAM_VISION_MSGS="$DLP_UPSTREAM_VM/install"
fi
export ROS_LOG_DIR="${ROS_LOG_DIR:-$DLP_CACHE/ros_log}"
mkdir -p "$ROS_LOG_DIR"
