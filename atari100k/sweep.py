"""Run a grid of Atari-100k runs (agents x games x seeds) on Ray, resumably, then aggregate them.

``python -m atari100k.sweep --agents drq drq_ht --games all --seeds 5 --runs runs/`` expands the
grid into one ``python -m atari100k.run ...`` command per run (``--list`` prints them, one shell
command a line, for GNU parallel, SLURM arrays or any other executor) and runs each command as a
subprocess inside a Ray task that declares its resources (``--cpus-per-run``, ``--gpus-per-run``).
The same command uses a private local Ray instance by default and an existing cluster when
``RAY_ADDRESS`` (or ``--address``) is set.

* Runs with a ``result.json`` are skipped before anything starts; an interrupted run is started
  again with the same command, which resumes it from its checkpoint (``atari100k.run``).
* A lock file in each run folder (``sweep.lock``, created atomically) keeps two attempts, from
  this sweep or another one, from writing the same run. A lock whose process is dead (same host)
  or whose heartbeat is older than ``--stale-lock-hours`` is broken.
* A run that fails is retried ``--retries`` times (not after exit code 2, bad input, or 3,
  finished run), then reported with the tail of its log (``<run folder>/sweep.log``); the other
  runs go on, and the sweep exits with code 1.
* A live summary line: done / running / failed / queued and an ETA from the runs finished so far.
* At the end (or with ``--analyze-only``) ``analysis.aggregate`` over the runs folder.

Each run's CPU threads are pinned to its share: Ray sets ``OMP_NUM_THREADS``, which JAX ignores,
so XLA's own flags (``XLA_FLAGS``) are set as well, with TensorFlow's and the BLAS libraries'.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import shlex
import signal
import socket
import sys
import time
import uuid

from atari100k import exit_codes
from atari100k.files import FAILED_FILE, RESULT_FILE, run_folder
from common import processes
from common.files import write_atomically

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')  # validation imports TensorFlow via Dopamine

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCK_FILE = 'sweep.lock'
LOG_FILE = 'sweep.log'
# Deterministic outcomes: another attempt would end the same way.
NO_RETRY_CODES = {code: exit_codes.MEANING[code] for code in (
    exit_codes.BAD_INPUT, exit_codes.ALREADY_FINISHED, exit_codes.DIVERGED,
    exit_codes.BAD_CHECKPOINT)}
LOG_TAIL_LINES = 20
HEARTBEAT_S = 60.0


class SweepError(ValueError):
  """Bad input to the sweep: reported in one paragraph, exit code 2."""


# ---------------------------------------------------------------------------------- the grid
@dataclasses.dataclass(frozen=True)
class Run:
  """One run of the grid and the command line that makes it."""
  agent: str
  game: str
  seed: int
  base_dir: str
  bindings: tuple = ()
  steps: int | None = None
  eval_episodes: int | None = None

  @property
  def name(self) -> str:
    return f'{self.agent}/{self.game}/seed_{self.seed}'

  @property
  def folder(self) -> str:
    return run_folder(self.base_dir, self.agent, self.game, self.seed)

  def argv(self, python: str) -> list[str]:
    """``python -m atari100k.run ...`` for this run; to be run in the repository root."""
    argv = [python, '-m', 'atari100k.run', '--agent', self.agent, '--game', self.game,
            '--seed', str(self.seed), '--base_dir', self.base_dir]
    if self.steps is not None:
      argv += ['--steps', str(self.steps)]
    if self.eval_episodes is not None:
      argv += ['--eval_episodes', str(self.eval_episodes)]
    for binding in self.bindings:
      argv += ['--gin_bindings', binding]
    return argv + ['--no_progress']

  def shell_command(self, python: str = sys.executable, repo: str = REPO_ROOT) -> str:
    return f'cd {shlex.quote(repo)} && {shlex.join(self.argv(python))}'


def parse_seeds(spec: str) -> list[int]:
  """'5' -> seeds 0..4; '3-6' -> 3, 4, 5, 6; '0,2,7' -> those (a lone seed: '7,')."""
  text = str(spec).strip()
  try:
    if ',' in text:
      seeds = [int(s) for s in text.split(',') if s.strip()]
    elif '-' in text.lstrip('-'):
      low, high = (int(s) for s in text.split('-', 1))
      seeds = list(range(low, high + 1))
    else:
      seeds = list(range(int(text)))
  except ValueError:
    seeds = []
  if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
    raise SweepError(f'--seeds {spec!r} is not a seed count or list: give a count N (seeds '
                     '0..N-1, e.g. 5), a range A-B (e.g. 5-9) or a comma list (e.g. 0,3,7; one '
                     'seed alone: 7,), with distinct non-negative seeds.')
  return seeds


def _names(values) -> list[str]:
  """Flattens ['drq drq_ht', 'drq_sp,drq_ema'] into names, keeping the order, once each."""
  names = []
  for value in values:
    for name in value.replace(',', ' ').split():
      if name not in names:
        names.append(name)
  return names


def expand_agents(values) -> list[str]:
  from atari100k import configs  # pylint: disable=import-outside-toplevel
  names = _names(values)
  if names == ['all']:
    return configs.available_agents()
  try:
    return [configs.check_agent(n) for n in names]
  except configs.ConfigError as e:
    raise SweepError(str(e)) from None


def expand_games(values) -> list[str]:
  from atari100k import environment  # pylint: disable=import-outside-toplevel
  names = _names(values)
  if [n.lower() for n in names] == ['all']:
    return list(environment.GAMES)
  try:
    games = [environment.check_game(n) for n in names]
  except environment.UnknownGameError as e:
    raise SweepError(f'{e} --games all runs the 26.') from None
  return list(dict.fromkeys(games))


def check_bindings(agents, bindings, steps, eval_episodes) -> None:
  """Parses every agent's configuration with the bindings, as each run will (fails early)."""
  # pylint: disable=import-outside-toplevel
  from agents import settings
  from atari100k import configs, run
  extra = list(bindings)
  if steps is not None:
    extra.append(f'Runner.training_steps = {steps}')
  if eval_episodes is not None:
    extra.append(f'DataEfficientAtariRunner.num_eval_episodes = {eval_episodes}')
  try:
    for agent in agents:
      configs.parse_agent_config(agent, run.split_bindings(extra))
      configs.check_settings()
  except (configs.ConfigError, settings.SettingError) as e:
    raise SweepError(str(e)) from None
  finally:
    import gin  # pylint: disable=import-outside-toplevel
    gin.clear_config()


