"""Image-classification data for the warm-start study (Lee et al., ICML 2024, section 5.3).

The warm-start experiments of "Slow and Steady Wins the Race: Maintaining Plasticity with
Hare and Tortoise Networks" train a network on a subset (or a noisy-label version) of a
data set, then keep training it on the full / clean data and measure how well it still
learns. This module provides everything data-related for that study, with no dependency on
TensorFlow, Dopamine or JAX:

* Loaders returning a :class:`Dataset` of uint8 images (N, H, W, C) and int32 labels (N,):
  Fashion-MNIST / MNIST (IDX files, plain or gzipped), CIFAR-10 / CIFAR-100 (the "python
  version" pickles), Tiny ImageNet (the ``tiny-imagenet-200`` JPEG layout) and scikit-learn's
  bundled 8x8 digits (always available, used for smoke tests).
* :func:`load_dataset` dispatching by name.
* :func:`add_label_noise` (the paper's symmetric label noise: a wrong class, as the official
  code draws it, or any class), :func:`subset` (the warm-up data fraction) and
  :func:`to_float` (uint8 -> float32 in [0, 1]); :func:`input_normalization`, the per-channel
  mean and std the official code normalises each data set with (the models apply them).

Only numpy, the standard library, pillow (Tiny ImageNet, imported lazily) and scikit-learn
(digits, imported lazily) are used.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import pickle
from typing import Callable

import numpy as np

from common.suggest import did_you_mean

FASHION_MNIST_ROOT = '/usr/share/datasets/fashion-mnist'
CIFAR_URL = 'https://www.cs.toronto.edu/~kriz/cifar.html'
TINY_IMAGENET_URL = 'http://cs231n.stanford.edu/tiny-imagenet-200.zip'

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
IDX_FILES = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
             't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')

CIFAR10_FOLDER = 'cifar-10-batches-py'
CIFAR10_TRAIN_FILES = tuple(f'data_batch_{i}' for i in range(1, 6))
CIFAR10_TEST_FILE = 'test_batch'
CIFAR100_FOLDER = 'cifar-100-python'
CIFAR100_TRAIN_FILE = 'train'
CIFAR100_TEST_FILE = 'test'

TINY_IMAGENET_FOLDER = 'tiny-imagenet-200'
TINY_IMAGENET_SIZE = 64
_JPEG_SUFFIXES = ('.jpeg', '.jpg')


# --------------------------------------------------------------------------- container

@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """A labelled image-classification data set with a fixed train / test split.

  Attributes:
    name: str, the data set's name as accepted by :func:`load_dataset`.
    x_train: uint8 array (N_train, H, W, C), C = 1 for grey images.
    y_train: int32 array (N_train,), values in [0, num_classes).
    x_test: uint8 array (N_test, H, W, C).
    y_test: int32 array (N_test,).
    num_classes: int.
  """
  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int

  def __post_init__(self):
    for split in ('train', 'test'):
      x, y = getattr(self, f'x_{split}'), getattr(self, f'y_{split}')
      if x.ndim != 4 or x.dtype != np.uint8:
        raise ValueError(
            f'Dataset {self.name!r}: x_{split} must be a uint8 array (N, H, W, C), got '
            f'{x.dtype} {x.shape}; convert the images with np.asarray(..., np.uint8) and add '
            'a channel axis for grey images.')
      if y.shape != (x.shape[0],):
        raise ValueError(
            f'Dataset {self.name!r}: y_{split} has shape {y.shape} but x_{split} holds '
            f'{x.shape[0]} images; pass one label per image.')
    if self.x_train.shape[1:] != self.x_test.shape[1:]:
      raise ValueError(
          f'Dataset {self.name!r}: train images {self.x_train.shape[1:]} and test images '
          f'{self.x_test.shape[1:]} differ in shape; both splits must share one image shape.')

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """(H, W, C) of one image."""
    return tuple(self.x_train.shape[1:])


# --------------------------------------------------------------------------- IDX (MNIST)

def read_idx(path: str, expected_magic: int) -> np.ndarray:
  """Reads one IDX file (plain or gzipped, by its '.gz' suffix) into a uint8 array.

  The IDX format: a big-endian int32 magic number (2051 for images, 2049 for labels; its
  low byte is the number of dimensions), one big-endian int32 size per dimension, then the
  unsigned bytes in row-major order.

  Raises:
    ValueError: wrong magic number, truncated header, or data size not matching the header.
  """
  opener = gzip.open if path.endswith('.gz') else open
  with opener(path, 'rb') as f:
    raw = f.read()
  if len(raw) < 4:
    raise ValueError(f'IDX file {path} is truncated (only {len(raw)} bytes); '
                     'download it again.')
  magic = int.from_bytes(raw[:4], 'big')
  if magic != expected_magic:
    kind = 'images' if expected_magic == IDX_IMAGES_MAGIC else 'labels'
    raise ValueError(
        f'IDX file {path} has magic number {magic}, expected {expected_magic} '
        f'(unsigned-byte {kind}); check that the file is the right one of the four IDX files '
        'and not corrupted (re-download it).')
  ndim = magic & 0xFF
  header_len = 4 + 4 * ndim
  if len(raw) < header_len:
    raise ValueError(f'IDX file {path} is truncated inside its header; download it again.')
  dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
  expected = math.prod(dims)
  got = len(raw) - header_len
  if got != expected:
    raise ValueError(
        f'IDX file {path}: header announces sizes {dims} ({expected} bytes) but the file '
        f'holds {got} data bytes; the file is truncated or corrupted, download it again.')
  return np.frombuffer(raw, np.uint8, offset=header_len).reshape(dims)


def _idx_file(folder: str, name: str) -> str | None:
  """The path of IDX file ``name`` in ``folder``, plain or '.gz'; None if neither exists."""
  for candidate in (name, name + '.gz'):
    path = os.path.join(folder, candidate)
    if os.path.isfile(path):
      return path
  return None


def _find_idx_folder(root: str) -> str | None:
  """``root`` or one of its direct sub-folders holding all four IDX files, else None."""
  if not os.path.isdir(root):
    return None
  candidates = [root] + sorted(
      os.path.join(root, d) for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
  for folder in candidates:
    if all(_idx_file(folder, name) for name in IDX_FILES):
      return folder
  return None


def _load_idx_dataset(name: str, root: str, num_classes: int, missing_hint: str) -> Dataset:
  """Loads the four IDX files of an MNIST-style data set found under ``root``."""
  folder = _find_idx_folder(root)
  if folder is None:
    raise FileNotFoundError(
        f'{name}: no folder {root!r} (or direct sub-folder of it) holds the four IDX files '
        f'{", ".join(IDX_FILES)} (each plain or gzipped with a ".gz" suffix). {missing_hint}')
  splits = {}
  for split, prefix in (('train', 'train'), ('test', 't10k')):
    images_path = _idx_file(folder, f'{prefix}-images-idx3-ubyte')
    labels_path = _idx_file(folder, f'{prefix}-labels-idx1-ubyte')
    images = read_idx(images_path, IDX_IMAGES_MAGIC)
    labels = read_idx(labels_path, IDX_LABELS_MAGIC)
    if images.ndim != 3:
      raise ValueError(f'{images_path}: expected 3 dimensions (N, H, W), got {images.shape}; '
                       'check that this is an image IDX file.')
    if labels.ndim != 1:
      raise ValueError(f'{labels_path}: expected 1 dimension (N,), got {labels.shape}; '
                       'check that this is a label IDX file.')
    if images.shape[0] != labels.shape[0]:
      raise ValueError(
          f'{name}: {images_path} holds {images.shape[0]} images but {labels_path} holds '
          f'{labels.shape[0]} labels; the files do not belong together, re-download them.')
    _check_labels(labels, num_classes, labels_path)
    splits[split] = (images[..., None].copy(), labels.astype(np.int32))
  return Dataset(name, *splits['train'], *splits['test'], num_classes=num_classes)


def _check_labels(labels: np.ndarray, num_classes: int, source: str):
  """Raises ValueError if a label lies outside [0, num_classes)."""
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(
        f'{source}: labels range over [{labels.min()}, {labels.max()}] but the data set has '
        f'{num_classes} classes; the file is corrupted or belongs to another data set.')


def load_fashion_mnist(root: str = FASHION_MNIST_ROOT) -> Dataset:
  """Fashion-MNIST: 60000 train / 10000 test 28x28x1 uint8 images, 10 classes.

  Args:
    root: folder holding the four IDX files (plain or '.gz'), or its parent. The default
      is where the Debian package ``dataset-fashion-mnist`` installs them (gzipped).
  """
  hint = ('Run `make data` (which installs the Debian package dataset-fashion-mnist into '
          f'{FASHION_MNIST_ROOT}) or pass a folder holding the four IDX files.')
  return _load_idx_dataset('fashion_mnist', root, 10, hint)


def load_mnist(root: str) -> Dataset:
  """MNIST: 60000 train / 10000 test 28x28x1 uint8 images, 10 classes.

  Args:
    root: folder holding the four IDX files (plain or '.gz'), or its parent.
  """
  hint = (f'Put the four IDX files ({", ".join(IDX_FILES)}, plain or .gz) in a folder and '
          'pass that folder.')
  return _load_idx_dataset('mnist', root, 10, hint)


# --------------------------------------------------------------------------- CIFAR

def _find_folder(root: str, folder_name: str, required: tuple[str, ...]) -> str | None:
  """``root`` itself or ``root/folder_name``, whichever holds every file in ``required``."""
  for folder in (root, os.path.join(root, folder_name)):
    if all(os.path.isfile(os.path.join(folder, f)) for f in required):
      return folder
  return None


def _read_cifar_batch(path: str, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
  """Reads one CIFAR pickle into (N, 32, 32, 3) uint8 images and (N,) int32 labels.

  Each row of b'data' holds 3072 bytes: the 1024 red values of the 32x32 image in
  row-major order, then the 1024 green, then the 1024 blue. The file is unpickled, so only
  load files from a trusted source (the official archive).
  """
  with open(path, 'rb') as f:
    batch = pickle.load(f, encoding='bytes')
  if not isinstance(batch, dict) or b'data' not in batch or label_key not in batch:
    keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
    raise ValueError(
        f'{path}: expected a dict with keys b"data" and {label_key!r}, got {keys}; use the '
        f'"python version" of the archive from {CIFAR_URL}.')
  data = np.asarray(batch[b'data'], np.uint8)
  labels = np.asarray(batch[label_key], np.int32)
  if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
    raise ValueError(f'{path}: b"data" has shape {data.shape}, expected (N, 3072); use the '
                     f'"python version" of the archive from {CIFAR_URL}.')
  if labels.shape != (data.shape[0],):
    raise ValueError(f'{path}: {data.shape[0]} images but labels of shape {labels.shape}; '
                     'the file is corrupted, download the archive again.')
  images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), labels


def _load_cifar(name: str, root: str, folder_name: str, train_files: tuple[str, ...],
                test_file: str, label_key: bytes, num_classes: int) -> Dataset:
  """Shared CIFAR-10 / CIFAR-100 loader."""
  required = train_files + (test_file,)
  folder = _find_folder(root, folder_name, required)
  if folder is None:
    raise FileNotFoundError(
        f'{name}: neither {root!r} nor {os.path.join(root, folder_name)!r} holds the files '
        f'{", ".join(required)}. Download the "python version" from {CIFAR_URL}, extract it '
        f'and pass the extracted {folder_name}/ folder or its parent.')
  parts = [_read_cifar_batch(os.path.join(folder, f), label_key) for f in train_files]
  x_train = np.concatenate([p[0] for p in parts])
  y_train = np.concatenate([p[1] for p in parts])
  x_test, y_test = _read_cifar_batch(os.path.join(folder, test_file), label_key)
  _check_labels(y_train, num_classes, f'{folder} (training files)')
  _check_labels(y_test, num_classes, os.path.join(folder, test_file))
  return Dataset(name, x_train, y_train, x_test, y_test, num_classes)


def load_cifar10(root: str) -> Dataset:
  """CIFAR-10: 50000 train / 10000 test 32x32x3 uint8 images, 10 classes.

  Args:
    root: the extracted ``cifar-10-batches-py/`` folder (data_batch_1..5, test_batch) of the
      "python version" archive, or its parent.
  """
  return _load_cifar('cifar10', root, CIFAR10_FOLDER, CIFAR10_TRAIN_FILES,
                     CIFAR10_TEST_FILE, b'labels', 10)


def load_cifar100(root: str) -> Dataset:
  """CIFAR-100: 50000 train / 10000 test 32x32x3 uint8 images, 100 (fine) classes.

  Args:
    root: the extracted ``cifar-100-python/`` folder (train, test) of the "python version"
      archive, or its parent.
  """
  return _load_cifar('cifar100', root, CIFAR100_FOLDER, (CIFAR100_TRAIN_FILE,),
                     CIFAR100_TEST_FILE, b'fine_labels', 100)


# --------------------------------------------------------------------------- Tiny ImageNet

def _read_jpeg(path: str) -> np.ndarray:
  """One Tiny ImageNet JPEG as a (64, 64, 3) uint8 array; grey images become RGB."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  with Image.open(path) as img:
    array = np.asarray(img.convert('RGB'), np.uint8)
  size = TINY_IMAGENET_SIZE
  if array.shape != (size, size, 3):
    raise ValueError(f'{path}: image of shape {array.shape}, expected ({size}, {size}, 3); '
                     f'Tiny ImageNet images are {size}x{size}, re-extract the archive.')
  return array


