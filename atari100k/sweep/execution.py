"""Running the grid on Ray: one Ray task per attempt at a run, the retries, and each run's process.

A task (``run_attempt``) takes the run folder's lock and runs the run's own command line as a
subprocess, its threads pinned to its CPU share, its output appended to ``sweep.log``.
``execute`` keeps as many tasks in flight as the cluster holds, retries the failures that may
pass and keeps the live summary up to date. Ray workers import this module by its name,
``atari100k.sweep.execution``: ``start_ray`` makes sure they find the repository.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import signal
import socket
import sys
import time

from atari100k import exit_codes
from atari100k.sweep.grid import REPO_ROOT, Run, is_finished
from atari100k.sweep.locks import HEARTBEAT_S, acquire_lock, read_json, release_lock, update_lock
from atari100k.sweep.summary import NO_RETRY_CODES, Summary, clock, describe_failure
from common import processes

LOG_FILE = 'sweep.log'
LOG_TAIL_LINES = 20


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
                  holder=read_json(os.path.join(run.folder, 'run.lock')))
    status = 'done' if code in (exit_codes.FINISHED, exit_codes.ALREADY_FINISHED) else 'failed'
    return dict(report, status=status, returncode=code, duration_s=duration,
                resumed_from=_resumed_from(report['log'], offset),
                log_tail='' if status == 'done' else log_tail(report['log'], start=offset))
  finally:
    release_lock(run.folder, lock)


def start_ray(address: str | None, cpus: int | None, object_store_mb: int) -> str:
  """Connects to ``address`` (a cluster) or starts a private local Ray instance."""
  import ray  # pylint: disable=import-outside-toplevel
  common = dict(log_to_driver=False, ignore_reinit_error=True)
  if os.path.realpath(os.getcwd()) != os.path.realpath(REPO_ROOT):
    # Ray puts the driver's working directory on the workers' sys.path; from elsewhere the
    # workers need the repository on PYTHONPATH to import this module (run_attempt's home).
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
    summary.event(f'done {run.name} in {clock(result["duration_s"])}'
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
    summary.event(describe_failure(result))
