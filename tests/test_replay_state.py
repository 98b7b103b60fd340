"""Dopamine's ReplayBuffer through agents/replay_state.py and the checkpoint file: every element
comes back bit for bit (each frame stored once), with the sampler's keys, priorities and RNG,
so the next samples are the same as the original buffer's."""

import numpy as np
import pytest
from dopamine.jax.replay_memory import elements
from dopamine.jax.replay_memory import replay_buffer
from dopamine.jax.replay_memory import samplers

from agents import replay_state
from agents.replay import EpisodeTransitionAccumulator
from atari100k import checkpoint_file

STACK, N, GAMMA = 4, 3, 0.99


def make_buffer(compress=True, prioritized=False, seed=0, capacity=1000):
  sampler = (samplers.PrioritizedSamplingDistribution(seed=seed, max_capacity=capacity)
             if prioritized else samplers.UniformSamplingDistribution(seed=seed))
  return replay_buffer.ReplayBuffer(
      transition_accumulator=EpisodeTransitionAccumulator(STACK, N, GAMMA),
      sampling_distribution=sampler, batch_size=8, max_capacity=capacity, compress=compress)


def feed(buffer, steps, prioritized=False, episode=23, dtype=np.uint8, seed=1):
  """Frames with distinct random content; an episode ends every ``episode`` steps."""
  rng = np.random.default_rng(seed)
  for k in range(steps):
    frame = rng.integers(0, 255, (84, 84)).astype(dtype)
    done = k % episode == episode - 1
    kwargs = {'priority': 1.0 + k % 5} if prioritized else {}
    buffer.add(elements.TransitionElement(frame, k % 6, float(k % 3 == 0), done, done),
               **kwargs)


def through_file(tmp_path, state):
  path = str(tmp_path / 'checkpoint.npz')
  checkpoint_file.save(path, {'replay': state}, {'kind': 'test'})
  return checkpoint_file.load(path)[1]['replay']


def assert_same_memory(a, b):
  # pylint: disable=protected-access
  assert list(a._memory) == list(b._memory)
  for key in a._memory:
    x, y = a._memory[key], b._memory[key]
    for field in ('state', 'next_state', 'action', 'reward', 'is_terminal', 'episode_end'):
      u, v = np.asarray(getattr(x, field)), np.asarray(getattr(y, field))
      assert u.dtype == v.dtype and u.tobytes() == v.tobytes(), (key, field)
  assert a.add_count == b.add_count


@pytest.mark.parametrize('compress, prioritized', [(True, False), (False, False), (True, True)])
def test_round_trip_is_bit_exact_and_samples_the_same(tmp_path, compress, prioritized):
  original = make_buffer(compress, prioritized)
  feed(original, 200, prioritized)
  state = through_file(tmp_path, replay_state.buffer_state(original))
  twin = make_buffer(compress, prioritized, seed=99)  # another seed: the RNG state is restored
  replay_state.restore_buffer(twin, state)
  assert_same_memory(original, twin)
  for _ in range(3):
    a, b = original.sample(16), twin.sample(16)
    for field in ('state', 'action', 'reward', 'next_state', 'is_terminal'):
      np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_each_frame_is_stored_once():
  buffer = make_buffer()
  feed(buffer, 200)
  state = replay_state.buffer_state(buffer)
  # 200 distinct frames plus the zero frame that pads stacks at each episode's start.
  frames = np.concatenate(state['frames'])
  assert frames.shape == (201, 84, 84) and frames.dtype == np.uint8
  count = len(buffer._memory)  # pylint: disable=protected-access
  assert count == 197  # the last n steps wait in the accumulator for their returns
  assert state['state_frames'].shape == state['next_state_frames'].shape == (count, STACK)
  stacked_bytes = 2 * 84 * 84 * STACK * count
  assert frames.nbytes < stacked_bytes / 7


def test_float_frames_are_stored_as_uint8_when_exact_and_restored_as_floats(tmp_path):
  # DrQ's stacks are float64 holding uint8 values: stored 8x smaller, restored bit for bit.
  original = make_buffer()
  feed(original, 60, dtype=np.float64)
  state = replay_state.buffer_state(original)
  assert state['frames'][0].dtype == np.uint8 and state['source_dtype'] == '<f8'
  twin = make_buffer()
  replay_state.restore_buffer(twin, through_file(tmp_path, state))
  assert_same_memory(original, twin)


