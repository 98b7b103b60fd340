"""A subsequence replay buffer for BBF (Schwarzer et al. 2023), one environment, numpy only.

BBF trains on *subsequences*: the SPR loss predicts the latents of the next ``subseq_len - 1``
states from the first one, and the TD loss uses an n-step return whose ``n`` and ``gamma`` are
annealed during training, so both are chosen at sample time instead of being baked into stored
transitions (as ``agents.replay.EpisodeTransitionAccumulator`` does for DrQ).

The step stream is the one of ``agents/replay.py``: one ``add(o_k, a_k, r_k, terminal_k,
episode_end_k)`` per environment step ``k = 0, 1, 2, ...``, where ``o_k`` is the frame ``a_k``
was chosen on, ``r_k`` the reward of ``a_k``, ``terminal_k`` says the episode (a life) ended
after ``a_k`` (no bootstrap past it) and ``episode_end_k`` says it was cut after ``a_k``
(terminal or truncation, e.g. the step cap).

* A *segment* starts at step 0 and right after every step with ``terminal`` or
  ``episode_end``. The frame stack of step ``i`` is frames ``i - stack_size + 1 .. i`` (newest
  last, on a new last axis), with frames from before ``i``'s segment start zeroed: the agent's
  own acting stack, which is reset at every episode (life) start.
* With ``frame_stacks='public_code'`` (the public BBF buffer's ``censor_before``): every stack
  of a sample of key ``k`` (its ``T`` states and ``next_state``) zeroes the frames before
  ``c_k = 1 +`` the first *terminal* among steps ``k - stack_size + 1 .. k - 1`` (none zeroed
  when there is none), and keys ``0 .. stack_size - 2`` never enter the sampler. Truncations do
  not cut a stack, and a stack after a second boundary within ``stack_size - 1`` steps, or of a
  later step ``k + j`` past a terminal, shows frames of the earlier segment. (In global steps:
  the public code's ring indices also zero frames at its ring's seam once it wraps, which a
  200,000-step buffer never does in a 100k-step run.)
* Storage is circular: global step ``k`` lives in slot ``k % capacity`` of preallocated arrays.
* Sampling keys are global step indices. Key ``k`` enters the sampler once step
  ``k + max_update_horizon + subseq_len - 1`` has been added (everything a sample of ``k`` reads
  exists then), unless a truncation (``episode_end`` without ``terminal``) lies in
  ``k .. k + max_update_horizon - 1``: the step after a truncation is the reset frame, so such
  a key could lack a bootstrap frame for some ``n`` and is dropped for every ``n``. New keys get
  the sampler's max recorded priority.
* Before step ``j >= capacity`` overwrites the frame of step ``j - capacity``, every key whose
  stack holds that frame (``j - capacity .. j - capacity + stack_size - 1``) leaves the sampler.

``sample(batch_size, update_horizon, gamma)`` returns, for keys ``k`` (``T = subseq_len``,
``n = update_horizon``):

* ``state`` (B, T, *obs, stack) uint8, the stacks of steps ``k .. k + T - 1``; ``action``,
  ``reward`` (B, T): ``a_{k+j}``, ``r_{k+j}``;
* ``return`` (B,): ``sum_{i<n} gamma^i r_{k+i}``, stopping after the first terminal at or after
  ``k``; ``terminal`` (B,): a terminal in ``k .. k + n - 1``; ``discount`` (B,): ``gamma**n``
  (the agent multiplies by ``1 - terminal``);
* ``next_state`` (B, *obs, stack): the stack of step ``k + n``, or of the terminal step when
  ``terminal`` (unused by the loss, but never a mix of two segments);
* with ``bootstrap='public_code'`` (the public BBF buffer's rule, google-research issue 1851):
  ``terminal`` looks at ``k .. k + n - 2`` only and ``next_state`` is the stack of step
  ``k + n - 1``, one step early (the return and ``discount`` are the same);
* ``same_trajectory`` (B, T) float32: 1 at ``j = 0``; at ``j > 0``, 1 iff no step in
  ``k .. k + j - 1`` ended its segment (terminal or episode_end);
* with ``spr_mask='public_code'`` (the public BBF buffer's rule): ``same_trajectory[b, j]`` is
  1 iff no step in ``k .. k + j`` is a *terminal* (a terminal at ``k`` itself or at ``k + j``
  drops target ``j``; truncations are not looked at), except row ``b = 0`` of the batch, all 1
  (its ``output[0, :] = 0`` zeroes the first batch row's terminal flags, not the first step's);
* ``indices`` (B,) int64 keys and ``sampling_probabilities`` (B,) float64.

Prioritized sampling uses Dopamine's ``PrioritizedSamplingDistribution`` (priority exponent
1). Its sum tree does not checkpoint ``max_recorded_priority`` and its ``to_state_dict`` hands
out its live containers, so this module saves both itself, as copies.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from dopamine.jax.replay_memory import samplers

_STATE_FORMAT = 1
BOOTSTRAPS = ('next', 'public_code')
SPR_MASKS = ('segment', 'public_code')
FRAME_STACKS = ('segment', 'public_code')


def _check_int(value: Any, name: str, minimum: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise ValueError(f'{name} must be an integer, got {value!r}.')
  if value < minimum:
    raise ValueError(f'{name} must be >= {minimum}, got {value}.')
  return int(value)


def _scalar(value: Any, name: str) -> np.ndarray:
  """``value`` (a Python or numpy scalar, a 0-d or 1-element array) as a 0-d array."""
  array = np.asarray(value)
  if array.size != 1:
    raise ValueError(f'{name} must be a scalar or a 1-element array, got shape {array.shape}.')
  return array.reshape(())


def _none_before(flags: np.ndarray) -> np.ndarray:
  """``out[..., j]`` is True iff ``flags[..., :j]`` has no True (so ``out[..., 0]`` is True)."""
  counts = np.cumsum(flags, axis=-1)
  return counts - flags == 0


class SubsequenceReplayBuffer:
  """Circular numpy replay of one environment's step stream; see the module docstring."""

  def __init__(self, *, observation_shape: Sequence[int] = (84, 84), stack_size: int = 4,
               capacity: int = 200_000, subseq_len: int = 6, max_update_horizon: int = 10,
               prioritized: bool = True, seed: int = 0, bootstrap: str = 'next',
               spr_mask: str = 'segment', frame_stacks: str = 'segment'):
    """Args: the module docstring's names; ``bootstrap``: 'next' (the n-step target bootstraps
    from step ``k + n``) or 'public_code' (from ``k + n - 1``, terminals of ``k .. k + n - 2``);
    ``spr_mask``: 'segment' (``same_trajectory`` ends where a segment ends) or 'public_code';
    ``frame_stacks``: 'segment' (zeroed before each stack's segment start) or 'public_code'."""
    for name, value, allowed in (('bootstrap', bootstrap, BOOTSTRAPS),
                                 ('spr_mask', spr_mask, SPR_MASKS),
                                 ('frame_stacks', frame_stacks, FRAME_STACKS)):
      if value not in allowed:
        raise ValueError(f'{name} must be one of {", ".join(map(repr, allowed))}, got '
                         f'{value!r}.')
    self._bootstrap = bootstrap
    self._spr_mask = spr_mask
    self._frame_stacks = frame_stacks
    observation_shape = tuple(observation_shape)
    if not observation_shape:
      raise ValueError('observation_shape must have at least one dimension.')
    for size in observation_shape:
      _check_int(size, 'every observation_shape entry', 1)
    self._observation_shape = tuple(int(size) for size in observation_shape)
    self._stack_size = _check_int(stack_size, 'stack_size', 1)
    self._subseq_len = _check_int(subseq_len, 'subseq_len', 1)
    self._max_update_horizon = _check_int(max_update_horizon, 'max_update_horizon', 1)
    self._capacity = _check_int(capacity, 'capacity', 1)
    # A key enters the sampler `_lag` steps after its own step and leaves when its oldest stack
    # frame is overwritten, `capacity - stack_size + 1` steps after its own step.
    self._lag = self._max_update_horizon + self._subseq_len - 1
    minimum_capacity = self._lag + self._stack_size
    if self._capacity < minimum_capacity:
      raise ValueError(
          f'capacity must be >= max_update_horizon + subseq_len + stack_size - 1 = '
          f'{minimum_capacity} (a key is sampleable only once its whole window is stored and '
          f'until its oldest frame is overwritten), got {self._capacity}.')
    if not isinstance(prioritized, (bool, np.bool_)):
      raise ValueError(f'prioritized must be a bool, got {prioritized!r}.')
    self._prioritized = bool(prioritized)
    self._seed = _check_int(seed, 'seed', 0)

    shape = (self._capacity,)
    self._observations = np.zeros(shape + self._observation_shape, np.uint8)
    self._actions = np.zeros(shape, np.int32)
    self._rewards = np.zeros(shape, np.float32)
    self._terminals = np.zeros(shape, bool)
    self._episode_ends = np.zeros(shape, bool)
    self._segment_starts = np.zeros(shape, np.int64)  # global index of the segment's first step
    # The key held by each slot's sampler entry (key % capacity), -1 when none: tells a live key
    # from an evicted one (or one never added) without asking the sampler's private maps.
    self._key_of_slot = np.full(shape, -1, np.int64)
    self._add_count = 0
    self._sampler = self._new_sampler()

  # ------------------------------------------------------------------ properties
  @property
  def add_count(self) -> int:
    """Number of steps added so far."""
    return self._add_count

  @property
  def num_sampleable(self) -> int:
    """Number of keys the sampler can draw now."""
    return self._sampler.size

  @property
  def max_priority(self) -> float:
    """The priority new keys get (the largest ever recorded; 1.0 until then, and if uniform)."""
    if not self._prioritized:
      return 1.0
    return float(self._sampler._sum_tree.max_recorded_priority)  # pylint: disable=protected-access

  # ------------------------------------------------------------------ adding
  def add(self, observation: Any, action: Any, reward: Any, terminal: Any,
          episode_end: Any) -> None:
    """Stores step ``add_count`` (copies every input) and updates the sampler's keys."""
    observation = np.asarray(observation)
    if observation.shape != self._observation_shape:
      raise ValueError(f'observation must have shape {self._observation_shape}, got '
                       f'{observation.shape}.')
    if observation.dtype != np.uint8:
      raise ValueError(f'observation must be uint8, got {observation.dtype}.')
    action = _scalar(action, 'action')
    if not np.issubdtype(action.dtype, np.integer):
      raise ValueError(f'action must be an integer, got dtype {action.dtype}.')
    reward = _scalar(reward, 'reward')
    terminal = bool(_scalar(terminal, 'terminal'))
    episode_end = bool(_scalar(episode_end, 'episode_end'))

    step = self._add_count
    if step >= self._capacity:
      # Every key whose stack holds the frame about to be overwritten (that of step `first`).
      # Only the newest is still there when step > capacity, but at step == capacity all of
      # keys 0 .. stack_size - 1 are (their older frames were zero padding, never stored).
      first = step - self._capacity
      for key in range(first, first + self._stack_size):
        self._remove_key(key)
    segment_start = self._next_segment_start()
    slot = step % self._capacity
    self._observations[slot] = observation
    self._actions[slot] = action
    self._rewards[slot] = reward
    self._terminals[slot] = terminal
    self._episode_ends[slot] = episode_end
    self._segment_starts[slot] = segment_start
    self._add_count += 1
    self._maybe_add_key(step - self._lag)

  def end_segment(self) -> None:
    """Marks the last stored step as a truncation, so that the next step starts a segment.

    For a run resumed from a checkpoint: the interrupted episode restarts, and its partial
    segment must neither stack frames with nor bootstrap from the new one. Keys whose n-step
    window reaches that step have not entered the sampler yet (they lag by more than
    ``max_update_horizon``), so they are dropped like any truncation.
    """
    if self._add_count:
      self._episode_ends[(self._add_count - 1) % self._capacity] = True

  def _next_segment_start(self) -> int:
    """Global index of the first step of the segment of step ``add_count``."""
    step = self._add_count
    if step == 0:
      return 0
    previous = (step - 1) % self._capacity
    if self._terminals[previous] or self._episode_ends[previous]:
      return step
    return int(self._segment_starts[previous])

  def _maybe_add_key(self, key: int) -> None:
    if key < 0:
      return
    if self._frame_stacks == 'public_code' and key < self._stack_size - 1:
      return  # the public buffer never samples these ("the padding states of the first episode")
    window = (key + np.arange(self._max_update_horizon)) % self._capacity
    if np.any(self._episode_ends[window] & ~self._terminals[window]):
      return  # a truncation: some n would bootstrap from the reset frame
    if self._prioritized:
      self._sampler.add(key, priority=self.max_priority)
    else:
      self._sampler.add(key)
    self._key_of_slot[key % self._capacity] = key

  def _remove_key(self, key: int) -> None:
    slot = key % self._capacity
    if key >= 0 and self._key_of_slot[slot] == key:
      self._sampler.remove(key)
      self._key_of_slot[slot] = -1

  # ------------------------------------------------------------------ sampling
  def sample(self, batch_size: int, update_horizon: int, gamma: float) -> dict[str, np.ndarray]:
    """A batch of subsequences with ``update_horizon``-step returns; see the module docstring."""
    batch_size = _check_int(batch_size, 'batch_size', 1)
    n = _check_int(update_horizon, 'update_horizon', 1)
    if n > self._max_update_horizon:
      raise ValueError(f'update_horizon must be <= max_update_horizon = '
                       f'{self._max_update_horizon}, got {n}.')
    gamma = float(gamma)
    if not 0.0 <= gamma <= 1.0:
      raise ValueError(f'gamma must be in [0, 1], got {gamma}.')
    if self._sampler.size == 0:
      raise ValueError(
          f'No sampleable key yet: key k needs steps up to k + max_update_horizon + subseq_len '
          f'- 1, so at least {self._lag + 1} steps (and no truncation in its first '
          f'max_update_horizon steps); {self._add_count} added.')

    metadata = self._sampler.sample(batch_size)
    keys = metadata.keys.astype(np.int64)
    if self._prioritized:
      probabilities = np.asarray(metadata.probabilities, np.float64)
    else:
      probabilities = np.full(batch_size, 1.0 / self._sampler.size, np.float64)

    steps = keys[:, None] + np.arange(self._subseq_len)            # (B, T)
    slots = steps % self._capacity
    ends = self._terminals[slots] | self._episode_ends[slots]

    return_slots = (keys[:, None] + np.arange(n)) % self._capacity  # (B, n)
    terminals = self._terminals[return_slots]
    counted = _none_before(terminals)  # rewards up to and including the first terminal
    discounts = gamma ** np.arange(n, dtype=np.float64)
    returns = np.sum(np.where(counted, self._rewards[return_slots] * discounts, 0.0), axis=1)
    if self._bootstrap == 'public_code':
      terminal = terminals[:, :n - 1].any(axis=1)
      next_steps = keys + n - 1
    else:
      terminal = terminals.any(axis=1)
      next_steps = np.where(terminal, keys + np.argmax(terminals, axis=1), keys + n)

    if self._spr_mask == 'public_code':
      # The public buffer: (1 - terminal[k .. k+T-1]).cumprod(1) after `output[0, :] = 0`, which
      # clears the terminal flags of the batch's first row, not of each row's first step.
      flags = self._terminals[slots].copy()
      flags[0] = False
      same = np.cumsum(flags, axis=1) == 0
    else:
      same = _none_before(ends)
    if self._frame_stacks == 'public_code':
      first_kept = self._public_censor(keys)                           # (B,)
      state_starts, next_starts = np.broadcast_to(first_kept[:, None], steps.shape), first_kept
    else:
      state_starts = self._segment_starts[slots]
      next_starts = self._segment_starts[next_steps % self._capacity]

    return {
        'state': self._stacks(steps, state_starts),
        'action': self._actions[slots],
        'reward': self._rewards[slots],
        'return': returns.astype(np.float32),
        'terminal': terminal,
        'discount': np.full(batch_size, gamma ** n, np.float32),
        'next_state': self._stacks(next_steps, next_starts),
        'same_trajectory': same.astype(np.float32),
        'indices': keys,
        'sampling_probabilities': probabilities,
    }

  def _public_censor(self, keys: np.ndarray) -> np.ndarray:
    """The public buffer's ``censor_before`` of each key, as a global step: 1 + the first
    terminal among steps ``k - stack_size + 1 .. k - 1``, or 0 when there is none."""
    window = keys[:, None] + np.arange(1 - self._stack_size, 0)      # (B, stack - 1)
    terminals = self._terminals[window % self._capacity] & (window >= 0)
    first = keys + 1 - self._stack_size + np.argmax(terminals, axis=1) if window.size else keys
    return np.where(terminals.any(axis=1), first + 1, 0)

  def _stacks(self, steps: np.ndarray, first_kept: np.ndarray) -> np.ndarray:
    """Frame stacks of global ``steps`` (any shape): ``steps.shape + obs_shape + (stack,)``,
    with the frames before ``first_kept`` (a global step, same shape as ``steps``) zeroed."""
    size = self._stack_size
    frames = steps[..., None] + np.arange(1 - size, 1)               # (..., stack), newest last
    stacks = self._observations[frames % self._capacity]             # (..., stack, *obs)
    stacks[frames < first_kept[..., None]] = 0
    # Stack axis last. One strided copy per stack slot over whole flattened frames is about
    # twice as fast as numpy's generic transpose (whose inner loop is only `stack` long).
    planes = stacks.reshape(-1, size, math.prod(self._observation_shape))
    out = np.empty((planes.shape[0], planes.shape[2], size), np.uint8)
    for slot in range(size):
      out[:, :, slot] = planes[:, slot]
    return out.reshape(steps.shape + self._observation_shape + (size,))

  # ------------------------------------------------------------------ priorities
  def update_priorities(self, keys: Any, priorities: Any) -> None:
    """Sets the priorities of sampled ``keys``.

    Keys no longer in the sampler (evicted since they were sampled) are skipped. With duplicate
    keys Dopamine's sum tree keeps the first priority given. A no-op (after the checks) when the
    buffer is uniform.
    """
    keys = np.asarray(keys).reshape(-1)
    priorities = np.asarray(priorities, dtype=np.float64).reshape(-1)
    if keys.size and not np.issubdtype(keys.dtype, np.integer):
      raise ValueError(f'keys must be integers, got dtype {keys.dtype}.')
    if keys.shape != priorities.shape:
      raise ValueError(f'keys and priorities must have the same size, got {keys.size} and '
                       f'{priorities.size}.')
    if not np.all(np.isfinite(priorities)) or np.any(priorities < 0.0):
      raise ValueError(f'priorities must be finite and >= 0, got {priorities}.')
    if not self._prioritized or keys.size == 0:
      return
    keys = keys.astype(np.int64)
    live = (keys >= 0) & (self._key_of_slot[keys % self._capacity] == keys)
    if np.any(live):
      self._sampler.update(keys[live].astype(np.int32), priorities=priorities[live])

  # ------------------------------------------------------------------ checkpointing
  def _config(self) -> dict[str, Any]:
    return {
        'observation_shape': self._observation_shape,
        'stack_size': self._stack_size,
        'capacity': self._capacity,
        'subseq_len': self._subseq_len,
        'max_update_horizon': self._max_update_horizon,
        'prioritized': self._prioritized,
    }

  def _new_sampler(self):
    if self._prioritized:
      return samplers.PrioritizedSamplingDistribution(self._seed, max_capacity=self._capacity)
    return samplers.UniformSamplingDistribution(self._seed)

  def to_state_dict(self) -> dict[str, Any]:
    """Everything needed to restore the buffer exactly, storing only the filled slots.

    The step arrays are read-only views of the live storage (no copy of the frames): pickle
    the dict before adding more steps. The sampler's state is copied.
    """
    filled = min(self._add_count, self._capacity)

    def view(array: np.ndarray) -> np.ndarray:
      part = array[:filled]
      part.flags.writeable = False
      return part

    sampler_state = self._sampler.to_state_dict()
    state = {
        'format': _STATE_FORMAT,
        'config': self._config(),
        'add_count': self._add_count,
        'observations': view(self._observations),
        'actions': view(self._actions),
        'rewards': view(self._rewards),
        'terminals': view(self._terminals),
        'episode_ends': view(self._episode_ends),
        'segment_starts': view(self._segment_starts),
        # The sampler's key order matters (it indexes the sum tree's leaves).
        'sampler_keys': np.asarray(sampler_state['key_by_index'], np.int64),
        'sampler_rng_state': copy.deepcopy(sampler_state['rng_state']),
    }
    if self._prioritized:
      state['sum_tree_nodes'] = np.array(sampler_state['sum_tree']['nodes'], np.float64)
      state['max_priority'] = self.max_priority
    return state

  def from_state_dict(self, state: dict[str, Any]) -> None:
    """Restores a ``to_state_dict`` of a buffer with the same configuration (not the seed)."""
    if state.get('format') != _STATE_FORMAT:
      raise ValueError(f'Unknown replay state format {state.get("format")!r}, expected '
                       f'{_STATE_FORMAT}.')
    config = dict(state['config'])
    config['observation_shape'] = tuple(config['observation_shape'])
    if config != self._config():
      raise ValueError(f'Replay state was saved with {config}, this buffer is {self._config()}.')
    add_count = int(state['add_count'])
    filled = min(add_count, self._capacity)
    arrays = {
        'observations': self._observations,
        'actions': self._actions,
        'rewards': self._rewards,
        'terminals': self._terminals,
        'episode_ends': self._episode_ends,
        'segment_starts': self._segment_starts,
    }
    for name, array in arrays.items():
      if len(state[name]) != filled:
        raise ValueError(f'Replay state {name!r} has {len(state[name])} entries, expected '
                         f'{filled} for add_count {add_count}.')
    for name, array in arrays.items():
      array[:filled] = state[name]
      array[filled:] = 0
    self._add_count = add_count

    keys = [int(key) for key in state['sampler_keys']]
    sampler_state = {
        'key_by_index': keys,
        'index_by_key': {key: index for index, key in enumerate(keys)},
        'rng_state': copy.deepcopy(state['sampler_rng_state']),
    }
    if self._prioritized:
      sampler_state['sum_tree'] = {'nodes': np.array(state['sum_tree_nodes'], np.float64)}
    self._sampler = self._new_sampler()
    self._sampler.from_state_dict(sampler_state)
    if self._prioritized:
      tree = self._sampler._sum_tree  # pylint: disable=protected-access
      tree.max_recorded_priority = float(state['max_priority'])
    self._key_of_slot.fill(-1)
    if keys:
      key_array = np.asarray(keys, np.int64)
      self._key_of_slot[key_array % self._capacity] = key_array
