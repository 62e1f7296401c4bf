"""The installed ``dl-perception`` command answers --version, --help and its sub-commands."""

from __future__ import annotations

import json
from pathlib import Path
import re
import subprocess

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(['dl-perception', *args], capture_output=True, text=True, timeout=120)


def package_xml_version() -> str:
    return re.search(r'<version>(.+)</version>', (REPO_ROOT / 'package.xml').read_text())[1]


def test_version_matches_package_xml():
    result = run_cli('--version')
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f'dl-perception {package_xml_version()}'


def test_help_lists_subcommands():
    result = run_cli('--help')
    assert result.returncode == 0, result.stderr
    assert 'doctor' in result.stdout
    assert run_cli().stdout == result.stdout


def test_unknown_subcommand_is_an_error():
    result = run_cli('no-such-command')
    assert result.returncode == 2
    assert "invalid choice: 'no-such-command'" in result.stderr


def test_doctor_reports_this_environment():
    result = run_cli('doctor', '--json')
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report['dl_perception'] == package_xml_version()
    assert 'CPUExecutionProvider' in report['onnxruntime.providers_built']
    assert report['vision_msgs'].endswith('vision_msgs')
    assert report['RMW_IMPLEMENTATION'] == 'rmw_fastrtps_cpp'


def test_subcommand_help_comes_from_its_module():
    result = run_cli('doctor', '--help')
    assert result.returncode == 0, result.stderr
    assert '--json' in result.stdout
