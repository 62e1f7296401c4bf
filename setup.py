"""Build description of the dl_perception ament_python package."""

from pathlib import Path

from setuptools import find_packages
from setuptools import setup

PACKAGE_NAME = 'dl_perception'
HERE = Path(__file__).resolve().parent


def _version() -> str:
    """Read the version from package.xml, the single place it is written."""
    for line in (HERE / 'package.xml').read_text().splitlines():
        line = line.strip()
        if line.startswith('<version>'):
            return line.removeprefix('<version>').removesuffix('</version>')
    raise RuntimeError('package.xml has no <version> element')


def _share_files(folder: str) -> list[tuple[str, list[str]]]:
    """Install every file under `folder` into share/, keeping its sub-folders."""
    entries: dict[str, list[str]] = {}
    for path in sorted((HERE / folder).rglob('*')):
        if path.is_file() and not path.name.startswith('.') and '__pycache__' not in path.parts:
            relative = path.relative_to(HERE)
            target = str(Path('share') / PACKAGE_NAME / relative.parent)
            entries.setdefault(target, []).append(str(relative))
    return sorted(entries.items())


setup(
    name=PACKAGE_NAME,
    version=_version(),
    packages=find_packages(exclude=['test', 'test.*', 'benchmarks', 'benchmarks.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE_NAME}']),
        (f'share/{PACKAGE_NAME}', ['package.xml']),
        *_share_files('launch'),
        *_share_files('config'),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='dl_perception developers',
    maintainer_email='dev@dl-perception.invalid',
    description='Train classic CNNs, export self-describing ONNX, classify images on ROS 2.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'dl-perception = dl_perception.cli:main',
            'classifier_node = dl_perception.ros.entry_points:classifier_node',
            'image_source_node = dl_perception.ros.entry_points:image_source_node',
        ],
    },
)
