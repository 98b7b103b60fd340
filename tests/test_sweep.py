"""The sweep (atari100k/sweep/): grid expansion, name checks, locks, the live summary, and real
sweeps of tiny runs on a local Ray instance.

Cheap tests come first. The real part (last) runs the 2 agents x 2 games x 2 seeds grid of
150-step runs three times on a local Ray instance with 2 CPUs, after killing one run mid-way
(SIGKILL once its first checkpoint exists) and corrupting another one's checkpoint:

1. first sweep: the killed run resumes from its checkpoint; the corrupt run fails, is retried
   once, then reported with its log tail; the six others finish; exit code 1;
2. (corrupt checkpoint removed) second sweep: only that run starts; the grid has 8 result.json;
3. third sweep: nothing to do, no Ray, no run started, nothing rewritten.
"""

import contextlib
import io
import json
import os
import signal
import shlex
import socket
import subprocess
import sys
import time
import uuid

import pytest

from atari100k import configs, environment, run
from atari100k.files import FAILED_FILE
from atari100k.sweep import cli, execution, locks
from atari100k.sweep import grid as sweep_grid
from atari100k.sweep import summary as sweep_summary

TINY = ['JaxDQNAgent.min_replay_history = 100',
        'Runner.max_steps_per_episode = 50',
        'Atari100kRunner.chunk_steps = 50',
        'Atari100kRunner.checkpoint_every = 100']
STEPS = 150
CHEAP_ANALYSIS = '--reps 100 --curve_reps 20 --no-plots --jobs 1'
GRID = ['--agents', 'drq', 'drq_ht', '--games', 'Pong', 'boxing', '--seeds', '2']
NAMES = {f'{a}/{g}/seed_{s}' for a in ('drq', 'drq_ht') for g in ('Pong', 'Boxing')
         for s in (0, 1)}


def call(argv):
  """Runs cli.main(argv); returns (exit code, what it printed on stdout)."""
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    code = cli.main([str(a) for a in argv])
  return code, out.getvalue()


# ---------------------------------------------------------------------------------- the grid
def test_parse_seeds():
  assert sweep_grid.parse_seeds('3') == [0, 1, 2]
  assert sweep_grid.parse_seeds('5-7') == [5, 6, 7]
  assert sweep_grid.parse_seeds('0,3,7') == [0, 3, 7]
  assert sweep_grid.parse_seeds('7,') == [7]
  for bad in ('x', '0', '-1,2', '1,1', '4-2', ''):
    with pytest.raises(sweep_grid.SweepError, match='not a seed count or list'):
      sweep_grid.parse_seeds(bad)


def test_list_prints_one_runner_command_per_run(tmp_path, capsys):
  argv = GRID + ['--runs', tmp_path, '--steps', STEPS, '--eval_episodes', 1,
                 '--gin', ';'.join(TINY[:2]), '--gin', ';'.join(TINY[2:]), '--list']
  code, out = call(argv)
  assert code == 0
  lines = out.splitlines()
  assert len(lines) == 8
  seen = []
  for line in lines:
    words = shlex.split(line)
    assert words[:6] == ['cd', sweep_grid.REPO_ROOT, '&&', sys.executable, '-m', 'atari100k.run']
    args = run.build_parser().parse_args(words[6:])  # the runner's own command line accepts it
    assert args.base_dir == str(tmp_path) and args.steps == STEPS and args.eval_episodes == 1
    assert args.gin_bindings == TINY and args.no_progress
    seen.append(f'{args.agent}/{args.game}/seed_{args.seed}')
  assert seen[0] == 'drq/Pong/seed_0' and seen[-1] == 'drq_ht/Boxing/seed_1'  # agents outermost
  assert set(seen) == NAMES  # 'boxing' canonicalised by environment.check_game
  assert not os.listdir(tmp_path)  # listing starts nothing


