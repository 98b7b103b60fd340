"""A tiny deterministic game with 84x84 frames, for checking on a CPU that an agent learns.

``ToyCorridor`` is served by ``environment.create_atari100k_environment`` under the reserved
game name 'ToyCorridor' (outside the 26 Atari-100k games), with the interface of Dopamine's
``AtariPreprocessing``, so the runner, the agents and their replay buffers run unchanged.

The game is one choice. At the start cell the agent can take EXIT (reward 0.25, episode over)
or RIGHT; after RIGHT the corridor carries it, whatever it does, one cell a step past the goal
at cell ``length``, whose reward (1) comes with the ``length``-th step, the choice included, to
the corridor's end ``tail`` cells further, where the episode ends. NOOP at the start cell
waits (the runner's no-op starts press it). The optimal return is 1.

Why it catches the faults that matter: the value of RIGHT at the start is gamma^(length-1)
(0.90 at gamma 0.99) against 0.25 for EXIT, and with ``length`` = 11 the goal's reward lies
beyond the 10-step returns of DrQ(eps) and BBF, so only a learner that bootstraps learns to go
right. A learner that ignores terminals bootstraps the last transition of an episode from the
state it ended in: after EXIT that is the start, so EXIT looks like 0.25 every step forever
(0.25 / (1 - gamma^n) = 2.6 for DrQ's n = 10); after the goal it is the corridor's end, worth
0, as the ``tail`` steps after the reward earn nothing: it exits (``tests/test_learning_check.py``
breaks one so). One without bootstrap sees 0 for RIGHT, and one with the target's sign flipped
has nothing to climb; these two were not tried.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

NOOP, RIGHT, EXIT = 0, 1, 2
EXIT_REWARD = 0.25
GOAL_REWARD = 1.0
FRAME_SIZE = 84
CELL_PIXELS = 5


class ToyCorridor:
  """The corridor game as ``AtariPreprocessing`` presents a game.

  ``reset()`` -> (84, 84, 1) uint8 frame; ``step(action)`` -> (frame, reward, terminal, info);
  ``game_over`` is True after the episode's last step; ``action_space.n`` = 3.

  The frame shows the agent as a white square on its cell and the goal as a grey square on its
  cell (the agent hides it while passing), so the distance to the goal survives DrQ's random shifts.
  """

  def __init__(self, length: int = 11, tail: int = 2, seed: int | None = None):
    cells = FRAME_SIZE // CELL_PIXELS - 2  # one cell of margin on each side
    if length < 2 or tail < 1 or length + tail > cells:
      raise ValueError(f'ToyCorridor needs length >= 2, tail >= 1 and length + tail <= {cells}; '
                       f'got length {length}, tail {tail}.')
    del seed  # deterministic: nothing to seed
    self.length = int(length)
    self.tail = int(tail)
    self.action_space = gym.spaces.Discrete(3)
    self.position = 0
    self.game_over = False

  def render(self) -> np.ndarray:
    frame = np.zeros((FRAME_SIZE, FRAME_SIZE, 1), dtype=np.uint8)
    top = FRAME_SIZE // 2 - CELL_PIXELS // 2
    goal_left = CELL_PIXELS * (self.length + 1)
    frame[top:top + CELL_PIXELS, goal_left:goal_left + CELL_PIXELS] = 128
    left = CELL_PIXELS * (self.position + 1)
    frame[top:top + CELL_PIXELS, left:left + CELL_PIXELS] = 255
    return frame

  def reset(self) -> np.ndarray:
    self.position = 0
    self.game_over = False
    return self.render()

  def step(self, action: int):
    if self.game_over:
      raise RuntimeError('ToyCorridor.step after the episode ended: call reset() first.')
    action = int(action)
    if not 0 <= action < self.action_space.n:
      raise ValueError(f'ToyCorridor has actions 0 (NOOP), 1 (RIGHT), 2 (EXIT); got {action}.')
    reward = 0.0
    if self.position == 0:
      if action == EXIT:
        reward, self.game_over = EXIT_REWARD, True
      elif action == RIGHT:
        self.position = 1
    else:
      self.position += 1
      if self.position == self.length:
        reward = GOAL_REWARD
      self.game_over = self.position == self.length + self.tail
    return self.render(), reward, self.game_over, {}


GAMES = {'ToyCorridor': ToyCorridor}
