"""Tests for warmstart/data.py: every loader on tiny files written here in the real formats."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import sys

import numpy as np
import pytest

from warmstart import data


# --------------------------------------------------------------------------- IDX helpers

def _idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
  """``array`` (uint8) encoded as an IDX file; ``magic`` overrides the header's magic."""
  if magic is None:
    magic = 0x0800 | array.ndim
  header = struct.pack('>I', magic) + b''.join(struct.pack('>I', d) for d in array.shape)
  return header + np.ascontiguousarray(array, np.uint8).tobytes()


def _write(path, payload: bytes, gz: bool):
  if gz:
    with gzip.open(str(path) + '.gz', 'wb') as f:
      f.write(payload)
  else:
    with open(path, 'wb') as f:
      f.write(payload)


def _write_idx_set(folder, gz=False, n_train=5, n_test=3, seed=0):
  """Writes the four IDX files of 4x3 images into ``folder``; returns the arrays."""
  rng = np.random.default_rng(seed)
  os.makedirs(folder, exist_ok=True)
  arrays = {
      'train-images-idx3-ubyte': rng.integers(0, 256, (n_train, 4, 3), dtype=np.uint8),
      'train-labels-idx1-ubyte': rng.integers(0, 10, (n_train,), dtype=np.uint8),
      't10k-images-idx3-ubyte': rng.integers(0, 256, (n_test, 4, 3), dtype=np.uint8),
      't10k-labels-idx1-ubyte': rng.integers(0, 10, (n_test,), dtype=np.uint8),
  }
  for name, array in arrays.items():
    _write(os.path.join(folder, name), _idx_bytes(array), gz)
  return arrays


# --------------------------------------------------------------------------- IDX

@pytest.mark.parametrize('gz', [False, True])
def test_idx_loader_returns_written_values(tmp_path, gz):
  arrays = _write_idx_set(tmp_path, gz=gz)
  ds = data.load_mnist(str(tmp_path))
  assert ds.name == 'mnist' and ds.num_classes == 10
  assert ds.x_train.shape == (5, 4, 3, 1) and ds.x_test.shape == (3, 4, 3, 1)
  assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int32
  np.testing.assert_array_equal(ds.x_train[..., 0], arrays['train-images-idx3-ubyte'])
  np.testing.assert_array_equal(ds.y_train, arrays['train-labels-idx1-ubyte'])
  np.testing.assert_array_equal(ds.x_test[..., 0], arrays['t10k-images-idx3-ubyte'])
  np.testing.assert_array_equal(ds.y_test, arrays['t10k-labels-idx1-ubyte'])


def test_fashion_mnist_finds_files_one_level_down(tmp_path):
  arrays = _write_idx_set(tmp_path / 'sub', gz=True)
  ds = data.load_fashion_mnist(str(tmp_path))
  assert ds.name == 'fashion_mnist'
  np.testing.assert_array_equal(ds.y_test, arrays['t10k-labels-idx1-ubyte'])


def test_idx_wrong_magic_is_a_clear_error(tmp_path):
  _write_idx_set(tmp_path)
  labels = np.arange(5, dtype=np.uint8)
  _write(tmp_path / 'train-labels-idx1-ubyte', _idx_bytes(labels, magic=2051), gz=False)
  with pytest.raises(ValueError, match='magic number 2051, expected 2049'):
    data.load_mnist(str(tmp_path))


def test_idx_truncated_data_is_a_clear_error(tmp_path):
  _write_idx_set(tmp_path)
  payload = _idx_bytes(np.zeros((5, 4, 3), np.uint8))[:-2]
  _write(tmp_path / 'train-images-idx3-ubyte', payload, gz=False)
  with pytest.raises(ValueError, match='truncated or corrupted'):
    data.load_mnist(str(tmp_path))


def test_idx_count_mismatch_is_a_clear_error(tmp_path):
  _write_idx_set(tmp_path)
  _write(tmp_path / 't10k-labels-idx1-ubyte', _idx_bytes(np.zeros(4, np.uint8)), gz=False)
  with pytest.raises(ValueError, match='3 images but .* 4 labels'):
    data.load_mnist(str(tmp_path))


def test_missing_idx_files_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match='make data') as err:
    data.load_fashion_mnist(str(tmp_path / 'nowhere'))
  assert 'dataset-fashion-mnist' in str(err.value)
  with pytest.raises(FileNotFoundError, match='t10k-labels-idx1-ubyte') as err:
    data.load_mnist(str(tmp_path))
  assert 'pass that folder' in str(err.value)


# --------------------------------------------------------------------------- CIFAR