def build_grid(agents, games, seeds, base_dir, bindings=(), steps=None,
               eval_episodes=None) -> list[Run]:
  """One ``Run`` per (agent, game, seed), agents outermost, in the order given."""
  base_dir = os.path.abspath(base_dir)
  return [Run(agent, game, seed, base_dir, tuple(bindings), steps, eval_episodes)
          for agent in agents for game in games for seed in seeds]


def is_finished(run: Run) -> bool:
  return os.path.exists(os.path.join(run.folder, RESULT_FILE))


def divergence_of(run: Run) -> str | None:
  """Why the run diverged (its failed.json), or None if it did not."""
  path = os.path.join(run.folder, FAILED_FILE)
  if not os.path.exists(path):
    return None
  return _read_json(path).get('why') or f'see {path}'


# ---------------------------------------------------------------------------------- locks
def _pid_alive(pid) -> bool:
  try:
    os.kill(int(pid), 0)
  except ProcessLookupError:
    return False
  except (PermissionError, TypeError, ValueError, OverflowError):
    return True  # exists but not ours, or unreadable: assume alive
  return True


def read_lock(folder: str) -> dict | None:
  """The lock's content plus ``age_s`` (since its last heartbeat); None if there is none."""
  path = os.path.join(folder, LOCK_FILE)
  try:
    age_s = time.time() - os.path.getmtime(path)
  except FileNotFoundError:
    return None
  # Half-written or unreadable content ({}): judged by its age alone.
  return dict(_read_json(path), age_s=age_s)


def lock_is_stale(holder: dict, stale_s: float) -> bool:
  """Stale: heartbeat older than ``stale_s``, or every process it names dead on this host."""
  if holder.get('age_s', 0) > stale_s:
    return True
  if holder.get('host') != socket.gethostname():
    return False
  pids = [p for p in (holder.get('pid'), holder.get('child_pid')) if p]
  return bool(pids) and not any(_pid_alive(p) for p in pids)


def _create_lock(path: str, content: dict) -> bool:
  try:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
  except FileExistsError:
    return False
  with os.fdopen(fd, 'w') as f:
    json.dump(content, f)
  return True


