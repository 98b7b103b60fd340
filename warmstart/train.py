"""Jitted training of one classifier under one method: the step, phases, evaluation, metrics.

The unit of work is a *phase*: a fixed number of updates on one training set, with the
optimizer (AdamW + linear warm-up over the first 10% + gradient clipping at 0.5, paper
Table 3) re-initialised at its start. Between phases the method's re-initialisations run
(Shrink & Perturb toward the initial weights, head reset). Inside a phase every update is one
call of a jitted step that also does the EMA (Tortoise) update and, after the updates the
phase's schedule names (warmstart/schedules.py), the Hare & Tortoise reset; the schedule goes
in as one bool per update beside the batch indices, so the reset stays inside the jitted step
(``lax.cond``) whatever its shape. ``steps_per_call`` updates run as one ``lax.scan`` with the
data set resident on the device, so a call costs one host round trip (keep it 1 for conv nets
on XLA:CPU, where convolutions inside loops ran ~9x slower for us). A phase stops at given
points (evaluations, ReDo) and hands the state to the caller there.

Every network variable collection (``params`` and BatchNorm's ``batch_stats``) of the trained
network has a twin in the EMA network, which predicts when the method has one.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import flax
from flax import linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from agents import plasticity
from warmstart import methods as methods_lib
from warmstart import metrics as metrics_lib
from warmstart import models as models_lib
from warmstart import schedules

PyTree = Any


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  """AdamW as in the paper's Table 3 (per-model lr / weight decay from its Appendix A.2)."""
  learning_rate: float = 1e-3
  weight_decay: float = 1e-4
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  warmup_ratio: float = 0.1
  grad_clip: float = 0.5
  batch_size: int = 256


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training (a pytree, carried through jitted calls)."""
  params: PyTree
  batch_stats: PyTree
  opt_state: PyTree
  ema_params: PyTree
  ema_batch_stats: PyTree
  initial_params: PyTree
  step: jax.Array          # updates since the start of training (all phases)
  phase_step: jax.Array    # updates since the start of the current phase (warm-up clock)
  num_ht_resets: jax.Array


def make_transform(optim: OptimConfig) -> optax.GradientTransformation:
  """AdamW without its learning rate (clip -> Adam -> decoupled decay); the step scales by -lr."""
  return optax.chain(
      optax.clip_by_global_norm(optim.grad_clip),
      optax.scale_by_adam(b1=optim.b1, b2=optim.b2, eps=optim.eps),
      optax.add_decayed_weights(optim.weight_decay))


def warmup_learning_rate(phase_step, warmup_steps, base_lr):
  """Linear warm-up from 0 to ``base_lr`` over ``warmup_steps`` updates, then constant."""
  warmup_steps = jnp.maximum(warmup_steps, 1)
  return base_lr * jnp.minimum(1.0, (phase_step + 1) / warmup_steps)


class Trainer:
  """Builds the jitted functions for one (model, method, optimizer) triple.

  Args:
    model: a warmstart.models module (``embed``/``classify``, 'backbone'/'head' sub-trees).
    method: MethodConfig.
    optim: OptimConfig.
    input_shape: (H, W, C) of one image.
    steps_per_call: updates per jitted call (a ``lax.scan``); 1 = one call per update.
  """

  def __init__(self, model, method: methods_lib.MethodConfig, optim: OptimConfig,
               input_shape: tuple[int, ...], steps_per_call: int = 1):
    self.model = model
    self.method = method
    if method.weight_decay is not None:  # a method's own decay (the official "L2") wins
      optim = dataclasses.replace(optim, weight_decay=method.weight_decay)
    self.optim = optim
    self.input_shape = tuple(input_shape)
    self.steps_per_call = max(1, int(steps_per_call))
    self.transform = make_transform(optim)
    self._train_call = jax.jit(self._train_call_impl, donate_argnums=(0,))
    self._predict = jax.jit(self._predict_impl)
    self._features_and_grads = jax.jit(self._features_and_grads_impl)
    self._redo = jax.jit(self._redo_impl)
    self._reset_dead_head_units = jax.jit(self._reset_dead_head_units_impl)

  # ------------------------------------------------------------------ initialisation

  def init_variables(self, rng) -> dict:
    variables = models_lib.init_variables(self.model, rng, self.input_shape)
    return {'params': variables['params'], 'batch_stats': variables.get('batch_stats', {})}

  def init_state(self, rng) -> TrainState:
    variables = self.init_variables(rng)
    params, batch_stats = variables['params'], variables['batch_stats']
    copy = lambda tree: jax.tree_util.tree_map(jnp.array, tree)
    return TrainState(
        params=params, batch_stats=batch_stats,
        opt_state=self.transform.init(params),
        ema_params=copy(params), ema_batch_stats=copy(batch_stats),
        initial_params=copy(params),
        step=jnp.zeros((), jnp.int32), phase_step=jnp.zeros((), jnp.int32),
        num_ht_resets=jnp.zeros((), jnp.int32))

  def start_phase(self, state: TrainState, is_first: bool) -> TrainState:
    """Between phases: the method's re-initialisations, a fresh optimizer, warm-up restarts."""
    params = state.params
    if not is_first:
      if self.method.uses_shrink_perturb:
        params = methods_lib.shrink_toward_init(params, state.initial_params,
                                                self.method.sp_shrink, self.method.sp_perturb)
      if self.method.head_reset:
        params = methods_lib.reset_head(params, state.initial_params)
    return state.replace(params=params, opt_state=self.transform.init(params),
                         phase_step=jnp.zeros((), jnp.int32))

  # ------------------------------------------------------------------ the update

  def _apply(self, params, batch_stats, x, train: bool, rng=None):
    variables = {'params': params, 'batch_stats': batch_stats}
    if train:
      logits, updates = self.model.apply(variables, x, train=True, mutable=['batch_stats'],
                                         rngs={'dropout': rng})
      return logits, updates.get('batch_stats', batch_stats)
    return self.model.apply(variables, x, train=False), batch_stats

  def _loss(self, params, state: TrainState, x, y, rng):
    method = self.method
    logits, new_batch_stats = self._apply(params, state.batch_stats, x, True, rng)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    teacher = None
    if method.distill:
      teacher, _ = self._apply(state.ema_params, state.ema_batch_stats, x, False)
    loss += methods_lib.loss_terms(method, self.model, params, state.initial_params, logits,
                                   teacher)
    return loss, (new_batch_stats, logits)

  def _update(self, state: TrainState, x, y, rng, warmup_steps, ht_reset):
    method = self.method
    aug_rng, dropout_rng = jax.random.split(rng)
    if method.augment:
      x = methods_lib.augment_images(x, aug_rng)
    (loss, (batch_stats, logits)), grads = jax.value_and_grad(self._loss, has_aux=True)(
        state.params, state, x, y, dropout_rng)
    updates, opt_state = self.transform.update(grads, state.opt_state, state.params)
    lr = warmup_learning_rate(state.phase_step, warmup_steps, self.optim.learning_rate)
    params = jax.tree_util.tree_map(lambda p, u: p - lr * u, state.params, updates)
    step = state.step + 1
    # The Tortoise averages the parameters and the batch-norm statistics; a reset copies both.
    (params, batch_stats), (ema_params, ema_batch_stats), opt_state, reset = (
        plasticity.tortoise_step(
            (params, batch_stats), (state.ema_params, state.ema_batch_stats), opt_state, step,
            tau=1.0 - method.ema if method.uses_ema else None, reset_period=None,
            reset_due=ht_reset if method.ht_reset_epochs > 0 else None,
            init_optimizer=((lambda hare: self.transform.init(hare[0]))
                            if method.ht_reset_optimizer else None)))
    num_resets = state.num_ht_resets + reset.astype(jnp.int32)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == y)
    new_state = state.replace(
        params=params, batch_stats=batch_stats, opt_state=opt_state, ema_params=ema_params,
        ema_batch_stats=ema_batch_stats, step=step, phase_step=state.phase_step + 1,
        num_ht_resets=num_resets)
    return new_state, (loss, accuracy)

  def _train_call_impl(self, state, x_all, y_all, batch_indices, ht_resets, rng, warmup_steps):
    """``batch_indices`` (K, B) rows of the resident data set, ``ht_resets`` (K,) bool (an H&T
    reset after that update); K updates in one lax.scan."""
    def body(carry, inputs):  # the update's key depends on the key and the step alone
      indices, ht_reset = inputs
      step_rng = jax.random.fold_in(rng, carry.step)
      return self._update(carry, x_all[indices], y_all[indices], step_rng, warmup_steps,
                          ht_reset)
    if batch_indices.shape[0] == 1:  # no loop at all: XLA:CPU runs convs in loops slowly
      state, (loss, accuracy) = body(state, (batch_indices[0], ht_resets[0]))
      return state, loss, accuracy
    state, (losses, accuracies) = jax.lax.scan(body, state, (batch_indices, ht_resets))
    return state, losses.mean(), accuracies.mean()

  def train_call(self, state, x_all, y_all, batch_indices, rng, warmup_steps: int,
                 ht_resets=None):
    """``len(batch_indices)`` updates; ``ht_resets``: bool per update (None: no reset)."""
    batch_indices = jnp.asarray(batch_indices, jnp.int32)
    if ht_resets is None:
      ht_resets = np.zeros(batch_indices.shape[0], bool)
    return self._train_call(state, x_all, y_all, batch_indices, jnp.asarray(ht_resets, bool),
                            rng, jnp.int32(warmup_steps))

  # ------------------------------------------------------------------ ReDo

  def _redo_impl(self, state: TrainState, x, rng):
    features = self.model.apply({'params': state.params, 'batch_stats': state.batch_stats},
                                x, train=False, method='embed')
    dormant = methods_lib.dormant_units(features, self.method.redo_tau)
    fresh = self.init_variables(rng)['params']
    incoming, outgoing = self.model.feature_layer_paths()
    params = methods_lib.recycle_dormant(state.params, fresh, dormant, incoming, outgoing)
    return state.replace(params=params), jnp.sum(dormant)

  def redo(self, state: TrainState, x, rng):
    """ReDo on the feature units, scored on the images ``x``; returns (state, #recycled)."""
    state, count = self._redo(state, jnp.asarray(x), rng)
    return state, int(count)

  def _reset_dead_head_units_impl(self, state: TrainState, x, rng):
    variables = {'params': state.params, 'batch_stats': state.batch_stats}
    features = self.model.apply(variables, x, train=False, method='embed')
    _, captured = self.model.apply(
        variables, features, train=False, method='classify', mutable=['intermediates'],
        capture_intermediates=lambda module, _: isinstance(module, nn.Dense))
    outputs = captured['intermediates']['head']
    fresh = self.init_variables(rng)['params']['head']
    head = dict(state.params['head'])
    count = jnp.zeros((), jnp.int32)
    for name in sorted(outputs, key=lambda n: int(n.rsplit('_', 1)[1]))[:-1]:  # hidden only
      # Post-ReLU, as the official hook sees the Linear's output after the in-place ReLU;
      # tau 1e-8 on the non-negative normalised score is torch.isclose(score, 0)'s atol.
      dead = methods_lib.dormant_units(jax.nn.relu(outputs[name]['__call__'][0]), 1e-8)
      layer = dict(head[name])
      layer['kernel'] = jnp.where(dead[None, :], fresh[name]['kernel'], layer['kernel'])
      layer['bias'] = jnp.where(dead, fresh[name]['bias'], layer['bias'])
      head[name] = layer
      count += jnp.sum(dead)
    return state.replace(params={**state.params, 'head': head}), count

  def reset_dead_head_units(self, state: TrainState, x, rng):
    """The official test loop's side effect, run at each of its evaluations in every method.

    Its ``test()`` ends with ``reset_dormant_neurons(self.model, get_redo_masks(activations,
    cfg.redo.lmbda))`` with ``redo.lmbda = 0`` unless the method is ReDo: units whose
    normalised mean activity on 512 training examples ``torch.isclose``-s 0 get their
    incoming weights re-drawn; outgoing weights are zeroed only between two directly
    consecutive Linear (or Conv) modules, which none of the paper's models has. The masks come
    from forward hooks on every module; the ReLU after a hidden Linear of a head runs in place,
    so that Linear's recorded output is post-ReLU and its dead units are exactly the head's
    dead hidden ReLU units (ResNet-18's GAP -> 512 -> ReLU head, VGG-16's two 1024 layers).
    Every other masked Linear or Conv is followed by a normalisation or a non-in-place
    activation, so it is scored on its own pre-activation output, which is zero only when the
    unit's incoming weights are. Hence here: the hidden Dense units of the head that are dead
    on ``x`` (no hidden layer, or a CReLU head: nothing) take freshly initialised incoming
    kernel columns and biases. Returns (state, #units re-drawn).
    """
    hidden = [name for name in state.params['head'] if name.startswith('Dense_')][:-1]
    if not hidden or self.method.crelu_head:  # (the official CReLU is not in place: its
      return state, 0                         # Linear's recorded output is pre-activation)
    state, count = self._reset_dead_head_units(state, jnp.asarray(x), rng)
    return state, int(count)

  # ------------------------------------------------------------------ evaluation

  def predictor(self, state: TrainState) -> tuple[PyTree, PyTree]:
    """(params, batch_stats) of the network that predicts: the EMA network when there is one."""
    if self.method.uses_ema:
      return state.ema_params, state.ema_batch_stats
    return state.params, state.batch_stats

  def _predict_impl(self, params, batch_stats, x):
    return jnp.argmax(self._apply(params, batch_stats, x, False)[0], -1)

  def accuracy(self, state: TrainState, x: np.ndarray, y: np.ndarray,
               batch_size: int = 1000) -> float:
    params, batch_stats = self.predictor(state)
    correct = 0
    for start in range(0, len(x), batch_size):
      predictions = self._predict(params, batch_stats, jnp.asarray(x[start:start + batch_size]))
      correct += int(jnp.sum(predictions == jnp.asarray(y[start:start + batch_size])))
    return correct / max(1, len(x))

  def _features_and_grads_impl(self, params, batch_stats, x, y):
    variables = {'params': params, 'batch_stats': batch_stats}
    features = self.model.apply(variables, x, train=False, method='embed')
    def loss_of_features(f):
      logits = self.model.apply(variables, f, train=False, method='classify')
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    # The gradient that reaches the backbone through its last ReLU: zero at dead units. (For
    # features that are not ReLU outputs, exact zeros are rare and the gradient is kept.)
    gradient = jax.grad(loss_of_features)(features) * (features != 0)
    return features, gradient

  def plasticity_metrics(self, state: TrainState, x: np.ndarray, y: np.ndarray) -> dict:
    """Appendix C metrics of the predicting network on the examples ``(x, y)``."""
    params, batch_stats = self.predictor(state)
    features, grads = self._features_and_grads(params, batch_stats, jnp.asarray(x),
                                               jnp.asarray(y))
    return {
        'weight_magnitude': metrics_lib.weight_magnitude(params),
        'weight_distance': metrics_lib.weight_distance(params, state.initial_params),
        'zero_activation_ratio': metrics_lib.zero_activation_ratio(features),
        'zero_gradient_ratio': metrics_lib.zero_gradient_ratio(grads),
        'srank': metrics_lib.srank(features),
    }