def _read_jpegs(paths: list[str]) -> np.ndarray:
  """Stacks the JPEGs at ``paths`` into an (N, 64, 64, 3) uint8 array."""
  size = TINY_IMAGENET_SIZE
  out = np.empty((len(paths), size, size, 3), np.uint8)
  for i, path in enumerate(paths):
    out[i] = _read_jpeg(path)
  return out


def _is_jpeg(filename: str) -> bool:
  return filename.lower().endswith(_JPEG_SUFFIXES)


def _tiny_imagenet_train(folder: str, wnids: list[str]) -> tuple[list[str], list[int]]:
  """Paths and labels of ``train/<wnid>/images/*.JPEG``, class by class, files sorted."""
  paths, labels = [], []
  for label, wnid in enumerate(wnids):
    images_dir = os.path.join(folder, 'train', wnid, 'images')
    if not os.path.isdir(images_dir):
      raise FileNotFoundError(
          f'tiny_imagenet: missing training folder {images_dir} for class {wnid} listed in '
          'wnids.txt; re-extract the archive.')
    names = sorted(n for n in os.listdir(images_dir) if _is_jpeg(n))
    paths.extend(os.path.join(images_dir, n) for n in names)
    labels.extend([label] * len(names))
  return paths, labels


def _tiny_imagenet_val(folder: str, label_of: dict[str, int]) -> tuple[list[str], list[int]]:
  """Paths and labels of the validation images, in ``val_annotations.txt`` order."""
  annotations = os.path.join(folder, 'val', 'val_annotations.txt')
  paths, labels = [], []
  with open(annotations, encoding='utf-8') as f:
    for line_no, line in enumerate(f, 1):
      fields = line.strip().split('\t')
      if fields == ['']:
        continue
      if len(fields) < 2:
        raise ValueError(f'{annotations}:{line_no}: expected "filename<TAB>wnid...", got '
                         f'{line.strip()!r}; re-extract the archive.')
      filename, wnid = fields[0], fields[1]
      if wnid not in label_of:
        raise ValueError(f'{annotations}:{line_no}: class {wnid!r} is not in wnids.txt; '
                         'the annotations and wnids.txt come from different archives.')
      path = os.path.join(folder, 'val', 'images', filename)
      if not os.path.isfile(path):
        raise FileNotFoundError(f'{annotations}:{line_no}: image {path} does not exist; '
                                're-extract the archive.')
      paths.append(path)
      labels.append(label_of[wnid])
  return paths, labels


