"""A corrected n-step transition accumulator for Dopamine 4.1.2's JAX replay buffer.

Dopamine's runners log one ``TransitionElement(o_k, a_k, r_k, done_k, episode_end_k)`` per
agent step, where ``o_k`` is the frame the action was chosen on, ``r_k`` the (clipped) reward
of ``a_k`` and ``done_k`` says that the episode (a life, with terminal-on-life-loss) ended
*after* ``a_k``. This is also the convention of the replay buffer the published DrQ(eps) runs
used (Dopamine's ``OutOfGraphReplayBuffer``: the last step of an episode is stored and sampled,
and its n-step return includes its own reward).

The 4.1.2 ``accumulator.TransitionAccumulator`` reads the same stream as if the *frame* of a
``done`` element were itself terminal. On every terminal it therefore (measured in
``tests/test_replay.py``):

1. emits the element that starts n steps before the terminal step ``stack_size`` times, as a
   terminal transition whose return misses ``r_T`` (it should bootstrap from ``o_T``);
2. emits the last n-1 elements with all but the newest frame of their state stack zeroed,
   because the frames it pops from its deque are gone when it builds the stack;
3. never emits the last step ``(o_T, a_T, r_T)`` of the episode.

With terminal-on-life-loss this corrupts about ``n + stack_size`` transitions per life lost.
Worse, the 4.1.2 runner (``DataEfficientAtariRunner._run_parallel``) hands ``log_transition``
views into a two-slot observation buffer that it overwrites every other step, and the stock
accumulator keeps those views: any frame older than two steps in a stored state is replaced by
one of the two newest frames. The same reuse shifts the stored rewards by one step (with reward
clipping the runner writes the next reward into the array it has just logged) and turns every
stored terminal flag into the runner's current one, almost always 0. This accumulator copies
what it is given.

``EpisodeTransitionAccumulator`` emits exactly one element per logged step ``k`` of a segment
(the steps between two resets of the agent's frame stack):

* state      = frames ``o_{k-s+1..k}``, zero-filled before the segment start (the agent's own
               stack at acting time);
* reward     = ``sum_{i<m} gamma^i r_{k+i}``, m = n, or up to the terminal step;
* next_state = frames ``o_{k+n-s+1..k+n}`` (a full n-step bootstrap), unused when terminal;
* terminal   = the segment terminated within the n steps.

On a truncation (``episode_end`` without ``done``, e.g. the 27,000-step cap) the last n steps
cannot bootstrap from a real frame (the runner replaces the frame after the last step by the
reset frame) and are dropped, as Dopamine does.
"""

from __future__ import annotations

import collections
from typing import Any, Iterable

import numpy as np
from dopamine.jax.replay_memory import accumulator
from dopamine.jax.replay_memory import elements


class EpisodeTransitionAccumulator(accumulator.TransitionAccumulator):
  """One n-step ``ReplayElement`` per logged step; see the module docstring."""

  def __init__(self, stack_size: int, update_horizon: int, gamma: float):
    super().__init__(stack_size=stack_size, update_horizon=update_horizon, gamma=gamma)
    # Last n + stack_size transitions of the current segment, and the segment index of the
    # oldest one kept (frames before index 0 of a segment are zeros).
    self._trajectory = collections.deque(maxlen=update_horizon + stack_size)
    self._first_index = 0

  # ------------------------------------------------------------------ helpers
  @property
  def _next_index(self) -> int:
    return self._first_index + len(self._trajectory)

  def _transition(self, index: int) -> elements.TransitionElement:
    return self._trajectory[index - self._first_index]

  def _stack(self, last_index: int) -> np.ndarray:
    """Frames ``last_index - s + 1 .. last_index`` stacked on a new last axis."""
    reference = self._trajectory[-1].observation
    stack = np.zeros(reference.shape + (self._stack_size,), reference.dtype)
    for slot in range(self._stack_size):
      index = last_index - self._stack_size + 1 + slot
      if index >= 0:
        stack[..., slot] = self._transition(index).observation
    return stack

  def _element(self, k: int, last_reward_index: int, next_index: int,
               terminal: bool) -> elements.ReplayElement:
    rewards = [self._transition(i).reward for i in range(k, last_reward_index + 1)]
    ret = 0.0
    for power, reward in enumerate(rewards):
      ret = ret + reward * (self._gamma ** power)
    first = self._transition(k)
    flag = np.ones_like if terminal else np.zeros_like
    return elements.ReplayElement(
        state=self._stack(k),
        action=first.action,
        reward=ret,
        next_state=self._stack(next_index),
        is_terminal=flag(first.is_terminal),
        episode_end=flag(first.episode_end),
    )

  def _end_segment(self) -> None:
    self._trajectory.clear()
    self._first_index = 0

  # ------------------------------------------------------------------ protocol
  def accumulate(
      self, transition: elements.TransitionElement
  ) -> Iterable[elements.ReplayElement]:
    """Adds step ``k`` of the segment; yields the elements that became complete."""
    # Copy: Dopamine's vectorised runner reuses its observation and terminal buffers between
    # steps, so the arrays it logs change under our feet unless we own them.
    transition = elements.TransitionElement(*(np.array(x, copy=True) for x in transition))
    if len(self._trajectory) == self._trajectory.maxlen:
      self._first_index += 1
    self._trajectory.append(transition)
    n = self._update_horizon
    last = self._next_index - 1  # index of the step just added

    # The step n before this one now has its full n-step return and bootstrap frame.
    if last - n >= 0:
      yield self._element(last - n, last - 1, last, terminal=False)

    if bool(np.any(transition.is_terminal)):
      # Every step not yet emitted ends at the terminal: shorter, non-bootstrapped returns.
      for k in range(max(0, last - n + 1), last + 1):
        yield self._element(k, last, last, terminal=True)
      self._end_segment()
    elif bool(np.any(transition.episode_end)):
      self._end_segment()  # truncation: the last n steps have no bootstrap frame

  def clear(self) -> None:
    self._end_segment()

  def to_state_dict(self) -> dict[str, Any]:
    return {'trajectory': list(self._trajectory), 'first_index': self._first_index}

  def from_state_dict(self, state_dict: dict[str, Any]) -> None:
    self._trajectory.clear()
    self._trajectory.extend(state_dict['trajectory'])
    self._first_index = int(state_dict['first_index'])
