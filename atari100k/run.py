"""Command line for one Atari-100k run: ``python -m atari100k.run --agent drq_ht --game Pong``.

Trains the named configuration (``gin/<agent>.gin``) for 100k agent steps on one game,
evaluates it on 100 episodes and writes ``<base_dir>/<agent>/<Game>/seed_<k>/result.json``
(plus config.gin, progress.csv, TensorBoard events, checkpoints). Re-running the same command
after an interruption resumes from the last checkpoint.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')  # TensorFlow is only Dopamine's logger here
import shutil
import sys
import time


def build_parser() -> argparse.ArgumentParser:
  # Imported lazily so that --help answers without loading TensorFlow and JAX.
  from atari100k import configs, environment  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(
      prog='python -m atari100k.run',
      description=__doc__.split('\n\n')[0] + ' Resumes an interrupted run.',
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog=('named configurations: ' + ', '.join(configs.available_agents()) + '\n'
              'games: ' + ', '.join(environment.GAMES) + '\n\n'
              'example:\n  python -m atari100k.run --agent drq_ht --game Pong --seed 3 \\\n'
              "      --gin_bindings 'DrQAgent.ht_reset_period = 8000'"))
  parser.add_argument('--agent', required=True, help='named configuration (a gin/ file name)')
  parser.add_argument('--game', required=True, help='Atari-100k game, e.g. Pong')
  parser.add_argument('--seed', type=int, default=0, help='run seed (default 0)')
  parser.add_argument('--base_dir', default='runs',
                      help='root of the run folders (default runs/)')
  parser.add_argument('--steps', type=int, default=None,
                      help='agent steps to train (default 100000; fewer for a try-out)')
  parser.add_argument('--gin_bindings', action='append', default=[],
                      help="extra gin binding 'Configurable.param = value'; repeatable, or several "
                           "separated by ';'")
  parser.add_argument('--eval_episodes', type=int, default=None,
                      help='evaluation episodes (default 100, run in parallel)')
  parser.add_argument('--force', action='store_true',
                      help='redo a finished run; the old folder is kept as <folder>.old-<time>')
  parser.add_argument('--keep_checkpoint', action='store_true',
                      help='keep the checkpoint (with the replay buffer) after the run')
  parser.add_argument('--no_progress', action='store_true', help='hide progress bars')
  return parser


def split_bindings(values) -> list[str]:
  """Each --gin_bindings value may hold several bindings separated by ';' (make's GIN=)."""
  return [b.strip() for value in values for b in value.split(';') if b.strip()]


def run_dir(base_dir: str, agent: str, game: str, seed: int) -> str:
  return os.path.join(base_dir, agent, game, f'seed_{seed}')


def main(argv=None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  from atari100k import configs, environment, runner  # pylint: disable=import-outside-toplevel
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
  except (configs.ConfigError, environment.UnknownGameError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2

  folder = run_dir(args.base_dir, agent, game, args.seed)
  result_path = os.path.join(folder, runner.RESULT_FILE)
  if os.path.exists(result_path):
    if not args.force:
      print(f'error: {folder} already holds a finished run ({result_path}). Nothing was '
            'changed. Use another --seed or --base_dir, or pass --force (FORCE=1 with make) '
            'to redo it; the old folder is then kept beside it.', file=sys.stderr)
      return 3
    kept = f'{folder}.old-{time.strftime("%Y%m%d-%H%M%S")}'
    shutil.move(folder, kept)
    print(f'--force: previous run moved to {kept}', file=sys.stderr)

  run = runner.Atari100kRunner(folder, game=game, seed=args.seed, agent_name=agent,
                               gin_overrides=split_bindings(args.gin_bindings),
                               keep_checkpoint=args.keep_checkpoint,
                               progress=not args.no_progress)
  result = run.run_experiment()
  print(f'{agent} {game} seed {args.seed}: score {result["score"]:.1f} over '
        f'{result["eval_episodes"]} episodes -> {result_path}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
