"""The checkpoint file format (atari100k/checkpoint_file.py): exact round trips, and every
damaged or foreign file refused with a CheckpointError naming it, never loaded with pickle."""

import io
import json
import os
import pickle
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest

from atari100k import checkpoint_file

INFO = {'agent': 'drq', 'game': 'Pong', 'seed': 0, 'steps_done': 200}


def sample_tree():
  return {
      'runner': {'steps_done': 200, 'train_returns': [-21.0, -20.0], 'wall_time': 1.5},
      'agent': {
          'params': {'params/Dense_0/kernel': np.arange(6, dtype=np.float32).reshape(2, 3),
                     'params/Dense_0/bias': jnp.ones(3, jnp.bfloat16)},
          'grad_step': np.int32(7),
          'rng': np.array([1, 2], np.uint32),
          'reset_log': [[100, 'sp'], [200, 'head_reset']],
          'nothing': None,
          'flag': True,
          'rng_state': {'bit_generator': 'PCG64',
                        'state': {'state': 2 ** 127 + 12345, 'inc': 2 ** 100 + 1}},
          'empty': np.zeros((0, 84, 84), np.uint8),
          'config': (84, 84),
      },
  }


def test_round_trip_is_exact(tmp_path):
  path = str(tmp_path / 'checkpoint.npz')
  checkpoint_file.save(path, sample_tree(), INFO)
  info, tree = checkpoint_file.load(path)
  assert info == INFO
  params = tree['agent']['params']
  np.testing.assert_array_equal(params['params/Dense_0/kernel'],
                                np.arange(6, dtype=np.float32).reshape(2, 3))
  assert params['params/Dense_0/kernel'].dtype == np.float32
  assert params['params/Dense_0/bias'].dtype == jnp.bfloat16
  assert tree['agent']['grad_step'].dtype == np.int32 and int(tree['agent']['grad_step']) == 7
  assert tree['agent']['rng_state']['state']['state'] == 2 ** 127 + 12345
  assert tree['agent']['reset_log'] == [[100, 'sp'], [200, 'head_reset']]
  assert tree['agent']['nothing'] is None and tree['agent']['flag'] is True
  assert tree['agent']['empty'].shape == (0, 84, 84)
  assert tree['agent']['config'] == [84, 84]  # tuples come back as lists
  assert tree['runner'] == {'steps_done': 200, 'train_returns': [-21.0, -20.0],
                            'wall_time': 1.5}
  assert checkpoint_file.read_info(path) == INFO
  assert os.listdir(tmp_path) == ['checkpoint.npz']  # no temporary file left


def test_the_file_is_a_plain_zip_of_npy_arrays(tmp_path):
  path = str(tmp_path / 'checkpoint.npz')
  checkpoint_file.save(path, sample_tree(), INFO)
  with zipfile.ZipFile(path) as archive:
    names = archive.namelist()
    meta = json.loads(archive.read('meta.json'))
  assert names[0] == 'meta.json' and all(n.endswith('.npy') for n in names[1:])
  assert meta['kind'] == checkpoint_file.KIND and meta['format'] == checkpoint_file.FORMAT
  assert len(meta['arrays']) == len(names) - 1 == 5


@pytest.mark.parametrize('content, reason', [
    (os.urandom(1000), 'not a readable zip archive'),
    (b'', 'not a readable zip archive'),
    (pickle.dumps({'format': 1, 'steps_done': 10}), 'not a readable zip archive'),
])
def test_garbage_is_refused_with_the_file_named(tmp_path, content, reason):
  path = str(tmp_path / 'checkpoint.npz')
  with open(path, 'wb') as f:
    f.write(content)
  with pytest.raises(checkpoint_file.CheckpointError, match=reason) as error:
    checkpoint_file.load(path)
  assert error.value.path == path and path in str(error.value)


