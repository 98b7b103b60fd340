"""The two protocols of the supervised study: warm start (paper section 3) and continual (5.2).

* ``run_warmstart``: phase 0 trains on a ``subset`` of the training set whose labels carry
  ``noise`` (uniform random labels), phase 1 on the full clean training set, both with the
  same number of updates (the paper's 1000 epochs at 10% then 100 epochs at 100%). A method
  with ``warm_start=False`` ("fresh") runs phase 1 alone from the same initial weights.
* ``run_continual``: ``num_phases`` phases; phase p adds the p-th ``1/num_phases`` slice of the
  training set, label noise falls linearly from ``noise`` to 0, and the training set is every
  slice seen so far (``access='full'``) or the new slice plus a random ``buffer_size`` examples
  of the earlier ones (``access='buffer'``); a phase trains ``epochs`` epochs of its set. A
  "fresh" method starts every phase from the initial weights.

Both return one row (a dict) per phase: accuracies, the Appendix C metrics of the predicting
network, update counts and seconds. The data order, subsets and label noise depend on the seed
alone, so every method of one seed sees the same data (paired comparisons), and every method
of one seed starts from the same initial weights.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import numpy as np

from warmstart import data as data_lib
from warmstart import methods as methods_lib
from warmstart import models as models_lib
from warmstart import train as train_lib

# Per-model learning rate and weight decay of the paper's Appendix A.2 (cnn: ours, as mlp).
MODEL_OPTIM = {
    'mlp': (1e-3, 1e-4), 'cnn': (1e-3, 1e-4), 'resnet18': (1e-3, 1e-5),
    'resnet18_linear': (1e-3, 1e-5),
    'vit_tiny': (3e-3, 5e-2), 'vgg16': (1e-3, 1e-4),
}


@dataclasses.dataclass(frozen=True)
class ProtocolConfig:
  """One run's setting (everything but the method).

  Attributes:
    dataset, model: names for warmstart.data.load_dataset / warmstart.models.make_model.
    width: model width multiplier (1.0 = the paper's).
    seed: int; fixes the initial weights, the subset, the label noise and the data order.
    subset: warm-start subset ratio (continual: ignored, slices are 1/num_phases).
    noise: label-noise ratio of the warm phase (continual: of the first phase).
    epochs: epochs of the full clean set (warm start: phase 1; phase 0 makes as many updates);
      continual: epochs of each phase's training set.
    train_examples: use only this many training examples (0: all), a fixed random draw.
    batch_size, learning_rate, weight_decay: optimizer settings (None: the model's defaults).
    steps_per_call: updates per jitted call (lax.scan); 0 = one epoch of the full set.
    metric_examples: training examples on which the Appendix C metrics are measured.
    num_phases, access, buffer_size: continual protocol only.
    label_noise: how a noisy label is drawn, warmstart.data.LABEL_NOISE_KINDS ('other': a
      wrong class, as the official code; 'any': any class).
    init: the models' initialisation, warmstart.models.INIT_SCHEMES ('torch': PyTorch's
      defaults, as the official code; 'flax').
    normalize: input normalisation, warmstart.data.NORMALIZATIONS ('mean_std': the official
      per-data-set statistics; 'unit': x / 255 only).
    adam_b1, adam_b2, adam_eps: Adam's moment decays and epsilon (the paper's Fig. 3 varies
      them; default: train.OptimConfig's, the official configs/trainer/base.yaml's).
  """
  dataset: str = 'fashion_mnist'
  model: str = 'mlp'
  width: float = 1.0
  seed: int = 0
  subset: float = 0.1
  noise: float = 0.5
  epochs: float = 20.0
  train_examples: int = 0
  batch_size: int = 256
  learning_rate: float | None = None
  weight_decay: float | None = None
  steps_per_call: int = 1
  metric_examples: int = 2000
  num_phases: int = 10
  access: str = 'full'
  buffer_size: int = 5000
  # Issue 15, items 4 and 6 (warmstart/data.py, models.py): the official code's by default.
  label_noise: str = 'other'
  init: str = 'torch'
  normalize: str = 'mean_std'
  adam_b1: float = train_lib.OptimConfig.b1
  adam_b2: float = train_lib.OptimConfig.b2
  adam_eps: float = train_lib.OptimConfig.eps

  def optim(self) -> train_lib.OptimConfig:
    lr, wd = MODEL_OPTIM.get(self.model, (1e-3, 1e-4))
    return train_lib.OptimConfig(
        learning_rate=self.learning_rate if self.learning_rate is not None else lr,
        weight_decay=self.weight_decay if self.weight_decay is not None else wd,
        b1=self.adam_b1, b2=self.adam_b2, eps=self.adam_eps, batch_size=self.batch_size)


ProgressFn = Callable[[int, object, object], None]


@dataclasses.dataclass
class _Prepared:
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int


def prepare_data(dataset: data_lib.Dataset, config: ProtocolConfig) -> _Prepared:
  """Float images; the optional fixed draw of ``train_examples`` (same for every seed)."""
  x, y = dataset.x_train, dataset.y_train
  if config.train_examples and config.train_examples < len(x):
    x, y, _ = data_lib.subset(x, y, config.train_examples / len(x), np.random.default_rng(12345))
  return _Prepared(data_lib.to_float(x), y.astype(np.int32), data_lib.to_float(dataset.x_test),
                   dataset.y_test.astype(np.int32), dataset.num_classes)


def make_trainer(config: ProtocolConfig, method: methods_lib.MethodConfig,
                 data: _Prepared) -> train_lib.Trainer:
  """The Trainer for this setting; seeds of one setting share it (and its compiled code)."""
  steps = config.steps_per_call or max(1, len(data.x_train) // config.batch_size)
  mean, std = data_lib.input_normalization(config.dataset, config.normalize)
  key = (config.model, config.width, data.num_classes, method, config.optim(),
         data.x_train.shape[1:], steps, config.init, mean, std)
  if key not in _TRAINERS:
    model = models_lib.make_model(config.model, data.num_classes, crelu_head=method.crelu_head,
                                  width=config.width, init_scheme=config.init, input_mean=mean,
                                  input_std=std)
    _TRAINERS[key] = train_lib.Trainer(model, method, config.optim(), data.x_train.shape[1:],
                                       steps)
  return _TRAINERS[key]


_TRAINERS: dict[tuple, train_lib.Trainer] = {}


def _row(config, method_name, phase, phase_name, trainer, state, x_phase, y_phase, data,
         updates, seconds, extra) -> dict:
  metric_count = min(config.metric_examples, len(x_phase))
  accuracy_count = min(10000, len(x_phase))
  row = {
      'protocol': extra.pop('protocol'), 'dataset': config.dataset, 'model': config.model,
      'width': config.width, 'method': method_name, 'seed': config.seed,
      'subset': config.subset, 'noise': config.noise, 'phase': phase, 'phase_name': phase_name,
      'updates': updates, 'ht_resets': int(state.num_ht_resets),
      'train_acc': trainer.accuracy(state, x_phase[:accuracy_count], y_phase[:accuracy_count]),
      'test_acc': trainer.accuracy(state, data.x_test, data.y_test),
  }
  row.update(trainer.plasticity_metrics(state, x_phase[:metric_count], y_phase[:metric_count]))
  row.update(extra)
  row['seconds'] = round(seconds, 2)
  return row


def _updates_for(num_examples: int, epochs: float, batch_size: int) -> int:
  return max(1, int(round(epochs * max(1, num_examples // batch_size))))


def run_warmstart(config: ProtocolConfig, method_name: str, method: methods_lib.MethodConfig,
                  dataset: data_lib.Dataset, on_progress: ProgressFn | None = None
                  ) -> list[dict]:
  """Warm start on a noisy subset, then the full clean set (equal updates); one row a phase."""
  data = prepare_data(dataset, config)
  trainer = make_trainer(config, method, data)
  data_rng = np.random.default_rng([config.seed, 1])
  x_sub, y_sub, _ = data_lib.subset(data.x_train, data.y_train, config.subset, data_rng)
  y_sub, _ = data_lib.add_label_noise(y_sub, config.noise, data.num_classes, data_rng,
                                      config.label_noise)
  updates = _updates_for(len(data.x_train), config.epochs, config.batch_size)
  ht_period = _ht_period(method, len(data.x_train), config.batch_size)
  phases = [(0, 'warm', x_sub, y_sub), (1, 'main', data.x_train, data.y_train)]
  if not method.warm_start:
    phases = phases[1:]
  key = jax.random.PRNGKey(config.seed)
  state = trainer.init_state(key)
  rows = []
  for position, (phase, name, x, y) in enumerate(phases):
    start = time.time()
    state = trainer.start_phase(state, is_first=position == 0)
    state = train_lib.train_phase(
        trainer, state, x, y, updates, np.random.default_rng([config.seed, 2, phase]),
        jax.random.fold_in(key, 1000 + phase), ht_period=ht_period,
        redo_period=_redo_period(method, len(x), config.batch_size), on_progress=on_progress)
    rows.append(_row(config, method_name, phase, name, trainer, state, x, y, data, updates,
                     time.time() - start, {'protocol': 'warmstart',
                                           'phase_noise': config.noise if name == 'warm' else 0.0,
                                           'phase_examples': len(x)}))
  return rows


def continual_phase_data(data: _Prepared, config: ProtocolConfig, phase: int,
                         order: np.ndarray, rng: np.random.Generator
                         ) -> tuple[np.ndarray, np.ndarray, float]:
  """Training set of continual phase ``phase``: (images, noisy labels, noise ratio)."""
  slices = np.array_split(order, config.num_phases)
  noise = config.noise * (1.0 - phase / max(1, config.num_phases - 1))
  if config.access == 'full':
    indices = np.concatenate(slices[:phase + 1])
  elif config.access == 'buffer':
    earlier = np.concatenate(slices[:phase]) if phase else np.zeros(0, int)
    kept = rng.choice(earlier, size=min(config.buffer_size, len(earlier)), replace=False)
    indices = np.concatenate([slices[phase], kept])
  else:
    raise ValueError(f"access must be 'full' or 'buffer', got {config.access!r}.")
  labels, _ = data_lib.add_label_noise(data.y_train[indices], noise, data.num_classes, rng,
                                       config.label_noise)
  return data.x_train[indices], labels, noise


def run_continual(config: ProtocolConfig, method_name: str, method: methods_lib.MethodConfig,
                  dataset: data_lib.Dataset, on_progress: ProgressFn | None = None
                  ) -> list[dict]:
  """Ten (``num_phases``) phases of growing, ever cleaner data; one row a phase."""
  data = prepare_data(dataset, config)
  trainer = make_trainer(config, method, data)
  order = np.random.default_rng([config.seed, 3]).permutation(len(data.x_train))
  slice_size = len(data.x_train) // config.num_phases
  ht_period = _ht_period(method, slice_size, config.batch_size)
  key = jax.random.PRNGKey(config.seed)
  state = trainer.init_state(key)
  rows = []
  for phase in range(config.num_phases):
    start = time.time()
    x, y, noise = continual_phase_data(data, config, phase,
                                       order, np.random.default_rng([config.seed, 4, phase]))
    if not method.warm_start and phase > 0:
      state = trainer.init_state(key)
    state = trainer.start_phase(state, is_first=phase == 0)
    updates = _updates_for(len(x), config.epochs, config.batch_size)
    state = train_lib.train_phase(
        trainer, state, x, y, updates, np.random.default_rng([config.seed, 5, phase]),
        jax.random.fold_in(key, 2000 + phase), ht_period=ht_period,
        redo_period=_redo_period(method, len(x), config.batch_size), on_progress=on_progress)
    rows.append(_row(config, method_name, phase, f'phase_{phase}', trainer, state, x, y, data,
                     updates, time.time() - start,
                     {'protocol': 'continual', 'phase_noise': round(noise, 6),
                      'phase_examples': len(x)}))
  return rows


def planned_updates(config: ProtocolConfig, method: methods_lib.MethodConfig, protocol: str,
                    num_train: int) -> int:
  """Updates a run will make (for progress bars), without loading anything."""
  n = min(num_train, config.train_examples) if config.train_examples else num_train
  if protocol == 'warmstart':
    return _updates_for(n, config.epochs, config.batch_size) * (2 if method.warm_start else 1)
  total = 0
  slices = [len(s) for s in np.array_split(np.arange(n), config.num_phases)]
  for phase in range(config.num_phases):
    size = sum(slices[:phase + 1]) if config.access == 'full' else (
        slices[phase] + min(config.buffer_size, sum(slices[:phase])))
    total += _updates_for(size, config.epochs, config.batch_size)
  return total


def _ht_period(method: methods_lib.MethodConfig, reference_examples: int, batch_size: int) -> int:
  if method.ht_reset_epochs <= 0:
    return 0
  return max(1, int(round(method.ht_reset_epochs * max(1, reference_examples // batch_size))))


def _redo_period(method: methods_lib.MethodConfig, examples: int, batch_size: int) -> int:
  if method.redo_tau <= 0:
    return 0
  return max(1, int(round(method.redo_every_epochs * max(1, examples // batch_size))))


PROTOCOLS = {'warmstart': run_warmstart, 'continual': run_continual}
