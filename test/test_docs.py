r"""
Every import path and command in README.md and docs/*.md is checked here.

How each kind of code block is checked:

- ``python`` blocks: every ``dl_perception`` import path they name is imported (fast), and each
  block is executed as written (slow: the blocks that open ``lenet.onnx`` run in a folder
  holding the session's tiny exported LeNet).
- ``bash`` / ``console`` blocks, line by line (comments and backslash continuations handled):
  ``dl-perception SUB ...`` is parsed by SUB's own argument parser (unknown options and bad
  choices fail), and a training config named with ``--config`` is loaded with its ``--set``
  overrides (so every key and value is valid); no training runs. The slow test then runs
  ``dl-perception SUB --help`` for every SUB named, and ``dl-perception doctor`` for real.
  ``python -m MODULE ...`` runs with ``--help`` appended and its help must name every
  ``--option`` the line uses (slow); a bare ``python -m benchmarks`` runs for real (it lists
  the benchmarks). ``make X``: the Makefile has target X.
  ``ros2 launch``: the launch file is in ``launch/`` and every ``name:=`` argument is declared
  in it. ``ros2 run``: the executable is a console script of setup.py, ``-p name:=`` is a
  parameter that executable declares, ``--params-file`` names an existing file. ``ros2
  param``, ``lifecycle`` and ``service``: the node is one of ours and a parameter name is
  declared. A command of any other kind fails the test until it is classified here.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import importlib.util
from pathlib import Path
import re
import shlex
import shutil
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
FENCE = re.compile(r'^```(\w*)[^\n]*\n(.*?)^```', re.MULTILINE | re.DOTALL)
SHELL_LANGUAGES = ('bash', 'console', 'sh', 'shell')
# Commands the docs show that are not ours to check (other tools, shell built-ins).
NOT_OURS = ('cd', 'git', 'rosdep', 'colcon', 'source', 'tensorboard', 'export')
OUR_NODES = {'/classifier': 'classifier_node', '/image_source': 'image_source_node'}


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block: its document, language, first line number and text."""

    document: str
    language: str
    line: int
    text: str

    def __str__(self) -> str:
        """Name the block by document and line, for test ids and messages."""
        return f'{self.document}:{self.line}'


def code_blocks() -> list[Block]:
    """Return the fenced code blocks of every document."""
    blocks = []
    for document in DOCUMENTS:
        text = document.read_text()
        for match in FENCE.finditer(text):
            line = text.count('\n', 0, match.start()) + 2
            blocks.append(Block(str(document.relative_to(ROOT)), match.group(1), line,
                                match.group(2)))
    return blocks


def commands() -> list[tuple[str, list[str]]]:
    """Return (where, argv) for every command of the shell blocks, comments stripped."""
    found = []
    for block in code_blocks():
        if block.language not in SHELL_LANGUAGES:
            continue
        text = block.text.replace('\\\n', ' ')
        for offset, line in enumerate(text.splitlines()):
            line = line.strip()
            if block.language == 'console' and line.startswith('$ '):
                line = line[2:]
            line = line.replace('$(which dl-perception)', 'dl-perception')
            words = shlex.split(line, comments=True)
            while words:  # split at && and ;
                cut = next((i for i, w in enumerate(words) if w in ('&&', ';')), len(words))
                found.append((f'{block.document}:{block.line + offset}', words[:cut]))
                words = words[cut + 1:]
    return found


def commands_of(*prefix: str) -> list[tuple[str, list[str]]]:
    """Return the commands that start with these words (after any VAR=value words)."""
    return [(where, argv) for where, argv in (
        (where, strip_environment(argv)) for where, argv in commands())
        if argv[:len(prefix)] == list(prefix)]


def strip_environment(argv: list[str]) -> list[str]:
    """Drop leading VAR=value assignments, and the torchrun launcher before its program."""
    while argv and re.fullmatch(r'[A-Z_][A-Z0-9_]*=\S*', argv[0]):
        argv = argv[1:]
    if argv[:1] == ['torchrun']:
        argv = argv[argv.index('dl-perception'):]
    return argv


def python_blocks() -> list[Block]:
    """Return the python blocks."""
    return [block for block in code_blocks() if block.language == 'python']