def load_tiny_imagenet(root: str) -> Dataset:
  """Tiny ImageNet: 100000 train / 10000 test 64x64x3 uint8 images, 200 classes.

  The label of a class is the index of its WordNet id in ``sorted(wnids.txt)``. The official
  validation set (``val/images`` labelled by ``val/val_annotations.txt``, tab-separated
  filename, wnid, bounding box) serves as the test set, in annotation-file order; training
  images come class by class, files sorted by name. Grey JPEGs are converted to RGB.

  Args:
    root: the extracted ``tiny-imagenet-200/`` folder (wnids.txt, train/, val/), or its
      parent.
  """
  required = ('wnids.txt', os.path.join('val', 'val_annotations.txt'))
  folder = _find_folder(root, TINY_IMAGENET_FOLDER, required)
  if folder is None or not os.path.isdir(os.path.join(folder, 'train')):
    raise FileNotFoundError(
        f'tiny_imagenet: neither {root!r} nor {os.path.join(root, TINY_IMAGENET_FOLDER)!r} '
        'holds wnids.txt, train/<wnid>/images/ and val/val_annotations.txt. Download '
        f'{TINY_IMAGENET_URL}, extract it and pass the {TINY_IMAGENET_FOLDER}/ folder or its '
        'parent.')
  with open(os.path.join(folder, 'wnids.txt'), encoding='utf-8') as f:
    wnids = sorted({line.strip() for line in f if line.strip()})
  if not wnids:
    raise ValueError(f'{os.path.join(folder, "wnids.txt")} lists no class; re-extract the '
                     'archive.')
  label_of = {wnid: i for i, wnid in enumerate(wnids)}
  train_paths, train_labels = _tiny_imagenet_train(folder, wnids)
  test_paths, test_labels = _tiny_imagenet_val(folder, label_of)
  return Dataset('tiny_imagenet', _read_jpegs(train_paths), np.asarray(train_labels, np.int32),
                 _read_jpegs(test_paths), np.asarray(test_labels, np.int32), len(wnids))


