"""BBF's learning rules as pure, jitted JAX functions: the update, the resets, acting.

Everything the BBF agent computes on parameters lives here, with no TensorFlow, Dopamine or gin
import, so that the update can be benchmarked on a machine with only jax, flax, optax and numpy
(``atari100k/bench_bbf.py``):

* ``augment``            DrQ augmentation (edge pad 4 + random 84x84 crop, intensity noise),
                         independently per image, as BBF does.
* ``project_distribution``  C51's projection of a shifted support onto the fixed support.
* ``train_groups``       G gradient steps in one jitted call, one per batch, on a
                         ``LearnerState``: C51 double-DQN loss from the target network
                         (+ ``spr_weight`` x SPR loss), AdamW step, then the Tortoise
                         (``plasticity.tortoise_step``: EMA target update, Hare & Tortoise reset
                         every N gradient steps under ``lax.cond``).
* ``reset_networks``     BBF's periodic reset: Shrink & Perturb of the encoder (and transition
                         model), re-initialisation of projection, predictor and head, online
                         and target, optimizer state re-initialised for every reset parameter
                         (``plasticity.reset_learner``).
* ``select_action``      epsilon-greedy on a batch of stacked frames.
* ``exponential_schedule``  BBF's n-step / gamma annealing after each reset (host side).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from agents import bbf_networks
from agents import plasticity
from agents.learner_state import LearnerState

SPR_ONLY_PREFIXES = tuple(f'params/{name}' for name in bbf_networks.SPR_ONLY_PARTS)


# --------------------------------------------------------------------------- schedules

def exponential_schedule(step: int, decay_period: int, initial: float, final: float,
                         reverse: bool = False) -> float:
  """BBF's exponential interpolation from ``initial`` (step 0) to ``final`` (step >= period).

  ``log(value)`` moves linearly; with ``reverse`` it is ``log(1 - value)`` (for gamma, whose
  asymptote is 1). ``decay_period == 0`` gives ``final`` at once.
  """
  if decay_period <= 0:
    return float(final)
  if reverse:
    initial, final = 1.0 - initial, 1.0 - final
  fraction = float(np.clip((decay_period - step) / decay_period, 0.0, 1.0))
  value = float(np.exp(fraction * (np.log(initial) - np.log(final)) + np.log(final)))
  return 1.0 - value if reverse else value


def update_horizon_at(cycle_step: int, cycle_steps: int, max_horizon: int,
                      min_horizon: int) -> int:
  """n-step horizon ``cycle_step`` gradient steps after a reset (10 -> 3 in BBF)."""
  fraction = exponential_schedule(cycle_step, cycle_steps, 1.0, min_horizon / max_horizon)
  return int(np.round(fraction * max_horizon))


def gamma_at(cycle_step: int, cycle_steps: int, min_gamma: float, max_gamma: float) -> float:
  """Discount ``cycle_step`` gradient steps after a reset (0.97 -> 0.997 in BBF)."""
  return exponential_schedule(cycle_step, cycle_steps, min_gamma, max_gamma, reverse=True)


# --------------------------------------------------------------------------- pieces

def augment(rng, images: jnp.ndarray, pad: int = 4, intensity_scale: float = 0.05,
            crop_positions: int | None = None):
  """DrQ augmentation of float images (..., H, W, C): each image its own crop and intensity.

  As the public BBF code's ``spr_networks.drq_image_aug`` (Dopamine 4.1.2's
  ``drq_image_augmentation``), bit for bit with the default ``crop_positions``: edge padding by
  ``pad``, a crop back to (H, W) at offsets drawn from ``0 .. crop_positions - 1`` on each axis,
  intensity ``1 + intensity_scale * clip(N(0, 1), -2, 2)`` per image; the key split the same
  way (intensity from the first half, the offsets from the second).

  Args:
    crop_positions: int, offsets per axis; None = ``2 pad``, the public code's (its exclusive
      ``maxval`` leaves out the last offset, 8); ``2 pad + 1`` draws every offset the padding
      allows (``BBFSettings.crop_positions = 9``).
  """
  positions = 2 * pad if crop_positions is None else crop_positions
  shape = images.shape
  flat = images.reshape(-1, *shape[-3:])
  n, height, width, channels = flat.shape
  padded = jnp.pad(flat, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='edge')
  rng_intensity, rng_crop = jax.random.split(rng, 2)
  rng_x, rng_y = jax.random.split(rng_crop, 2)
  xs = jax.random.randint(rng_x, (n,), 0, positions)
  ys = jax.random.randint(rng_y, (n,), 0, positions)
  crop = jax.vmap(lambda img, x, y: jax.lax.dynamic_slice(
      img, (x, y, 0), (height, width, channels)))
  cropped = crop(padded, xs, ys)
  noise = 1.0 + intensity_scale * jnp.clip(
      jax.random.normal(rng_intensity, (n, 1, 1, 1)), -2.0, 2.0)
  return (cropped * noise).reshape(shape)


def project_distribution(target_support, probabilities, support):
  """C51 projection of ``probabilities`` on atoms ``target_support`` onto ``support``.

  Shapes: target_support, probabilities (B, atoms); support (atoms,). Each target atom's mass
  is split between its two neighbouring support atoms (after clipping to the support range).
  """
  v_min, v_max = support[0], support[-1]
  delta = support[1] - support[0]
  clipped = jnp.clip(target_support, v_min, v_max)                       # (B, J)
  distance = jnp.abs(clipped[:, None, :] - support[None, :, None])       # (B, I, J)
  weights = jnp.clip(1.0 - distance / delta, 0.0, 1.0)
  return jnp.sum(weights * probabilities[:, None, :], axis=-1)           # (B, I)


def make_optimizer(learning_rate: float = 1e-4, eps: float = 1.5e-4, b1: float = 0.9,
                   b2: float = 0.999, weight_decay: float = 0.1,
                   frozen_prefixes: Sequence[str] = ()) -> optax.GradientTransformation:
  """AdamW with weight decay on parameters of rank > 1 only (BBF), none on frozen ones.

  Frozen parameters (the SPR parts when ``spr_weight == 0``) get zero gradients, hence zero
  Adam updates; excluding them from the decay leaves them exactly untouched.
  """
  frozen_prefixes = tuple(frozen_prefixes)

  def decay_mask(params):
    frozen = (plasticity.select_mask(params, frozen_prefixes) if frozen_prefixes
              else jax.tree_util.tree_map(lambda _: False, params))
    return jax.tree_util.tree_map(lambda p, f: p.ndim > 1 and not f, params, frozen)

  return optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
                     mask=decay_mask)


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
  """Static settings of the jitted update (hashable: a jit static argument)."""
  network: bbf_networks.BBFNetwork
  optimizer: optax.GradientTransformation
  spr_weight: float = 5.0
  double_dqn: bool = True
  data_augmentation: bool = True
  ht_reset_period: int = 0
  ht_reset_optimizer: bool = False
  frozen_prefixes: tuple = ()  # parameters never changed (SPR parts when spr_weight == 0)
  crop_positions: int | None = None  # augmentation offsets per axis (``augment``)


# --------------------------------------------------------------------------- the update

def _batch_losses(params, target_params, batch, rng, support, config: LearnerConfig):
  """Per-sample C51 loss and SPR loss of one batch; returns (weighted mean, aux)."""
  network = config.network
  states = batch['state'].astype(jnp.float32) / 255.0          # (B, T, H, W, C)
  next_states = batch['next_state'].astype(jnp.float32) / 255.0  # (B, H, W, C)
  if config.data_augmentation:
    rng_s, rng_n = jax.random.split(rng)
    states = augment(rng_s, states, crop_positions=config.crop_positions)
    next_states = augment(rng_n, next_states, crop_positions=config.crop_positions)
  batch_size = states.shape[0]
  rows = jnp.arange(batch_size)

  # Target distribution: double DQN (online argmax) on the target network's distribution.
  target_next = network.apply(target_params, next_states, support)
  select_q = (network.apply(params, next_states, support).q_values if config.double_dqn
              else target_next.q_values)
  next_probabilities = target_next.probabilities[rows, jnp.argmax(select_q, axis=-1)]
  gamma_n = batch['discount'] * (1.0 - batch['terminal'].astype(jnp.float32))
  target_support = batch['return'][:, None] + gamma_n[:, None] * support[None, :]
  target_distribution = jax.lax.stop_gradient(
      project_distribution(target_support, next_probabilities, support))

  use_spr = config.spr_weight > 0
  if use_spr:
    future = states[:, 1:]
    k = future.shape[1]
    spr_targets = network.apply(target_params, future.reshape(-1, *future.shape[2:]),
                                method=bbf_networks.BBFNetwork.encode_project)
    spr_targets = jax.lax.stop_gradient(spr_targets.reshape(batch_size, k, -1))

  def loss_fn(online):
    out = network.apply(online, states[:, 0], support)
    chosen_logits = out.logits[rows, batch['action'][:, 0]]
    dqn_loss = -jnp.sum(target_distribution * jax.nn.log_softmax(chosen_logits), axis=-1)
    if use_spr:
      predictions = network.apply(online, out.latent, batch['action'][:, :-1],
                                  method=bbf_networks.BBFNetwork.spr_predictions)
      unit = lambda x: x / jnp.linalg.norm(x, axis=-1, keepdims=True)
      per_step = jnp.sum((unit(predictions) - unit(spr_targets)) ** 2, axis=-1)  # (B, K)
      spr_loss = jnp.mean(per_step * batch['same_trajectory'][:, 1:], axis=-1)
    else:
      spr_loss = jnp.zeros_like(dqn_loss)
    loss = jnp.mean(batch['loss_weights'] * (dqn_loss + config.spr_weight * spr_loss))
    return loss, (dqn_loss, spr_loss)

  (loss, (dqn_loss, spr_loss)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
  return grads, {'loss': loss, 'dqn_loss': dqn_loss, 'spr_loss': spr_loss}


@functools.partial(jax.jit, static_argnames=('config',))
def train_groups(config: LearnerConfig, state: LearnerState, batches, support, tau):
  """``G`` gradient steps (one per batch of ``batches``, leading axis G) in one jitted call.

  After every step: ``target <- (1 - tau) target + tau online``; then, every
  ``config.ht_reset_period`` gradient steps, the Hare & Tortoise reset ``online <- target``
  (and a fresh optimizer state if ``config.ht_reset_optimizer``).

  Returns (state, metrics) where metrics holds per batch the mean loss and per sample the C51
  loss (priorities) and the SPR loss.
  """
  optimizer = config.optimizer

  def one_step(state: LearnerState, batch):
    rng, batch_rng = jax.random.split(state.rng)
    grads, metrics = _batch_losses(state.online, state.target, batch, batch_rng, support,
                                   config)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.online)
    online = optax.apply_updates(state.online, updates)
    step = state.grad_step + 1
    online, target, opt_state, _ = plasticity.tortoise_step(
        online, state.target, opt_state, step, tau=tau, reset_period=config.ht_reset_period,
        init_optimizer=optimizer.init if config.ht_reset_optimizer else None,
        # frozen parts stay bit-identical (an EMA of equal values would still round)
        frozen=(plasticity.select_mask(state.target, config.frozen_prefixes)
                if config.frozen_prefixes else None))
    return LearnerState(online=online, target=target, opt_state=opt_state, grad_step=step,
                        rng=rng), metrics

  # A Python loop, not lax.scan: on XLA's CPU backend the convolutions of a scan (while loop)
  # body ran ~9x slower (5.5 s instead of 0.6 s per width-1 step), even fully unrolled.
  metrics = []
  for group in range(batches['state'].shape[0]):
    state, group_metrics = one_step(state, {k: v[group] for k, v in batches.items()})
    metrics.append(group_metrics)
  metrics = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *metrics)
  return state, metrics


# --------------------------------------------------------------------------- resets

@functools.partial(jax.jit, static_argnames=(
    'network', 'optimizer', 'sp_prefixes', 'reinit_prefixes', 'frozen_prefixes',
    'reset_target', 'reset_optimizer', 'stack_size', 'jumps'))
def reset_networks(network, optimizer, state: LearnerState, shrink, perturb, *,
                   sp_prefixes: tuple, reinit_prefixes: tuple, frozen_prefixes: tuple = (),
                   reset_target: bool = True, reset_optimizer: bool = True,
                   stack_size: int = 4, jumps: int = 5) -> LearnerState:
  """BBF's periodic reset, jitted: S&P on ``sp_prefixes``, fresh values on ``reinit_prefixes``.

  Online and target each interpolate toward their own fresh initialisation (as BBF's code
  does). With ``reset_optimizer`` the optimizer statistics of every reset parameter are
  re-initialised; when that is every trained parameter (BBF: all parts; frozen parts carry
  no statistics) the whole state is, Adam's step count included, as in BBF's code.
  """
  rng, rng_online, rng_target = jax.random.split(state.rng, 3)
  init = functools.partial(bbf_networks.init_params, network, stack_size=stack_size,
                           jumps=jumps)
  touched = tuple(sp_prefixes) + tuple(reinit_prefixes) + tuple(frozen_prefixes)
  every_parameter = all(jax.tree_util.tree_leaves(
      plasticity.select_mask(state.online, touched)))
  return plasticity.reset_learner(
      state.replace(rng=rng), init(rng_online), init(rng_target) if reset_target else None,
      shrink=shrink, perturb=perturb, sp_prefixes=sp_prefixes,
      reinit_prefixes=reinit_prefixes, reset_target=reset_target,
      init_optimizer=optimizer.init,
      optimizer_prefixes=touched if reset_optimizer else (),
      restart_optimizer=reset_optimizer and every_parameter)


# --------------------------------------------------------------------------- acting

@functools.partial(jax.jit, static_argnames=('network', 'num_actions'))
def select_action(network, params, states, rng, epsilon, support, num_actions: int):
  """Epsilon-greedy actions for a batch of uint8 stacks (B, H, W, C); returns (rng, actions)."""
  q_values = network.apply(params, states.astype(jnp.float32) / 255.0, support).q_values
  rng, rng_explore, rng_action = jax.random.split(rng, 3)
  batch = states.shape[0]
  explore = jax.random.uniform(rng_explore, (batch,)) <= epsilon
  random_actions = jax.random.randint(rng_action, (batch,), 0, num_actions)
  return rng, jnp.where(explore, random_actions, jnp.argmax(q_values, axis=-1))
