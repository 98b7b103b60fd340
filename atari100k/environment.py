"""Atari environments with the Atari-100k protocol, and the list of its 26 games.

Protocol (Kaiser et al. 2019; Dopamine's atari_100k configs): ``ALE/<Game>-v5`` with no sticky
actions, Dopamine's ``AtariPreprocessing`` (frame skip 4, max-pool of the last two frames,
84x84 grayscale, terminal on life loss during training), at most 27,000 agent steps (108,000
frames) per episode. The 4-frame stack is kept by the agent, the 0-29 no-op starts by the
runner. ROMs ship inside ale-py, so nothing is downloaded.

The episode cap is the runner's (``Runner.max_steps_per_episode``, agent steps after the no-op
start): it ends an episode as a *truncation*, ``episode_end`` without a terminal, so the agents
store no terminal and bootstrap, and the frame stack restarts. So did the pipelines behind the
published numbers (Dopamine 2021, the public BBF code: gym's time limit stripped, the runner's
step cap). ``ALE/<Game>-v5`` instead sets a 108,000-frame cap inside the ALE, which counts the
no-op frames and which Dopamine 4.1.2's ``AtariPreprocessing`` reports as a terminal
(``terminated or truncated``): a capped episode would be stored as a true end, after 27,000
minus the no-ops steps. We therefore lift the ALE's cap; ``max_frames_per_episode = 108000``
restores Dopamine 4.1.2's behaviour.
"""

from __future__ import annotations


import ale_py
import gin
import gymnasium as gym
from dopamine.discrete_domains import atari_lib

from agents import settings
from atari100k import toy_games
from common.suggest import did_you_mean

gym.register_envs(ale_py)

# The 26 games of the Atari-100k benchmark, in the order of the published score tables.
GAMES = (
    'Alien', 'Amidar', 'Assault', 'Asterix', 'BankHeist', 'BattleZone', 'Boxing', 'Breakout',
    'ChopperCommand', 'CrazyClimber', 'DemonAttack', 'Freeway', 'Frostbite', 'Gopher', 'Hero',
    'Jamesbond', 'Kangaroo', 'Krull', 'KungFuMaster', 'MsPacman', 'Pong', 'PrivateEye',
    'Qbert', 'RoadRunner', 'Seaquest', 'UpNDown',
)


class UnknownGameError(ValueError):
  """Raised for a game name outside the Atari-100k benchmark."""


def check_game(game: str) -> str:
  """Returns the canonical game name, or raises ``UnknownGameError`` listing the 26 games.

  The learning-check games of ``atari100k.toy_games`` (reserved names) are accepted too.
  """
  by_lower = {g.lower(): g for g in GAMES + tuple(toy_games.GAMES)}
  key = game.replace('_', '').replace(' ', '').replace('-', '').lower()
  if key in by_lower:
    return by_lower[key]
  raise UnknownGameError(
      f'Unknown game {game!r}.{did_you_mean(game, GAMES)} Atari-100k has 26 games: {", ".join(GAMES)}. '
      'Pass one of them with GAME=<name> (make) or --game <name>.')


def check_settings(values: dict) -> None:
  """Raises ``settings.SettingError`` for a frame cap that is neither None nor positive."""
  settings.check('create_atari100k_environment', values,
                 {'max_frames_per_episode': settings.POSITIVE_INT},
                 optional=('max_frames_per_episode',))


@gin.configurable
def create_atari100k_environment(game_name: str,
                                 seed: int | None = None,
                                 sticky_actions: bool = False,
                                 terminal_on_life_loss: bool = True,
                                 max_frames_per_episode: int | None = None):
  """Creates one preprocessed Atari environment.

  Args:
    game_name: str, one of ``GAMES``, or a learning-check game of ``atari100k.toy_games``
      (made without the ALE; the other arguments do not apply).
    seed: int or None, seeds the ALE (its no-op and random-start RNG) for repeatable runs.
    sticky_actions: bool, repeat-action probability 0.25 instead of 0 (not Atari-100k).
    terminal_on_life_loss: bool, report a terminal step when a life is lost.
    max_frames_per_episode: None (the runner's step cap ends episodes, as a truncation), or an
      ALE frame cap that counts no-op frames and ends the episode as a terminal (Dopamine
      4.1.2's ``ALE/<Game>-v5`` default: 108000); see the module docstring.

  Returns:
    ``dopamine.discrete_domains.atari_lib.AtariPreprocessing`` around the ALE env: ``reset()``
    gives an (84, 84, 1) uint8 frame, ``step(a)`` gives (frame, reward, terminal, info) and
    ``game_over`` tells a real episode end from a lost life.
  """
  game = check_game(game_name)
  check_settings({'max_frames_per_episode': max_frames_per_episode})
  if game in toy_games.GAMES:
    return toy_games.GAMES[game](seed=seed)
  env = gym.make(f'ALE/{game}-v5',
                 repeat_action_probability=0.25 if sticky_actions else 0.0,
                 frameskip=1,
                 # ale-py registers v5 games with a 108,000-frame cap; 0 lifts it.
                 max_num_frames_per_episode=max_frames_per_episode or 0)
  env.reset(seed=seed)  # seeds the emulator; later resets continue that RNG stream
  # Strip gymnasium's OrderEnforcing (as Dopamine does with TimeLimit): Dopamine's
  # preprocessing reads ``environment.env.ale``.
  env = env.env
  return atari_lib.AtariPreprocessing(
      env, frame_skip=4, terminal_on_life_loss=terminal_on_life_loss, screen_size=84)
