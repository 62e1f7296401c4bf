"""Labelled image folders: root/{train,val,test}/<class>/* or root/<class>/*."""

from __future__ import annotations

from pathlib import Path

from dl_perception.datasets.sources import FileImages

IMAGE_SUFFIXES = {'.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp'}


def _class_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith('.'))


def _folder_source(folder: Path, classes: list[str]) -> FileImages:
    paths, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((folder / name).rglob('*')):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(path)
                labels.append(label)
    if not paths:
        raise ValueError(f'no images ({", ".join(sorted(IMAGE_SUFFIXES))}) under {folder}')
    return FileImages(paths, labels)


def load_folder(root: Path) -> tuple[dict[str, FileImages], list[str]]:
    """
    Load an image folder: root/{train,val,test}/<class>/* or root/<class>/*.

    Returns the sources found (key 'train' always, 'val' and 'test' when present) and the
    sorted class names of train.
    """
    if not root.is_dir():
        raise FileNotFoundError(f'image folder not found: {root}')
    split_root = root / 'train'
    base = split_root if split_root.is_dir() else root
    classes = _class_folders(base)
    if len(classes) < 2:
        raise ValueError(f'{base} needs one sub-folder per class (at least two), '
                         f'found {classes}')
    sources = {'train': _folder_source(base, classes)}
    for split in ('val', 'test'):
        if split_root.is_dir() and (root / split).is_dir():
            found = _class_folders(root / split)
            if found != classes:
                raise ValueError(f'{root / split} classes {found} differ from train {classes}')
            sources[split] = _folder_source(root / split, classes)
    return sources, classes
