"""Command line for one Atari-100k run: ``python -m atari100k.run --agent drq_ht --game Pong``.

Trains the named configuration (``gin/<agent>.gin``) for 100k agent steps on one game,
evaluates it on 100 episodes and writes ``<runs>/<agent>/<Game>/seed_<k>/result.json``
(plus config.gin, progress.csv, TensorBoard events, checkpoints). Re-running the same command
after an interruption resumes from the last checkpoint. A run that diverges writes failed.json
instead. Exit codes: ``atari100k.exit_codes`` (listed in --help and docs/runner.md). TensorFlow's, XLA's
and gym's start-up messages are hidden unless ``-v`` is given (``common.quiet``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time

from atari100k import exit_codes
from atari100k import files
from common import quiet


def build_parser() -> argparse.ArgumentParser:
  # Imported here, not at the top: environment imports TensorFlow and gym (through Dopamine),
  # whose start-up messages the quiet block filters.
  with quiet.library_imports():
    from atari100k import configs, environment  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(
      prog='python -m atari100k.run',
      description=__doc__.split('\n\n')[0] + ' Resumes an interrupted run.',
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog=('named configurations: ' + ', '.join(configs.available_agents()) + '\n'
              'games: ' + ', '.join(environment.GAMES) + '\n\n'
              'example:\n'
              '  python -m atari100k.run --agent drq_ht --game Pong --seed 3 --runs runs \\\n'
              "      --gin 'DrQAgent.ht_reset_period = 8000'\n\n"
              'exit codes:\n' + '\n'.join(f'  {code:3d}  {meaning}' for code, meaning
                                          in exit_codes.MEANING.items())))
  parser.add_argument('--agent', required=True, help='named configuration (a gin/ file name)')
  parser.add_argument('--game', required=True, help='Atari-100k game, e.g. Pong')
  parser.add_argument('--seed', type=int, default=0, help='run seed (default 0)')
  parser.add_argument('--runs', '--base-dir', '--base_dir', dest='base_dir', default='runs',
                      metavar='DIR', help='root of the run folders (default runs/)')
  parser.add_argument('--steps', type=int, default=None,
                      help='agent steps to train (default 100000; fewer for a try-out)')
  parser.add_argument('--gin', '--gin-bindings', '--gin_bindings', dest='gin_bindings',
                      action='append', default=[], metavar='BINDINGS',
                      help="extra gin bindings 'Configurable.param = value'; repeatable, or "
                           "several separated by ';'")
  parser.add_argument('--eval-episodes', '--eval_episodes', dest='eval_episodes', type=int,
                      default=None, metavar='N',
                      help='evaluation episodes (default 100, run in parallel)')
  parser.add_argument('--force', action='store_true',
                      help='redo a finished or diverged run; the old folder is kept as '
                           '<folder>.old-<time>')
  parser.add_argument('--restart', action='store_true',
                      help='move an unreadable checkpoint aside (<file>.aside-<time>) and train '
                           'the run from step 0')
  parser.add_argument('--keep-checkpoint', '--keep_checkpoint', dest='keep_checkpoint',
                      action='store_true',
                      help='keep the checkpoint (with the replay buffer) after the run')
  parser.add_argument('--no-progress', '--no_progress', dest='no_progress', action='store_true',
                      help='hide progress bars')
  quiet.add_verbose_flag(parser)
  return parser


def split_bindings(values) -> list[str]:
  """Each --gin value may hold several bindings separated by ';' (make's GIN=)."""
  return [b.strip() for value in values for b in value.split(';') if b.strip()]


def _error(message: str, code: int) -> int:
  print(f'error: {message}', file=sys.stderr)
  return code


def check_writable(folder: str) -> None:
  """Creates ``folder`` and writes a file in it; raises OSError with the reason if it cannot."""
  os.makedirs(folder, exist_ok=True)
  probe = os.path.join(folder, f'.write-test-{os.getpid()}')
  with open(probe, 'wb') as f:
    f.write(b'ok')
  os.remove(probe)


def _move_aside(path: str, tag: str) -> str:
  kept = f'{path}.{tag}-{time.strftime("%Y%m%d-%H%M%S")}'
  shutil.move(path, kept)
  return kept


def _sigterm_as_interrupt():
  """SIGTERM (the sweep stopping a run, a cluster pre-empting it) ends the run like Ctrl-C;
  returns the previous handler."""
  def interrupt(signum, frame):  # pylint: disable=unused-argument
    raise KeyboardInterrupt('SIGTERM')
  return signal.signal(signal.SIGTERM, interrupt)


def _checkpoint_message(error) -> str:
  return (f'cannot resume this run from its checkpoint.\n  file: {error.path}\n'
          f'  why:  {error.reason}.\nNothing was changed. Choices: pass --restart (RESTART=1 '
          'with make) to move the file aside (kept as <file>.aside-<time>) and train this run '
          'from step 0; or put back a good copy of the file and run the same command; or use '
          'another --runs or --seed.')


def main(argv=None) -> int:
  quiet.configure_from_argv(argv)  # before build_parser, which imports TensorFlow
  args = build_parser().parse_args(argv)
  # pylint: disable=import-outside-toplevel
  from agents import settings
  from atari100k import configs, environment, run_lock
  try:
    agent = configs.check_agent(args.agent)
    game = environment.check_game(args.game)
    bindings = split_bindings(args.gin_bindings)
    if args.steps is not None:
      if args.steps < 1:
        raise configs.ConfigError(f'--steps must be positive, got {args.steps}.')
      bindings.append(f'Runner.training_steps = {args.steps}')
    if args.eval_episodes is not None:
      bindings += [f'DataEfficientAtariRunner.num_eval_episodes = {args.eval_episodes}',
                   f'DataEfficientAtariRunner.num_eval_envs = {args.eval_episodes}']
    configs.parse_agent_config(agent, bindings)
    configs.check_settings()
  except (configs.ConfigError, environment.UnknownGameError, settings.SettingError) as e:
    return _error(str(e), exit_codes.BAD_INPUT)

  folder = files.run_folder(args.base_dir, agent, game, args.seed)
  try:
    check_writable(folder)
  except OSError as e:
    return _error(f'cannot write the run folder {folder}: {e.strerror or e}. Choose a folder '
                  'you can write with RUNS=... (make) or --runs.', exit_codes.BAD_INPUT)
  lock = run_lock.RunLock(folder)
  try:
    lock.acquire()
  except run_lock.FolderBusy as e:
    return _error(str(e), exit_codes.FOLDER_BUSY)
  try:
    return _run_locked(args, agent, game, folder, lock)
  finally:
    lock.release()


def _run_locked(args, agent: str, game: str, folder: str, lock) -> int:
  """The run, once ``lock`` holds ``folder``: finished/diverged checks, --force, --restart,
  the checkpoint's header, then training; returns the exit code."""
  # pylint: disable=import-outside-toplevel
  from atari100k import checkpoint_file, run_lock, runner
  result_path = os.path.join(folder, runner.RESULT_FILE)
  failed_path = os.path.join(folder, runner.FAILED_FILE)
  if os.path.exists(result_path) and not args.force:
    return _error(f'{folder} already holds a finished run ({result_path}). Nothing was '
                  'changed. Use another --seed or --runs, or pass --force (FORCE=1 with '
                  'make) to redo it; the old folder is then kept beside it.',
                  exit_codes.ALREADY_FINISHED)
  if os.path.exists(failed_path) and not args.force:
    return _error(f'{folder} holds a run that diverged ({failed_path}). Rerunning it would '
                  'diverge again (runs are deterministic): change its settings, or pass --force '
                  '(FORCE=1 with make) to redo it; the old folder is then kept beside it.',
                  exit_codes.DIVERGED)
  if os.path.exists(result_path) or os.path.exists(failed_path):
    lock.release()
    kept = _move_aside(folder, 'old')
    print(f'--force: previous run moved to {kept}', file=sys.stderr)
    os.makedirs(folder)
    try:
      lock.acquire()
    except run_lock.FolderBusy as e:
      return _error(str(e), exit_codes.FOLDER_BUSY)
  if args.restart:
    checkpoints = os.path.join(folder, 'checkpoints')
    for name in (runner.CHECKPOINT_FILE, runner.OLD_PICKLE_CHECKPOINT):
      path = os.path.join(checkpoints, name)
      if os.path.exists(path):
        print(f'--restart: {path} moved to {_move_aside(path, "aside")}', file=sys.stderr)

  try:  # before building anything: the header of the checkpoint this run would resume from
    runner.check_checkpoint(folder, {'agent': agent, 'game': game, 'seed': args.seed})
  except checkpoint_file.CheckpointError as e:
    return _error(_checkpoint_message(e), exit_codes.BAD_CHECKPOINT)
  previous_handler = _sigterm_as_interrupt()
  try:
    run = runner.Atari100kRunner(folder, game=game, seed=args.seed, agent_name=agent,
                                 gin_overrides=split_bindings(args.gin_bindings),
                                 keep_checkpoint=args.keep_checkpoint,
                                 progress=not args.no_progress)
    result = run.run_experiment()
  except checkpoint_file.CheckpointError as e:
    return _error(_checkpoint_message(e), exit_codes.BAD_CHECKPOINT)
  except runner.RunDiverged as e:
    return _error(str(e), exit_codes.DIVERGED)
  except runner.RunFilesError as e:
    return _error(str(e), exit_codes.CANNOT_WRITE)
  except KeyboardInterrupt:
    return _error(f'interrupted; {folder} keeps its last checkpoint: the same command resumes '
                  'from it.', exit_codes.INTERRUPTED)
  finally:
    signal.signal(signal.SIGTERM, previous_handler)
  print(f'{agent} {game} seed {args.seed}: score {result["score"]:.1f} over '
        f'{result["eval_episodes"]} episodes -> {result_path}')
  return exit_codes.FINISHED


if __name__ == '__main__':
  sys.exit(main())
