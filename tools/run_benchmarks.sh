#!/usr/bin/env bash
# `make bench`: every CPU benchmark of README "Performance", in one go (about 25 minutes on
# 2 cores; keep the machine otherwise idle). JSON and logs go to $BENCH_OUT (default
# benchmarks/results). OpenVINO, the alternative measured alongside, is pip-installed into
# the environment's cache folder, never into the venv (it brings its own numpy pin).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/activate.sh
out=${BENCH_OUT:-benchmarks/results}
mkdir -p "$out"
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-97}
openvino="$DLP_ENV/openvino"
if [ ! -d "$openvino/openvino" ]; then
    python -m pip install --quiet --no-deps --target "$openvino" \
        openvino==2026.4.1 openvino-telemetry==2025.2.0 \
        || echo "OpenVINO did not install: its rows are left out"
fi
model=$(python -c 'from dl_perception.demo import DEMO_CACHE, ensure_model
print(ensure_model(DEMO_CACHE))' | tail -n 1)
checkpoint="$(dirname "$model")/run/best.pt"

run() {  # name, command...: log to $out/name.log, show the table
    local name=$1; shift
    echo "== $name: $*"
    "$@" 2>&1 | tee "$out/$name.log" | grep -v '^  ' || return 1
}
run bench_inference_default_transport dl-perception bench --openvino-path "$openvino" \
    --demo-model "$model" --output "$out/bench_inference_default_transport.json"
FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA run bench_inference_large_data dl-perception bench \
    --openvino-path "$openvino" --demo-model "$model" \
    --output "$out/bench_inference_large_data.json"
run int8_speed_cpu python benchmarks/int8_speed.py --checkpoint "$checkpoint" \
    --openvino-path "$openvino" --output "$out/int8_speed_cpu.json"
run train_throughput_cpu python benchmarks/train_throughput.py --repeats 7 \
    --output "$out/train_throughput_cpu.json"
FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA run soak_10min_large_data python -m dl_perception.bench.soak \
    --minutes 10 --model "$model" --output "$out/soak_10min_large_data.json"
