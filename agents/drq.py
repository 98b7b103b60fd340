"""DrQ(eps) with Hare & Tortoise, Shrink & Perturb and head resets (paper Table 1, DrQ rows).

``DrQAgent`` subclasses Dopamine's ``Atari100kRainbowAgent`` (the agent behind Dopamine's
DrQ(eps) configuration) and adds gin toggles, all off by default:

* ``target_update_tau``   EMA (Tortoise) target updated inside the jitted train step after every
                          gradient step: ``target <- (1 - tau) target + tau online``. None keeps
                          Dopamine's hard copy every ``target_update_period`` steps.
* ``ht_reset_period``     Hare & Tortoise: every N gradient steps ``online <- target`` (jitted,
                          ``lax.cond`` on the gradient-step counter); ``ht_reset_optimizer``
                          also re-initialises Adam's state.
* ``sp_period``           Shrink & Perturb every N agent steps on ``sp_prefixes`` (all by
                          default): ``p <- sp_shrink p + sp_perturb p_fresh``, online and target.
* ``head_reset_period``   re-initialise ``head_prefixes`` (the dense layers) every N agent steps,
                          online and target, and the Adam moments of those parameters.
* ``augmentation``        'per_image' (Dopamine 4.1.2: a random shift per image) or
                          'per_batch_2021' (Dopamine before February 2022, behind the published
                          DrQ(eps) runs: one shift for the whole batch); ``agents.augmentation``.
* ``act_with_target``     select actions with the target (Tortoise) network, as the paper does
                          for its predictions.
* ``fix_replay_pipeline`` use ``agents.replay.EpisodeTransitionAccumulator`` instead of Dopamine
                          4.1.2's accumulator (see that module: the stock pipeline mislabels
                          terminals and corrupts frame stacks). True by default.

With every toggle off (and ``fix_replay_pipeline=False``) the agent runs Dopamine's own code
paths: the gradient step is ``full_rainbow_agent.train``, the target sync is ``_sync_weights``.
Periods of S&P and head resets count agent (environment) steps, as BBF's resets do; no reset
fires at or after ``resets_stop_at`` (the end of the 100k-step budget) or the run's last
training step (``stop_resets_at``, called by the runner).
"""

from __future__ import annotations

import functools
from typing import Sequence

import gin
import jax
import jax.numpy as jnp
import numpy as onp
import tensorflow as tf
from dopamine.jax.agents.full_rainbow import full_rainbow_agent
from dopamine.jax.replay_memory import replay_buffer
from dopamine.jax.replay_memory import samplers
from dopamine.labs.atari_100k import atari_100k_rainbow_agent

from agents import augmentation as augmentation_lib
from agents import checkpointing
from agents import divergence
from agents import plasticity
from agents import replay_state
from agents import settings
from agents.learner_state import DopamineLearnerAttributes
from agents.learner_state import LearnerState
from agents.replay import EpisodeTransitionAccumulator


@functools.partial(
    jax.jit,
    static_argnames=('network_def', 'optimizer', 'cumulative_gamma', 'double_dqn',
                     'distributional', 'mse_loss', 'use_ema', 'ht_reset_period',
                     'ht_reset_optimizer'))
def train_with_plasticity(network_def, optimizer, state: LearnerState, states, actions,
                          next_states, rewards, terminals, loss_weights, support,
                          cumulative_gamma, double_dqn, distributional, mse_loss, tau, *,
                          use_ema, ht_reset_period, ht_reset_optimizer):
  """Dopamine's Rainbow/DQN gradient step followed by the Tortoise update and H&T reset.

  Returns (state, loss, mean_loss); ``state.grad_step`` counts gradient steps done,
  including this one.
  """
  opt_state, online, loss, mean_loss, rng = full_rainbow_agent.train(
      network_def, state.online, state.target, optimizer, state.opt_state, states,
      actions, next_states, rewards, terminals, loss_weights, support, cumulative_gamma,
      double_dqn, distributional, mse_loss, state.rng)
  grad_step = state.grad_step + 1
  online, target, opt_state, _ = plasticity.tortoise_step(
      online, state.target, opt_state, grad_step,
      tau=tau if use_ema else None, reset_period=ht_reset_period,
      init_optimizer=optimizer.init if ht_reset_optimizer else None)
  return (LearnerState(online=online, target=target, opt_state=opt_state,
                       grad_step=grad_step, rng=rng), loss, mean_loss)


