"""
Training reliability: kill -9 at any write, dead models, damaged checkpoints, bad configs.

Real training runs on real Fashion-MNIST subsets and real files; nothing is mocked. The kill
loop uses the documented test fault-injection point ``DLP_TEST_CRASH_AT_WRITE``.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys

from dl_perception import cli
from dl_perception.export.onnx_export import export_checkpoint
from dl_perception.export.onnx_export import ExportOptions
from dl_perception.training import checkpoint as checkpoints
from dl_perception.training.checkpoint import load_checkpoint
from dl_perception.training.config import parse_config
from dl_perception.training.trainer import Trainer
import pytest
import torch

HELPERS = Path(__file__).resolve().parent / 'helpers'

# LeNet on 1,000 images (600 held out for validation): about a second per epoch here.
SMALL = ['model.name=lenet', 'data.train_subset=1000', 'data.test_subset=500', 'data.workers=0',
         'data.val_fraction=0.01', 'data.batch_size=32', 'optimizer.lr=0.05', 'progress=false',
         'seed=3']
TIMING = ('images_per_s', 'epoch_seconds', 'train_seconds', 'images_per_s_median', 'run_dir')


def small_config(root: Path, *extra: str):
    return parse_config(None, [*SMALL, f'output_dir={root}', *extra])


def metrics(run_dir: Path) -> list[dict]:
    with open(run_dir / 'metrics.csv') as stream:
        return [{k: v for k, v in row.items() if k not in TIMING}
                for row in csv.DictReader(stream)]


def lasting(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in TIMING}


def main_exit(argv: list[str]) -> int:
    """Run ``dl-perception ARGV`` in this process; its exit status."""
    try:
        return cli.main(argv)
    except SystemExit as stop:
        return stop.code


@pytest.fixture(scope='module')
def runs(tmp_path_factory) -> dict[str, Path]:
    """Train a 1-epoch and a 2-epoch run of one config (epoch 1 is the same in both)."""
    root = tmp_path_factory.mktemp('runs')
    folders = {}
    for epochs in (1, 2):
        name = f'epochs{epochs}'
        Trainer(small_config(root, f'epochs={epochs}', f'run_name={name}'), root / name).fit()
        folders[name] = root / name
    return folders


@pytest.mark.slow
def test_kill_9_at_every_write_resumes_identically_or_refuses(tmp_path):
    result = subprocess.run([sys.executable, str(HELPERS / 'kill_loop.py'), str(tmp_path)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    print(f'kill loop: {report["kills"]} kills, {report["resumed"]} resumed, '
          f'{report["identical"]} identical, {report["refused"]} refused; resume completed '
          f'{report["completed_commits"]} cut-short commits and discarded '
          f'{report["discarded_writes"]} uncommitted writes')
    # two epochs of (last.pt, best.pt, metrics.csv, journal, 3 renames, commit) + summary.json
    assert report['kills'] >= 16
    for trial in report['trials']:
        assert trial['leftovers'] == [], trial
        if trial['resume_status'] == 2:
            assert 'no finished epoch to resume' in trial['resume_log'], trial
        else:
            assert trial['resume_status'] == 0 and trial['identical'], trial
    assert report['resumed'] == report['identical'] >= report['kills'] - 4
    assert report['resumed'] + report['refused'] == report['kills']
    # both halves of recovery ran: finishing committed epochs, discarding uncommitted writes
    assert report['completed_commits'] >= 2 and report['discarded_writes'] >= 2


def test_resume_repairs_what_a_kill_between_last_and_best_left(runs, tmp_path):
    """The former write order: last.pt replaced, then a kill before best.pt and metrics.csv."""
    one, two = runs['epochs1'], runs['epochs2']
    # a 1-epoch run: last.pt only
    killed = tmp_path / 'one'
    shutil.copytree(one, killed)
    for name in ('best.pt', 'metrics.csv', 'summary.json'):
        (killed / name).unlink()
    summary = Trainer.resume(killed).fit()
    assert lasting(summary) == {**lasting(json.loads((one / 'summary.json').read_text())),
                                'dead_model': None}
    assert metrics(killed) == metrics(one)
    # a 2-epoch run killed in epoch 2: last.pt of epoch 2, best.pt and metrics of epoch 1
    assert load_checkpoint(two / 'best.pt')['epoch'] == 2, 'epoch 2 must be the best'
    killed = tmp_path / 'two'
    shutil.copytree(two, killed)
    for name in ('best.pt', 'metrics.csv'):
        shutil.copy(one / name, killed / name)
    (killed / 'summary.json').unlink()
    summary = Trainer.resume(killed).fit()
    assert summary['test_accuracy'] == json.loads((two / 'summary.json').read_text())[
        'test_accuracy']
    assert metrics(killed) == metrics(two)
    assert load_checkpoint(killed / 'best.pt')['epoch'] == 2


@pytest.mark.slow
def test_a_dead_model_ends_with_a_warning_and_its_own_exit_status(tmp_path, caplog):
    # lr 20 diverges, is rolled back to 2, and ends at chance accuracy (0.09 measured)
    status = main_exit(['train', *[f'--set={item}' for item in SMALL], '--set=epochs=1',
                        '--set=optimizer.lr=20', f'--set=output_dir={tmp_path}',
                        '--set=run_name=dead'])
    assert status == 4
    assert 'the model is dead' in caplog.text and 'at chance level' in caplog.text
    assert 'chance' in json.loads((tmp_path / 'dead' / 'summary.json').read_text())[
        'dead_model']


@pytest.mark.parametrize('assignment', [
    'divergence.explode_factor=.nan', 'optimizer.lr=.inf', 'regularization.l2=-.inf',
    'data.mean=[.nan]', 'optimizer.betas=[0.9, .nan]'])
def test_non_finite_config_numbers_are_refused(assignment):
    with pytest.raises(ValueError, match='finite'):
        parse_config(None, [assignment])


def flip_first_weight_byte(path: Path) -> None:
    """Flip one exponent bit of the first element of the first weight, on disk."""
    state = torch.load(path, map_location='cpu', weights_only=True)
    tensor = next(iter(state['model'].values()))
    data = bytearray(path.read_bytes())
    offset = data.find(tensor.numpy().tobytes())
    assert offset > 0
    data[offset + 3] ^= 0x40
    path.write_bytes(bytes(data))
    changed = torch.load(path, map_location='cpu', weights_only=True)['model']
    assert not torch.equal(next(iter(changed.values())), tensor), 'the byte was not a weight'


def test_a_flipped_weight_byte_is_refused_by_resume_export_and_evaluate(runs, tmp_path,
                                                                        capsys):
    run = tmp_path / 'run'
    shutil.copytree(runs['epochs2'], run)
    for name in ('last.pt', 'best.pt'):
        flip_first_weight_byte(run / name)
        with pytest.raises(ValueError, match='checksum'):
            load_checkpoint(run / name)
    with pytest.raises(ValueError, match='checksum'):
        Trainer.resume(run)
    for argv in (['export', str(run / 'best.pt'), '-o', str(tmp_path / 'x.onnx')],
                 ['evaluate', str(run / 'best.pt'), '--workers', '0',
                  '--output', str(tmp_path / 'evaluation')]):
        assert main_exit(argv) == 2
        assert 'checksum' in capsys.readouterr().err
    assert not (tmp_path / 'x.onnx').exists() and not (tmp_path / 'evaluation').exists()


def reshape_first_weight(state: dict) -> None:
    key = next(iter(state['model']))
    state['model'][key] = torch.zeros(3, 3)


@pytest.mark.parametrize('damage, message', [
    (reshape_first_weight, 'truncated or corrupt'),
    (lambda state: state.pop('rng'), 'truncated or corrupt'),
    (lambda state: state.update(epoch=-5), 'epoch = -5'),
])
def test_a_malformed_checkpoint_is_a_clear_error(runs, tmp_path, capsys, damage, message):
    run = tmp_path / 'run'
    shutil.copytree(runs['epochs1'], run)
    for name in ('last.pt', 'best.pt'):
        state = torch.load(run / name, map_location='cpu', weights_only=True)
        damage(state)
        torch.save(checkpoints.seal_checkpoint(state), run / name)
    with pytest.raises(ValueError, match=message):
        Trainer.resume(run)
    with pytest.raises(ValueError, match=message):
        export_checkpoint(run / 'best.pt', ExportOptions(output=tmp_path / 'x.onnx'))
    assert main_exit(['evaluate', str(run / 'best.pt'), '--workers', '0',
                      '--output', str(tmp_path / 'evaluation')]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize('assignment', [
    'data.root=/nonexistent', 'model.name=resnet7', 'model.pretrained=/nonexistent/w.pth',
    'divergence.explode_factor=.nan', 'model.options={no_such_option: 1}', 'optimizer.lr=-1'])
def test_a_failing_config_leaves_no_run_folder(tmp_path, assignment):
    output = tmp_path / 'runs'
    status = main_exit(['train', *[f'--set={item}' for item in SMALL], f'--set={assignment}',
                        f'--set=output_dir={output}', '--set=epochs=1'])
    assert status == 2
    assert not output.exists()


def test_checkpoints_and_records_get_the_usual_file_mode(runs):
    for name in ('last.pt', 'best.pt', 'metrics.csv', 'summary.json'):
        mode = (runs['epochs1'] / name).stat().st_mode & 0o777
        assert mode == 0o666 & ~current_umask(), f'{name}: {oct(mode)}'


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_chance_level_is_the_majority_class_share():
    from dl_perception.training.run_verdicts import dead_model_reason
    history = [{'train_loss': 2.0, 'val_accuracy': 0.5}]
    assert dead_model_reason(history, 2.3, chance=0.1, val_count=1000) is None
    assert 'chance' in dead_model_reason(history, 2.3, chance=0.48, val_count=1000)
    assert 'never fell' in dead_model_reason(history, 1.5, chance=0.1, val_count=1000)