def _cifar_rows(images: np.ndarray) -> np.ndarray:
  """(N, 32, 32, 3) images -> (N, 3072) rows: red plane, green plane, blue plane."""
  return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def _pickle(path, obj):
  with open(path, 'wb') as f:
    pickle.dump(obj, f)


def _write_cifar10(folder, n_per_batch=2):
  rng = np.random.default_rng(1)
  os.makedirs(folder)
  train_x, train_y = [], []
  for i in range(1, 6):
    x = rng.integers(0, 256, (n_per_batch, 32, 32, 3), dtype=np.uint8)
    y = [int(v) for v in rng.integers(0, 10, n_per_batch)]
    _pickle(os.path.join(folder, f'data_batch_{i}'),
            {b'data': _cifar_rows(x), b'labels': y, b'batch_label': b'x'})
    train_x.append(x)
    train_y += y
  x = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
  x[0, 5, 7] = (11, 22, 33)
  _pickle(os.path.join(folder, 'test_batch'), {b'data': _cifar_rows(x), b'labels': [9, 0, 4]})
  return np.concatenate(train_x), np.array(train_y), x


def test_cifar_pixel_order_is_exact(tmp_path):
  """Row layout: data[n, c * 1024 + row * 32 + col] is channel c of pixel (row, col)."""
  row = np.zeros((1, 3072), np.uint8)
  row[0, 0 * 1024 + 5 * 32 + 7] = 11
  row[0, 1 * 1024 + 5 * 32 + 7] = 22
  row[0, 2 * 1024 + 5 * 32 + 7] = 33
  _pickle(tmp_path / 'batch', {b'data': row, b'labels': [3]})
  images, labels = data._read_cifar_batch(str(tmp_path / 'batch'), b'labels')
  assert images.shape == (1, 32, 32, 3) and labels.tolist() == [3]
  assert images[0, 5, 7].tolist() == [11, 22, 33]
  assert images.sum() == 11 + 22 + 33


@pytest.mark.parametrize('give_parent', [False, True])
def test_cifar10_loader(tmp_path, give_parent):
  folder = tmp_path / 'cifar-10-batches-py'
  train_x, train_y, test_x = _write_cifar10(str(folder))
  ds = data.load_cifar10(str(tmp_path if give_parent else folder))
  assert ds.name == 'cifar10' and ds.num_classes == 10
  assert ds.x_train.shape == (10, 32, 32, 3) and ds.x_test.shape == (3, 32, 32, 3)
  np.testing.assert_array_equal(ds.x_train, train_x)
  np.testing.assert_array_equal(ds.y_train, train_y)
  np.testing.assert_array_equal(ds.x_test, test_x)
  assert ds.x_test[0, 5, 7].tolist() == [11, 22, 33]
  assert ds.y_test.tolist() == [9, 0, 4] and ds.y_test.dtype == np.int32


@pytest.mark.parametrize('give_parent', [False, True])
def test_cifar100_loader(tmp_path, give_parent):
  folder = tmp_path / 'cifar-100-python'
  folder.mkdir()
  x = np.zeros((4, 32, 32, 3), np.uint8)
  x[2, 31, 0] = (200, 100, 50)
  _pickle(folder / 'train', {b'data': _cifar_rows(x), b'fine_labels': [0, 99, 5, 42],
                             b'coarse_labels': [0, 1, 2, 3]})
  _pickle(folder / 'test', {b'data': _cifar_rows(x[:2]), b'fine_labels': [7, 8]})
  ds = data.load_cifar100(str(tmp_path if give_parent else folder))
  assert ds.num_classes == 100 and ds.x_train.shape == (4, 32, 32, 3)
  assert ds.x_train[2, 31, 0].tolist() == [200, 100, 50]
  assert ds.y_train.tolist() == [0, 99, 5, 42] and ds.y_test.tolist() == [7, 8]


def test_cifar_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match='python version') as err:
    data.load_cifar10(str(tmp_path))
  assert 'https://www.cs.toronto.edu/~kriz/cifar.html' in str(err.value)
  assert 'data_batch_1' in str(err.value) and 'test_batch' in str(err.value)
  with pytest.raises(FileNotFoundError, match='test'):
    data.load_cifar100(str(tmp_path))
  folder = tmp_path / 'cifar-100-python'
  folder.mkdir()
  _pickle(folder / 'train', {b'data': np.zeros((1, 3072), np.uint8), b'labels': [0]})
  _pickle(folder / 'test', {b'data': np.zeros((1, 3072), np.uint8), b'fine_labels': [0]})
  with pytest.raises(ValueError, match='fine_labels'):
    data.load_cifar100(str(tmp_path))