def acquire_lock(folder: str, stale_s: float, what: str = '') -> tuple[dict | None, dict | None]:
  """Takes the run folder's lock: returns (our lock, None), or (None, the live holder)."""
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, LOCK_FILE)
  mine = {'host': socket.gethostname(), 'pid': os.getpid(), 'child_pid': None,
          'since': time.strftime('%Y-%m-%d %H:%M:%S'), 'token': uuid.uuid4().hex, 'what': what}
  for _ in range(3):
    if _create_lock(path, mine):
      return mine, None
    holder = read_lock(folder)
    if holder is None:
      continue  # released meanwhile
    if not lock_is_stale(holder, stale_s):
      return None, holder
    # Break it: move it aside, then check that what moved is the stale lock we judged.
    aside = f'{path}.stale-{mine["token"]}'
    try:
      os.rename(path, aside)
    except FileNotFoundError:
      continue
    moved = _read_json(aside)
    if moved.get('token') != holder.get('token'):
      try:  # a live lock taken meanwhile: put it back, or someone else holds a newer one
        os.link(aside, path)
      except FileExistsError:
        pass
      os.remove(aside)
      return None, moved
    os.remove(aside)
  return None, read_lock(folder) or {}


def _read_json(path: str) -> dict:
  try:
    with open(path) as f:
      value = json.load(f)
    return value if isinstance(value, dict) else {}
  except (OSError, ValueError):
    return {}


def update_lock(folder: str, lock: dict, **changes) -> None:
  """Rewrites our lock (child pid, heartbeat) if it is still ours."""
  path = os.path.join(folder, LOCK_FILE)
  if _read_json(path).get('token') != lock['token']:
    return
  lock.update(changes)
  write_atomically(path, json.dumps(lock))


def release_lock(folder: str, lock: dict) -> None:
  path = os.path.join(folder, LOCK_FILE)
  if _read_json(path).get('token') == lock['token']:
    try:
      os.remove(path)
    except FileNotFoundError:
      pass


# ---------------------------------------------------------------------------------- one attempt
def thread_env(cpus: float, gpus: float, base=None) -> dict:
  """The environment of a run: its thread pools sized to its CPU share, JAX on CPU without GPU.

  Ray sets OMP_NUM_THREADS for a task, which XLA ignores: XLA's CPU backend sizes its pools by
  the machine's cores unless told. One CPU: no Eigen multithreading in XLA at all.
  """
  env = dict(os.environ if base is None else base)
  threads = max(1, math.floor(cpus))
  env['XLA_FLAGS'] = processes.xla_thread_flags(threads, env.get('XLA_FLAGS', ''))
  for name in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS',
               'TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS'):
    env[name] = str(threads)
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  env['PYTHONUNBUFFERED'] = '1'  # the log follows the run
  if not gpus:
    env['JAX_PLATFORMS'] = 'cpu'  # no GPU was granted to this run: do not take one
  elif gpus < 1:
    env.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')  # runs share a GPU
  return env


def log_tail(path: str, lines: int = LOG_TAIL_LINES, start: int = 0) -> str:
  """The last ``lines`` lines of a log file from byte ``start`` on ('' if none)."""
  try:
    with open(path, 'rb') as f:
      f.seek(0, os.SEEK_END)
      size = f.tell()
      f.seek(max(start, size - 65536))
      text = f.read().decode('utf-8', 'replace')
  except OSError:
    return ''
  return '\n'.join(text.splitlines()[-lines:])


def _resumed_from(path: str, start: int) -> int | None:
  for line in log_tail(path, 10_000, start).splitlines():
    if line.startswith('Resuming ') and ' from step ' in line:
      try:
        return int(line.rsplit(' from step ', 1)[1].rstrip('.'))
      except ValueError:
        return None
  return None


def _stop(proc, grace_s: float = 20.0) -> None:
  if proc.poll() is None:
    proc.terminate()
    try:
      proc.wait(grace_s)
    except Exception:  # pylint: disable=broad-except
      proc.kill()
      proc.wait()


@contextlib.contextmanager
def _cancellable():
  """Lets ray.cancel reach the task: it raises KeyboardInterrupt through SIGINT's handler
  (``_thread.interrupt_main``), which does nothing where SIGINT is ignored, as it is in every
  process started from a background job of a non-interactive shell (nohup, ``&`` in a script)."""
  try:
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
      signal.signal(signal.SIGINT, signal.default_int_handler)
  except ValueError:  # not the main thread
    yield
    return
  try:
    yield
  finally:
    if previous == signal.SIG_IGN:
      signal.signal(signal.SIGINT, previous)