@functools.partial(
    jax.jit,
    static_argnames=('network_def', 'optimizer', 'cumulative_gamma', 'double_dqn',
                     'distributional', 'mse_loss', 'use_ema', 'ht_reset_period',
                     'ht_reset_optimizer', 'data_augmentation', 'augmentation'),
    donate_argnames=('state',))
def augment_and_train(network_def, optimizer, state: LearnerState, raw_states, actions,
                      raw_next_states, rewards, terminals, loss_weights, support,
                      cumulative_gamma, double_dqn, distributional, mse_loss, tau, loss_watch,
                      pixel_scale, *, data_augmentation, use_ema, ht_reset_period,
                      ht_reset_optimizer, augmentation='per_image'):
  """The whole training step after sampling, in one jitted call: Dopamine's input scaling and
  augmentation (``preprocess_inputs_with_augmentation``'s steps, with the RNG split as
  Dopamine's ``_training_step_update`` splits it; ``augmentation`` names the version of DrQ's
  augmentation, ``agents.augmentation``), ``train_with_plasticity`` and the loss watch.

  The learner state is donated: XLA writes the new parameters and optimizer state in place
  (about 4% of a CPU step saved), and the caller's old arrays are deleted. Online and target
  must therefore be distinct arrays (Dopamine's init makes them one: ``DrQAgent`` copies).

  ``pixel_scale`` (255.0) is a traced argument on purpose: XLA turns a division by a constant
  into a multiplication by its reciprocal (1 ulp off numpy's x / 255 on some pixels); by a
  traced value it divides, and the step equals Dopamine's host-side preprocessing bit for bit.

  Returns (state, loss, mean_loss, loss_watch).
  """
  rng, rng1, rng2 = jax.random.split(state.rng, num=3)

  def preprocess(x, key):
    out = x.astype(jnp.float32) / pixel_scale
    if data_augmentation:
      out = augmentation_lib.AUGMENTATIONS[augmentation](key, out)
    return out
  states, next_states = preprocess(raw_states, rng1), preprocess(raw_next_states, rng2)
  state, loss, mean_loss = train_with_plasticity(
      network_def, optimizer, state.replace(rng=rng), states, actions, next_states, rewards,
      terminals, loss_weights, support, cumulative_gamma, double_dqn, distributional,
      mse_loss, tau, use_ema=use_ema, ht_reset_period=ht_reset_period,
      ht_reset_optimizer=ht_reset_optimizer)
  loss_watch = divergence.observe_loss(loss_watch, mean_loss, state.grad_step)
  return state, loss, mean_loss, loss_watch


@functools.partial(
    jax.jit,
    static_argnames=('network_def', 'optimizer', 'sp_prefixes', 'reinit_prefixes'))
def reset_online_and_target(network_def, optimizer, state: LearnerState, example_state,
                            support, shrink, perturb, *, sp_prefixes, reinit_prefixes):
  """S&P and/or re-initialisation of online and target from one fresh init (jitted).

  The Adam moments of re-initialised parameters are reset; S&P keeps them (as BBF does).
  """
  rng, init_rng = jax.random.split(state.rng)
  fresh = network_def.init(init_rng, x=example_state, support=support)
  return plasticity.reset_learner(
      state.replace(rng=rng), fresh, fresh, shrink=shrink, perturb=perturb,
      sp_prefixes=sp_prefixes, reinit_prefixes=reinit_prefixes, init_optimizer=optimizer.init,
      optimizer_prefixes=reinit_prefixes)


def _as_prefixes(prefixes):
  return None if prefixes is None else tuple(prefixes)


def as_uint8_frame(observation):
  """``observation`` as uint8 when that holds its values exactly (Atari frames), else as is.

  Dopamine's ``DataEfficientAtariRunner`` hands the agent its frames in a float64 array, and
  the replay keeps what it is given: each stored stack 8x larger, and every sampled batch
  decompressed, stacked and converted from float64 (measured: 13.6 ms of a 60 ms step on this
  CPU, against 1.8 ms for uint8). The network sees the same float32 values either way
  (``x.astype(float32) / 255`` of an integer is exact from both dtypes).
  """
  observation = onp.asarray(observation)
  if observation.dtype == onp.uint8:
    return observation
  with onp.errstate(invalid='ignore'):  # NaN or out of range: not exact, kept below
    frame = observation.astype(onp.uint8)
  return frame if onp.array_equal(frame, observation) else observation


