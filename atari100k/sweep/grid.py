"""The sweep's grid: one ``Run`` per (agent, game, seed) and the command line that makes it, the
checks of the names, seeds and gin bindings (all before anything starts), and what a run folder
says of its run (finished, diverged).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys

from atari100k.files import FAILED_FILE, RESULT_FILE, run_folder
from atari100k.sweep.locks import read_json
from common import seeds as seeds_lib


# Where the runs' commands start: ``python -m atari100k.run`` imports the repository from there.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class SweepError(ValueError):
  """Bad input to the sweep: reported in one paragraph, exit code 2."""


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
            '--seed', str(self.seed), '--runs', self.base_dir]
    if self.steps is not None:
      argv += ['--steps', str(self.steps)]
    if self.eval_episodes is not None:
      argv += ['--eval-episodes', str(self.eval_episodes)]
    for binding in self.bindings:
      argv += ['--gin', binding]
    return argv + ['--no-progress']

  def shell_command(self, python: str = sys.executable, repo: str = REPO_ROOT) -> str:
    return f'cd {shlex.quote(repo)} && {shlex.join(self.argv(python))}'


def parse_seeds(spec: str) -> list[int]:
  """The seeds of ``--seeds`` (``common.seeds``: '5', '3-6', '0,2,7', '7,'); bad: SweepError."""
  try:
    return seeds_lib.parse_seeds(spec)
  except ValueError as e:
    raise SweepError(str(e)) from None


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
  return read_json(path).get('why') or f'see {path}'