# --------------------------------------------------------------------------- digits

DIGITS_NUM_TRAIN = 1500
DIGITS_SEED = 0


def load_digits() -> Dataset:
  """scikit-learn's bundled 8x8 digits: 1500 train / 297 test 8x8x1 uint8 images, 10 classes.

  Values 0..16 are scaled to 0..255 by ``x * 255 // 16``. The split is fixed: the images
  are permuted with ``np.random.default_rng(0)``, the first 1500 train, the other 297 test.
  Needs no download, so it serves for smoke tests.
  """
  try:
    from sklearn import datasets  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError('load_digits needs scikit-learn; install it (pip install scikit-learn) '
                      'or use another data set.') from e
  bunch = datasets.load_digits()
  images = (np.asarray(bunch.images, np.int64) * 255 // 16).astype(np.uint8)[..., None]
  labels = np.asarray(bunch.target, np.int32)
  order = np.random.default_rng(DIGITS_SEED).permutation(len(labels))
  train, test = order[:DIGITS_NUM_TRAIN], order[DIGITS_NUM_TRAIN:]
  return Dataset('digits', images[train], labels[train], images[test], labels[test], 10)


# --------------------------------------------------------------------------- dispatch

_NEEDS_ROOT = {
    'mnist': 'the folder holding the four MNIST IDX files',
    'cifar10': f'the extracted {CIFAR10_FOLDER}/ folder or its parent ({CIFAR_URL})',
    'cifar100': f'the extracted {CIFAR100_FOLDER}/ folder or its parent ({CIFAR_URL})',
    'tiny_imagenet': f'the extracted {TINY_IMAGENET_FOLDER}/ folder or its parent',
}

_LOADERS: dict[str, Callable[..., Dataset]] = {
    'fashion_mnist': load_fashion_mnist,
    'mnist': load_mnist,
    'cifar10': load_cifar10,
    'cifar100': load_cifar100,
    'tiny_imagenet': load_tiny_imagenet,
    'digits': load_digits,
}

DATASET_NAMES = tuple(_LOADERS)


def load_dataset(name: str, root: str | None = None) -> Dataset:
  """Loads a data set by name: one of :data:`DATASET_NAMES`.

  Args:
    name: 'fashion_mnist', 'mnist', 'cifar10', 'cifar100', 'tiny_imagenet' or 'digits'
      (case and '-' / '_' are not significant: 'Fashion-MNIST' works).
    root: the data folder. Optional for 'fashion_mnist' (defaults to the Debian package's
      folder) and ignored by 'digits' (bundled with scikit-learn); required otherwise.

  Raises:
    ValueError: unknown name (the message lists the names and suggests a close match), or
      no root for a data set that needs one.
  """
  key = name.strip().lower().replace('-', '_')
  if key not in _LOADERS:
    raise ValueError(f'Unknown data set {name!r}.{did_you_mean(key, DATASET_NAMES)} '
                     'Known data sets: '
                     + ', '.join(DATASET_NAMES))
  if key == 'digits':
    return load_digits()
  if root is None:
    if key == 'fashion_mnist':
      return load_fashion_mnist()
    raise ValueError(f'Data set {key!r} needs a root folder: pass root=<{_NEEDS_ROOT[key]}>.')
  return _LOADERS[key](root)


# --------------------------------------------------------------------------- transforms

def _check_rng(rng) -> None:
  """Raises TypeError unless ``rng`` is a numpy Generator."""
  if not isinstance(rng, np.random.Generator):
    raise TypeError(f'rng must be a numpy Generator, got {type(rng).__name__}; pass '
                    'np.random.default_rng(seed).')


def _check_ratio(value: float, what: str, allow_zero: bool) -> float:
  """Validates a ratio in [0, 1] (or (0, 1] if not ``allow_zero``); returns it as float."""
  value = float(value)
  low_ok = value >= 0 if allow_zero else value > 0
  if not (math.isfinite(value) and low_ok and value <= 1):
    interval = '[0, 1]' if allow_zero else '(0, 1]'
    raise ValueError(f'{what} must lie in {interval}, got {value}; pass a fraction, e.g. 0.2 '
                     'for 20%.')
  return value


# How a noisy position draws its label: 'other', always a wrong class (the official code,
# src/datasets/dataset.py: ``noisy_label = random.choice([l for l in range(len(self.classes)) if
# l != original_label])``), or 'any', uniform over all classes (ours before issue 15).
LABEL_NOISE_KINDS = ('other', 'any')


def add_label_noise(labels: np.ndarray, noise_ratio: float, num_classes: int,
                    rng: np.random.Generator, kind: str = 'other'
                    ) -> tuple[np.ndarray, np.ndarray]:
  """Symmetric label noise as in the paper's warm-start protocol.

  Exactly ``round(noise_ratio * N)`` positions, chosen uniformly without replacement, get a new
  label. With ``kind='other'`` it is drawn uniformly from the ``num_classes - 1`` other classes,
  so exactly that many labels are wrong. With ``kind='any'`` it is drawn from all classes and may
  coincide with the true one (probability 1 / num_classes), so about ``noise_ratio * (1 - 1 /
  num_classes)`` of the labels are wrong. The other positions are left unchanged. Both kinds
  draw the same positions from the same ``rng``.

  Args:
    labels: int array (N,), values in [0, num_classes).
    noise_ratio: float in [0, 1], the fraction of positions re-drawn.
    num_classes: int >= 1 (>= 2 for 'other' when a position is re-drawn).
    rng: numpy Generator.
    kind: 'other' (the official code's) or 'any'.

  Returns:
    (noisy_labels, mask): a new int32 array (N,) and a bool array (N,), True at the
    re-drawn positions.
  """
  _check_rng(rng)
  noise_ratio = _check_ratio(noise_ratio, 'noise_ratio', allow_zero=True)
  labels = np.asarray(labels)
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f'labels must be a 1-D integer array, got {labels.dtype} {labels.shape}; '
                     'pass the (N,) class indices.')
  if num_classes < 1:
    raise ValueError(f'num_classes must be >= 1, got {num_classes}; pass the number of '
                     'classes of the data set.')
  if kind not in LABEL_NOISE_KINDS:
    raise ValueError(f'kind must be one of {", ".join(LABEL_NOISE_KINDS)}, got {kind!r}.')
  _check_labels(labels, num_classes, 'add_label_noise')
  n = labels.shape[0]
  num_noisy = int(round(noise_ratio * n))
  if kind == 'other' and num_noisy and num_classes < 2:
    raise ValueError('label noise of kind "other" needs a second class to move labels to; '
                     f'this data set has {num_classes}.')
  chosen = rng.choice(n, size=num_noisy, replace=False)
  mask = np.zeros(n, bool)
  mask[chosen] = True
  noisy = labels.astype(np.int32, copy=True)
  if kind == 'other':
    # True label + an offset uniform in 1..C-1, modulo C: uniform over the C - 1 other classes.
    offsets = rng.integers(1, num_classes, size=num_noisy, dtype=np.int32)
    noisy[chosen] = (noisy[chosen] + offsets) % num_classes
  else:
    noisy[chosen] = rng.integers(0, num_classes, size=num_noisy, dtype=np.int32)
  return noisy, mask


