"""Small real training runs that tests share (the session fixtures live in conftest)."""

from __future__ import annotations

from pathlib import Path


def train_folder_lenet(root: Path, input_size: int, epochs: int) -> Path:
    """Train a LeNet on the image folder ``root / 'data'``, export it; return the ONNX path."""
    from dl_perception.export.onnx_export import export_checkpoint
    from dl_perception.export.onnx_export import ExportOptions
    from dl_perception.training.config import parse_config
    from dl_perception.training.trainer import Trainer
    config = parse_config(None, [
        'model.name=lenet', 'data.dataset=folder', f'data.root={root / "data"}',
        f'data.input_size={input_size}', 'data.workers=0', 'data.batch_size=32',
        f'epochs={epochs}', 'progress=false', f'output_dir={root}', 'run_name=tiles'])
    Trainer(config, root / 'tiles').fit()
    target = root / 'tiles.onnx'
    export_checkpoint(root / 'tiles' / 'best.pt', ExportOptions(output=target, parity_images=32))
    return target