# --------------------------------------------------------------------------- Tiny ImageNet

def _jpeg(path, colour, mode='RGB'):
  from PIL import Image
  Image.new(mode, (64, 64), colour).save(path, 'JPEG', quality=95)


def _write_tiny_imagenet(folder):
  """Two classes (listed unsorted in wnids.txt); val annotations in the real TSV layout."""
  colours = {'n02': (250, 10, 10), 'n01': (10, 10, 250)}
  os.makedirs(folder)
  with open(os.path.join(folder, 'wnids.txt'), 'w') as f:
    f.write('n02\nn01\n')
  for wnid, colour in colours.items():
    images = os.path.join(folder, 'train', wnid, 'images')
    os.makedirs(images)
    for i in range(2):
      _jpeg(os.path.join(images, f'{wnid}_{i}.JPEG'), colour)
    with open(os.path.join(folder, 'train', wnid, f'{wnid}_boxes.txt'), 'w') as f:
      f.write(f'{wnid}_0.JPEG\t0\t0\t63\t63\n')
  _jpeg(os.path.join(folder, 'train', 'n01', 'images', 'n01_2.JPEG'), 128, mode='L')
  val = os.path.join(folder, 'val', 'images')
  os.makedirs(val)
  _jpeg(os.path.join(val, 'val_0.JPEG'), colours['n02'])
  _jpeg(os.path.join(val, 'val_1.JPEG'), colours['n01'])
  _jpeg(os.path.join(val, 'val_2.JPEG'), 60, mode='L')
  with open(os.path.join(folder, 'val', 'val_annotations.txt'), 'w') as f:
    f.write('val_0.JPEG\tn02\t0\t0\t63\t63\nval_1.JPEG\tn01\t1\t2\t3\t4\n'
            'val_2.JPEG\tn02\t5\t5\t60\t60\n')
  return colours


@pytest.mark.parametrize('give_parent', [False, True])
def test_tiny_imagenet_loader(tmp_path, give_parent):
  folder = tmp_path / 'tiny-imagenet-200'
  colours = _write_tiny_imagenet(str(folder))
  ds = data.load_tiny_imagenet(str(tmp_path if give_parent else folder))
  assert ds.num_classes == 2 and ds.name == 'tiny_imagenet'
  assert ds.x_train.shape == (5, 64, 64, 3) and ds.x_train.dtype == np.uint8
  assert ds.x_test.shape == (3, 64, 64, 3)
  # sorted wnids: n01 -> 0 (3 images, the grey one last), n02 -> 1.
  assert ds.y_train.tolist() == [0, 0, 0, 1, 1]
  assert ds.y_test.tolist() == [1, 0, 1]
  tol = 6
  for i, expected in enumerate([colours['n01']] * 2 + [(128,) * 3] + [colours['n02']] * 2):
    assert np.abs(ds.x_train[i].astype(int) - expected).max() <= tol, i
  assert np.abs(ds.x_test[0].astype(int) - colours['n02']).max() <= tol
  assert np.abs(ds.x_test[1].astype(int) - colours['n01']).max() <= tol
  assert np.abs(ds.x_test[2].astype(int) - 60).max() <= tol


def test_tiny_imagenet_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match='wnids.txt'):
    data.load_tiny_imagenet(str(tmp_path))
  folder = tmp_path / 'tiny-imagenet-200'
  _write_tiny_imagenet(str(folder))
  with open(folder / 'val' / 'val_annotations.txt', 'a') as f:
    f.write('val_9.JPEG\tn99\t0\t0\t1\t1\n')
  with pytest.raises(ValueError, match="'n99' is not in wnids.txt"):
    data.load_tiny_imagenet(str(tmp_path))


# --------------------------------------------------------------------------- digits

def test_digits():
  ds = data.load_digits()
  assert ds.x_train.shape == (1500, 8, 8, 1) and ds.x_test.shape == (297, 8, 8, 1)
  assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int32
  assert ds.x_train.max() == 255 and ds.x_train.min() == 0
  assert set(np.unique(ds.y_train)) == set(range(10))
  assert ds.y_test.min() >= 0 and ds.y_test.max() <= 9 and ds.num_classes == 10
  again = data.load_digits()
  np.testing.assert_array_equal(ds.x_train, again.x_train)
  np.testing.assert_array_equal(ds.y_test, again.y_test)


# --------------------------------------------------------------------------- label noise

