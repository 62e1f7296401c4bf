"""The ament_pep257 linter (ROS's docstring conventions) passes on the whole package."""

from ament_pep257.main import main
import pytest


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    assert main(argv=['.']) == 0, 'docstring style errors, see the output above'