def test_documents_have_code_to_check():
    """The README and every promised document exist, and the test finds their blocks."""
    names = {path.name for path in DOCUMENTS}
    assert {'training.md', 'export_and_runtime.md', 'nodes_and_parameters.md',
            'robot_install.md', 'performance.md'} <= names
    assert python_blocks() and commands()
    assert len((ROOT / 'README.md').read_text().splitlines()) <= 130


def test_readme_starts_with_the_two_commands():
    """The first block is the demo and the test command; CI runs that test command."""
    first = code_blocks()[0]
    assert first.document == 'README.md'
    lines = [shlex.split(line, comments=True) for line in first.text.splitlines()]
    assert lines == [['make', 'demo'], ['make', 'test']]
    ci = (ROOT / '.ci' / 'run').read_text()
    ci_lines = [line.strip() for line in ci.splitlines()]
    assert 'make test' in ci_lines or 'README.md' in ci


def test_every_command_is_checked():
    """Every command line is one this test knows how to check, or another tool's."""
    known = ('dl-perception', 'python', 'make', 'ros2', 'bash')
    for where, argv in commands():
        argv = strip_environment(argv)
        assert argv[0] in known + NOT_OURS, f'{where}: no check for {" ".join(argv)}'


def test_python_import_paths_exist():
    """Every dl_perception module and name a python block imports can be imported."""
    for block in python_blocks():
        for node in ast.walk(ast.parse(block.text)):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith('dl_perception'):
                        importlib.import_module(alias.name)
            elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith(
                    'dl_perception'):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name) or importlib.util.find_spec(
                        f'{node.module}.{alias.name}'), f'{block}: {node.module}.{alias.name}'


@pytest.mark.slow
@pytest.mark.parametrize('block', python_blocks(), ids=str)
def test_python_block_runs(block, request, tmp_path, monkeypatch):
    """Each python block runs as written; 'lenet.onnx' is the session's tiny exported LeNet."""
    if 'lenet.onnx' in block.text:
        shutil.copy(request.getfixturevalue('tiny_onnx'), tmp_path / 'lenet.onnx')
    monkeypatch.chdir(tmp_path)
    exec(compile(block.text, str(block), 'exec'), {'__name__': '__docs__'})


def cli_module(name: str):
    """Return the module behind ``dl-perception name``."""
    from dl_perception.cli import SUBCOMMANDS
    command = next((c for c in SUBCOMMANDS if c.name == name), None)
    assert command is not None, f'dl-perception has no sub-command {name}'
    return importlib.import_module(command.module)


def sub_command_parser(name: str):
    """Return the parser of ``dl-perception name``; a forwarding one's is its program's."""
    if name == 'bench':
        from benchmarks.pipeline import build_parser
        parser = build_parser()
        parser.exit_on_error = False
        return parser
    parser = argparse.ArgumentParser(prog=f'dl-perception {name}', exit_on_error=False)
    cli_module(name).add_arguments(parser)
    return parser


def test_cli_lines_parse():
    """Each dl-perception line is accepted by its sub-command's parser; configs load."""
    from dl_perception.training.config import load_config
    lines = commands_of('dl-perception')
    assert lines
    for where, argv in lines:
        assert len(argv) > 1, f'{where}: no sub-command'
        parser = sub_command_parser(argv[1])
        try:
            args = parser.parse_args(argv[2:])
        except (argparse.ArgumentError, SystemExit) as error:
            pytest.fail(f'{where}: {" ".join(argv)}: {error}')
        if getattr(args, 'config', None) and not getattr(args, 'resume', None):
            load_config(str(ROOT / args.config), args.overrides)


def test_training_lines_use_small_budgets_or_recipes():
    """A doc line that trains either runs a shipped recipe or a small budget (see docs)."""
    for where, argv in commands_of('dl-perception', 'train'):
        if '--config' in argv:
            assert (ROOT / argv[argv.index('--config') + 1]).is_file(), where


