"""Dopamine's JAX ``ReplayBuffer`` as plain arrays for a checkpoint, each frame stored once.

Dopamine's own ``to_state_dict`` keeps every replay element as a pair of (snappy-compressed)
frame stacks and a pickled tree definition: only loadable with pickle, and large (DrQ's stacks
are float64). Here every element's ``state`` and ``next_state`` stacks are split into frames,
equal frames are stored once (as uint8 when that holds their values exactly, as Atari frames
do), and each element keeps the indices of its frames. Consecutive stacks share all but one
frame, so the file holds about one frame per agent step. Restoring rebuilds every element bit
for bit (same dtype, re-compressed when the buffer compresses), with its key, and the sampler
with its keys, priorities and RNG.

``FrameStore`` keeps the frames and indices between checkpoints, so that a save decompresses
only the elements added since the previous one (elements never change once added).

The transition accumulator's partial episode is not saved: the runner restarts the interrupted
episode, so restoring clears the accumulator.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from dopamine.jax.replay_memory import elements
from dopamine.jax.replay_memory import replay_buffer
from dopamine.jax.replay_memory import samplers

FORMAT = 2
_SCALAR_FIELDS = ('action', 'reward', 'is_terminal', 'episode_end')
_CHUNK = 4096  # frames per storage chunk (no copy of the whole table when it grows)


class FrameStore:
  """Distinct frames of a buffer's stacks and, per element key, its frame indices and scalars.

  Frames are kept in ``source_dtype`` converted to ``stored_dtype`` (uint8 while every frame
  seen is exactly representable in it). Equal frames are found by a 128-bit BLAKE2 digest and
  confirmed byte for byte, so a digest collision cannot merge two different frames.
  """

  def __init__(self):
    self.reset()

  def reset(self) -> None:
    """Forgets every frame and element."""
    self._chunks: list[np.ndarray] = []
    self.count = 0
    self._by_digest: dict[bytes, list[int]] = {}
    self.elements: dict[int, tuple] = {}  # key -> (state ix, next ix, scalars)
    self.source_dtype: np.dtype | None = None
    self.stored_dtype: np.dtype | None = None
    self.frame_shape: tuple | None = None

  def frames(self) -> list[np.ndarray]:
    """The stored frames as a list of (<= _CHUNK, *frame_shape) arrays, in index order."""
    out = list(self._chunks)
    if out and self.count % _CHUNK:
      out[-1] = out[-1][:self.count % _CHUNK]
    return out

  def frame(self, index: int) -> np.ndarray:
    return self._chunks[index // _CHUNK][index % _CHUNK]

  def _to_raw(self) -> None:
    """A frame that uint8 cannot hold arrived: store everything in the source dtype."""
    self._chunks = [chunk.astype(self.source_dtype) for chunk in self._chunks]
    self.stored_dtype = self.source_dtype
    self._by_digest = {}
    for index in range(self.count):
      self._by_digest.setdefault(_digest(self.frame(index)), []).append(index)

  def _add(self, frame: np.ndarray) -> int:
    digest = _digest(frame)
    for index in self._by_digest.get(digest, ()):
      if np.array_equal(self.frame(index), frame):
        return index
    if self.count % _CHUNK == 0:
      self._chunks.append(np.empty((_CHUNK, *self.frame_shape), self.stored_dtype))
    index = self.count
    self._chunks[-1][index % _CHUNK] = frame
    self.count += 1
    self._by_digest.setdefault(digest, []).append(index)
    return index

  def index_stack(self, stack: np.ndarray) -> tuple[int, ...]:
    """Indices of the frames of a (*frame_shape, stack_size) stack, storing new ones."""
    stack = np.asarray(stack)
    if self.source_dtype is None:
      self.source_dtype, self.frame_shape = stack.dtype, stack.shape[:-1]
      self.stored_dtype = np.dtype(np.uint8)
    if stack.dtype != self.source_dtype or stack.shape[:-1] != self.frame_shape:
      raise ValueError(f'replay stacks of dtype {stack.dtype} and frame shape '
                       f'{stack.shape[:-1]} after {self.source_dtype} {self.frame_shape}')
    frames = np.moveaxis(stack, -1, 0)
    if self.stored_dtype != self.source_dtype:
      compact = frames.astype(self.stored_dtype)
      if np.array_equal(compact, frames):
        frames = compact
      else:
        self._to_raw()
    return tuple(self._add(np.ascontiguousarray(frame)) for frame in frames)

  def sync(self, buffer: replay_buffer.ReplayBuffer) -> None:
    """Indexes the elements added to ``buffer`` since the last call and forgets evicted ones
    (their frames stay until the store is rebuilt: at most one buffer's worth)."""
    # pylint: disable=protected-access
    memory = buffer._memory
    for key in [k for k in self.elements if k not in memory]:
      del self.elements[key]
    for key, element in memory.items():
      if key in self.elements:
        continue
      state, next_state = element.state, element.next_state
      if buffer._compress:
        state, next_state = elements.uncompress(state), elements.uncompress(next_state)
      self.elements[key] = (self.index_stack(state), self.index_stack(next_state),
                            tuple(np.asarray(getattr(element, f)) for f in _SCALAR_FIELDS))


def _digest(frame: np.ndarray) -> bytes:
  return hashlib.blake2b(frame.tobytes(), digest_size=16).digest()


def buffer_state(buffer: replay_buffer.ReplayBuffer, store: FrameStore | None = None
                 ) -> dict[str, Any]:
  """Arrays and JSON-able values that ``restore_buffer`` turns back into ``buffer``'s content.

  Args:
    buffer: the Dopamine replay buffer.
    store: FrameStore kept by the caller between saves (only new elements are decompressed);
      None indexes the whole buffer afresh.

  Shape contract (N elements, F distinct frames, stack size S, frames of shape (...)):
  ``frames`` a list of (<= 4096, ...) arrays, F rows in all, of dtype ``stored_dtype``
  (restored as ``source_dtype``); ``state_frames`` and ``next_state_frames`` (N, S) int32
  indices into the frames; ``keys`` (N,) int64; one (N, ...) array per scalar field.
  """
  # pylint: disable=protected-access
  if store is None:
    store = FrameStore()
  if store.count > 2 * len(buffer._memory) * 8 + _CHUNK:  # mostly evicted frames: rebuild
    store.reset()
  store.sync(buffer)
  keys = list(buffer._memory)
  entries = [store.elements[k] for k in keys]
  stack_size = len(entries[0][0]) if entries else 0
  fields = {}
  for position, name in enumerate(_SCALAR_FIELDS):
    values = [entry[2][position] for entry in entries]
    fields[name] = np.stack(values) if values else np.zeros((0,))
  return {
      'format': FORMAT,
      'add_count': int(buffer.add_count),
      'compressed': bool(buffer._compress),
      'keys': np.asarray(keys, np.int64),
      'frames': store.frames(),
      'source_dtype': None if store.source_dtype is None else store.source_dtype.str,
      'state_frames': np.asarray([e[0] for e in entries], np.int32).reshape(len(keys),
                                                                         stack_size),
      'next_state_frames': np.asarray([e[1] for e in entries], np.int32).reshape(len(keys),
                                                                              stack_size),
      'fields': fields,
      'sampler': sampler_state(buffer._sampling_distribution),
  }


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


def restore_buffer(buffer: replay_buffer.ReplayBuffer, state: dict[str, Any],
                   store: FrameStore | None = None) -> None:
  """Loads a ``buffer_state`` into ``buffer`` (same compression and sampler kind); fills
  ``store`` (if given) so that the next save indexes only new elements.

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
  chunks = [np.asarray(chunk) for chunk in state['frames']]
  frames = np.concatenate(chunks) if chunks else np.zeros((0,))
  state_ix, next_ix = np.asarray(state['state_frames']), np.asarray(state['next_state_frames'])
  fields = {name: np.asarray(state['fields'][name]) for name in _SCALAR_FIELDS}
  count = len(keys)
  if (len(state_ix) != count or len(next_ix) != count
      or any(len(v) != count for v in fields.values())):
    raise ValueError('replay state arrays disagree on the number of elements')
  if count and (state_ix.max(initial=0) >= len(frames) or next_ix.max(initial=0) >= len(frames)):
    raise ValueError('replay state frame indices point past the stored frames')
  source_dtype = np.dtype(state['source_dtype']) if count else None

  def stack(indices) -> np.ndarray:
    value = np.moveaxis(frames[indices], 0, -1).astype(source_dtype)
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
  if store is not None:
    store.reset()
    if count:
      store.source_dtype, store.stored_dtype = source_dtype, frames.dtype
      store.frame_shape = frames.shape[1:]
      for frame in frames:
        store._add(frame)  # pylint: disable=protected-access
      for i in range(count):
        store.elements[int(keys[i])] = (
            tuple(int(x) for x in state_ix[i]), tuple(int(x) for x in next_ix[i]),
            tuple(fields[name][i] for name in _SCALAR_FIELDS))


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
