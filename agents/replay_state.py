"""Dopamine's JAX ``ReplayBuffer`` as plain arrays for a checkpoint, each frame stored once.

Dopamine's own ``to_state_dict`` keeps every replay element as a pair of (snappy-compressed)
frame stacks and a pickled tree definition: about 3 GB at 100k steps, and only loadable with
pickle. Here every element's ``state`` and ``next_state`` stacks are split into frames, equal
frames are stored once in one ``frames`` array, and each element keeps the indices of its
frames. Consecutive stacks share all but one frame, so the file holds about one frame per agent
step (about 0.7 GB at 100k steps). Restoring rebuilds every element bit for bit (re-compressed
when the buffer compresses), with its key, and the sampler with its keys, priorities and RNG.

The transition accumulator's partial episode is not saved: the runner restarts the interrupted
episode, so the agent clears its accumulator after a load.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from dopamine.jax.replay_memory import elements
from dopamine.jax.replay_memory import replay_buffer
from dopamine.jax.replay_memory import samplers

FORMAT = 1
_SCALAR_FIELDS = ('action', 'reward', 'is_terminal', 'episode_end')


def buffer_state(buffer: replay_buffer.ReplayBuffer) -> dict[str, Any]:
  """Arrays and JSON-able values that ``restore_buffer`` turns back into ``buffer``'s content.

  Shape contract (N elements, F distinct frames, stack size S, frames of shape (H, W)):
  ``frames`` (F, H, W); ``state_frames`` and ``next_state_frames`` (N, S) int32 indices into
  ``frames``; ``keys`` (N,) int64; one (N,) array per scalar field.
  """
  # pylint: disable=protected-access
  compressed = buffer._compress
  index_of: dict[bytes, int] = {}  # a frame's bytes -> its row in ``frames``
  frame_shape, frame_dtype = (0, 0), np.dtype(np.uint8)

  def frame_indices(stack) -> list[int]:
    nonlocal frame_shape, frame_dtype
    stack = np.asarray(elements.uncompress(stack) if compressed else stack)
    frame_shape, frame_dtype = stack.shape[:-1], stack.dtype
    # One copy of the stack with the frame axis first: each frame's bytes are then a slice.
    frames_first = np.moveaxis(stack, -1, 0).tobytes()
    size = len(frames_first) // stack.shape[-1]
    out = []
    for k in range(stack.shape[-1]):
      raw = frames_first[k * size:(k + 1) * size]
      out.append(index_of.setdefault(raw, len(index_of)))
    return out

  keys, state_ix, next_ix = [], [], []
  scalars: dict[str, list] = {name: [] for name in _SCALAR_FIELDS}
  stack_size = 0
  for key, element in buffer._memory.items():
    keys.append(int(key))
    state_ix.append(frame_indices(element.state))
    next_ix.append(frame_indices(element.next_state))
    for name in _SCALAR_FIELDS:
      scalars[name].append(np.asarray(getattr(element, name)))
  if keys:
    stack_size = len(state_ix[0])
  state = {
      'format': FORMAT,
      'add_count': int(buffer.add_count),
      'compressed': bool(compressed),
      'keys': np.asarray(keys, np.int64),
      # Dicts keep insertion order: the keys are the frames in the order of their indices.
      'frames': (np.frombuffer(b''.join(index_of), frame_dtype).reshape(-1, *frame_shape)
                 if index_of else np.zeros((0, *frame_shape), frame_dtype)),
      'state_frames': np.asarray(state_ix, np.int32).reshape(len(keys), stack_size),
      'next_state_frames': np.asarray(next_ix, np.int32).reshape(len(keys), stack_size),
      'fields': {name: (np.stack(values) if values else np.zeros((0,)))
                 for name, values in scalars.items()},
      'sampler': sampler_state(buffer._sampling_distribution),
  }
  return state


def sampler_state(sampler: samplers.UniformSamplingDistribution) -> dict[str, Any]:
  """Keys in sampling order, RNG state and (prioritized) the sum tree of a Dopamine sampler."""
  # pylint: disable=protected-access
  state = {
      'key_by_index': np.asarray(sampler._key_by_index, np.int64),
      'rng_state': sampler._rng.bit_generator.state,
  }
  if isinstance(sampler, samplers.PrioritizedSamplingDistribution):
    state['sum_tree_nodes'] = np.array(sampler._sum_tree._nodes, np.float64)
    state['max_recorded_priority'] = float(sampler._sum_tree.max_recorded_priority)
  return state


def restore_buffer(buffer: replay_buffer.ReplayBuffer, state: dict[str, Any]) -> None:
  """Loads a ``buffer_state`` into ``buffer`` (same compression and sampler kind).

  Raises:
    ValueError: the state was written by another format or buffer kind, or is inconsistent.
  """
  # pylint: disable=protected-access
  if state.get('format') != FORMAT:
    raise ValueError(f'replay state format {state.get("format")!r}, expected {FORMAT}')
  if bool(state['compressed']) != bool(buffer._compress):
    raise ValueError(f'replay state compressed={state["compressed"]}, this buffer '
                     f'compress={buffer._compress}')
  keys = np.asarray(state['keys'])
  frames = np.asarray(state['frames'])
  state_ix, next_ix = np.asarray(state['state_frames']), np.asarray(state['next_state_frames'])
  fields = {name: np.asarray(state['fields'][name]) for name in _SCALAR_FIELDS}
  count = len(keys)
  if (len(state_ix) != count or len(next_ix) != count
      or any(len(v) != count for v in fields.values())):
    raise ValueError('replay state arrays disagree on the number of elements')
  if count and (state_ix.max(initial=0) >= len(frames) or next_ix.max(initial=0) >= len(frames)):
    raise ValueError('replay state frame indices point past the stored frames')

  def stack(indices) -> np.ndarray:
    value = np.stack([frames[i] for i in indices], axis=-1)
    return elements.compress(value) if buffer._compress else value

  buffer._memory.clear()
  for i in range(count):
    buffer._memory[int(keys[i])] = elements.ReplayElement(
        state=stack(state_ix[i]),
        action=fields['action'][i],
        reward=fields['reward'][i],
        next_state=stack(next_ix[i]),
        is_terminal=fields['is_terminal'][i],
        episode_end=fields['episode_end'][i])
  buffer.add_count = int(state['add_count'])
  buffer._transition_accumulator.clear()
  restore_sampler(buffer._sampling_distribution, state['sampler'])


def restore_sampler(sampler: samplers.UniformSamplingDistribution, state: dict[str, Any]) -> None:
  """Loads a ``sampler_state`` into a sampler of the same kind."""
  # pylint: disable=protected-access
  prioritized = isinstance(sampler, samplers.PrioritizedSamplingDistribution)
  if prioritized != ('sum_tree_nodes' in state):
    raise ValueError('replay sampler kind differs (prioritized vs uniform)')
  keys = [int(k) for k in np.asarray(state['key_by_index'])]
  sampler._key_by_index = keys
  sampler._index_by_key = {key: index for index, key in enumerate(keys)}
  sampler._rng.bit_generator.state = state['rng_state']
  if prioritized:
    nodes = np.array(state['sum_tree_nodes'], np.float64)
    if nodes.shape != sampler._sum_tree._nodes.shape:
      raise ValueError(f'replay sum tree has {nodes.shape[0]} nodes, this buffer '
                       f'{sampler._sum_tree._nodes.shape[0]} (another capacity)')
    sampler._sum_tree._nodes = nodes
    sampler._sum_tree.max_recorded_priority = float(state['max_recorded_priority'])
