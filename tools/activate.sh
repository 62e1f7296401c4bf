# Put the development environment made by `make setup` into the current shell:
#   source tools/activate.sh
# Afterwards dl-perception, the node executables, rclpy with the built vision_msgs, and pytest
# are on the PATH, and ROS logs go to a writable folder.

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
source "$DLP_OVERLAY/install/setup.bash"
if [ -n "$_dlp_nounset" ]; then set -u; fi
unset _dlp_nounset
export PATH="$DLP_OVERLAY/install/dl_perception/lib/dl_perception:$PATH"
# The pip wheels ship Fast DDS only; ROS needs it named.
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export ROS_LOG_DIR="${ROS_LOG_DIR:-$DLP_CACHE/ros_log}"
mkdir -p "$ROS_LOG_DIR"