def run_attempt(run: Run, attempt: int, attempts: int, cpus: float = 1.0, gpus: float = 0.0,
                stale_s: float = 900.0) -> dict:
  """One attempt at one run, as a subprocess; the body of the Ray task. Small dict back.

  status: 'done' (exit 0, or 3: finished meanwhile), 'failed', 'locked' (another live
  attempt holds the run folder), 'skipped' (result.json appeared before the start).
  """
  import subprocess  # pylint: disable=import-outside-toplevel
  start = time.time()
  report = {'run': run.name, 'attempt': attempt, 'host': socket.gethostname(),
            'returncode': None, 'duration_s': 0.0, 'log': os.path.join(run.folder, LOG_FILE)}
  if is_finished(run):
    return dict(report, status='skipped')
  lock, holder = acquire_lock(run.folder, stale_s, what=f'{run.name} attempt {attempt}')
  if lock is None:
    return dict(report, status='locked', holder=holder)
  try:
    if is_finished(run):  # finished between the first check and the lock
      return dict(report, status='skipped')
    # The run dies with the Ray worker that started it: no orphan trains without its lock.
    argv = [sys.executable, '-c', processes.EXEC_DYING_WITH_PARENT] + run.argv(sys.executable)
    with open(report['log'], 'ab') as log:
      offset = log.tell()
      log.write((f'\n==== sweep attempt {attempt}/{attempts} on {report["host"]} (pid '
                 f'{os.getpid()}), {time.strftime("%Y-%m-%d %H:%M:%S")}, {cpus:g} CPU, '
                 f'{gpus:g} GPU\n==== {shlex.join(run.argv(sys.executable))}\n').encode())
      log.flush()
      proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=thread_env(cpus, gpus), stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
      try:
        update_lock(run.folder, lock, child_pid=proc.pid)
        with _cancellable():
          while True:
            try:
              code = proc.wait(HEARTBEAT_S)
              break
            except subprocess.TimeoutExpired:
              update_lock(run.folder, lock)  # heartbeat: the lock's age stays small
      except BaseException:  # cancelled (KeyboardInterrupt from ray.cancel) or dying
        _stop(proc)
        log.write(f'==== stopped (cancelled) after {time.time() - start:.0f} s\n'.encode())
        raise
      duration = time.time() - start
      log.write(f'==== exit code {code} after {duration:.0f} s\n'.encode())
    if code == exit_codes.FOLDER_BUSY:  # a process outside this sweep runs the folder
      return dict(report, status='locked', returncode=code, duration_s=duration,
                  holder=_read_json(os.path.join(run.folder, 'run.lock')))
    status = 'done' if code in (exit_codes.FINISHED, exit_codes.ALREADY_FINISHED) else 'failed'
    return dict(report, status=status, returncode=code, duration_s=duration,
                resumed_from=_resumed_from(report['log'], offset),
                log_tail='' if status == 'done' else log_tail(report['log'], start=offset))
  finally:
    release_lock(run.folder, lock)


# ---------------------------------------------------------------------------------- the summary
def _clock(seconds: float | None) -> str:
  if seconds is None or not math.isfinite(seconds):
    return '?'
  seconds = int(round(seconds))
  days, rest = divmod(seconds, 86400)
  text = f'{rest // 3600}:{rest % 3600 // 60:02d}:{rest % 60:02d}'
  return f'{days}d {text}' if days else text


class Summary:
  """Counts of the grid's runs and the live line: done / running / failed / queued, ETA."""

  def __init__(self, total: int, finished_before: int, out=None, every_s: float = 300.0):
    self.total = total
    self.finished_before = finished_before
    self.durations: list[float] = []
    self.done = self.failed = self.locked = self.running = self.queued = 0
    self.slots = 1
    self.out = out or sys.stdout
    self.tty = self.out.isatty()
    self.every_s = every_s
    self._last_line = ''
    self._last_time = 0.0

  def eta_s(self) -> float | None:
    """Remaining runs x mean duration of the runs finished in this sweep / parallel slots."""
    if not self.durations:
      return None
    remaining = self.running + self.queued
    return remaining * (sum(self.durations) / len(self.durations)) / max(1, self.slots)

  def line(self) -> str:
    done = self.finished_before + self.done
    text = (f'[sweep] done {done}/{self.total} ({self.finished_before} before this sweep) | '
            f'running {self.running} | failed {self.failed} | queued {self.queued}')
    if self.locked:
      text += f' | locked elsewhere {self.locked}'
    return text + f' | ETA {_clock(self.eta_s())}'

  def refresh(self, force: bool = False) -> None:
    line = self.line()
    now = time.time()
    if not force and line == self._last_line and now - self._last_time < self.every_s:
      return
    if self.tty:
      self.out.write('\r\033[K' + line)
    else:
      self.out.write(line + '\n')
    self.out.flush()
    self._last_line, self._last_time = line, now

  def event(self, text: str) -> None:
    """A line of its own (a run finished, failed, retried), above the live line."""
    self.out.write(('\r\033[K' if self.tty else '') + text + '\n')
    self.out.flush()
    self._last_line = ''

  def close(self) -> None:
    """The last state of the live line, kept on screen."""
    self.refresh(force=True)
    if self.tty:
      self.out.write('\n')
      self.out.flush()