def batch_schedule(num_examples: int, num_updates: int, batch_size: int,
                   rng: np.random.Generator) -> np.ndarray:
  """(num_updates, batch) example indices: shuffled epochs, last partial batch dropped.

  When the training set is smaller than a batch the batch is the whole set.
  """
  batch_size = min(batch_size, num_examples)
  per_epoch = num_examples // batch_size
  epochs = math.ceil(num_updates / per_epoch)
  rows = [rng.permutation(num_examples)[:per_epoch * batch_size].reshape(per_epoch, batch_size)
          for _ in range(epochs)]
  return np.concatenate(rows)[:num_updates]


def train_phase(trainer: Trainer, state: TrainState, x: np.ndarray, y: np.ndarray,
                num_updates: int, rng: np.random.Generator, key: jax.Array, *,
                ht_resets=(), stops=(),
                at_stop: Callable[[TrainState, int], TrainState] | None = None,
                on_progress: Callable[[int, jax.Array, jax.Array], None] | None = None
                ) -> TrainState:
  """Runs ``num_updates`` updates on ``(x, y)``.

  ``ht_resets``: points (updates of this phase, 1..num_updates) after which the Hare takes
  the Tortoise's weights (``schedules.ht_reset_points``); inside the jitted step.
  ``stops``: points (0..num_updates) at which ``at_stop(state, point)`` returns the state to
  go on with (evaluation rows, ReDo), in order; 0 comes before the first update.
  ``on_progress(updates, loss, accuracy)`` is called after every jitted call with the number
  of updates it made and its mean loss and batch accuracy as device scalars (reading them
  waits for the device: a progress bar should do so only when it redraws).
  Every update's random key is ``key`` folded with the run's update count, so where the phase
  stops does not change its randomness.
  """
  schedule = batch_schedule(len(x), num_updates, trainer.optim.batch_size, rng)
  resets = schedules.reset_mask(ht_resets, num_updates)
  warmup = int(round(trainer.optim.warmup_ratio * num_updates))
  x_device, y_device = jnp.asarray(x), jnp.asarray(y, jnp.int32)
  stops = sorted(set(stops))
  if stops and not 0 <= stops[0] <= stops[-1] <= num_updates:
    raise ValueError(f'stops must lie in 0..{num_updates}, got {stops}.')
  if at_stop is not None and stops and stops[0] == 0:
    state = at_stop(state, 0)
  upcoming = [point for point in stops if point > 0]
  done = 0
  while done < num_updates:
    chunk = min(trainer.steps_per_call, num_updates - done)
    if upcoming:  # never let a chunk step over a stop
      chunk = min(chunk, upcoming[0] - done)
    state, loss, accuracy = trainer.train_call(
        state, x_device, y_device, schedule[done:done + chunk], key, warmup,
        resets[done:done + chunk])
    done += chunk
    if upcoming and upcoming[0] == done:
      upcoming.pop(0)
      if at_stop is not None:
        state = at_stop(state, done)
    if on_progress is not None:
      on_progress(chunk, loss, accuracy)
  return state