@pytest.mark.slow
def test_cli_help_and_doctor_run():
    """``dl-perception SUB --help`` works for every SUB the docs name; doctor runs for real."""
    names = sorted({argv[1] for _, argv in commands_of('dl-perception')})
    for name in names:
        result = subprocess.run(['dl-perception', name, '--help'], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, f'dl-perception {name} --help: {result.stderr}'
    result = subprocess.run(['dl-perception', 'doctor'], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize('where, argv', commands_of('python', '-m'), ids=lambda v: str(v))
def test_python_module_lines_run(where, argv):
    """``python -m MODULE ...`` answers --help naming its options; a bare module runs."""
    module = argv[2]
    command = [sys.executable, *argv[1:]] + ([] if len(argv) == 3 else ['--help'])
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f'{where}: {" ".join(command)}: {result.stderr[-2000:]}'
    for option in (word.split('=')[0] for word in argv[3:] if word.startswith('--')):
        assert option in result.stdout, f'{where}: {module} {argv[3]} has no {option}'


def test_bash_lines_name_existing_scripts():
    """``bash FILE`` lines name a script of the repository."""
    for where, argv in commands_of('bash'):
        assert (ROOT / argv[1]).is_file(), f'{where}: {argv[1]} does not exist'


def test_make_targets_exist():
    """Every ``make X`` the docs show is a target of the Makefile."""
    targets = set(re.findall(r'^([A-Za-z][\w-]*):', (ROOT / 'Makefile').read_text(),
                             re.MULTILINE))
    lines = commands_of('make')
    assert lines
    for where, argv in lines:
        for target in argv[1:]:
            assert target in targets, f'{where}: no make target {target}'


def executables() -> set[str]:
    """Return the console scripts setup.py installs."""
    return set(re.findall(r"'([\w-]+) = [\w.]+:\w+'", (ROOT / 'setup.py').read_text()))


def declared_parameters(executable: str) -> set[str]:
    """Return the parameter names the node behind this executable declares."""
    module = {'classifier_node': 'classifier_parameters',
              'image_source_node': 'image_source_parameters'}[executable]
    table = importlib.import_module(f'dl_perception.ros.{module}').PARAMETERS
    return {parameter.name for parameter in table}


def launch_arguments(launch_file: Path) -> set[str]:
    """Return the names a launch file declares with DeclareLaunchArgument."""
    return set(re.findall(r"DeclareLaunchArgument\(\s*'(\w+)'", launch_file.read_text()))


def test_ros2_launch_lines():
    """Launch files exist and every ``name:=`` argument is declared in them."""
    lines = commands_of('ros2', 'launch')
    assert lines
    for where, argv in lines:
        assert argv[2] == 'dl_perception', where
        launch_file = ROOT / 'launch' / argv[3]
        assert launch_file.is_file(), f'{where}: no launch/{argv[3]}'
        declared = launch_arguments(launch_file)
        for word in argv[4:]:
            assert word.split(':=')[0] in declared, f'{where}: {argv[3]} has no {word}'


def test_ros2_run_lines():
    """Executables exist; ``-p`` names a declared parameter; parameter files exist."""
    lines = commands_of('ros2', 'run')
    assert lines
    for where, argv in lines:
        assert argv[2] == 'dl_perception', where
        assert argv[3] in executables(), f'{where}: no executable {argv[3]}'
        declared = declared_parameters(argv[3])
        for flag, value in zip(argv[4:], argv[5:]):
            if flag == '-p':
                assert value.split(':=')[0] in declared, f'{where}: {argv[3]} has no {value}'
            elif flag == '--params-file':
                assert (ROOT / value).is_file(), f'{where}: no {value}'


def test_ros2_node_commands_name_our_nodes_and_parameters():
    """``ros2 param|lifecycle|service`` lines name our nodes and declared parameters."""
    lines = [*commands_of('ros2', 'param'), *commands_of('ros2', 'lifecycle'),
             *commands_of('ros2', 'service')]
    assert lines
    for where, argv in lines:
        node = next(word for word in argv[3:] if word.startswith('/'))
        assert node.split('/')[1] in {n.strip('/') for n in OUR_NODES}, f'{where}: {node}'
        if argv[1] == 'param' and argv[2] in ('set', 'get', 'describe'):
            name = argv[4]
            assert name in declared_parameters(OUR_NODES[node]), f'{where}: no {name}'
