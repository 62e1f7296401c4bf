# Shared by setup_env.sh and activate.sh: where the development environment of this clone lives.
# Sourced, not run. Sets DLP_REPO, DLP_ENV (keyed by the pinned requirements), DLP_VENV,
# DLP_INTERFACES (the pip-route vision_msgs build) and DLP_OVERLAY (this clone's colcon build).

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