# ---------------------------------------------------------------------------------- Ray
def start_ray(address: str | None, cpus: int | None, object_store_mb: int) -> str:
  """Connects to ``address`` (a cluster) or starts a private local Ray instance."""
  import ray  # pylint: disable=import-outside-toplevel
  common = dict(log_to_driver=False, ignore_reinit_error=True)
  if os.path.realpath(os.getcwd()) != os.path.realpath(REPO_ROOT):
    # Ray puts the driver's working directory on the workers' sys.path; from elsewhere the
    # workers need the repository on PYTHONPATH to import this module.
    pythonpath = os.pathsep.join(p for p in (REPO_ROOT, os.environ.get('PYTHONPATH')) if p)
    common['runtime_env'] = {'env_vars': {'PYTHONPATH': pythonpath}}
  if address:
    ray.init(address=address, **common)
    return f'the Ray cluster at {address}'
  ray.init(address='local', num_cpus=cpus or os.cpu_count() or 1,
           object_store_memory=object_store_mb * 2**20, include_dashboard=False, **common)
  return f'a local Ray instance ({cpus or os.cpu_count()} CPUs)'


def parallel_slots(cpus_per_run: float, gpus_per_run: float) -> int:
  """How many runs the cluster holds at once, from its total resources (nodes may join)."""
  import ray  # pylint: disable=import-outside-toplevel
  resources = ray.cluster_resources()
  slots = math.floor(resources.get('CPU', 0) / cpus_per_run + 1e-9)
  if gpus_per_run:
    slots = min(slots, math.floor(resources.get('GPU', 0) / gpus_per_run + 1e-9))
  return max(1, slots)


def _describe_failure(result: dict) -> str:
  code = result.get('returncode')
  why = (f'exit code {code}' + (f' ({NO_RETRY_CODES[code]})' if code in NO_RETRY_CODES else '')
         if code is not None else result.get('error', 'the Ray task failed'))
  tail = result.get('log_tail') or '(empty log)'
  return (f'FAILED {result["run"]} after {result["attempt"]} attempt(s): {why}; log '
          f'{result["log"]}, last lines:\n' + '\n'.join('    | ' + l for l in tail.splitlines()))


def execute(runs: list[Run], args, summary: Summary) -> list[dict]:
  """Runs ``runs`` as Ray tasks, retrying failures; returns the last result of each run."""
  import ray  # pylint: disable=import-outside-toplevel
  attempts = 1 + args.retries
  task = ray.remote(run_attempt).options(num_cpus=args.cpus_per_run,
                                         num_gpus=args.gpus_per_run, max_retries=0)
  queue = [(run, 1) for run in runs]
  in_flight: dict = {}
  final: dict[str, dict] = {}
  summary.queued = len(queue)
  slots_checked = 0.0
  try:
    while queue or in_flight:
      if time.time() - slots_checked > 10:
        summary.slots = parallel_slots(args.cpus_per_run, args.gpus_per_run)
        slots_checked = time.time()
      while queue and len(in_flight) < summary.slots:
        run, attempt = queue.pop(0)
        ref = task.remote(run, attempt, attempts, args.cpus_per_run, args.gpus_per_run,
                          args.stale_lock_hours * 3600)
        in_flight[ref] = (run, attempt)
      summary.running, summary.queued = len(in_flight), len(queue)
      summary.refresh()
      ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=args.refresh)
      for ref in ready:
        run, attempt = in_flight.pop(ref)
        try:
          result = ray.get(ref)
        except ray.exceptions.RayError as e:  # the worker or its node died, ...
          result = {'run': run.name, 'attempt': attempt, 'status': 'failed', 'returncode': None,
                    'error': f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}',
                    'log': os.path.join(run.folder, LOG_FILE),
                    'log_tail': log_tail(os.path.join(run.folder, LOG_FILE))}
        final[run.name] = result
        _account(result, run, attempt, attempts, queue, summary)
      summary.running, summary.queued = len(in_flight), len(queue)
  except KeyboardInterrupt:
    summary.event(f'interrupted: cancelling {len(in_flight)} running run(s); they resume from '
                  'their checkpoints next time')
    for ref in in_flight:
      ray.cancel(ref)
    ray.wait(list(in_flight), num_returns=len(in_flight), timeout=30)
    raise
  summary.close()
  return list(final.values())


