"""The ``dl-perception`` command answers --version, --help and its sub-commands."""

from __future__ import annotations

import json
from pathlib import Path
import re
import subprocess

from dl_perception import cli
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``cli.main(args)`` in-process; return (exit status, stdout, stderr)."""
    try:
        code = cli.main(list(args))
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code or 0, out, err


def package_xml_version() -> str:
    return re.search(r'<version>(.+)</version>', (REPO_ROOT / 'package.xml').read_text())[1]


def test_version_matches_package_xml(capsys):
    code, out, err = run_main(capsys, '--version')
    assert code == 0, err
    assert out.strip() == f'dl-perception {package_xml_version()}'


@pytest.mark.ros
def test_the_installed_command_runs():
    """The console script itself (everything else here calls ``cli.main`` in-process)."""
    result = subprocess.run(['dl-perception', '--version'], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f'dl-perception {package_xml_version()}'


def test_help_lists_subcommands(capsys):
    code, out, err = run_main(capsys, '--help')
    assert code == 0, err
    assert 'doctor' in out
    assert run_main(capsys)[1] == out


def test_unknown_subcommand_is_an_error(capsys):
    code, _, err = run_main(capsys, 'no-such-command')
    assert code == 2
    assert "invalid choice: 'no-such-command'" in err


def test_unknown_top_level_argument_is_an_error(capsys):
    code, _, err = run_main(capsys, '--no-such-option')
    assert code == 2
    assert 'unrecognized arguments: --no-such-option' in err


def test_export_of_a_missing_checkpoint_is_a_clear_error(capsys, tmp_path):
    code, _, err = run_main(capsys, 'export', str(tmp_path / 'nope.pt'), '-o',
                            str(tmp_path / 'x.onnx'))
    assert code == 2
    assert err.startswith('dl-perception export: error: ')
    assert 'checkpoint not found' in err
    assert list(tmp_path.iterdir()) == []


def test_a_bad_sub_command_argument_is_an_error(capsys):
    code, _, err = run_main(capsys, 'doctor', '--no-such-option')
    assert code == 2
    assert 'dl-perception doctor: error: unrecognized arguments: --no-such-option' in err


def test_doctor_reports_this_environment(capsys):
    code, out, err = run_main(capsys, 'doctor', '--json')
    assert code == 0, err
    report = json.loads(out)
    assert report['dl_perception'] == package_xml_version()
    assert 'CPUExecutionProvider' in report['onnxruntime.providers_built']
    assert report['vision_msgs'].endswith('vision_msgs')
    assert report['RMW_IMPLEMENTATION'] == 'rmw_fastrtps_cpp'


def test_subcommand_help_comes_from_its_module(capsys):
    code, out, err = run_main(capsys, 'doctor', '--help')
    assert code == 0, err
    assert '--json' in out


def test_bench_runs_the_checkouts_pipeline_benchmark(capfd, tmp_path, monkeypatch):
    from dl_perception.bench import source_checkout
    assert source_checkout() == REPO_ROOT
    monkeypatch.chdir(tmp_path)  # paths given are the caller's, not the checkout's
    report = REPO_ROOT / 'benchmarks' / 'results' / 'bench_inference_large_data.json'
    (tmp_path / 'report.json').write_bytes(report.read_bytes())
    code = cli.main(['bench', '--markdown', 'report.json'])
    out, err = capfd.readouterr()
    assert code == 0, err
    assert '| `openvino loop` |' in out and 'Best node:' in out
    assert cli.main(['bench', '--no-such-option']) == 2
    assert 'unrecognized arguments: --no-such-option' in capfd.readouterr().err