def test_all_games_and_all_agents(tmp_path):
  code, out = call(['--agents', 'all', '--games', 'all', '--seeds', '1', '--runs', tmp_path,
                    '--list'])
  assert code == 0
  assert len(out.splitlines()) == len(configs.available_agents()) * len(environment.GAMES)
  assert len(environment.GAMES) == 26


@pytest.mark.parametrize('argv, message', [
    (['--agents', 'drq', 'drq_hat', '--games', 'Pong'], "Unknown agent 'drq_hat'"),
    (['--agents', 'drq', '--games', 'Pong', 'Pongg'], "Unknown game 'Pongg'"),
    (['--agents', 'drq', '--seeds', 'two'], "--seeds 'two' is not a seed count"),
    (['--games', 'Pong'], '--agents is required'),
    (['--agents', 'drq', '--retries', '-1'], '--retries must be 0 or more'),
    (['--agents', 'drq', '--games', 'Pong', '--gin', 'DrQAgent.ht_reset_perod = 10'],
     "The gin binding 'DrQAgent.ht_reset_perod = 10' cannot be applied"),
])
def test_bad_input_is_exit_code_2_before_anything_starts(tmp_path, capsys, argv, message):
  assert cli.main(argv + ['--runs', str(tmp_path)]) == 2
  err = capsys.readouterr().err
  assert message in err and 'Traceback' not in err
  if message.startswith('Unknown agent'):
    assert 'drq_hr40k_ht' in err  # the valid names are listed
  if message.startswith('Unknown game'):
    assert "Did you mean 'Pong'?" in err and 'UpNDown' in err
  assert not os.listdir(tmp_path)


def test_thread_env_pins_xla_and_blas_threads():
  one = execution.thread_env(1, 0, base={'XLA_FLAGS': '--xla_dump_to=/tmp/x'})
  assert one['XLA_FLAGS'] == ('--xla_cpu_multi_thread_eigen=false '
                              'intra_op_parallelism_threads=1 --xla_dump_to=/tmp/x')
  assert one['OMP_NUM_THREADS'] == one['TF_NUM_INTRAOP_THREADS'] == '1'
  assert one['JAX_PLATFORMS'] == 'cpu'
  four = execution.thread_env(4, 0.5, base={})
  assert four['XLA_FLAGS'] == 'intra_op_parallelism_threads=4'
  assert four['OPENBLAS_NUM_THREADS'] == '4'
  assert 'JAX_PLATFORMS' not in four and four['XLA_PYTHON_CLIENT_PREALLOCATE'] == 'false'


# ---------------------------------------------------------------------------------- locks
def tiny_run(tmp_path, seed=0):
  return sweep_grid.Run('drq', 'Pong', seed, str(tmp_path), tuple(TINY), STEPS, 1)


def write_lock(folder, **holder):
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, locks.LOCK_FILE), 'w') as f:
    json.dump(dict({'token': uuid.uuid4().hex}, **holder), f)


def dead_pid():
  proc = subprocess.Popen(['true'])
  proc.wait()
  return proc.pid


def test_run_held_by_a_live_process_is_left_alone(tmp_path):
  r = tiny_run(tmp_path)
  write_lock(r.folder, host=socket.gethostname(), pid=os.getpid(), since='now')
  before = open(os.path.join(r.folder, locks.LOCK_FILE)).read()
  result = execution.run_attempt(r, 1, 1)  # the body of the Ray task
  assert result['status'] == 'locked' and result['holder']['pid'] == os.getpid()
  assert not os.path.exists(os.path.join(r.folder, execution.LOG_FILE))  # no subprocess started
  assert open(os.path.join(r.folder, locks.LOCK_FILE)).read() == before


def test_finished_run_is_skipped_without_a_lock(tmp_path):
  r = tiny_run(tmp_path)
  os.makedirs(r.folder)
  open(os.path.join(r.folder, 'result.json'), 'w').write('{}')
  assert execution.run_attempt(r, 1, 1)['status'] == 'skipped'
  assert sorted(os.listdir(r.folder)) == ['result.json']