def test_label_noise_official_kind_makes_exactly_the_chosen_labels_wrong():
  # Official (src/datasets/dataset.py): random.sample(range(num_samples), int(num_samples *
  # label_noise_ratio)) positions, each noisy_label = random.choice([l for l in
  # range(len(self.classes)) if l != original_label]).
  labels = np.arange(1000) % 10
  noisy, mask = data.add_label_noise(labels, 0.37, 10, np.random.default_rng(0))
  assert mask.sum() == 370 and mask.dtype == bool and noisy.dtype == np.int32
  np.testing.assert_array_equal(noisy[~mask], labels[~mask])
  assert np.all(noisy[mask] != labels[mask])  # exactly 37% of the labels are wrong
  assert np.sum(noisy != labels) == 370
  assert noisy.min() >= 0 and noisy.max() <= 9
  assert labels.tolist() == (np.arange(1000) % 10).tolist()  # input untouched


def test_label_noise_official_kind_is_uniform_over_the_other_classes():
  labels = np.full(4000, 3)
  noisy, mask = data.add_label_noise(labels, 1.0, 5, np.random.default_rng(1))
  assert mask.all()
  counts = np.bincount(noisy, minlength=5)
  assert counts[3] == 0 and counts.sum() == 4000
  assert (np.abs(counts[[0, 1, 2, 4]] - 1000) < 100).all(), counts  # 1000 +- 3 sd each
  # Worked by hand: rng.choice picks the positions, then the offsets 1..C-1 from the same rng.
  rng = np.random.default_rng(7)
  chosen = rng.choice(6, size=3, replace=False)
  offsets = rng.integers(1, 4, size=3, dtype=np.int32)
  expected = np.array([0, 1, 2, 3, 0, 1])
  expected[chosen] = (expected[chosen] + offsets) % 4
  noisy, _ = data.add_label_noise(np.array([0, 1, 2, 3, 0, 1]), 0.5, 4, np.random.default_rng(7))
  np.testing.assert_array_equal(noisy, expected)


def test_label_noise_any_kind_draws_from_every_class_on_the_same_positions():
  labels = np.full(2000, 3)
  noisy, mask = data.add_label_noise(labels, 1.0, 5, np.random.default_rng(1), kind='any')
  assert mask.all()
  counts = np.bincount(noisy, minlength=5)
  assert (counts > 300).all(), counts  # uniform over 5 classes, true label 3 included
  labels = np.arange(1000) % 10
  any_noisy, any_mask = data.add_label_noise(labels, 0.37, 10, np.random.default_rng(0), 'any')
  _, other_mask = data.add_label_noise(labels, 0.37, 10, np.random.default_rng(0))
  np.testing.assert_array_equal(any_mask, other_mask)
  kept = np.mean(any_noisy[any_mask] == labels[any_mask])  # the true label 1/10 of the time
  assert 0.03 < kept < 0.2
  # The draws of the earlier version, which had only this kind: positions, then 0..C-1.
  rng = np.random.default_rng(0)
  chosen = rng.choice(1000, size=370, replace=False)
  expected = labels.astype(np.int32)
  expected[chosen] = rng.integers(0, 10, size=370, dtype=np.int32)
  np.testing.assert_array_equal(any_noisy, expected)


def test_label_noise_ratio_zero_and_rounding():
  labels = np.arange(7) % 3
  noisy, mask = data.add_label_noise(labels, 0.0, 3, np.random.default_rng(0))
  assert not mask.any()
  np.testing.assert_array_equal(noisy, labels)
  _, mask = data.add_label_noise(labels, 0.3, 3, np.random.default_rng(0))
  assert mask.sum() == round(0.3 * 7)


@pytest.mark.parametrize('ratio', [-0.1, 1.5, float('nan')])
def test_label_noise_bad_ratio(ratio):
  with pytest.raises(ValueError, match=r'noise_ratio must lie in \[0, 1\]'):
    data.add_label_noise(np.zeros(4, int), ratio, 2, np.random.default_rng(0))


def test_label_noise_bad_inputs():
  with pytest.raises(TypeError, match='default_rng'):
    data.add_label_noise(np.zeros(4, int), 0.5, 2, 0)
  with pytest.raises(ValueError, match='classes'):
    data.add_label_noise(np.array([0, 5]), 0.5, 2, np.random.default_rng(0))
  with pytest.raises(ValueError, match='kind must be one of other, any'):
    data.add_label_noise(np.zeros(4, int), 0.5, 2, np.random.default_rng(0), kind='all')
  with pytest.raises(ValueError, match='needs a second class'):
    data.add_label_noise(np.zeros(4, int), 0.5, 1, np.random.default_rng(0))
  noisy, _ = data.add_label_noise(np.zeros(4, int), 0.5, 1, np.random.default_rng(0), 'any')
  assert not noisy.any()