def _account(result: dict, run: Run, attempt: int, attempts: int, queue: list,
             summary: Summary) -> None:
  status = result['status']
  if status in ('done', 'skipped'):
    summary.done += 1
    if status == 'done' and result.get('returncode') == 0:
      summary.durations.append(result['duration_s'])
    resumed = result.get('resumed_from')
    summary.event(f'done {run.name} in {_clock(result["duration_s"])}'
                  + (f' (resumed from step {resumed})' if resumed is not None else '')
                  + (' (finished elsewhere)' if status == 'skipped' or
                     result.get('returncode') == 3 else ''))
  elif status == 'locked':
    summary.locked += 1
    holder = result.get('holder') or {}
    summary.event(f'locked {run.name}: held by {holder.get("host", "?")} pid '
                  f'{holder.get("pid", "?")} since {holder.get("since", "?")}; left to it')
  elif attempt < attempts and result.get('returncode') not in NO_RETRY_CODES:
    queue.append((run, attempt + 1))
    code = result.get('returncode')
    summary.event(f'retrying {run.name} (attempt {attempt} of {attempts} failed: '
                  f'{f"exit code {code}" if code is not None else result.get("error")})')
  else:
    summary.failed += 1
    summary.event(_describe_failure(result))


# ---------------------------------------------------------------------------------- analysis
def has_results(runs_dir: str) -> bool:
  for _, _, files in os.walk(runs_dir):
    if RESULT_FILE in files:
      return True
  return False


def analyze(runs_dir: str, extra_args: str) -> int:
  """``analysis.aggregate`` over the runs folder (--common-games: a partial grid is normal)."""
  if not has_results(runs_dir):
    print(f'[sweep] no result.json under {runs_dir}: nothing to analyze.')
    return 0
  argv = [runs_dir, '--common-games'] + shlex.split(extra_args or '')
  print(f'[sweep] analysis: python -m analysis.aggregate {shlex.join(argv)}', flush=True)
  try:
    from analysis import aggregate  # pylint: disable=import-outside-toplevel
    code = aggregate.main(argv)
  except SystemExit as e:  # argparse rejected --analyze-args
    code = e.code if isinstance(e.code, int) else 2
  except Exception as e:  # pylint: disable=broad-except
    print(f'[sweep] the analysis failed: {type(e).__name__}: {e}', file=sys.stderr)
    return 1
  if code:
    print(f'[sweep] the analysis stopped with exit code {code} (see its message above).',
          file=sys.stderr)
  return code