def test_a_diverged_run_is_reported_failed_and_not_started(tmp_path):
  r = tiny_run(tmp_path)
  os.makedirs(r.folder)
  with open(os.path.join(r.folder, FAILED_FILE), 'w') as f:
    json.dump({'status': 'diverged', 'why': 'non-finite loss at gradient step 2'}, f)
  code, out = call(['--agents', 'drq', '--games', 'Pong', '--seeds', '1', '--runs', tmp_path,
                    '--steps', STEPS, '--gin', ';'.join(TINY), '--eval_episodes', 1])
  assert code == 1
  assert '0 finished, 1 diverged before (not retried), 0 to run' in out
  assert 'FAILED drq/Pong/seed_0: diverged (non-finite loss at gradient step 2)' in out
  assert 'Ray instance' not in out
  assert sorted(os.listdir(r.folder)) == [FAILED_FILE]


@pytest.mark.parametrize('code, retried', [(1, True), (7, True), (2, False), (3, False),
                                           (4, False), (6, False)])
def test_deterministic_exit_codes_are_not_retried(code, retried):
  r = sweep_grid.Run('drq', 'Pong', 0, '/nonexistent', (), STEPS, 1)
  queue, summary = [], sweep_summary.Summary(1, 0, out=io.StringIO())
  result = {'run': r.name, 'attempt': 1, 'status': 'failed', 'returncode': code,
            'log': 'sweep.log', 'log_tail': ''}
  execution._account(result, r, 1, 3, queue, summary)  # pylint: disable=protected-access
  assert (queue == [(r, 2)]) == retried and summary.failed == (0 if retried else 1)


def test_stale_locks_are_broken_and_live_ones_kept(tmp_path):
  folder = str(tmp_path / 'run')
  host = socket.gethostname()
  # Dead process on this host: stale at once.
  write_lock(folder, host=host, pid=dead_pid(), child_pid=dead_pid())
  mine, holder = locks.acquire_lock(folder, stale_s=3600)
  assert holder is None and mine['pid'] == os.getpid()
  assert json.load(open(os.path.join(folder, locks.LOCK_FILE)))['token'] == mine['token']
  # Now held by us (alive): a second attempt is refused.
  again, holder = locks.acquire_lock(folder, stale_s=3600)
  assert again is None and holder['token'] == mine['token']
  locks.release_lock(folder, mine)
  assert not os.path.exists(os.path.join(folder, locks.LOCK_FILE))
  # Another host's lock: kept while its heartbeat is recent, broken once older than stale_s.
  write_lock(folder, host='another-node', pid=1)
  assert locks.acquire_lock(folder, stale_s=3600)[0] is None
  old = time.time() - 2 * 3600
  os.utime(os.path.join(folder, locks.LOCK_FILE), (old, old))
  mine, holder = locks.acquire_lock(folder, stale_s=3600)
  assert mine is not None and holder is None
  # Releasing never removes a lock that is not ours.
  os.remove(os.path.join(folder, locks.LOCK_FILE))
  write_lock(folder, host='another-node', pid=1)
  locks.release_lock(folder, mine)
  assert os.path.exists(os.path.join(folder, locks.LOCK_FILE))
  assert [f for f in os.listdir(folder) if 'stale' in f or 'tmp' in f] == []


# ---------------------------------------------------------------------------------- summary
def test_summary_line_and_eta():
  out = io.StringIO()
  summary = sweep_summary.Summary(total=10, finished_before=2, out=out)
  summary.running, summary.queued, summary.slots = 2, 4, 2
  assert summary.line().endswith('ETA ?')  # nothing finished yet
  summary.done, summary.durations = 2, [60.0, 120.0]
  summary.running, summary.queued = 2, 2
  # remaining 4 runs x 90 s mean / 2 slots = 180 s
  assert summary.line() == ('[sweep] done 4/10 (2 before this sweep) | running 2 | failed 0 | '
                            'queued 2 | ETA 0:03:00')
  summary.refresh()
  summary.refresh()  # unchanged: not printed again
  assert out.getvalue() == summary.line() + '\n'