def test_a_truncated_file_is_refused(tmp_path):
  path = str(tmp_path / 'checkpoint.npz')
  checkpoint_file.save(path, sample_tree(), INFO)
  data = open(path, 'rb').read()
  with open(path, 'wb') as f:
    f.write(data[:len(data) // 2])
  with pytest.raises(checkpoint_file.CheckpointError):
    checkpoint_file.load(path)


def test_a_flipped_byte_in_an_array_fails_its_crc(tmp_path):
  path = str(tmp_path / 'checkpoint.npz')
  tree = {'big': np.zeros(10_000, np.float32)}
  checkpoint_file.save(path, tree, INFO)
  data = bytearray(open(path, 'rb').read())
  data[len(data) // 2] ^= 0xFF  # inside the array's data
  with open(path, 'wb') as f:
    f.write(bytes(data))
  with pytest.raises(checkpoint_file.CheckpointError, match='cannot be read'):
    checkpoint_file.load(path)


def _zip(path, members: dict):
  with zipfile.ZipFile(path, 'w') as archive:
    for name, data in members.items():
      archive.writestr(name, data)


def test_a_pickled_object_array_is_never_unpickled(tmp_path):
  path = str(tmp_path / 'checkpoint.npz')
  evil = io.BytesIO()
  np.save(evil, np.array([{'payload': 1}], dtype=object), allow_pickle=True)
  meta = {'kind': checkpoint_file.KIND, 'format': checkpoint_file.FORMAT, 'info': INFO,
          'tree': {'x': {'__array__': 0}}, 'arrays': [{'shape': [1], 'dtype': '|O'}]}
  _zip(path, {'meta.json': json.dumps(meta), 'arrays/000000.npy': evil.getvalue()})
  with pytest.raises(checkpoint_file.CheckpointError, match='allow_pickle'):
    checkpoint_file.load(path)


@pytest.mark.parametrize('meta, reason', [
    ({'kind': 'something else', 'format': 2}, 'another kind'),
    ({'kind': checkpoint_file.KIND, 'format': 1, 'info': {}, 'tree': {}},
     'format 1; this version reads format 2'),
    ({'kind': checkpoint_file.KIND, 'format': 2, 'tree': {}}, "no 'info'"),
])
def test_foreign_or_other_format_headers_are_refused(tmp_path, meta, reason):
  path = str(tmp_path / 'checkpoint.npz')
  _zip(path, {'meta.json': json.dumps(meta)})
  with pytest.raises(checkpoint_file.CheckpointError, match=reason):
    checkpoint_file.load(path)


def test_a_missing_array_is_refused(tmp_path):
  path = str(tmp_path / 'checkpoint.npz')
  meta = {'kind': checkpoint_file.KIND, 'format': 2, 'info': INFO,
          'tree': {'x': {'__array__': 0}}, 'arrays': [{'shape': [1], 'dtype': '<f4'}]}
  _zip(path, {'meta.json': json.dumps(meta)})
  with pytest.raises(checkpoint_file.CheckpointError, match='missing'):
    checkpoint_file.load(path)


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
  path = str(tmp_path / 'checkpoint.npz')
  checkpoint_file.save(path, {'x': np.ones(3)}, dict(INFO, steps_done=100))
  calls = []
  original = np.lib.format.write_array

  def disk_full(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
      raise OSError(28, 'No space left on device')
    return original(*args, **kwargs)
  monkeypatch.setattr(np.lib.format, 'write_array', disk_full)
  with pytest.raises(OSError, match='No space left'):
    checkpoint_file.save(path, {'x': np.zeros(3), 'y': np.zeros(2)}, INFO)
  monkeypatch.setattr(np.lib.format, 'write_array', original)
  info, tree = checkpoint_file.load(path)
  assert info['steps_done'] == 100 and tree['x'].tolist() == [1.0, 1.0, 1.0]
  assert os.listdir(tmp_path) == ['checkpoint.npz']


def test_unsupported_values_are_a_programming_error(tmp_path):
  with pytest.raises(TypeError, match='checkpoint/a/0'):
    checkpoint_file.save(str(tmp_path / 'c.npz'), {'a': [object()]}, INFO)
  with pytest.raises(TypeError, match='keys must be str'):
    checkpoint_file.save(str(tmp_path / 'c.npz'), {'a': {1: 2}}, INFO)


def test_the_checkpoint_benchmark_runs(capsys):
  # pylint: disable=import-outside-toplevel
  from atari100k import bench_checkpoint
  assert bench_checkpoint.main(['--steps', '300']) == 0
  out = capsys.readouterr().out
  assert 'Pong, 300 steps: 2' in out and 'old pickle format' in out
  assert bench_checkpoint.main(['--steps', '150']) == 2
