"""
SIGKILL a real training run at each durable write of its outputs, resume it, compare.

Usage: ``kill_loop.py WORK_DIR``; prints one JSON object (counts and per-kill outcomes).

torch is imported once, before any tensor work, and every run (the uninterrupted reference,
each run that is killed, each resume) is a forked child calling ``dl-perception train`` in
process. The test fault-injection point ``DLP_TEST_CRASH_AT_WRITE=N`` makes the child SIGKILL
itself at its Nth durable write; the loop raises N until a run finishes without being killed.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
import signal
import sys

os.environ.setdefault('OMP_NUM_THREADS', '1')

from dl_perception import cli  # noqa: E402
from dl_perception.training import train_cli  # noqa: E402,F401 - imported once, before forks
from dl_perception.training.run_records import CRASH_AT_WRITE_ENV  # noqa: E402

RUN = ['model.name=lenet', 'data.train_subset=512', 'data.test_subset=100',
       'data.val_fraction=0.01', 'data.workers=0', 'data.batch_size=32', 'optimizer.lr=0.05',
       'progress=false', 'seed=3', 'epochs=2']
TIMING = ('images_per_s', 'epoch_seconds', 'train_seconds', 'images_per_s_median', 'run_dir')


def child(argv: list[str], log: Path, crash_at: int | None = None) -> int:
    """Run ``dl-perception ARGV`` in a forked child; its exit status, or -signal."""
    pid = os.fork()
    if pid == 0:  # the child never returns
        code = 99
        try:
            os.environ.pop(CRASH_AT_WRITE_ENV, None)
            if crash_at is not None:
                os.environ[CRASH_AT_WRITE_ENV] = str(crash_at)
            descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(descriptor, 1)
            os.dup2(descriptor, 2)
            code = cli.main(argv)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:  # noqa: B902 - report anything, then leave the child
            import traceback
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def outcome(run_dir: Path) -> dict:
    """Everything a finished run produced that must not depend on interruptions."""
    import torch
    with open(run_dir / 'metrics.csv') as stream:
        rows = [{k: v for k, v in row.items() if k not in TIMING}
                for row in csv.DictReader(stream)]
    summary = json.loads((run_dir / 'summary.json').read_text())
    weights = {}
    for name in ('last.pt', 'best.pt'):
        state = torch.load(run_dir / name, map_location='cpu', weights_only=True)
        weights[name] = (state['epoch'], {k: v.tolist() for k, v in state['model'].items()})
    return {'metrics': rows, 'summary': {k: v for k, v in summary.items() if k not in TIMING},
            'weights': weights}


def main(work: Path) -> dict:
    """Kill at write 1, 2, ... until a run completes; resume each killed run once."""
    common = ['train', *[f'--set={item}' for item in RUN], f'--set=output_dir={work}']
    log = work / 'log.txt'
    reference = child([*common, '--set=run_name=reference'], log)
    if reference != 0:
        raise SystemExit(f'the uninterrupted run failed ({reference}); see {log}')
    kills, trials = 0, []
    for point in range(1, 200):
        name = f'kill-{point}'
        status = child([*common, f'--set=run_name={name}'], log, crash_at=point)
        if status == 0:
            break
        if status != -signal.SIGKILL:
            raise SystemExit(f'run {name} ended with {status}, not SIGKILL; see {log}')
        kills += 1
        resume_log = work / f'{name}.resume.txt'
        resumed = child(['train', '--resume', str(work / name)], resume_log)
        leftovers = sorted(p.name for p in (work / name).iterdir() if p.name.startswith('.'))
        text = resume_log.read_text()
        trials.append({'point': point, 'resume_status': resumed, 'leftovers': leftovers,
                       'completed_commit': 'completed the interrupted commit' in text,
                       'discarded_files': 'unfinished file(s) of an uncommitted write' in text,
                       'resume_log': text[-600:]})
    expected = outcome(work / 'reference')
    for trial in trials:
        if trial['resume_status'] == 0:
            trial['identical'] = outcome(work / f'kill-{trial["point"]}') == expected
    return {'write_points': kills, 'kills': kills, 'trials': trials,
            'resumed': sum(t['resume_status'] == 0 for t in trials),
            'identical': sum(bool(t.get('identical')) for t in trials),
            'refused': sum(t['resume_status'] == 2 for t in trials),
            'completed_commits': sum(t['completed_commit'] for t in trials),
            'discarded_writes': sum(t['discarded_files'] for t in trials)}


if __name__ == '__main__':
    print(json.dumps(main(Path(sys.argv[1]))))
