"""The two protocols of the supervised study: warm start (paper section 3) and continual (5.2).

* ``run_warmstart``: phase 0 trains on a ``subset`` of the training set whose labels carry
  ``noise`` (uniform random labels), phase 1 on the full clean training set, both with the
  same number of updates (the paper's 1000 epochs at 10% then 100 epochs at 100%). A method
  with ``warm_start=False`` ("fresh") runs phase 1 alone from the same initial weights.
* ``run_continual``: ``num_phases`` phases; phase p adds the p-th ``1/num_phases`` slice of the
  training set with label noise falling from ``noise`` to 0 (``noise_schedule``: the official
  0.5, 0.4, 0.4, ..., 0.1, 0.0, or linear), and the training set is every slice seen so far
  (``access='full'``) or the new slice plus a memory of at most ``buffer_size`` earlier
  examples (``access='buffer'``, warmstart/memory.py); a phase trains ``epochs`` epochs of its
  set, with augmentation for every method by default (the official continual configs). A
  "fresh" method starts every phase from the initial weights.

Both return one row (a dict) per evaluation point: at each phase's start, every
``eval_every`` epochs inside it and at its end (warmstart/schedules.py), with accuracies, the
Appendix C metrics of the predicting network, the phase's epoch and update counts and
seconds; a phase's last row is its end. At every evaluation point the official test loop's
side effect runs (``eval_dead_reset``) and, for ReDo, the recycling. The data order, subsets
and label noise depend on the seed alone, so every method of one seed sees the same data
(paired comparisons), and every method of one seed starts from the same initial weights.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import jax
import numpy as np

from warmstart import data as data_lib
from warmstart import memory as memory_lib
from warmstart import methods as methods_lib
from warmstart import models as models_lib
from warmstart import schedules
from warmstart import train as train_lib

# Per-model learning rate and weight decay of the paper's Appendix A.2 (cnn: ours, as mlp).
MODEL_OPTIM = {
    'mlp': (1e-3, 1e-4), 'cnn': (1e-3, 1e-4), 'resnet18': (1e-3, 1e-5),
    'resnet18_linear': (1e-3, 1e-5),
    'vit_tiny': (3e-3, 5e-2), 'vgg16': (1e-3, 1e-4),
}

# Evaluation every this many epochs, in the unit of ``epochs`` (warm start: of the full set;
# continual: of each phase's own set). Official: configs/trainer/base.yaml `base_test_every: 5`
# with the warm-start configs' 100 epochs (the warm phase: int(5 / 0.1) = 50 subset epochs);
# configs/c_*.yaml `base_test_every: 2`, `base_epochs: 10` with ratio 0.1: every
# int(2 / 0.1) = 20 of a phase's int(10 / 0.1) = 100 epochs.
EVAL_EVERY = {'warmstart': 5.0, 'continual': 20.0}
# Label noise of the 10 continual phases: configs/_continual.yaml `label_noise_ratios`.
OFFICIAL_CONTINUAL_NOISE = (0.5, 0.4, 0.4, 0.3, 0.3, 0.2, 0.2, 0.1, 0.1, 0.0)
NOISE_SCHEDULES = ('official', 'linear')
# Per protocol, the tags of a phase's data-order stream and key (seed, tag, phase) /
# fold_in(key, base + phase): unchanged since each protocol had its own phase loop, so seeds
# give the runs they gave.
_PHASE_STREAMS = {'warmstart': (2, 1000), 'continual': (5, 2000)}
# Training examples the official test loop scores dead units on (configs/trainer/base.yaml
# `analysis_samples: 512`); also ReDo's sample here.
ANALYSIS_EXAMPLES = 512


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
    eval_every: evaluate every this many epochs inside each phase, in the unit of ``epochs``
      (the warm phase: ``int(eval_every / subset)`` of its own epochs, as the official
      ``test_every``), besides the phase's start and end; 0: at phase ends only (then also
      the side effect and an evaluation-point ReDo run there only). None: ``EVAL_EVERY``.
    eval_dead_reset: run the official test loop's side effect at every evaluation point, in
      every method (``Trainer.reset_dead_head_units``).
    augment_all: every method trains with augmentation (None: the protocol's official
      default, on for continual, off for warm start).
    num_phases, access, buffer_size, buffer_rule, noise_schedule: continual protocol only
      (``buffer_rule``: warmstart/memory.py; ``noise_schedule``: ``continual_noise``).
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
  eval_every: float | None = None
  eval_dead_reset: bool = True
  augment_all: bool | None = None
  num_phases: int = 10
  access: str = 'full'
  buffer_size: int = 5000
  buffer_rule: str = 'official'
  noise_schedule: str = 'official'

  # Issue 15, items 4 and 6 (warmstart/data.py, models.py): the official code's by default.
  label_noise: str = 'other'
  init: str = 'torch'
  normalize: str = 'mean_std'
  adam_b1: float = train_lib.OptimConfig.b1
  adam_b2: float = train_lib.OptimConfig.b2
  adam_eps: float = train_lib.OptimConfig.eps

  def __post_init__(self):
    if self.access not in ('full', 'buffer'):
      raise ValueError(f"access must be 'full' or 'buffer', got {self.access!r}.")
    if self.buffer_rule not in memory_lib.RULES:
      raise ValueError(f'buffer_rule must be one of {", ".join(memory_lib.RULES)}, got '
                       f'{self.buffer_rule!r}.')
    if self.noise_schedule not in NOISE_SCHEDULES:
      raise ValueError(f'noise_schedule must be one of {", ".join(NOISE_SCHEDULES)}, got '
                       f'{self.noise_schedule!r}.')
    if self.eval_every is not None and self.eval_every < 0:
      raise ValueError(f'eval_every must be >= 0, got {self.eval_every}.')

  def optim(self) -> train_lib.OptimConfig:
    lr, wd = MODEL_OPTIM.get(self.model, (1e-3, 1e-4))
    return train_lib.OptimConfig(
        learning_rate=self.learning_rate if self.learning_rate is not None else lr,
        weight_decay=self.weight_decay if self.weight_decay is not None else wd,
        b1=self.adam_b1, b2=self.adam_b2, eps=self.adam_eps, batch_size=self.batch_size)

  def eval_every_for(self, protocol: str) -> float:
    return EVAL_EVERY[protocol] if self.eval_every is None else self.eval_every


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


def protocol_method(method: methods_lib.MethodConfig, config: ProtocolConfig,
                    protocol: str) -> methods_lib.MethodConfig:
  """The method as the protocol runs it: augmentation on for every method when
  ``augment_all`` says so, by default in the continual protocol (configs/c_*.yaml set
  `crop_type: 'random_pad'`, `pad_size: 4`, `horizontal_flip: true` for every method)."""
  augment_all = config.augment_all if config.augment_all is not None else protocol == 'continual'
  return dataclasses.replace(method, augment=True) if augment_all else method


def make_trainer(config: ProtocolConfig, method: methods_lib.MethodConfig,
                 data: _Prepared) -> train_lib.Trainer:
  """The Trainer for this setting; seeds of one setting share it (and its compiled code).

  When resets and ReDo fire is an input of the jitted step (warmstart/schedules.py), so the
  Trainer gets the method with its schedule fields reduced to on/off, and methods that differ
  only in them share one; the protocols take the schedules from the full method.
  """
  steps = config.steps_per_call or max(1, len(data.x_train) // config.batch_size)
  method = dataclasses.replace(
      method, ht_reset_epochs=1.0 if method.ht_reset_epochs > 0 else 0.0,
      ht_reset_clock='phase', redo_every_epochs=0.0)
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


@dataclasses.dataclass
class _Run:
  """What every phase of one run shares."""
  protocol: str
  config: ProtocolConfig
  method_name: str
  method: methods_lib.MethodConfig
  trainer: train_lib.Trainer
  data: _Prepared
  key: jax.Array
  on_progress: ProgressFn | None


def _row(run: _Run, state, phase, phase_name, x_phase, y_phase, *, updates, epoch,
         phase_epochs, seconds, extra) -> dict:
  config, trainer, data = run.config, run.trainer, run.data
  metric_count = min(config.metric_examples, len(x_phase))
  accuracy_count = min(10000, len(x_phase))
  row = {
      'protocol': run.protocol, 'dataset': config.dataset, 'model': config.model,
      'width': config.width, 'method': run.method_name, 'seed': config.seed,
      'subset': config.subset, 'noise': config.noise, 'phase': phase, 'phase_name': phase_name,
      'epoch': epoch, 'phase_epochs': phase_epochs, 'step': int(state.step),
      'updates': updates, 'ht_resets': int(state.num_ht_resets),
      'train_acc': trainer.accuracy(state, x_phase[:accuracy_count], y_phase[:accuracy_count]),
      'test_acc': trainer.accuracy(state, data.x_test, data.y_test),
  }
  row.update(trainer.plasticity_metrics(state, x_phase[:metric_count], y_phase[:metric_count]))
  row.update(extra)
  row['seconds'] = round(seconds, 2)
  return row


def _run_phase(run: _Run, state, *, phase: int, name: str, x: np.ndarray, y: np.ndarray,
               num_updates: int, data_ratio: float, reference_examples: int,
               extra: dict) -> tuple[train_lib.TrainState, list[dict]]:
  """One phase: training with the method's H&T resets, and at each evaluation point a row,
  the official test loop's side effect and (ReDo) the recycling, in that order (the official
  ``test()`` measures first and resets last). Returns (state, rows)."""
  config, trainer = run.config, run.trainer
  epoch = schedules.epoch_updates(len(x), config.batch_size)
  interval = schedules.eval_interval_epochs(config.eval_every_for(run.protocol), data_ratio)
  evals = schedules.evaluation_points(num_updates, epoch, interval)
  redo = schedules.redo_points(run.method, evals, num_updates, epoch)
  resets = schedules.ht_reset_points(
      run.method, phase_examples=len(x), reference_examples=reference_examples,
      batch_size=config.batch_size, num_updates=num_updates, updates_before=int(state.step))
  rows = []
  start = time.time()

  def at_stop(state, point):
    if point in evals:
      rows.append(_row(run, state, phase, name, x, y, updates=num_updates,
                       epoch=round(point / epoch, 6), phase_epochs=round(num_updates / epoch, 6),
                       seconds=time.time() - start, extra=extra))
    dead_reset = config.eval_dead_reset and point in evals
    if dead_reset or point in redo:
      sample = np.random.default_rng([config.seed, 6, phase, point]).choice(
          len(x), min(ANALYSIS_EXAMPLES, len(x)), replace=False)
      key = jax.random.fold_in(jax.random.fold_in(run.key, 3000 + phase), point)
      if dead_reset:
        state, _ = trainer.reset_dead_head_units(state, x[sample], key)
      if point in redo:
        state, _ = trainer.redo(state, x[sample], jax.random.fold_in(key, 1))
    return state

  order_tag, key_base = _PHASE_STREAMS[run.protocol]
  state = train_lib.train_phase(
      trainer, state, x, y, num_updates, np.random.default_rng([config.seed, order_tag, phase]),
      jax.random.fold_in(run.key, key_base + phase), ht_resets=resets,
      stops=sorted(set(evals) | set(redo)), at_stop=at_stop, on_progress=run.on_progress)
  return state, rows


def _start_run(protocol, config, method_name, method, dataset, on_progress) -> _Run:
  method = protocol_method(method, config, protocol)
  data = prepare_data(dataset, config)
  return _Run(protocol, config, method_name, method, make_trainer(config, method, data), data,
              jax.random.PRNGKey(config.seed), on_progress)


def run_warmstart(config: ProtocolConfig, method_name: str, method: methods_lib.MethodConfig,
                  dataset: data_lib.Dataset, on_progress: ProgressFn | None = None
                  ) -> list[dict]:
  """Warm start on a noisy subset, then the full clean set (equal updates); rows of every
  evaluation point of both phases."""
  run = _start_run('warmstart', config, method_name, method, dataset, on_progress)
  data = run.data
  data_rng = np.random.default_rng([config.seed, 1])
  x_sub, y_sub, _ = data_lib.subset(data.x_train, data.y_train, config.subset, data_rng)
  y_sub, _ = data_lib.add_label_noise(y_sub, config.noise, data.num_classes, data_rng,
                                      config.label_noise)
  updates = schedules.phase_updates(len(data.x_train), config.epochs, config.batch_size)
  # (phase, name, x, y, the phase's share of the full set: eval_every counts full-set epochs)
  phases = [(0, 'warm', x_sub, y_sub, config.subset),
            (1, 'main', data.x_train, data.y_train, 1.0)]
  if not run.method.warm_start:
    phases = phases[1:]
  state = run.trainer.init_state(run.key)
  rows = []
  for position, (phase, name, x, y, ratio) in enumerate(phases):
    state = run.trainer.start_phase(state, is_first=position == 0)
    state, phase_rows = _run_phase(
        run, state, phase=phase, name=name, x=x, y=y, num_updates=updates, data_ratio=ratio,
        reference_examples=len(data.x_train),
        extra={'phase_noise': config.noise if name == 'warm' else 0.0,
               'phase_examples': len(x)})
    rows += phase_rows
  return rows


def continual_noise(config: ProtocolConfig, phase: int) -> float:
  """Label-noise ratio of continual phase ``phase``, falling from ``config.noise`` to 0.

  'official': steps of a fifth of ``noise`` held for two phases, the official list
  ``OFFICIAL_CONTINUAL_NOISE`` for 10 phases from 0.5 (in general ``noise * ceil((P - 1 - p)
  / 2) / ceil((P - 1) / 2)``); 'linear': ``noise * (1 - p / (P - 1))``.
  """
  last = max(1, config.num_phases - 1)
  if config.noise_schedule == 'linear':
    return config.noise * (1.0 - phase / last)
  return config.noise * math.ceil((last - phase) / 2) / math.ceil(last / 2)


def continual_phase_indices(config: ProtocolConfig, labels: np.ndarray,
                            order: np.ndarray) -> list[np.ndarray]:
  """Training-set indices of every continual phase: the earlier slices (full access) or the
  memory (warmstart/memory.py), then the phase's new slice (``order`` split in
  ``num_phases``)."""
  slices = np.array_split(np.asarray(order), config.num_phases)
  if config.access == 'full':
    return [np.concatenate(slices[:phase + 1]) for phase in range(config.num_phases)]
  memory = memory_lib.Memory(config.buffer_size, config.buffer_rule, labels=labels,
                             rng=np.random.default_rng([config.seed, 7]))
  phases = []
  for new in slices:
    phases.append(np.concatenate([memory.indices, new]))
    memory.add(new)
  return phases


def continual_phases(data: _Prepared, config: ProtocolConfig):
  """Yields ``(phase, images, noisy labels, noise ratio)`` of every continual phase; the labels
  of the whole phase set (memory included) are re-drawn at the phase's ratio, as the official
  ``PartialImageFolder`` draws its noise over every example of a task."""
  order = np.random.default_rng([config.seed, 3]).permutation(len(data.x_train))
  for phase, indices in enumerate(continual_phase_indices(config, data.y_train, order)):
    noise = continual_noise(config, phase)
    y, _ = data_lib.add_label_noise(data.y_train[indices], noise, data.num_classes,
                                    np.random.default_rng([config.seed, 4, phase]),
                                    config.label_noise)
    yield phase, data.x_train[indices], y, noise


def run_continual(config: ProtocolConfig, method_name: str, method: methods_lib.MethodConfig,
                  dataset: data_lib.Dataset, on_progress: ProgressFn | None = None
                  ) -> list[dict]:
  """Ten (``num_phases``) phases of growing, ever cleaner data; rows of every evaluation
  point."""
  run = _start_run('continual', config, method_name, method, dataset, on_progress)
  slice_size = len(run.data.x_train) // config.num_phases
  state = run.trainer.init_state(run.key)
  rows = []
  for phase, x, y, noise in continual_phases(run.data, config):
    if not run.method.warm_start and phase > 0:
      state = run.trainer.init_state(run.key)
    state = run.trainer.start_phase(state, is_first=phase == 0)
    state, phase_rows = _run_phase(
        run, state, phase=phase, name=f'phase_{phase}', x=x, y=y,
        num_updates=schedules.phase_updates(len(x), config.epochs, config.batch_size),
        data_ratio=1.0, reference_examples=slice_size,
        extra={'phase_noise': round(noise, 6), 'phase_examples': len(x)})
    rows += phase_rows
  return rows


def planned_updates(config: ProtocolConfig, method: methods_lib.MethodConfig, protocol: str,
                    num_train: int) -> int:
  """Updates a run will make (for progress bars), without loading anything."""
  n = min(num_train, config.train_examples) if config.train_examples else num_train
  if protocol == 'warmstart':
    return (schedules.phase_updates(n, config.epochs, config.batch_size)
            * (2 if method.warm_start else 1))
  total = 0
  slices = [len(s) for s in np.array_split(np.arange(n), config.num_phases)]
  for phase in range(config.num_phases):
    size = sum(slices[:phase + 1]) if config.access == 'full' else (
        slices[phase] + min(config.buffer_size, sum(slices[:phase])))
    total += schedules.phase_updates(size, config.epochs, config.batch_size)
  return total


PROTOCOLS = {'warmstart': run_warmstart, 'continual': run_continual}
