"""
The models the benchmarks run: ResNet-18 at 224x224 and the Fashion-MNIST demo model.

Both exist as an ONNX file with dl_perception metadata (for ONNX Runtime, the node and
OpenVINO) and as the same weights in a PyTorch state dict (for the baseline node).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dl_perception.inference.model_metadata import ModelMetadata
from dl_perception.preprocessing import PreprocessingSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BenchModel:
    """One model in both forms: ``onnx`` file and ``weights`` (torch state dict + spec)."""

    name: str
    onnx: Path
    weights: Path
    model_spec: dict


def resnet18(folder: Path) -> BenchModel:
    """Export ResNet-18 with seeded random weights (speed does not depend on training)."""
    import onnx
    import torch
    from dl_perception.models import build_model
    spec = {'name': 'resnet18', 'num_classes': 1000, 'in_channels': 3, 'input_size': 224,
            'activation': 'relu', 'batch_norm': None, 'dropout': None, 'options': {}}
    onnx_path, weights = folder / 'resnet18.onnx', folder / 'resnet18.pt'
    if not onnx_path.exists():
        torch.manual_seed(0)
        model = build_model('resnet18', num_classes=1000).eval()
        torch.save(model.state_dict(), weights)
        torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), str(onnx_path), dynamo=True,
                          input_names=['input'], verbose=False,
                          dynamic_shapes=({0: torch.export.Dim('batch')},))
        preprocessing = PreprocessingSpec(224, 224, 'rgb', IMAGENET_MEAN, IMAGENET_STD,
                                          'center_crop', 0.875)
        metadata = ModelMetadata(tuple(f'class_{i}' for i in range(1000)), preprocessing,
                                 architecture='resnet18', dataset='none (random weights)')
        graph = onnx.load(str(onnx_path))
        onnx.helper.set_model_props(graph, metadata.to_props())
        onnx.save(graph, str(onnx_path))
    return BenchModel('resnet18-224', onnx_path, weights, spec)


def demo_model(onnx_path: Path) -> BenchModel:
    """Return the Fashion-MNIST demo model: its ONNX file and the checkpoint behind it."""
    checkpoint = onnx_path.parent / 'run' / 'best.pt'
    if not checkpoint.is_file():
        raise FileNotFoundError(f'{checkpoint} not found: run `make demo` once, or pass '
                                f'another exported model whose run folder sits beside it')
    import torch
    state = torch.load(checkpoint, map_location='cpu', weights_only=True)
    return BenchModel('demo-lenet', onnx_path, checkpoint, state['model_spec'])
