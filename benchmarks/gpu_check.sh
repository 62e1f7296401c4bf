#!/usr/bin/env bash
# The GPU checks of the performance issue, as one script for the lent GPU machine:
#   python -m benchmarks gpu_check [output folder]   (default: $OUT, else ./gpu_check)
# Needs torch with CUDA; the Fashion-MNIST IDX files in data/fashion-mnist (carried) or in
# /usr/share/datasets/fashion-mnist. ONNX Runtime providers are measured only when
# onnxruntime imports there. Each step writes its JSON and log; a failing step does not stop
# the others, and the script exits non-zero if any failed.
set -u
out=${1:-${OUT:-gpu_check}}
mkdir -p "$out"
data=/usr/share/datasets/fashion-mnist
[ -d data/fashion-mnist ] && data=data/fashion-mnist
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
status=0
step() {
    local name=$1; shift
    echo "== $name: $*"
    if "$@" > "$out/$name.log" 2>&1; then tail -n 8 "$out/$name.log"; else
        status=1; echo "FAILED ($name):"; tail -n 20 "$out/$name.log"; fi
}
step nvidia-smi nvidia-smi
step versions python -c 'import torch, sys; print(sys.version); print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())'
step train_224 python -m benchmarks gpu_training --size 224 --data "$data" --output "$out/gpu_training_224.json"
step train_28 python -m benchmarks gpu_training --size 28 --batch 512 --steps 100 --data "$data" --output "$out/gpu_training_28.json"
# Accuracy against the published rows (DESIGN.md section 5): the four seed networks on
# Fashion-MNIST with AMP + channels_last (the CUDA defaults), 12 epochs each, so that the four
# fit in about ten minutes. Needs the package's training dependencies (OpenCV, PyYAML) there.
if python -c 'import cv2, yaml' 2>/dev/null; then
    step train_accuracy python -m benchmarks train_fashion_mnist config/train/resnet18.yaml \
        config/train/vgg16.yaml config/train/googlenet.yaml config/train/alexnet.yaml \
        --set device=cuda --set epochs=12 --set data.workers=8 --set "data.root=$data" \
        --output "$out/train_fashion_mnist_gpu.json"
else
    echo "== train_accuracy: OpenCV or PyYAML is not installed on this machine; not measured" \
        | tee "$out/train_accuracy.log"
fi
if python -c 'import onnxruntime' 2>/dev/null; then
    step providers python -m benchmarks inference_providers --output "$out/inference_providers.json"
else
    echo "== providers: onnxruntime is not installed on this machine; not measured" | tee "$out/providers.log"
fi
exit $status