# --------------------------------------------------------------------------- subset

def test_subset_exact_size_no_duplicates():
  x = np.arange(100 * 2).reshape(100, 2)
  y = np.arange(100)
  xs, ys, idx = data.subset(x, y, 0.25, np.random.default_rng(0))
  assert len(idx) == 25 and len(np.unique(idx)) == 25
  np.testing.assert_array_equal(xs, x[idx])
  np.testing.assert_array_equal(ys, y[idx])
  _, _, idx = data.subset(x, y, 1.0, np.random.default_rng(0))
  np.testing.assert_array_equal(np.sort(idx), np.arange(100))
  _, _, idx = data.subset(x[:7], y[:7], 0.5, np.random.default_rng(0))
  assert len(idx) == round(0.5 * 7)


@pytest.mark.parametrize('ratio', [0.0, -0.5, 1.01])
def test_subset_bad_ratio(ratio):
  with pytest.raises(ValueError, match=r'ratio must lie in \(0, 1\]'):
    data.subset(np.zeros((4, 1)), np.zeros(4), ratio, np.random.default_rng(0))


def test_subset_errors():
  with pytest.raises(ValueError, match='keeps none'):
    data.subset(np.zeros((4, 1)), np.zeros(4), 0.01, np.random.default_rng(0))
  with pytest.raises(ValueError, match='matching'):
    data.subset(np.zeros((4, 1)), np.zeros(3), 0.5, np.random.default_rng(0))


# --------------------------------------------------------------------------- misc

def test_input_normalization_is_the_official_configs():
  # configs/dataset/mnist.yaml: normalize: mean: [0.4914], std: [0.3081] (sic: 0.4914 is
  # CIFAR-10's red mean); cifar10.yaml: mean [0.4914, 0.4822, 0.4465], std [0.2023, 0.1994,
  # 0.2010]; tig.yaml: ImageNet's.
  assert data.input_normalization('mnist') == ((0.4914,), (0.3081,))
  assert data.input_normalization('Fashion-MNIST') == ((0.4914,), (0.3081,))
  assert data.input_normalization('cifar10') == ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
  assert data.input_normalization('tiny_imagenet') == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
  assert data.input_normalization('cifar100')[0][0] == 0.5070751592371323
  for name in data.DATASET_NAMES:
    mean, std = data.input_normalization(name)
    assert len(mean) == len(std) in (1, 3)
    assert data.input_normalization(name, 'unit') == ((), ())
  with pytest.raises(ValueError, match='mean_std, unit'):
    data.input_normalization('mnist', 'zscore')
  with pytest.raises(ValueError, match='Unknown data set'):
    data.input_normalization('svhn')


def test_to_float():
  out = data.to_float(np.array([[0, 255, 51]], np.uint8))
  assert out.dtype == np.float32
  np.testing.assert_allclose(out, [[0.0, 1.0, 0.2]], rtol=1e-6)
  with pytest.raises(TypeError, match='uint8'):
    data.to_float(np.zeros(3, np.float32))


def test_load_dataset_dispatch(tmp_path):
  arrays = _write_idx_set(tmp_path)
  ds = data.load_dataset('mnist', str(tmp_path))
  np.testing.assert_array_equal(ds.y_train, arrays['train-labels-idx1-ubyte'])
  assert data.load_dataset('Fashion-MNIST', str(tmp_path)).name == 'fashion_mnist'
  assert data.load_dataset('digits').x_train.shape == (1500, 8, 8, 1)
  folder = tmp_path / 'cifar-10-batches-py'
  _write_cifar10(str(folder))
  assert data.load_dataset('cifar10', str(tmp_path)).x_test.shape == (3, 32, 32, 3)


def test_load_dataset_errors():
  with pytest.raises(ValueError, match="Did you mean 'cifar100'") as err:
    data.load_dataset('cifar1000')
  for name in data.DATASET_NAMES:
    assert name in str(err.value)
  for name in ('mnist', 'cifar10', 'cifar100', 'tiny_imagenet'):
    with pytest.raises(ValueError, match='needs a root folder'):
      data.load_dataset(name)


def test_package_imports_neither_tensorflow_nor_dopamine():
  import subprocess
  code = ('import sys; import warmstart.data; '
          'bad = [m for m in sys.modules if m.split(".")[0] in '
          '("tensorflow", "dopamine", "jax", "sklearn", "PIL")]; '
          'assert not bad, bad')
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  subprocess.run([sys.executable, '-c', code], check=True, cwd=root)
