"""The sweep's command line: its flags and their checks, the course of a sweep (grid, Ray, final
report, analysis) and its exit codes. ``python -m atari100k.sweep`` runs ``main``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import time

from atari100k import sweep
from atari100k.files import RESULT_FILE
from atari100k.sweep.execution import execute, start_ray
from atari100k.sweep.grid import (Run, SweepError, build_grid, check_bindings, divergence_of,
                                  expand_agents, expand_games, is_finished, parse_seeds)
from atari100k.sweep.locks import HEARTBEAT_S
from atari100k.sweep.summary import Summary, final_report
from common import seeds as seeds_lib


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


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m atari100k.sweep',
      description=sweep.__doc__.split('\n\n')[0],
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
                    help=f'{seeds_lib.HELP} (default 5)')
  grid.add_argument('--runs', default='runs', metavar='DIR',
                    help='root of the run folders (default runs/)')
  grid.add_argument('--gin', action='append', default=[], metavar='BINDINGS',
                    help="gin bindings for every run, 'A.b = 1;C.d = 2'; repeatable")
  grid.add_argument('--steps', type=int, help='agent steps per run, for try-outs (default 100k)')
  grid.add_argument('--eval-episodes', '--eval_episodes', type=int, metavar='N',
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
             '--eval-episodes must be positive'),
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
  final_report(results, summary, time.time() - start, where)
  if not args.no_analyze:
    analyze(runs_dir, args.analyze_args)
  return 1 if summary.failed else 0