@gin.configurable
class DrQAgent(DopamineLearnerAttributes, atari_100k_rainbow_agent.Atari100kRainbowAgent):
  """DrQ(eps) with gin toggles for Hare & Tortoise, S&P and head resets."""

  SETTING_RULES = {
      'target_update_tau': settings.RATE,
      'ht_reset_period': settings.PERIOD,
      'sp_period': settings.PERIOD,
      'sp_shrink': settings.FRACTION,
      'sp_perturb': settings.FRACTION,
      'head_reset_period': settings.PERIOD,
      'resets_stop_at': settings.NON_NEGATIVE_INT,
      'summary_writing_frequency': settings.POSITIVE_INT,
      'augmentation': settings.one_of(*augmentation_lib.AUGMENTATIONS),
  }
  OPTIONAL_SETTINGS = ('target_update_tau',)

  def __init__(self,
               num_actions: int,
               target_update_tau: float | None = None,
               ht_reset_period: int = 0,
               ht_reset_optimizer: bool = False,
               sp_period: int = 0,
               sp_shrink: float = 0.5,
               sp_perturb: float = 0.5,
               sp_prefixes: Sequence[str] | None = None,
               head_reset_period: int = 0,
               head_prefixes: Sequence[str] = ('params/Dense_',),
               resets_stop_at: int = 100_000,
               act_with_target: bool = False,
               augmentation: str = 'per_image',
               fix_replay_pipeline: bool = True,
               summary_writing_frequency: int = 1000,
               seed: int | None = None,
               summary_writer=None):
    """Args:
      num_actions: int, number of actions of the game.
      target_update_tau: float or None, EMA rate of the target (Tortoise); None = hard copy.
      ht_reset_period: int, gradient steps between Hare & Tortoise resets (0 = off).
      ht_reset_optimizer: bool, also re-initialise the optimizer state at an H&T reset.
      sp_period: int, agent steps between Shrink & Perturb (0 = off).
      sp_shrink: float, factor on the current weights at S&P.
      sp_perturb: float, factor on a fresh initialisation at S&P.
      sp_prefixes: parameter path prefixes S&P applies to; None = every parameter.
      head_reset_period: int, agent steps between head re-initialisations (0 = off).
      head_prefixes: parameter path prefixes of the head ('params/Dense_': the 512-unit layer
        and the dueling streams).
      resets_stop_at: int, no S&P or head reset at or after this agent step.
      act_with_target: bool, act with the target (Tortoise) parameters.
      augmentation: str, the version of DrQ's random shift ('per_image': Dopamine 4.1.2;
        'per_batch_2021': one shift per batch, as the published DrQ(eps) runs had it).
      fix_replay_pipeline: bool, use the corrected n-step accumulator.
      summary_writing_frequency: int, gradient steps between TensorBoard loss scalars.
      seed: int, seeds initialisation, exploration and replay sampling.
      summary_writer: a TF summary writer or a folder for one (Dopamine's argument).
    Dopamine's own settings stay on Dopamine's classes: ``JaxDQNAgent.gamma``,
    ``JaxFullRainbowAgent.dueling``, ``Atari100kRainbowAgent.data_augmentation``, ...
    """
    self.check_settings(locals())
    self._target_update_tau = target_update_tau
    self._ht_reset_period = int(ht_reset_period)
    self._ht_reset_optimizer = bool(ht_reset_optimizer)
    self._sp_period = int(sp_period)
    self._sp_shrink = float(sp_shrink)
    self._sp_perturb = float(sp_perturb)
    self._sp_prefixes = _as_prefixes(sp_prefixes)
    self._head_reset_period = int(head_reset_period)
    self._head_prefixes = _as_prefixes(head_prefixes)
    self._resets_stop_at = int(resets_stop_at)
    self._act_with_target = bool(act_with_target)
    self._augmentation = augmentation
    self._fix_replay_pipeline = bool(fix_replay_pipeline)
    self.reset_log = []  # (agent step, kind) of every S&P / head reset done
    super().__init__(num_actions=num_actions, seed=seed, summary_writer=summary_writer)
    self.summary_writing_frequency = int(summary_writing_frequency)
    if augmentation != 'per_image':  # 'per_image' is Dopamine's own train_preprocess_fn
      self.train_preprocess_fn = functools.partial(
          augmentation_lib.preprocess, data_augmentation=self._data_augmentation,
          augmentation=augmentation)
    self._loss_watch = divergence.LossWatch.create()
    self._pixel_scale = jnp.float32(255.0)  # traced divisor: see augment_and_train
    # The replay's frames, indexed across checkpoints: a save reads only the new elements.
    self._replay_frames = replay_state.FrameStore()
    if self._head_prefixes:  # fail at start-up, not at step 20,000, on a misspelt prefix
      plasticity.select_mask(self.online_params, self._head_prefixes)
    if self._sp_prefixes:
      plasticity.select_mask(self.online_params, self._sp_prefixes)

  @classmethod
  def check_settings(cls, values: dict) -> None:
    """Raises ``settings.SettingError`` naming every setting out of its range."""
    settings.check('DrQAgent', values, cls.SETTING_RULES, cls.OPTIONAL_SETTINGS)
    if values.get('ht_reset_period') and values.get('target_update_tau') is None:
      raise settings.SettingError(
          'DrQAgent.ht_reset_period needs a lagging Tortoise: set DrQAgent.target_update_tau '
          '(e.g. 0.005). With Dopamine\'s per-step hard copy an H&T reset does nothing.')

  @property
  def uses_stock_update(self) -> bool:
    """True when the gradient step is Dopamine's own (no EMA target, no H&T reset)."""
    return self._target_update_tau is None and not self._ht_reset_period

  # ------------------------------------------------------------------ building
  def _build_networks_and_optimizer(self):
    super()._build_networks_and_optimizer()
    if not self.uses_stock_update:
      # ``augment_and_train`` donates both buffers; Dopamine's target is the online array.
      self.target_network_params = jax.tree_util.tree_map(jnp.copy, self.online_params)

  def _record_observation(self, observation):
    """Dopamine's, with the frame kept as uint8 (``as_uint8_frame``): the replay stores it."""
    super()._record_observation(as_uint8_frame(observation))

  def _build_replay_buffer(self):
    if not self._fix_replay_pipeline:
      return super()._build_replay_buffer()
    if self._replay_scheme not in ('uniform', 'prioritized'):
      raise ValueError(f'Invalid replay scheme: {self._replay_scheme}')
    return replay_buffer.ReplayBuffer(
        transition_accumulator=EpisodeTransitionAccumulator(
            stack_size=self.stack_size, update_horizon=self.update_horizon,
            gamma=self.gamma),
        sampling_distribution=samplers.PrioritizedSamplingDistribution(seed=self._seed),
    )

  # ------------------------------------------------------------------ learning
  def _training_step_update(self):
    """One gradient step; the stock function when H&T and EMA are off."""
    if self.uses_stock_update:
      super()._training_step_update()
      self.learner = self.learner.replace(grad_step=self.learner.grad_step + 1)
      return
    self._sample_from_replay_buffer()
    batch = self.replay_elements
    if self._replay_scheme == 'prioritized':
      probs = batch['sampling_probabilities']
      loss_weights = 1.0 / jnp.sqrt(probs + 1e-10)
      loss_weights /= jnp.max(loss_weights)
    else:
      loss_weights = onp.ones(len(batch['action']), onp.float32)
    self.learner, loss, mean_loss, self._loss_watch = augment_and_train(
        self.network_def, self.optimizer, self.learner, batch['state'], batch['action'],
        batch['next_state'], batch['reward'], batch['terminal'], loss_weights, self._support,
        self.cumulative_gamma, self._double_dqn, self._distributional, self._mse_loss,
        jnp.float32(self._target_update_tau if self._target_update_tau else 1.0),
        self._loss_watch, self._pixel_scale, data_augmentation=self._data_augmentation,
        augmentation=self._augmentation, use_ema=self._target_update_tau is not None,
        ht_reset_period=self._ht_reset_period,
        ht_reset_optimizer=self._ht_reset_optimizer)
    if self._replay_scheme == 'prioritized':
      self._replay.update(self.replay_elements['indices'], priorities=jnp.sqrt(loss + 1e-10))
    self._maybe_write_loss(mean_loss)

  def _maybe_write_loss(self, mean_loss):
    if (self.summary_writer is not None
        and self.gradient_steps % self.summary_writing_frequency == 0):
      with self.summary_writer.as_default():
        tf.summary.scalar('Loss', float(mean_loss), step=self.gradient_steps)

  def _sync_weights(self):
    if self._target_update_tau is None:  # Dopamine's hard copy
      super()._sync_weights()
    # With an EMA target the sync happens inside the jitted train step.

  def _train_step(self):
    super()._train_step()  # gradient step(s), target sync, training_steps += 1
    step = self.training_steps
    if step >= self._resets_stop_at or self._replay.add_count <= self.min_replay_history:
      return
    if self._sp_period and step % self._sp_period == 0:
      self._periodic_reset(sp_prefixes=self._sp_prefixes, reinit_prefixes=(), kind='sp')
    if self._head_reset_period and step % self._head_reset_period == 0:
      self._periodic_reset(sp_prefixes=(), reinit_prefixes=self._head_prefixes,
                           kind='head_reset')

  def stop_resets_at(self, step: int) -> None:
    """No S&P or head reset at or after agent step ``step`` (the runner's training length)."""
    self._resets_stop_at = min(self._resets_stop_at, int(step))

  def _periodic_reset(self, sp_prefixes, reinit_prefixes, kind):
    self.learner = reset_online_and_target(
        self.network_def, self.optimizer, self.learner, self.preprocess_fn(self.state[:1]),
        self._support, jnp.float32(self._sp_shrink), jnp.float32(self._sp_perturb),
        sp_prefixes=sp_prefixes, reinit_prefixes=reinit_prefixes)
    self.reset_log.append((int(self.training_steps), kind))

  # ------------------------------------------------------------------ acting
  def step(self, reward=None, observation=None):
    """Dopamine's ``step`` (store, train, act), acting with the target when asked to."""
    if not self._act_with_target:
      return super().step(reward, observation)
    if reward is not None and observation is not None:
      self._last_observation = self._observation
      self._record_observation(observation)
      if not self.eval_mode:
        self._store_transition(self._last_observation, self.action, reward, False)
    if not self.eval_mode:
      self._train_step()
    self._rng, action = atari_100k_rainbow_agent.select_action(
        self.network_def, self.target_network_params, self.preprocess_fn(self.state),
        self._rng, self.num_actions, self.eval_mode, self.epsilon_eval, self.epsilon_train,
        self.epsilon_decay_period, self.training_steps, self.min_replay_history,
        self.epsilon_fn, self._support)
    self.action = onp.asarray(action)
    return self.action

  # ------------------------------------------------------------------ health
  def divergence(self, last_good_gradient_step: int | None = None):
    """A ``divergence.Divergence`` if the loss or the parameters went non-finite, else None.

    The loss is observed on every gradient step of the jitted plasticity path; Dopamine's
    stock update (every toggle off) keeps its loss to itself, so there only the parameters
    are checked."""
    return divergence.find(None if self.uses_stock_update else self._loss_watch,
                           {'online parameters': self.online_params,
                            'target parameters': self.target_network_params},
                           last_good_gradient_step)

  # ------------------------------------------------------------------ checkpointing
  def checkpoint_state(self) -> dict:
    """Everything needed to resume training (params, optimizer, counters, RNG, replay), as
    plain values and numpy arrays (``agents.checkpointing``; the replay: ``replay_state``)."""
    return checkpointing.agent_state(
        self, replay_state.buffer_state(self._replay, self._replay_frames))

  def load_checkpoint_state(self, state: dict) -> None:
    """Restores ``checkpoint_state``; raises ``checkpointing.CheckpointMismatch`` (or
    ValueError) if it belongs to another configuration."""
    checkpointing.restore_agent_state(self, state)
    try:
      # The interrupted episode is not resumed: its partial n-step segment is dropped.
      replay_state.restore_buffer(self._replay, state['replay'], self._replay_frames)
    except (KeyError, TypeError, ValueError) as e:
      raise checkpointing.CheckpointMismatch(f'replay buffer: {e}') from None
