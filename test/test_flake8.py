"""The ament_flake8 linter (ROS's flake8 configuration) passes on the whole package."""

from ament_flake8.main import main_with_errors
import pytest


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    rc, errors = main_with_errors(argv=[])
    assert rc == 0, f'{len(errors)} code style errors:\n' + '\n'.join(errors)