def test_frames_uint8_cannot_hold_are_stored_as_they_are(tmp_path):
  original = make_buffer()
  feed(original, 30, dtype=np.float64)
  original.add(elements.TransitionElement(np.full((84, 84), 0.5), 1, 0.0, False, False))
  feed(original, 10, dtype=np.float64, seed=2)
  state = replay_state.buffer_state(original)
  assert state['frames'][0].dtype == np.float64
  twin = make_buffer()
  replay_state.restore_buffer(twin, through_file(tmp_path, state))
  assert_same_memory(original, twin)


def test_a_kept_store_decompresses_only_new_elements(monkeypatch):
  buffer = make_buffer()
  store = replay_state.FrameStore()
  feed(buffer, 50)
  first = replay_state.buffer_state(buffer, store)
  calls = []
  original = elements.uncompress
  monkeypatch.setattr(elements, 'uncompress', lambda x: calls.append(1) or original(x))
  feed(buffer, 20, seed=3)
  second = replay_state.buffer_state(buffer, store)
  assert len(calls) == 2 * 20  # state and next_state of the 20 new elements only
  fresh = replay_state.buffer_state(buffer)
  for key in ('keys', 'state_frames', 'next_state_frames'):
    np.testing.assert_array_equal(second[key], fresh[key])
  np.testing.assert_array_equal(np.concatenate(second['frames']),
                                np.concatenate(fresh['frames']))
  assert len(first['keys']) < len(second['keys'])


def test_a_store_filled_by_restore_continues_like_a_fresh_index():
  original = make_buffer()
  feed(original, 50)
  twin, store = make_buffer(), replay_state.FrameStore()
  replay_state.restore_buffer(twin, replay_state.buffer_state(original), store)
  original._transition_accumulator.clear()  # as the restore did  pylint: disable=protected-access
  for buffer in (original, twin):
    feed(buffer, 30, seed=4)
  kept, fresh = replay_state.buffer_state(twin, store), replay_state.buffer_state(original)
  for key in ('keys', 'state_frames', 'next_state_frames'):
    np.testing.assert_array_equal(kept[key], fresh[key])


def test_evicted_elements_leave_the_index(tmp_path):
  buffer = make_buffer(capacity=40)
  store = replay_state.FrameStore()
  feed(buffer, 30)
  replay_state.buffer_state(buffer, store)
  feed(buffer, 60, seed=5)
  state = replay_state.buffer_state(buffer, store)
  assert len(state['keys']) == 40 and sorted(store.elements) == state['keys'].tolist()
  twin = make_buffer(capacity=40)
  replay_state.restore_buffer(twin, through_file(tmp_path, state))
  assert_same_memory(buffer, twin)


def test_priorities_and_max_priority_are_restored(tmp_path):
  original = make_buffer(prioritized=True)
  feed(original, 60, prioritized=True)
  original.update(np.arange(10), priorities=np.full(10, 7.0))
  twin = make_buffer(prioritized=True, seed=5)
  replay_state.restore_buffer(twin, through_file(tmp_path, replay_state.buffer_state(original)))
  # pylint: disable=protected-access
  np.testing.assert_array_equal(original._sampling_distribution._sum_tree._nodes,
                                twin._sampling_distribution._sum_tree._nodes)
  assert twin._sampling_distribution._sum_tree.max_recorded_priority == 7.0


def test_the_partial_episode_is_dropped():
  original = make_buffer()
  feed(original, 30)  # an episode of 23, then 7 steps of the next one
  twin = make_buffer()
  twin._transition_accumulator.accumulate(  # pylint: disable=protected-access
      elements.TransitionElement(np.zeros((84, 84), np.uint8), 0, 0.0, False, False))
  replay_state.restore_buffer(twin, replay_state.buffer_state(original))
  assert not twin._transition_accumulator._trajectory  # pylint: disable=protected-access


def test_an_empty_buffer_round_trips(tmp_path):
  twin = make_buffer()
  replay_state.restore_buffer(twin, through_file(tmp_path, replay_state.buffer_state(
      make_buffer())))
  assert twin.add_count == 0 and not twin._memory  # pylint: disable=protected-access


@pytest.mark.parametrize('change, message', [
    (lambda s: s.update(format=1), 'format'),
    (lambda s: s.update(compressed=False), 'compressed'),
    (lambda s: s.update(keys=s['keys'][:-1]), 'disagree'),
    (lambda s: s['state_frames'].__setitem__((0, 0), 10 ** 6), 'past the stored frames'),
    (lambda s: s.update(sampler={**s['sampler'], 'sum_tree_nodes': np.zeros(3)}), 'kind'),
])
def test_inconsistent_states_are_refused(change, message):
  original = make_buffer()
  feed(original, 40)
  state = replay_state.buffer_state(original)
  change(state)
  with pytest.raises(ValueError, match=message):
    replay_state.restore_buffer(make_buffer(), state)