# ---------------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m atari100k.sweep',
      description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog=(
          'Run folders: <RUNS>/<agent>/<Game>/seed_<k>/ as with atari100k.run, plus sweep.log\n'
          '(every attempt, appended) and sweep.lock (while an attempt runs).\n'
          'Ray: a private local instance (--cpus, no dashboard) unless --address or RAY_ADDRESS\n'
          'names a cluster (started with `ray start`); the repository and RUNS must then be at\n'
          'the same path on every node (a shared file system).\n'
          'Exit codes: 0 every run finished (or is locked by another live sweep), 1 some run\n'
          'failed after its retries, 2 bad input, 130 interrupted (runs resume next time).\n\n'
          'examples:\n'
          '  python -m atari100k.sweep --agents drq drq_ht --games all --seeds 5 --runs runs\n'
          '  python -m atari100k.sweep --agents drq --games Pong Boxing --seeds 0,1 --steps 2000\n'
          '  python -m atari100k.sweep --agents drq --games all --seeds 5 --list | parallel -j 8\n'
          '  RAY_ADDRESS=head-node:6379 python -m atari100k.sweep --agents all --games all\n'
          '  python -m atari100k.sweep --runs runs --analyze-only'))
  grid = parser.add_argument_group('the grid')
  grid.add_argument('--agents', nargs='+', default=[], metavar='AGENT',
                    help="named configurations (gin/ file names), or 'all'")
  grid.add_argument('--games', nargs='+', default=['all'], metavar='GAME',
                    help="Atari-100k games, or 'all' for the 26 (default all)")
  grid.add_argument('--seeds', default='5',
                    help='a count N (seeds 0..N-1), a range A-B or a list 0,3,7 (default 5)')
  grid.add_argument('--runs', default='runs', metavar='DIR',
                    help='root of the run folders (default runs/)')
  grid.add_argument('--gin', action='append', default=[], metavar='BINDINGS',
                    help="gin bindings for every run, 'A.b = 1;C.d = 2'; repeatable")
  grid.add_argument('--steps', type=int, help='agent steps per run, for try-outs (default 100k)')
  grid.add_argument('--eval_episodes', '--eval-episodes', type=int, metavar='N',
                    help='evaluation episodes per run (default 100)')
  grid.add_argument('--list', action='store_true',
                    help='print one shell command per run (finished ones included) and stop')
  ray_group = parser.add_argument_group('execution')
  ray_group.add_argument('--cpus-per-run', type=float, default=1.0, metavar='N',
                         help='CPUs each run declares to Ray and sizes its threads to (default 1)')
  ray_group.add_argument('--gpus-per-run', type=float, default=0.0, metavar='N',
                         help='GPUs each run declares (fractions share a GPU; default 0: CPU '
                              'only, JAX_PLATFORMS=cpu)')
  ray_group.add_argument('--retries', type=int, default=2,
                         help='retries of a failed run (default 2; never after exit code 2 or 3)')
  ray_group.add_argument('--address', default=os.environ.get('RAY_ADDRESS') or None,
                         help='Ray cluster to use (default $RAY_ADDRESS; unset: a new local '
                              'instance)')
  ray_group.add_argument('--cpus', type=int, metavar='N',
                         help='CPUs of the local instance (default: all cores)')
  ray_group.add_argument('--object-store-mb', type=int, default=128, metavar='MB',
                         help='object store of the local instance; tasks return small dicts '
                              '(default 128)')
  ray_group.add_argument('--stale-lock-hours', type=float, default=0.25, metavar='H',
                         help='a lock not refreshed for this long is broken, whoever holds it (a '
                              f'running attempt refreshes it every {HEARTBEAT_S:.0f} s; default '
                              '0.25); one naming dead processes of this host is broken at once')
  ray_group.add_argument('--refresh', type=float, default=5.0, metavar='S',
                         help='seconds between checks of the running runs (default 5)')
  analysis_group = parser.add_argument_group('analysis')
  analysis_group.add_argument('--analyze-only', action='store_true',
                              help='run the analysis over RUNS and stop')
  analysis_group.add_argument('--no-analyze', action='store_true',
                              help='no analysis at the end of the sweep')
  analysis_group.add_argument('--analyze-args', default='', metavar='ARGS',
                              help="more arguments for analysis.aggregate, e.g. '--baselines "
                                   "DrQ_eps SPR --reps 10000'")
  return parser


def _check_numbers(args) -> None:
  checks = [(args.retries >= 0, '--retries must be 0 or more'),
            (args.cpus_per_run > 0, '--cpus-per-run must be positive'),
            (args.gpus_per_run >= 0, '--gpus-per-run must be 0 or more'),
            (args.steps is None or args.steps > 0, '--steps must be positive'),
            (args.eval_episodes is None or args.eval_episodes > 0,
             '--eval_episodes must be positive'),
            (args.cpus is None or args.cpus > 0, '--cpus must be positive'),
            (args.object_store_mb >= 80, '--object-store-mb must be at least 80 (Ray minimum)'),
            (args.stale_lock_hours > 0, '--stale-lock-hours must be positive'),
            (args.refresh > 0, '--refresh must be positive'),
            (bool(args.agents), "--agents is required (named configurations, or 'all')")]
  for ok, message in checks:
    if not ok:
      raise SweepError(message + '.')


def grid_from_args(args) -> list[Run]:
  """Validates the names, seeds and bindings (SweepError) and expands the grid."""
  _check_numbers(args)
  from atari100k import run as run_cli  # pylint: disable=import-outside-toplevel
  agents = expand_agents(args.agents)
  games = expand_games(args.games)
  seeds = parse_seeds(args.seeds)
  bindings = run_cli.split_bindings(args.gin)
  if bindings:
    check_bindings(agents, bindings, args.steps, args.eval_episodes)
  return build_grid(agents, games, seeds, args.runs, bindings, args.steps, args.eval_episodes)


