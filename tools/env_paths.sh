# Shared by setup_env.sh and activate.sh: where the development environment of this clone lives.
# Sourced, not run. Sets DLP_REPO, DLP_ENV (keyed by the pinned requirements), DLP_VENV,
# DLP_INTERFACES (the pip-route vision_msgs build), DLP_OVERLAY (this clone's colcon build),
# DLP_TOOLING_SRC (upstream launch/ros2cli archives, optional), DLP_TOOLING (their build) and
# DLP_UPSTREAM_VM (upstream vision_msgs, a prefix of its own so a consumer can see only it).

DLP_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DLP_CACHE="${DLP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dl_perception}"
DLP_PYTHON="${DLP_PYTHON:-$(command -v python3.11 || command -v python3)}"
# Bump when the way the venv is made changes without a requirements change.
DLP_RECIPE=1

_dlp_hash() { sha256sum | cut -c1-12; }

DLP_ENV_KEY="$( { echo "recipe $DLP_RECIPE"; "$DLP_PYTHON" -c 'import sys; print(sys.version)';
                  cat "$DLP_REPO"/requirements/*.txt; } | _dlp_hash)"
DLP_ENV="$DLP_CACHE/env-$DLP_ENV_KEY"
DLP_VENV="$DLP_ENV/venv"
DLP_INTERFACES="$DLP_ENV/interfaces"
DLP_OVERLAY="$DLP_ENV/overlay-$(printf '%s' "$DLP_REPO" | _dlp_hash)"
# Test infrastructure, not part of the product: built only when the archives are there.
DLP_TOOLING_SRC="${DLP_ROS2_TOOLING:-$DLP_REPO/../shared/ros2_tooling}"
DLP_TOOLING="$DLP_ENV/ros2_tooling"
DLP_UPSTREAM_VM="$DLP_ENV/vision_msgs_upstream"
