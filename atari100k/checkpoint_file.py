"""The runner's checkpoint file: a zip of ``.npy`` arrays and one JSON header, loading no code.

Layout of ``checkpoints/checkpoint.npz`` (readable with ``zipfile`` or ``numpy.load``):

* ``meta.json``: ``{"kind", "format", "info": {...}, "tree": ..., "arrays": [...]}``. ``tree``
  is the saved state as JSON, each array replaced by ``{"__array__": i}``; ``info`` names the
  run (agent, game, seed, steps) so that a checkpoint of another run is refused.
* ``arrays/<i>.npy``: array ``i``, read back with ``allow_pickle=False``.

A state is a tree of dicts with str keys, lists (tuples are saved as lists), None, bools, ints,
floats, strs and arrays (numpy, jax, numpy scalars). The file is written atomically and
streamed, array by array (``atari100k.files``). ``load`` raises ``CheckpointError`` naming the
file and the reason for anything it cannot read: not a zip, truncated, a CRC error, another
format, a pickled (object) array.
"""

from __future__ import annotations

import json
import os
import zipfile

import ml_dtypes
import numpy as np

from common import files

KIND = 'hare-tortoise-atari100k-checkpoint'
FORMAT = 2  # 1 was a pickle (up to December 2026); it is refused, not loaded
_ARRAY = '__array__'


class CheckpointError(Exception):
  """A checkpoint that cannot be used: ``path`` and ``reason`` say which and why."""

  def __init__(self, path: str, reason: str):
    super().__init__(f'{path}: {reason}')
    self.path = path
    self.reason = reason


def _encode(node, arrays: list, where: str):
  if isinstance(node, dict):
    out = {}
    for key, value in node.items():
      if not isinstance(key, str) or key == _ARRAY:
        raise TypeError(f'{where}: checkpoint dict keys must be str (not {_ARRAY!r}), '
                        f'got {key!r}')
      out[key] = _encode(value, arrays, f'{where}/{key}')
    return out
  if isinstance(node, (list, tuple)):
    return [_encode(v, arrays, f'{where}/{i}') for i, v in enumerate(node)]
  if node is None or isinstance(node, (bool, int, float, str)):
    return node
  if isinstance(node, np.generic) or hasattr(node, '__array__'):
    array = np.asarray(node)
    if array.dtype.hasobject:
      raise TypeError(f'{where}: object arrays cannot be checkpointed')
    arrays.append(array)
    return {_ARRAY: len(arrays) - 1}
  raise TypeError(f'{where}: cannot checkpoint a {type(node).__name__}')


def _is_extension_dtype(dtype: np.dtype) -> bool:
  return dtype.kind == 'V' and dtype.names is None and hasattr(ml_dtypes, dtype.name)


def _member(index: int) -> str:
  return f'arrays/{index:06d}.npy'


def save(path: str, tree, info: dict) -> None:
  """Writes ``tree`` (see the module docstring) and the header ``info`` to ``path`` atomically.

  Raises:
    OSError: the write failed (e.g. the disk is full); the previous file at ``path`` is intact.
  """
  arrays: list = []
  encoded = _encode(tree, arrays, 'checkpoint')
  specs = []
  for index, array in enumerate(arrays):
    spec = {'shape': list(array.shape)}
    if _is_extension_dtype(array.dtype):  # bfloat16 & co.: .npy has no name for them
      spec['as'] = array.dtype.name
      arrays[index] = array = array.view(f'u{array.dtype.itemsize}')
    spec['dtype'] = array.dtype.str
    specs.append(spec)
  meta = {'kind': KIND, 'format': FORMAT, 'info': info, 'tree': encoded, 'arrays': specs}

  def write(f):
    with zipfile.ZipFile(f, 'w', zipfile.ZIP_STORED, allowZip64=True) as archive:
      archive.writestr('meta.json', json.dumps(meta))
      for index, array in enumerate(arrays):
        with archive.open(_member(index), 'w', force_zip64=True) as member:
          np.lib.format.write_array(member, np.asarray(array, order='C'), allow_pickle=False)
  files.write_atomically(path, write)


def read_info(path: str) -> dict:
  """The header ``info`` of a checkpoint, without reading its arrays."""
  with _open(path) as archive:
    return _meta(path, archive)['info']


def load(path: str) -> tuple[dict, object]:
  """Returns ``(info, tree)`` of the checkpoint at ``path``; arrays come back as numpy arrays.

  Raises:
    CheckpointError: the file is not a checkpoint of this format, or is damaged.
  """
  with _open(path) as archive:
    meta = _meta(path, archive)
    specs = meta.get('arrays', [])

    def read(index: int) -> np.ndarray:
      name = _member(index)
      try:
        with archive.open(name) as member:
          array = np.lib.format.read_array(member, allow_pickle=False)
          member.read()  # to the end of the member: zipfile checks its CRC there
      except KeyError:
        raise CheckpointError(path, f'the array {name} is missing (a damaged file)') from None
      except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(path, f'the array {name} cannot be read '
                                    f'({type(e).__name__}: {e})') from None
      spec = specs[index] if index < len(specs) else None
      if spec is None or list(array.shape) != spec['shape'] or array.dtype.str != spec['dtype']:
        raise CheckpointError(path, f'the array {name} does not match its header')
      if 'as' in spec:
        dtype = getattr(ml_dtypes, str(spec['as']), None)
        if dtype is None:
          raise CheckpointError(path, f'the array {name} has an unknown dtype {spec["as"]!r}')
        array = array.view(dtype)
      return array

    def decode(node):
      if isinstance(node, dict):
        if set(node) == {_ARRAY}:
          return read(int(node[_ARRAY]))
        return {k: decode(v) for k, v in node.items()}
      if isinstance(node, list):
        return [decode(v) for v in node]
      return node

    return meta['info'], decode(meta['tree'])


def _open(path: str) -> zipfile.ZipFile:
  try:
    return zipfile.ZipFile(path)
  except FileNotFoundError:
    raise
  except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
    size = os.path.getsize(path) if os.path.exists(path) else 0
    raise CheckpointError(path, f'not a checkpoint of this suite: not a readable zip archive '
                                f'({size} bytes; {type(e).__name__}: {e})') from None


def _meta(path: str, archive: zipfile.ZipFile) -> dict:
  try:
    meta = json.loads(archive.read('meta.json'))
  except KeyError:
    raise CheckpointError(path, 'not a checkpoint of this suite: it has no meta.json') from None
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    raise CheckpointError(path, f'its meta.json cannot be read ({type(e).__name__}: {e})'
                          ) from None
  if not isinstance(meta, dict) or meta.get('kind') != KIND:
    raise CheckpointError(path, 'not a checkpoint of this suite (meta.json has another kind)')
  if meta.get('format') != FORMAT:
    raise CheckpointError(path, f'checkpoint format {meta.get("format")!r}; this version reads '
                                f'format {FORMAT} only')
  for key in ('info', 'tree'):
    if key not in meta:
      raise CheckpointError(path, f'its meta.json has no {key!r}')
  return meta