def subset(x: np.ndarray, y: np.ndarray, ratio: float,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """A random subset of exactly ``round(ratio * N)`` examples, drawn without replacement.

  Args:
    x: array (N, ...), the inputs.
    y: array (N,), the labels.
    ratio: float in (0, 1], the fraction kept.
    rng: numpy Generator.

  Returns:
    (x_sub, y_sub, indices): the kept examples and their indices into ``x`` (sorted, so the
    subset keeps the original order).
  """
  _check_rng(rng)
  ratio = _check_ratio(ratio, 'ratio', allow_zero=False)
  x, y = np.asarray(x), np.asarray(y)
  if x.shape[:1] != y.shape[:1]:
    raise ValueError(f'x holds {x.shape[0] if x.ndim else 0} examples but y holds '
                     f'{y.shape[0] if y.ndim else 0}; pass matching inputs and labels.')
  n = x.shape[0]
  size = int(round(ratio * n))
  if size == 0:
    raise ValueError(f'ratio {ratio} of {n} examples keeps none; pass a ratio of at least '
                     f'{1 / max(n, 1):.3g} or more data.')
  indices = np.sort(rng.choice(n, size=size, replace=False))
  return x[indices], y[indices], indices


# Per-channel (mean, std) of the [0, 1] images that the official code's transforms normalise
# with (configs/dataset/<name>.yaml, ``transforms.Normalize(**cfg['normalize'])`` after
# ``ToTensor()``). MNIST's mean 0.4914 is as the config has it (CIFAR-10's red mean; PyTorch's
# MNIST example, which the config cites, uses 0.1307). The official CIFAR-100 test transform uses
# the test set's statistics (mean 0.5089, 0.4874, 0.4419; std 0.2683, 0.2574, 0.2771); we use the
# training set's for both splits. Fashion-MNIST and digits, which the official code does not
# have, take MNIST's: they stand in for it in the MLP experiments.
_MNIST_STATISTICS = ((0.4914,), (0.3081,))
INPUT_STATISTICS = {
    'mnist': _MNIST_STATISTICS,
    'fashion_mnist': _MNIST_STATISTICS,
    'digits': _MNIST_STATISTICS,
    'cifar10': ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    'cifar100': ((0.5070751592371323, 0.48654887331495095, 0.4409178433670343),
                 (0.2673342858792401, 0.2564384629170883, 0.27615047132568404)),
    'tiny_imagenet': ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
assert set(INPUT_STATISTICS) == set(DATASET_NAMES)
# 'mean_std': the official normalisation; 'unit': the [0, 1] images as they are (x / 255).
NORMALIZATIONS = ('mean_std', 'unit')


def input_normalization(name: str, mode: str = 'mean_std'
                        ) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """(mean, std) per channel that a model normalises data set ``name``'s [0, 1] images with;
  ``((), ())`` for ``mode='unit'`` (no normalisation)."""
  if mode not in NORMALIZATIONS:
    raise ValueError(f'normalization must be one of {", ".join(NORMALIZATIONS)}, got {mode!r}.')
  if mode == 'unit':
    return (), ()
  key = name.strip().lower().replace('-', '_')
  if key not in INPUT_STATISTICS:
    raise ValueError(f'Unknown data set {name!r}.{did_you_mean(key, DATASET_NAMES)}')
  return INPUT_STATISTICS[key]


def to_float(x: np.ndarray) -> np.ndarray:
  """uint8 images -> float32 in [0, 1] (x / 255)."""
  x = np.asarray(x)
  if x.dtype != np.uint8:
    raise TypeError(f'to_float expects uint8 images, got {x.dtype}; the images are probably '
                    'converted already, use them as they are.')
  return x.astype(np.float32) / np.float32(255)