@contextlib.contextmanager
def _sigterm_as_interrupt():
  """SIGTERM (a SLURM job's end, kill) stops the sweep as Ctrl-C does: runs cancelled cleanly."""
  def interrupt(signum, frame):  # pylint: disable=unused-argument
    raise KeyboardInterrupt
  try:
    previous = signal.signal(signal.SIGTERM, interrupt)
  except ValueError:  # not the main thread: leave signals alone
    yield
    return
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, previous)


def _final_report(results: list[dict], summary: Summary, elapsed: float, where: str) -> None:
  failed = [r for r in results if r['status'] == 'failed']
  print(f'[sweep] finished in {_clock(elapsed)} on {where}: {summary.total} runs, '
        f'{summary.finished_before + summary.done} done ({summary.finished_before} before this '
        f'sweep), {summary.failed} failed, {summary.locked} locked by another live attempt.')
  if failed:
    print('[sweep] failed runs (the same command retries them, from their checkpoints):')
    for result in failed:
      print(_describe_failure(result))
  sys.stdout.flush()


def main(argv=None) -> int:
  """The command line; returns the exit code (0, 1 failed runs or no Ray, 2 bad input, 130)."""
  args = build_parser().parse_args(argv)
  runs_dir = os.path.abspath(args.runs)
  if args.analyze_only:
    return analyze(runs_dir, args.analyze_args)
  try:
    grid = grid_from_args(args)
  except SweepError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  if args.list:
    for run in grid:
      print(run.shell_command())
    return 0

  unfinished = [run for run in grid if not is_finished(run)]
  why_diverged = {run.name: divergence_of(run) for run in unfinished}
  diverged = [(run, why_diverged[run.name]) for run in unfinished
              if why_diverged[run.name] is not None]
  todo = [run for run in unfinished if why_diverged[run.name] is None]
  print(f'[sweep] {len(grid)} runs in {runs_dir}: {len(grid) - len(unfinished)} finished, '
        f'{len(diverged)} diverged before (not retried), {len(todo)} to run.', flush=True)
  for run, why in diverged:
    print(f'[sweep] FAILED {run.name}: diverged ({why}); its failed.json stays. Change its '
          'settings, or run it by hand with --force to redo it.')
  if not todo:
    print('[sweep] nothing to do: every run has its result.json or failed.json '
          '(--analyze-only re-runs the analysis).')
    return 1 if diverged else 0
  summary = Summary(len(grid), len(grid) - len(unfinished))
  summary.failed = len(diverged)
  start = time.time()
  import ray  # pylint: disable=import-outside-toplevel
  try:
    where = start_ray(args.address, args.cpus, args.object_store_mb)
  except Exception as e:  # pylint: disable=broad-except
    print(f'error: cannot start or reach Ray ({type(e).__name__}: {e}).', file=sys.stderr)
    return 1
  try:
    gpus = ray.cluster_resources().get('GPU', 0)
    if args.gpus_per_run > gpus:
      print(f'error: --gpus-per-run {args.gpus_per_run:g} but {where} has {gpus:g} GPU(s); the '
            'runs would wait forever.', file=sys.stderr)
      return 2
    if gpus and not args.gpus_per_run:
      print(f'[sweep] note: the cluster has {gpus:g} GPU(s); runs use the CPU unless '
            '--gpus-per-run is given.')
    print(f'[sweep] on {where}; {args.cpus_per_run:g} CPU, {args.gpus_per_run:g} GPU per run; '
          f'{1 + args.retries} attempt(s) at most per run.', flush=True)
    with _sigterm_as_interrupt():
      results = execute(todo, args, summary)
  except KeyboardInterrupt:
    print('\n[sweep] interrupted; the same command resumes the grid.', file=sys.stderr)
    return 130
  finally:
    ray.shutdown()
  _final_report(results, summary, time.time() - start, where)
  if not args.no_analyze:
    analyze(runs_dir, args.analyze_args)
  return 1 if summary.failed else 0


if __name__ == '__main__':
  # Run as the module atari100k.sweep (not __main__), so that Ray workers import it by name.
  from atari100k import sweep as _sweep  # pylint: disable=import-outside-toplevel
  sys.exit(_sweep.main())
