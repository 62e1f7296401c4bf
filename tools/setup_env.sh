#!/usr/bin/env bash
# `make setup`: build the development environment of this clone on a machine without ROS.
# Debian 12, Python 3.11, x86_64. Idempotent: each step leaves a stamp and is skipped when its
# inputs did not change, so a second run takes seconds.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/env_paths.sh"
cd "$DLP_REPO"

APT_PACKAGES=(cmake g++ make git dataset-fashion-mnist)

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
elapsed() { echo "$(( $(date +%s) - start ))s"; }
start=$(date +%s)

ensure_apt_packages() {
  local missing=()
  for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
      || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return
  say "apt: installing ${missing[*]}"
  local sudo=''
  [ "$(id -u)" -ne 0 ] && sudo='sudo'
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

check_python() {
  "$DLP_PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null || {
    echo "setup: the ROS 2 Kilted wheels need CPython 3.11; $DLP_PYTHON is" \
         "$("$DLP_PYTHON" --version 2>&1). Set DLP_PYTHON to a python3.11." >&2
    exit 1
  }
}

# The ROS wheels' CMake exports name the Python of the machine that built them.
fix_wheel_cmake_paths() {
  local py_include numpy_include
  py_include=$("$DLP_VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
  numpy_include=$("$DLP_VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
  grep -rlZ --include='*.cmake' '/opt/python/cp311-cp311' "$DLP_VENV/share" \
    | xargs -0 -r sed -i \
        -e "s#/opt/python/cp311-cp311/include/python3.11#$py_include#g" \
        -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$numpy_include#g"
}

ensure_venv() {
  [ -f "$DLP_VENV/.complete" ] && return
  say "venv: creating $DLP_VENV (torch is large: a few minutes)"
  rm -rf "$DLP_VENV"
  "$DLP_PYTHON" -m venv "$DLP_VENV"
  local pip=("$DLP_VENV/bin/python" -m pip --disable-pip-version-check --no-input)
  "${pip[@]}" install -q --progress-bar off --upgrade pip
  "${pip[@]}" install -q --progress-bar off -r requirements/dev.txt
  if "${pip[@]}" show onnxruntime >/dev/null 2>&1; then
    echo "setup: 'onnxruntime' got installed beside 'onnxruntime-gpu'; they share one module" \
         "folder and break each other. Find who requires it: pip show -r" >&2
    exit 1
  fi
  fix_wheel_cmake_paths
  touch "$DLP_VENV/.complete"
}

colcon_in_venv() {
  env PATH="$DLP_VENV/bin:$PATH" AMENT_PREFIX_PATH="$DLP_VENV" \
    "$DLP_VENV/bin/colcon" --log-base "$1/log" build \
    --build-base "$1/build" --install-base "$1/install" \
    --event-handlers console_cohesion- console_direct- "console_stderr${COLCON_STDERR:-+}" \
    "${@:2}"
}

ensure_interfaces() {
  local key
  key=$(cat tools/pip_interfaces/vision_msgs/{package.xml,CMakeLists.txt} \
            tools/pip_interfaces/vision_msgs/msg/*.msg | _dlp_hash)
  [ "$(cat "$DLP_INTERFACES/.stamp" 2>/dev/null)" = "$key" ] && return
  say "interfaces: building vision_msgs for the pip route"
  rm -rf "$DLP_INTERFACES"
  mkdir -p "$DLP_INTERFACES/src"
  # Copied out of the clone: the COLCON_IGNORE beside it keeps robots' workspaces from seeing it.
  cp -r tools/pip_interfaces/vision_msgs "$DLP_INTERFACES/src/"
  colcon_in_venv "$DLP_INTERFACES" --base-paths "$DLP_INTERFACES/src"
  echo "$key" > "$DLP_INTERFACES/.stamp"
}

# A colcon build that sees only the venv, even when run from an activated shell. Upstream
# packages print pages of setuptools warnings: their stderr is shown only when a build fails.
colcon_in_clean_venv() {
  (unset COLCON_PREFIX_PATH CMAKE_PREFIX_PATH PYTHONPATH LD_LIBRARY_PATH
   COLCON_STDERR=- colcon_in_venv "$@") || {
    echo "setup: colcon build in $1 failed; logs: $1/log/latest_build" >&2
    return 1
  }
}

# Upstream test packages whose build fails here, and launch_testing/launch_pytest: their pytest
# plugins do not load under pytest 9 and would break every `python -m pytest` after activation.
TOOLING_IGNORED=(ros2cli/ros2cli_test_interfaces ros2cli/ros2lifecycle_test_fixtures
  launch/test_launch_testing launch_ros/test_launch_ros launch/launch_testing_ament_cmake
  launch/launch_testing launch_ros/launch_testing_ros launch/launch_pytest)

# Test infrastructure: upstream launch, launch_ros and ros2cli (`ros2 launch`, `ros2 run`, ...)
# built from the unmodified archives of $DLP_TOOLING_SRC into the cache, never into the clone.
ensure_tooling() {
  local archive="$DLP_TOOLING_SRC/ros2_tooling_src.tar.gz" key
  if [ ! -f "$archive" ]; then
    say "ros2 tooling: no $archive: the robot-route tests (ros2 launch/run) will be skipped"
    return
  fi
  # The venv's stamp is in the key: a rebuilt venv lost the extra packages.
  key=$(printf '%s\n' "sha256 $(sha256sum < "$archive" | cut -d' ' -f1)" \
          "requirements $(_dlp_hash < tools/ros2_tooling_requirements.txt)" \
          "ignored ${TOOLING_IGNORED[*]}" "venv $(stat -c %Y "$DLP_VENV/.complete")")
  [ "$(cat "$DLP_TOOLING/.stamp" 2>/dev/null)" = "$key" ] && return
  say "ros2 tooling: building launch, launch_ros, ros2cli from $archive (about a minute)"
  "$DLP_VENV/bin/python" -m pip --disable-pip-version-check --no-input install -q \
    --progress-bar off -r tools/ros2_tooling_requirements.txt
  rm -rf "$DLP_TOOLING"
  mkdir -p "$DLP_TOOLING"
  tar -xzf "$archive" -C "$DLP_TOOLING"
  local folder
  for folder in "${TOOLING_IGNORED[@]}"; do
    touch "$DLP_TOOLING/src/$folder/COLCON_IGNORE"
  done
  colcon_in_clean_venv "$DLP_TOOLING" --base-paths "$DLP_TOOLING/src" \
    --cmake-args -DBUILD_TESTING=OFF
  echo "$key" > "$DLP_TOOLING/.stamp"
}

# Upstream vision_msgs in a prefix of its own: a test's consumer process sources only it (and
# the tooling), never the pip-route build, to show both are the same interface.
ensure_upstream_vision_msgs() {
  local archive="$DLP_TOOLING_SRC/vision_msgs_4.1.1_src.tar.gz" key
  [ -f "$archive" ] || return 0
  key="sha256 $(sha256sum < "$archive" | cut -d' ' -f1)"
  [ "$(cat "$DLP_UPSTREAM_VM/.stamp" 2>/dev/null)" = "$key" ] && return
  say "upstream vision_msgs: building $archive (about two minutes)"
  rm -rf "$DLP_UPSTREAM_VM"
  mkdir -p "$DLP_UPSTREAM_VM"
  tar -xzf "$archive" -C "$DLP_UPSTREAM_VM"
  colcon_in_clean_venv "$DLP_UPSTREAM_VM" --base-paths "$DLP_UPSTREAM_VM/vision_msgs_upstream" \
    --cmake-args -DBUILD_TESTING=OFF
  echo "$key" > "$DLP_UPSTREAM_VM/.stamp"
}

ensure_overlay() {
  local key
  key=$( { cat package.xml setup.py setup.cfg resource/dl_perception;
           find launch config -type f | sort; cat "$DLP_INTERFACES/.stamp"; } | _dlp_hash)
  [ "$(cat "$DLP_OVERLAY/.stamp" 2>/dev/null)" = "$key" ] && return
  say "overlay: building dl_perception with colcon (symlinked: source edits need no rebuild)"
  rm -rf "$DLP_OVERLAY"
  mkdir -p "$DLP_OVERLAY"
  set +u
  source "$DLP_INTERFACES/install/setup.bash"
  set -u
  colcon_in_venv "$DLP_OVERLAY" --base-paths "$DLP_REPO" --symlink-install
  echo "$key" > "$DLP_OVERLAY/.stamp"
}

mkdir -p "$DLP_CACHE"
exec 9>"$DLP_CACHE/setup.lock"
flock 9  # two clones setting up at once share the venv
ensure_apt_packages
check_python
ensure_venv
ensure_interfaces
ensure_tooling
ensure_upstream_vision_msgs
ensure_overlay
say "ready in $(elapsed): source tools/activate.sh  (environment: $DLP_ENV)"
