"""Tests of ``agents.subsequence_replay.SubsequenceReplayBuffer`` on tiny hand-made streams.

Every step ``k`` of a stream has its own frame (``frame(k)``, never all zeros, so a zero frame in
a stack is padding) and the stream convention of ``agents/replay.py``: ``(o_k, a_k, r_k,
terminal_k, episode_end_k)``. ``Reference`` recomputes, with plain loops over the list of
steps, what the buffer must hold (sampleable keys, frame stacks, n-step returns, masks); the
buffer is compared with it on random streams, with and without circular overwrite, and on
hand-computed cases.
"""

from __future__ import annotations

import pickle
from typing import Any, NamedTuple

import numpy as np
import pytest

from agents.subsequence_replay import SubsequenceReplayBuffer

OBS = (2, 2)


class Step(NamedTuple):
  observation: np.ndarray
  action: int
  reward: float
  terminal: bool
  episode_end: bool


def frame(k: int) -> np.ndarray:
  """A frame unique to step ``k`` (for k < 65535) and never all zeros."""
  return np.array([[(k + 1) % 256, (k + 1) // 256], [7, 9]], np.uint8)


def make_stream(rewards, terminals=(), truncations=(), length=None) -> list[Step]:
  """Steps with the given rewards; ``terminals`` / ``truncations``: step indices."""
  length = len(rewards) if length is None else length
  rewards = list(rewards) + [0.0] * (length - len(rewards))
  steps = []
  for k in range(length):
    terminal = k in terminals
    steps.append(Step(frame(k), k % 5, float(rewards[k]), terminal,
                      terminal or k in truncations))
  return steps


def random_stream(seed: int, length: int) -> list[Step]:
  """Life losses (terminal only), game overs (both flags) and truncations (episode_end only)."""
  rng = np.random.default_rng(seed)
  steps = []
  for k in range(length):
    u = rng.random()
    terminal = u < 0.11
    episode_end = u >= 0.08 and u < 0.15
    reward = float(rng.choice([-1.0, 0.0, 0.5, 1.0, 2.0]))
    steps.append(Step(frame(k), int(rng.integers(6)), reward, terminal, episode_end))
  return steps


def fill(buffer: SubsequenceReplayBuffer, steps: list[Step]) -> SubsequenceReplayBuffer:
  for step in steps:
    buffer.add(*step)
  return buffer


class Reference:
  """What the buffer must sample, from a plain list of steps; ``public_code=True``: the public
  BBF buffer's rules (bootstrap, SPR mask and frame stacks), as the docstring states them."""

  def __init__(self, steps: list[Step], *, stack_size: int, capacity: int, subseq_len: int,
               max_update_horizon: int, public_code: bool = False):
    self.steps = steps
    self.stack_size = stack_size
    self.capacity = capacity
    self.subseq_len = subseq_len
    self.max_update_horizon = max_update_horizon
    self.public_code = public_code
    self.starts = []
    start = 0
    for k, step in enumerate(steps):
      self.starts.append(start)
      if step.terminal or step.episode_end:
        start = k + 1

  def keys(self) -> list[int]:
    count = len(self.steps)
    # Once steps are overwritten, a key needs every frame of its stack still stored.
    oldest = count - self.capacity + self.stack_size - 1 if count > self.capacity else 0
    newest = count - 1 - (self.max_update_horizon + self.subseq_len - 1)
    keys = []
    first = self.stack_size - 1 if self.public_code else 0  # the public code's padding keys
    for k in range(max(oldest, first), newest + 1):
      window = self.steps[k:k + self.max_update_horizon]
      if not any(step.episode_end and not step.terminal for step in window):
        keys.append(k)
    return keys

  def first_kept(self, k: int) -> int:
    """The public code's censor_before of key k: 1 + its first terminal in the frames before."""
    for f in range(k - self.stack_size + 1, k):
      if f >= 0 and self.steps[f].terminal:
        return f + 1
    return 0

  def stack(self, i: int, first_kept: int | None = None) -> np.ndarray:
    first_kept = self.starts[i] if first_kept is None else first_kept
    frames = []
    for f in range(i - self.stack_size + 1, i + 1):
      if f >= first_kept:
        frames.append(self.steps[f].observation)
      else:
        frames.append(np.zeros(OBS, np.uint8))
    return np.stack(frames, axis=-1)

  def sample(self, k: int, n: int, gamma: float, first_row: bool = False) -> dict[str, Any]:
    """Key k's row; ``first_row``: it is row 0 of the batch (the public SPR mask's quirk)."""
    ret, terminal, last = 0.0, False, k + n
    for i in range(n):
      ret += gamma ** i * self.steps[k + i].reward
      if self.steps[k + i].terminal:
        terminal, last = i < n - 1 or not self.public_code, k + i
        break
    if self.public_code:
      last = k + n - 1
    same = []
    for j in range(self.subseq_len):
      if self.public_code:  # no terminal in k .. k + j, except in the batch's first row
        cut = self.steps[k + j].terminal and not first_row
      else:                 # no segment end in k .. k + j - 1
        cut = j > 0 and (self.steps[k + j - 1].terminal or self.steps[k + j - 1].episode_end)
      same.append(0.0 if cut else (same[-1] if same else 1.0))
    first_kept = self.first_kept(k) if self.public_code else None
    span = range(k, k + self.subseq_len)
    return {
        'state': np.stack([self.stack(i, first_kept) for i in span]),
        'action': [self.steps[i].action for i in span],
        'reward': [self.steps[i].reward for i in span],
        'return': ret,
        'terminal': terminal,
        'discount': gamma ** n,
        'next_state': self.stack(last, first_kept),
        'same_trajectory': same,
    }


def row(batch: dict[str, np.ndarray], b: int) -> dict[str, Any]:
  return {name: value[b] for name, value in batch.items()}


def rows_by_key(buffer: SubsequenceReplayBuffer, n: int, gamma: float,
                batch_size: int = 2000) -> dict[int, dict[str, Any]]:
  batch = buffer.sample(batch_size, n, gamma)
  rows = {}
  for b, key in enumerate(batch['indices']):
    rows.setdefault(int(key), row(batch, b))
  return rows


def assert_row_matches(actual: dict[str, Any], expected: dict[str, Any]) -> None:
  np.testing.assert_array_equal(actual['state'], expected['state'])
  np.testing.assert_array_equal(actual['action'], expected['action'])
  np.testing.assert_allclose(actual['reward'], expected['reward'], rtol=1e-6)
  np.testing.assert_allclose(actual['return'], expected['return'], rtol=1e-5, atol=1e-6)
  assert bool(actual['terminal']) == expected['terminal']
  np.testing.assert_allclose(actual['discount'], expected['discount'], rtol=1e-6)
  np.testing.assert_array_equal(actual['next_state'], expected['next_state'])
  np.testing.assert_array_equal(actual['same_trajectory'], expected['same_trajectory'])


def check_against_reference(buffer, reference, n, gamma, batch_size=1000):
  keys = reference.keys()
  assert buffer.num_sampleable == len(keys)
  if not keys:
    return
  batch = buffer.sample(batch_size, n, gamma)
  seen = {}
  for b, key in enumerate(batch['indices']):
    seen.setdefault(int(key), b)
  assert set(seen) <= set(keys)
  if len(keys) <= 40:
    assert set(seen) == set(keys)
  for key, b in seen.items():
    assert_row_matches(row(batch, b), reference.sample(key, n, gamma, first_row=b == 0))


# ------------------------------------------------------------------ reference comparison
@pytest.mark.parametrize('stack_size, subseq_len, horizon, capacity, prioritized, length', [
    (4, 6, 3, 1000, True, 150),   # no overwrite
    (2, 1, 1, 1000, False, 100),
    (3, 3, 5, 20, True, 150),     # overwritten several times
    (1, 4, 2, 7, False, 60),      # the smallest capacity allowed is 6
])
def test_matches_reference_on_random_streams(stack_size, subseq_len, horizon, capacity,
                                              prioritized, length):
  config = dict(stack_size=stack_size, capacity=capacity, subseq_len=subseq_len,
                max_update_horizon=horizon)
  stream_against_reference(random_stream(seed=stack_size * 100 + horizon, length=length),
                           config, dict(prioritized=prioritized, seed=3), check_every=50)


def stream_against_reference(steps, config, buffer_kwargs, check_every, batches=1,
                             public_code=False):
  """Adds ``steps`` one by one to a buffer of ``config``; after each, its add count and
  sampleable keys equal the reference's, and every ``check_every`` steps (and at the end)
  ``batches`` samples per (n, gamma) match the reference row for row."""
  buffer = SubsequenceReplayBuffer(observation_shape=OBS, **config, **buffer_kwargs)
  horizon = config['max_update_horizon']
  for count, step in enumerate(steps, start=1):
    buffer.add(*step)
    assert buffer.add_count == count
    reference = Reference(steps[:count], public_code=public_code, **config)
    assert buffer.num_sampleable == len(reference.keys())
    if count % check_every == 0 or count == len(steps):
      for n, gamma in ((1, 0.9), (horizon, 0.8)):
        for _ in range(batches):
          check_against_reference(buffer, reference, n, gamma)


PUBLIC_CODE = dict(bootstrap='public_code', spr_mask='public_code', frame_stacks='public_code')


@pytest.mark.parametrize('stack_size, subseq_len, horizon, capacity, prioritized, length', [
    (4, 6, 10, 1000, True, 150),  # BBF's shapes
    (3, 4, 2, 1000, False, 120),
    (3, 3, 5, 20, True, 150),     # overwritten several times
    (1, 5, 2, 9, False, 60),      # an SPR window longer than the n-step one: truncations in it
])
def test_public_code_rules_match_reference_on_random_streams(stack_size, subseq_len, horizon,
                                                             capacity, prioritized, length):
  config = dict(stack_size=stack_size, capacity=capacity, subseq_len=subseq_len,
                max_update_horizon=horizon)
  stream_against_reference(random_stream(seed=stack_size * 10 + horizon, length=length),
                           config, dict(prioritized=prioritized, seed=5, **PUBLIC_CODE),
                           check_every=30, batches=3,  # a new batch, a new key in row 0
                           public_code=True)


# ------------------------------------------------------------------ hand-computed cases
def test_frame_stacks_zero_filled_before_segment_start():
  # Terminal after step 2, truncation after step 5 (key 5 is dropped: no bootstrap frame).
  steps = make_stream([0.0] * 11, terminals={2}, truncations={5})
  buffer = fill(SubsequenceReplayBuffer(observation_shape=OBS, stack_size=3, capacity=50,
                                        subseq_len=1, max_update_horizon=1), steps)
  rows = rows_by_key(buffer, 1, 0.9)
  assert sorted(rows) == [0, 1, 2, 3, 4, 6, 7, 8, 9]
  zero = np.zeros(OBS, np.uint8)
  expected = {
      0: [zero, zero, frame(0)],
      1: [zero, frame(0), frame(1)],
      2: [frame(0), frame(1), frame(2)],
      3: [zero, zero, frame(3)],           # after the terminal
      4: [zero, frame(3), frame(4)],
      6: [zero, zero, frame(6)],           # after the truncation
      7: [zero, frame(6), frame(7)],
      9: [frame(7), frame(8), frame(9)],
  }
  for key, frames in expected.items():
    state = rows[key]['state']
    assert state.shape == (1,) + OBS + (3,)
    np.testing.assert_array_equal(state[0], np.stack(frames, axis=-1))
    np.testing.assert_array_equal(state[0][..., -1], frame(key))  # newest frame last


def assert_n_step_rows(rows, expected, discount):
  """Each key's row has the expected (return, terminal, frames of next_state) and discount."""
  for key, (ret, terminal, frames) in expected.items():
    np.testing.assert_allclose(rows[key]['return'], ret, rtol=1e-6)
    assert bool(rows[key]['terminal']) == terminal
    np.testing.assert_allclose(rows[key]['discount'], discount)
    np.testing.assert_array_equal(rows[key]['next_state'], np.stack(frames, axis=-1))


def test_n_step_return_terminal_discount_and_next_state():
  rewards = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]
  steps = make_stream(rewards, terminals={4})
  buffer = fill(SubsequenceReplayBuffer(observation_shape=OBS, stack_size=2, capacity=50,
                                        subseq_len=1, max_update_horizon=3), steps)
  rows = rows_by_key(buffer, 3, 0.5)
  assert sorted(rows) == [0, 1, 2, 3, 4]
  # key: (return, terminal, frames of next_state)
  expected = {
      0: (1 + 0.5 * 2 + 0.25 * 4, False, [frame(2), frame(3)]),   # bootstrap from step 3
      1: (2 + 0.5 * 4 + 0.25 * 8, False, [frame(3), frame(4)]),   # from the terminal step's frame
      2: (4 + 0.5 * 8 + 0.25 * 16, True, [frame(3), frame(4)]),   # the terminal step's stack
      3: (8 + 0.5 * 16, True, [frame(3), frame(4)]),              # r_5 excluded
      4: (16.0, True, [frame(3), frame(4)]),
  }
  assert_n_step_rows(rows, expected, discount=0.125)

  rows = rows_by_key(buffer, 1, 0.5)
  np.testing.assert_allclose(rows[0]['return'], 1.0)
  np.testing.assert_array_equal(rows[0]['next_state'], np.stack([frame(0), frame(1)], -1))
  assert not rows[3]['terminal'] and rows[4]['terminal']
  np.testing.assert_allclose(rows[4]['discount'], 0.5)
  # Key 4 is the terminal step: its next_state is its own stack, not the next segment's.
  np.testing.assert_array_equal(rows[4]['next_state'], np.stack([frame(3), frame(4)], -1))


def test_public_code_bootstrap_is_one_step_early_and_misses_the_last_terminal():
  """The public BBF buffer's n-step rule (google-research issue 1851) on the stream above:
  the same returns and gamma^n, but next_state is the stack of step k + n - 1 and only
  terminals in k .. k + n - 2 count."""
  rewards = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]
  steps = make_stream(rewards, terminals={4})
  buffer = fill(SubsequenceReplayBuffer(observation_shape=OBS, stack_size=2, capacity=50,
                                        subseq_len=1, max_update_horizon=3,
                                        bootstrap='public_code'), steps)
  rows = rows_by_key(buffer, 3, 0.5)
  zero = np.zeros(OBS, np.uint8)
  expected = {  # key: (return, terminal, frames of next_state)
      0: (1 + 0.5 * 2 + 0.25 * 4, False, [frame(1), frame(2)]),   # step 2, not 3
      1: (2 + 0.5 * 4 + 0.25 * 8, False, [frame(2), frame(3)]),
      2: (4 + 0.5 * 8 + 0.25 * 16, False, [frame(3), frame(4)]),  # the terminal at 4 is missed
      3: (8 + 0.5 * 16, True, [zero, frame(5)]),                  # step 5 (unused: terminal)
      4: (16.0, True, [frame(5), frame(6)]),
  }
  assert_n_step_rows(rows, expected, discount=0.125)
  # n = 1: no terminal is ever seen, and each step bootstraps from its own stack.
  rows = rows_by_key(buffer, 1, 0.5)
  assert not any(bool(row['terminal']) for row in rows.values())
  np.testing.assert_array_equal(rows[4]['next_state'], np.stack([frame(3), frame(4)], -1))


def test_bootstrap_rule_must_be_known():
  with pytest.raises(ValueError, match="bootstrap must be one of 'next', 'public_code'"):
    SubsequenceReplayBuffer(observation_shape=OBS, bootstrap='early')


def test_same_trajectory_across_terminal_and_truncation():
  steps = make_stream([0.0] * 14, terminals={2}, truncations={6})
  buffer = fill(SubsequenceReplayBuffer(observation_shape=OBS, stack_size=1, capacity=50,
                                        subseq_len=4, max_update_horizon=1), steps)
  rows = rows_by_key(buffer, 1, 0.9)
  assert 6 not in rows
  expected = {
      0: [1, 1, 1, 0],
      1: [1, 1, 0, 0],
      2: [1, 0, 0, 0],   # step 2 itself is terminal
      3: [1, 1, 1, 1],
      4: [1, 1, 1, 0],   # truncation after step 6
      5: [1, 1, 0, 0],
      7: [1, 1, 1, 1],
  }
  for key, mask in expected.items():
    np.testing.assert_array_equal(rows[key]['same_trajectory'], np.asarray(mask, np.float32))
    assert rows[key]['same_trajectory'].dtype == np.float32


def test_public_code_spr_mask_terminals_only_and_never_the_first_batch_row():
  """The public buffer's same_trajectory on the stream above: (1 - terminal[k .. k+3]).cumprod
  after ``output[0, :] = 0``: a terminal at k + j drops target j too, one at k drops them all,
  the truncation is not seen, and row 0 of each sampled batch is all ones."""
  steps = make_stream([0.0] * 14, terminals={2}, truncations={6})
  buffer = fill(SubsequenceReplayBuffer(observation_shape=OBS, stack_size=1, capacity=50,
                                        subseq_len=4, max_update_horizon=1,
                                        spr_mask='public_code'), steps)
  expected = {   # key: public mask (rows 1..), the corrected one for comparison
      0: [1, 1, 0, 0],   # terminal at k + 2 (corrected: [1, 1, 1, 0])
      1: [1, 0, 0, 0],   # terminal at k + 1 (corrected: [1, 1, 0, 0])
      2: [0, 0, 0, 0],   # terminal at k     (corrected: [1, 0, 0, 0])
      3: [1, 1, 1, 1],
      4: [1, 1, 1, 1],   # truncation after step 6, not seen (corrected: [1, 1, 1, 0])
      5: [1, 1, 1, 1],   # (corrected: [1, 1, 0, 0])
      7: [1, 1, 1, 1],
      8: [1, 1, 1, 1],
      9: [1, 1, 1, 1],
  }
  assert buffer.num_sampleable == len(expected)
  first_row_keys = set()
  for _ in range(40):
    batch = buffer.sample(8, 1, 0.9)
    masks = batch['same_trajectory']
    assert masks.dtype == np.float32
    np.testing.assert_array_equal(masks[0], np.ones(4, np.float32))  # the quirk
    first_row_keys.add(int(batch['indices'][0]))
    for b in range(1, 8):
      np.testing.assert_array_equal(masks[b], expected[int(batch['indices'][b])])
  assert first_row_keys & {0, 1, 2}  # row 0 held a key whose own mask has zeros


def test_public_code_frame_stacks_cut_at_the_keys_first_terminal():
  """The public buffer's censor_before (stack 3, sub-sequences of 2): terminals after steps 3
  and 4 (a one-step life), a truncation after step 8. Every stack of key k's sample is cut
  before 1 + the first terminal in k-2 .. k-1; keys 0 and 1 are never sampled."""
  steps = make_stream([0.0] * 14, terminals={3, 4}, truncations={8})
  config = dict(observation_shape=OBS, stack_size=3, capacity=50, subseq_len=2,
                max_update_horizon=1)
  corrected = rows_by_key(fill(SubsequenceReplayBuffer(**config), steps), 1, 0.9)
  public = rows_by_key(fill(SubsequenceReplayBuffer(frame_stacks='public_code', **config),
                            steps), 1, 0.9)
  assert sorted(corrected) == [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11]
  assert sorted(public) == [2, 3, 4, 5, 6, 7, 9, 10, 11]
  z, f = np.zeros(OBS, np.uint8), frame
  expected = {  # key: (corrected stacks of k and k + 1), (public ones)
      2: ([[f(0), f(1), f(2)], [f(1), f(2), f(3)]],) * 2,
      3: ([[f(1), f(2), f(3)], [z, z, f(4)]],         # step 4 starts a life
          [[f(1), f(2), f(3)], [f(2), f(3), f(4)]]),  # no terminal before 3: nothing cut
      4: ([[z, z, f(4)], [z, z, f(5)]],
          [[z, z, f(4)], [z, f(4), f(5)]]),           # cut after 3, for step 5 too
      5: ([[z, z, f(5)], [z, f(5), f(6)]],
          [[z, f(4), f(5)], [f(4), f(5), f(6)]]),     # the first of two terminals (3, 4)
      6: ([[z, f(5), f(6)], [f(5), f(6), f(7)]],) * 2,
      7: ([[f(5), f(6), f(7)], [f(6), f(7), f(8)]],) * 2,
      9: ([[z, z, f(9)], [z, f(9), f(10)]],
          [[f(7), f(8), f(9)], [f(8), f(9), f(10)]]),  # the truncation does not cut
      10: ([[z, f(9), f(10)], [f(9), f(10), f(11)]],
           [[f(8), f(9), f(10)], [f(9), f(10), f(11)]]),
      11: ([[f(9), f(10), f(11)], [f(10), f(11), f(12)]],) * 2,
  }
  for key, (ours, theirs) in expected.items():
    for rows, stacks in ((corrected, ours), (public, theirs)):
      np.testing.assert_array_equal(
          rows[key]['state'], np.stack([np.stack(s, axis=-1) for s in stacks]), err_msg=key)
  for key in corrected.keys() & public.keys():  # the rest of a row does not depend on the rule
    for name in ('action', 'reward', 'return', 'terminal', 'same_trajectory'):
      np.testing.assert_array_equal(corrected[key][name], public[key][name])


@pytest.mark.parametrize('kwargs, message', [
    (dict(spr_mask='corrected'), "spr_mask must be one of 'segment', 'public_code'"),
    (dict(frame_stacks='dopamine'), "frame_stacks must be one of 'segment', 'public_code'")])
def test_spr_mask_and_frame_stack_rules_must_be_known(kwargs, message):
  with pytest.raises(ValueError, match=message):
    SubsequenceReplayBuffer(observation_shape=OBS, **kwargs)


def test_keys_enter_lazily_and_never_cross_the_write_cursor():
  horizon, subseq_len = 2, 3
  lag = horizon + subseq_len - 1
  steps = make_stream([1.0] * 30, truncations={12})
  buffer = SubsequenceReplayBuffer(observation_shape=OBS, stack_size=2, capacity=100,
                                   subseq_len=subseq_len, max_update_horizon=horizon)
  fill(buffer, steps[:lag])
  assert buffer.num_sampleable == 0
  with pytest.raises(ValueError, match=f'at least {lag + 1} steps'):
    buffer.sample(4, 1, 0.9)
  for j in range(lag, len(steps)):
    buffer.add(*steps[j])
    keys = buffer.sample(200, horizon, 0.9)['indices']
    assert keys.max() <= j - lag
    assert not set(keys.tolist()) & {11, 12}  # windows k..k+1 holding the truncation
  assert buffer.num_sampleable == len(steps) - lag - 2


def test_circular_overwrite_removes_keys_of_overwritten_frames():
  capacity, stack_size = 12, 3
  config = dict(stack_size=stack_size, capacity=capacity, subseq_len=2, max_update_horizon=2)
  steps = random_stream(seed=7, length=45)
  buffer = SubsequenceReplayBuffer(observation_shape=OBS, prioritized=False, **config)
  for count, step in enumerate(steps, start=1):
    buffer.add(*step)
    reference = Reference(steps[:count], **config)
    if not reference.keys():
      assert buffer.num_sampleable == 0
      continue
    keys = buffer.sample(300, 2, 0.9)['indices']
    # The stack of key k reads frames k - stack_size + 1 .. k: all must still be stored.
    if count > capacity:
      assert keys.min() >= count - capacity + stack_size - 1
    assert set(keys.tolist()) <= set(reference.keys())
    if count > capacity:
      check_against_reference(buffer, reference, 2, 0.9, batch_size=300)
  # The first stack_size - 1 keys (whose older stack frames are padding) are gone as well.
  assert buffer.num_sampleable == len(Reference(steps, **config).keys())


def test_prioritized_sampling_follows_priorities():
  buffer = fill(SubsequenceReplayBuffer(observation_shape=OBS, stack_size=2, capacity=100,
                                        subseq_len=2, max_update_horizon=2, seed=1),
                make_stream([1.0] * 30))
  assert buffer.num_sampleable == 27 and buffer.max_priority == 1.0
  np.testing.assert_allclose(buffer.sample(50, 1, 0.9)['sampling_probabilities'], 1 / 27)

  buffer.update_priorities(np.array([5, 6]), np.array([1000.0, 0.0]))
  assert buffer.max_priority == 1000.0
  batch = buffer.sample(2000, 1, 0.9)
  keys, probabilities = batch['indices'], batch['sampling_probabilities']
  assert np.mean(keys == 5) > 0.9
  assert 6 not in keys
  priority = {key: 1.0 for key in range(27)} | {5: 1000.0, 6: 0.0}
  total = sum(priority.values())
  np.testing.assert_allclose(probabilities, [priority[key] / total for key in keys])
  assert probabilities.dtype == np.float64 and keys.dtype == np.int64

  # A new key gets the max recorded priority.
  buffer.add(*make_stream([1.0] * 31)[30])
  priority[27] = 1000.0
  total = sum(priority.values())
  batch = buffer.sample(2000, 1, 0.9)
  assert np.mean(batch['indices'] == 27) == pytest.approx(0.5, abs=0.06)
  np.testing.assert_allclose(batch['sampling_probabilities'],
                             [priority[key] / total for key in batch['indices']])


def test_update_priorities_skips_evicted_keys():
  # Capacity 10, keys lag one step: after 15 steps keys 6..13 are live, 13 in key 3's slot.
  buffer = fill(SubsequenceReplayBuffer(observation_shape=OBS, stack_size=2, capacity=10,
                                        subseq_len=1, max_update_horizon=1),
                make_stream([1.0] * 15))
  assert buffer.num_sampleable == 8
  buffer.update_priorities([3, -1, 100], [50.0, 60.0, 70.0])
  assert buffer.max_priority == 1.0
  buffer.update_priorities(np.array([13], np.int32), np.array([50.0], np.float32))
  assert buffer.max_priority == 50.0


def test_uniform_buffer_probabilities_and_update_is_a_noop():
  buffer = fill(SubsequenceReplayBuffer(observation_shape=OBS, stack_size=2, capacity=100,
                                        subseq_len=2, max_update_horizon=2, prioritized=False),
                make_stream([1.0] * 20))
  buffer.update_priorities([3], [1000.0])
  batch = buffer.sample(500, 2, 0.9)
  np.testing.assert_allclose(batch['sampling_probabilities'], 1 / 17)
  assert np.mean(batch['indices'] == 3) < 0.2
  assert buffer.max_priority == 1.0


# ------------------------------------------------------------------ checkpointing
def assert_same_batch(first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> None:
  assert first.keys() == second.keys()
  for name in first:
    assert first[name].dtype == second[name].dtype, name
    np.testing.assert_array_equal(first[name], second[name], err_msg=name)


@pytest.mark.parametrize('prioritized', [True, False])
@pytest.mark.parametrize('length, capacity', [(37, 100), (130, 50)])
def test_state_dict_round_trip_samples_identically(prioritized, length, capacity):
  config = dict(observation_shape=OBS, stack_size=3, capacity=capacity, subseq_len=3,
                max_update_horizon=4, prioritized=prioritized)
  steps = random_stream(seed=11, length=length + 20)
  original = fill(SubsequenceReplayBuffer(seed=5, **config), steps[:length])
  original.sample(8, 2, 0.9)
  original.update_priorities([original.sample(1, 1, 0.9)['indices'][0]], [7.5])
  state = pickle.loads(pickle.dumps(original.to_state_dict()))
  assert len(state['observations']) == min(length, capacity)
  assert all(len(state[name]) == min(length, capacity)
             for name in ('actions', 'rewards', 'terminals', 'episode_ends', 'segment_starts'))

  restored = SubsequenceReplayBuffer(seed=99, **config)
  restored.from_state_dict(state)
  assert restored.add_count == original.add_count
  assert restored.num_sampleable == original.num_sampleable
  assert restored.max_priority == original.max_priority
  assert_same_batch(original.sample(64, 4, 0.97), restored.sample(64, 4, 0.97))
  for step in steps[length:]:  # both go on identically, overwrite included
    original.add(*step)
    restored.add(*step)
  assert_same_batch(original.sample(64, 2, 0.9), restored.sample(64, 2, 0.9))


def test_state_dict_is_not_changed_by_later_sampling_or_updates():
  buffer = fill(SubsequenceReplayBuffer(observation_shape=OBS, stack_size=2, capacity=40,
                                        subseq_len=2, max_update_horizon=2),
                random_stream(seed=2, length=30))
  state = buffer.to_state_dict()
  expected = buffer.sample(16, 2, 0.9)
  buffer.update_priorities(expected['indices'], np.full(16, 3.0))
  buffer.sample(16, 2, 0.9)
  restored = SubsequenceReplayBuffer(observation_shape=OBS, stack_size=2, capacity=40,
                                     subseq_len=2, max_update_horizon=2)
  restored.from_state_dict(state)
  assert restored.max_priority == 1.0
  assert_same_batch(restored.sample(16, 2, 0.9), expected)


def test_from_state_dict_rejects_another_configuration():
  buffer = fill(SubsequenceReplayBuffer(observation_shape=OBS, stack_size=2, capacity=40,
                                        subseq_len=2, max_update_horizon=2),
                make_stream([1.0] * 10))
  other = SubsequenceReplayBuffer(observation_shape=OBS, stack_size=2, capacity=41,
                                  subseq_len=2, max_update_horizon=2)
  with pytest.raises(ValueError, match='capacity'):
    other.from_state_dict(buffer.to_state_dict())


# ------------------------------------------------------------------ inputs
def test_add_copies_its_inputs_and_accepts_scalar_forms():
  buffer = SubsequenceReplayBuffer(observation_shape=OBS, stack_size=2, capacity=20,
                                   subseq_len=1, max_update_horizon=1)
  observation = frame(0)
  action = np.array([3], np.int64)
  reward = np.array(0.5, np.float32)
  terminal = np.array([False])
  buffer.add(observation, action, reward, terminal, np.bool_(False))
  observation[:] = 200
  action[0] = 1
  reward[...] = 9.0
  terminal[0] = True
  buffer.add(observation, np.int32(4), 1.0, False, np.array([0]))
  batch = buffer.sample(100, 1, 0.5)
  first = batch['indices'] == 0
  assert first.any()
  np.testing.assert_array_equal(batch['state'][first][0, 0, ..., -1], frame(0))
  assert batch['action'][first][0, 0] == 3
  assert batch['reward'][first][0, 0] == 0.5
  assert not batch['terminal'][first][0]
  assert batch['state'].dtype == np.uint8 and batch['action'].dtype == np.int32
  assert batch['reward'].dtype == np.float32 and batch['return'].dtype == np.float32


@pytest.mark.parametrize('kwargs, match', [
    (dict(stack_size=0), 'stack_size'),
    (dict(subseq_len=0), 'subseq_len'),
    (dict(max_update_horizon=0), 'max_update_horizon'),
    (dict(capacity=8), 'capacity must be >= .* = 9'),
    (dict(capacity=12.0), 'capacity must be an integer'),
    (dict(observation_shape=()), 'observation_shape'),
    (dict(observation_shape=(2, 0)), 'observation_shape'),
    (dict(prioritized='yes'), 'prioritized'),
    (dict(seed=-1), 'seed'),
])
def test_constructor_rejects_bad_arguments(kwargs, match):
  config = dict(observation_shape=OBS, stack_size=2, capacity=100, subseq_len=3,
                max_update_horizon=5) | kwargs
  with pytest.raises(ValueError, match=match):
    SubsequenceReplayBuffer(**config)


def test_add_sample_and_update_reject_bad_arguments():
  buffer = SubsequenceReplayBuffer(observation_shape=OBS, stack_size=2, capacity=100,
                                   subseq_len=2, max_update_horizon=3)
  with pytest.raises(ValueError, match='shape'):
    buffer.add(np.zeros((3, 2), np.uint8), 0, 0.0, False, False)
  with pytest.raises(ValueError, match='uint8'):
    buffer.add(np.zeros(OBS, np.float32), 0, 0.0, False, False)
  with pytest.raises(ValueError, match='action'):
    buffer.add(frame(0), np.array([1, 2]), 0.0, False, False)
  with pytest.raises(ValueError, match='action must be an integer'):
    buffer.add(frame(0), 1.5, 0.0, False, False)
  assert buffer.add_count == 0
  with pytest.raises(ValueError, match='at least 5 steps.*0 added'):
    buffer.sample(4, 1, 0.9)
  fill(buffer, make_stream([1.0] * 10))
  for kwargs, match in [
      (dict(batch_size=0, update_horizon=1, gamma=0.9), 'batch_size'),
      (dict(batch_size=4, update_horizon=0, gamma=0.9), 'update_horizon'),
      (dict(batch_size=4, update_horizon=4, gamma=0.9), 'update_horizon must be <= '),
      (dict(batch_size=4, update_horizon=1, gamma=1.5), 'gamma'),
  ]:
    with pytest.raises(ValueError, match=match):
      buffer.sample(**kwargs)
  with pytest.raises(ValueError, match='same size'):
    buffer.update_priorities([1, 2], [1.0])
  with pytest.raises(ValueError, match='>= 0'):
    buffer.update_priorities([1], [-1.0])
  with pytest.raises(ValueError, match='finite'):
    buffer.update_priorities([1], [np.nan])
  with pytest.raises(ValueError, match='integers'):
    buffer.update_priorities([1.5], [1.0])