def test_analyze_only(tmp_path):
  code, out = call(['--runs', tmp_path, '--analyze-only'])
  assert code == 0 and 'nothing to analyze' in out
  for agent, game, seed in [(a, g, s) for a in ('x', 'y') for g in ('Pong', 'Boxing')
                            for s in (0, 1)]:
    folder = tmp_path / agent / game / f'seed_{seed}'
    folder.mkdir(parents=True)
    (folder / 'result.json').write_text(json.dumps(
        {'agent': agent, 'game': game, 'seed': seed, 'score': 3.0 + seed}))
  code, out = call(['--runs', tmp_path, '--analyze-only', '--analyze-args', CHEAP_ANALYSIS])
  assert code == 0 and '--common-games' in out
  assert (tmp_path / 'analysis' / 'results.txt').exists()


# ---------------------------------------------------------------------------------- real sweeps
def kill_after_first_checkpoint(r: sweep_grid.Run, timeout_s=300):
  """Starts the run's own command, SIGKILLs it once its first checkpoint is written."""
  checkpoint = os.path.join(r.folder, 'checkpoints', 'checkpoint.npz')
  os.makedirs(r.folder, exist_ok=True)
  with open(os.path.join(r.folder, 'killed.log'), 'wb') as log:
    proc = subprocess.Popen(r.argv(sys.executable), cwd=sweep_grid.REPO_ROOT,
                            env=execution.thread_env(1, 0), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + timeout_s
    while not os.path.exists(checkpoint) and proc.poll() is None and time.time() < deadline:
      time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  assert os.path.exists(checkpoint), open(os.path.join(r.folder, 'killed.log')).read()[-2000:]
  assert not os.path.exists(os.path.join(r.folder, 'result.json'))


def snapshot(base):
  """mtime of every result.json and sweep.log under base."""
  times = {}
  for folder, _, files in os.walk(base):
    for name in files:
      if name in ('result.json', execution.LOG_FILE):
        times[os.path.join(folder, name)] = os.stat(os.path.join(folder, name)).st_mtime_ns
  return times


@pytest.fixture(scope='module')
def sweeps(tmp_path_factory):
  base = tmp_path_factory.mktemp('sweep_runs')
  argv = GRID + ['--runs', base, '--steps', STEPS, '--eval_episodes', 1, '--gin', ';'.join(TINY),
                 '--cpus', 2, '--retries', 1, '--refresh', 1, '--analyze-args', CHEAP_ANALYSIS]
  grid = {r.name: r for r in sweep_grid.build_grid(['drq', 'drq_ht'], ['Pong', 'Boxing'], [0, 1],
                                              str(base), TINY, STEPS, 1)}
  kill_after_first_checkpoint(grid['drq/Pong/seed_0'])
  # A fault that may pass (an unwritable progress.csv: exit 7) is retried; an unreadable
  # checkpoint (exit 6) fails the same way every time and is not.
  broken = grid['drq_ht/Boxing/seed_1']
  unwritable = os.path.join(broken.folder, 'progress.csv')
  os.makedirs(unwritable)
  bad_checkpoint = grid['drq_ht/Pong/seed_1']
  os.makedirs(os.path.join(bad_checkpoint.folder, 'checkpoints'))
  corrupt = os.path.join(bad_checkpoint.folder, 'checkpoints', 'checkpoint.npz')
  with open(corrupt, 'wb') as f:
    f.write(b'not a checkpoint')
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv('RAY_AUTH_TOKEN', uuid.uuid4().hex)  # Ray's token auth without ~/.ray/auth_token
    mp.delenv('RAY_ADDRESS', raising=False)
    first = call(argv)
    after_first = {n for n, r in grid.items() if sweep_grid.is_finished(r)}
    broken_log_after_first = open(os.path.join(broken.folder, execution.LOG_FILE)).read()
    bad_checkpoint_log_after_first = open(os.path.join(bad_checkpoint.folder,
                                                       execution.LOG_FILE)).read()
    os.rmdir(unwritable)
    os.remove(corrupt)
    second = call(argv)
    before_third = snapshot(base)
    third = call(argv)
  return {'base': base, 'grid': grid, 'first': first, 'second': second, 'third': third,
          'after_first': after_first, 'broken_log_after_first': broken_log_after_first,
          'bad_checkpoint_log_after_first': bad_checkpoint_log_after_first,
          'before_third': before_third}


def test_real_sweep_ends_with_one_result_per_run(sweeps):
  code, out = sweeps['second']
  assert code == 0, out
  assert '8 runs in' in out and '6 finished, 0 diverged before (not retried), 2 to run' in out
  for name, r in sweeps['grid'].items():
    with open(os.path.join(r.folder, 'result.json')) as f:
      result = json.load(f)
    assert f'{result["agent"]}/{result["game"]}/seed_{result["seed"]}' == name
    assert result['env_steps'] == STEPS and result['eval_episodes'] == 1
    assert result['gin_bindings'] == TINY
    assert not os.path.exists(os.path.join(r.folder, locks.LOCK_FILE))  # every lock released
  first_out = sweeps['first'][1]
  assert '0 finished, 0 diverged before (not retried), 8 to run' in first_out and 'on a local Ray instance (2 CPUs)' in first_out
  assert '| running 2 |' in first_out and '| queued ' in first_out and 'ETA 0:' in first_out
  results_txt = os.path.join(sweeps['base'], 'analysis', 'results.txt')
  assert 'drq_ht' in open(results_txt).read()  # the analysis ran at the end


def test_killed_run_resumes_from_its_checkpoint(sweeps):
  r = sweeps['grid']['drq/Pong/seed_0']
  assert 'done drq/Pong/seed_0 in' in sweeps['first'][1]
  assert '(resumed from step 100)' in sweeps['first'][1]
  log = open(os.path.join(r.folder, execution.LOG_FILE)).read()
  assert f'Resuming {r.folder} from step 100.' in log
  rows = [line.split(',')[0] for line in open(os.path.join(r.folder, 'progress.csv'))]
  assert rows == ['env_steps', '50', '100', '150']  # continued, not restarted


def test_failed_run_is_retried_then_reported_and_the_others_finish(sweeps):
  code, out = sweeps['first']
  assert code == 1
  assert 'retrying drq_ht/Boxing/seed_1 (attempt 1 of 2 failed: exit code 7)' in out
  assert 'FAILED drq_ht/Boxing/seed_1 after 2 attempt(s): exit code 7' in out
  tail = out.split('FAILED drq_ht/Boxing/seed_1')[-1].split('FAILED')[0]  # its log tail
  assert 'progress.csv' in tail and 'Traceback' not in tail
  assert ('FAILED drq_ht/Pong/seed_1 after 1 attempt(s): exit code 6 (unreadable checkpoint)'
          in out)
  assert 'retrying drq_ht/Pong/seed_1' not in out
  assert '6 done (0 before this sweep), 2 failed' in out
  assert sweeps['after_first'] == NAMES - {'drq_ht/Boxing/seed_1', 'drq_ht/Pong/seed_1'}
  assert sweeps['broken_log_after_first'].count('==== sweep attempt ') == 2
  assert sweeps['bad_checkpoint_log_after_first'].count('==== sweep attempt ') == 1
  assert '--restart' in sweeps['bad_checkpoint_log_after_first']
  broken = sweeps['grid']['drq_ht/Boxing/seed_1']
  assert (open(os.path.join(broken.folder, execution.LOG_FILE)).read()
          .count('==== sweep attempt') == 3)


def test_second_invocation_over_a_finished_grid_starts_nothing(sweeps):
  code, out = sweeps['third']
  assert code == 0
  assert '8 finished, 0 diverged before (not retried), 0 to run' in out and 'nothing to do' in out
  assert 'Ray instance' not in out and 'attempt' not in out
  assert snapshot(sweeps['base']) == sweeps['before_third']  # nothing rewritten
  assert len([p for p in sweeps['before_third'] if p.endswith('result.json')]) == 8
