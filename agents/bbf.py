"""BBF (Schwarzer et al. 2023) with Hare & Tortoise, S&P, resets and SPR as gin toggles.

``BBFAgent`` subclasses Dopamine's ``JaxDQNAgent``, as the public BBF code does, and keeps
Dopamine's exploration settings (``JaxDQNAgent.gamma``, ``epsilon_*``, ``min_replay_history``,
``epsilon_fn``). Its own settings are the fields of ``BBFSettings`` (gin: ``BBFSettings.<name>``),
named below. Its pieces:

* network       ``agents.bbf_networks.BBFNetwork`` (Impala encoder x ``width_scale``,
                ``hidden_dim`` projection, dueling C51 head, SPR transition model and predictor);
* update        ``agents.bbf_learning.train_groups``: ``batches_to_group`` gradient steps per
                jitted call, ``replay_ratio`` gradient steps per environment step, C51 + double
                DQN from the EMA target (``target_update_tau``), SPR loss x ``spr_weight``
                (0 turns SSL off and freezes the SPR-only parameters), AdamW without decay on
                rank-1 parameters, and the Hare & Tortoise reset every ``ht_reset_period``
                gradient steps;
* replay        ``agents.subsequence_replay.SubsequenceReplayBuffer``: prioritized, sub-sequences
                of ``jumps + 1`` steps, n-step returns computed with the current n and gamma;
* annealing     n-step ``max_update_horizon -> update_horizon`` and gamma
                ``min_gamma -> JaxDQNAgent.gamma`` over ``cycle_steps`` gradient steps,
                restarting at every periodic reset;
* resets        every ``reset_every`` agent steps (``reset_schedule``: the public code's
                bookkeeping by default, three resets in 100k steps; none once
                ``no_resets_after`` would be passed before the next): S&P (``shrink_factor``/``perturb_factor``) on
                ``shrink_perturb_parts``, re-initialisation of ``reinit_parts``, online and
                target, optimizer state re-initialised for the reset parameters;
* acting        epsilon-greedy with the target network (``target_action_selection``).

Counting: ``training_steps`` counts agent (environment) steps, ``gradient_steps`` gradient
steps; the H&T period counts gradient steps, the periodic reset agent steps.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from typing import ClassVar, Sequence

import gin
import jax
import jax.numpy as jnp
import numpy as onp
import tensorflow as tf
from dopamine.jax.agents.dqn import dqn_agent

from agents import bbf_learning
from agents import bbf_networks
from agents import checkpointing
from agents import divergence
from agents import settings
from agents.learner_state import DopamineLearnerAttributes
from agents.subsequence_replay import SubsequenceReplayBuffer


def _prefixes(parts: Sequence[str]) -> tuple:
  for part in parts:
    if part not in bbf_networks.PART_NAMES:
      raise ValueError(f'Unknown network part {part!r}; the parts are '
                       f'{", ".join(bbf_networks.PART_NAMES)}.')
  return tuple(f'params/{part}' for part in parts)


def priority_update(rule: str, keys, dqn_loss):
  """The (keys, priorities) a gradient call writes back to the prioritized replay.

  Args:
    rule: 'public_code' or 'per_sample' (``BBFSettings.priority_update``).
    keys: the G x B sampled keys, in sampling order.
    dqn_loss: array (G, B), each sample's C51 loss.
  Returns:
    'per_sample': every key with sqrt(its loss + 1e-10). 'public_code': the first G keys with
    sqrt(group g's batch-mean loss + 1e-10), as the public code's ``zip(indices, priorities)``
    over G*B indices and G batch-mean losses.
  """
  keys = onp.asarray(keys).reshape(-1)
  if rule == 'per_sample':
    return keys, onp.sqrt(dqn_loss.reshape(-1) + 1e-10)
  group_means = dqn_loss.reshape(dqn_loss.shape[0], -1).mean(axis=1)
  return keys[:len(group_means)], onp.sqrt(group_means + 1e-10)


def _padded_size(n: int) -> int:
  """Next power of two: acting on 100, 99, ... evaluation envs compiles 8 shapes, not 100."""
  return 1 << max(0, (n - 1).bit_length())


@gin.configurable
@dataclasses.dataclass(frozen=True)
class BBFSettings:
  """BBF's settings, bound in gin as ``BBFSettings.<field> = value``. The defaults are the values
  of the public BBF code's BBF.gin, so ``gin/bbf_base.gin`` states only what differs.

  Attributes:
    width_scale: int, Impala encoder width multiplier (BBF: 4; 1 for a CPU try-out).
    stage_widths: ints, channels of the three encoder stages before scaling (16, 32, 32).
    hidden_dim: int, units of the projection / Q hidden layer (2048).
    num_blocks: int, residual blocks per encoder stage (2).
    num_atoms, vmax: C51 support, ``num_atoms`` atoms on [-vmax, vmax].
    dueling, double_dqn: bool, dueling head, double-DQN action selection for targets.
    data_augmentation: bool, DrQ pad-and-crop + intensity augmentation.
    spr_weight: float, weight of the SPR loss (5); 0 turns SSL off, freezes the transition
      model and predictor and leaves them out of every reset.
    jumps: int, SPR prediction steps (5); replay sub-sequences have jumps + 1 steps.
    batch_size: int, transitions per gradient step (32).
    replay_ratio: int, gradient steps per environment step (2; BBF.gin's
      ``replay_ratio = 64`` counts replayed samples: 64 / 32).
    batches_to_group: int, gradient steps run in one jitted call (2).
    update_horizon, max_update_horizon: n-step anneals max -> min (10 -> 3).
    min_gamma: float, gamma anneals min_gamma -> ``JaxDQNAgent.gamma`` (0.97 -> 0.997).
    cycle_steps: int, gradient steps of the annealing after each reset (10,000).
    replay_scheme: 'prioritized' or 'uniform'.
    replay_capacity: int, replay buffer size (200,000).
    learning_rate, adam_eps, weight_decay: AdamW (1e-4, 1.5e-4, 0.1).
    target_update_tau: float, EMA rate of the target (Tortoise) per gradient step (0.005).
    target_action_selection: bool, act with the target network.
    reset_every: int, agent steps between periodic resets (20,000; 0 = off).
    no_resets_after: int, a reset happens only if the next one would come by this step.
    shrink_factor, perturb_factor: S&P factors on the current and the fresh weights (0.5, 0.5).
    shrink_perturb_parts: network parts shrunk and perturbed at a reset.
    reinit_parts: network parts re-initialised at a reset.
    reset_target: bool, reset the target network too.
    reset_optimizer: bool, re-initialise the optimizer state of reset parameters.
    ht_reset_period: int, gradient steps between Hare & Tortoise resets (0 = off; paper 4000).
    ht_reset_optimizer: bool, fresh optimizer state at an H&T reset.
    summary_writing_frequency: int, gradient steps between TensorBoard scalars.
    priority_update: str, what a gradient step writes back to the prioritized replay:
      'public_code' (as the public BBF code does: its loss reports one batch-mean C51 loss per
      grouped batch, and its ``set_priority`` zips the G*B sampled keys with those G values, so
      only the first G sampled transitions get a priority, sqrt(batch-mean loss + 1e-10); all
      others keep the one they were added with) or 'per_sample' (each sampled transition
      gets sqrt(its own C51 loss + 1e-10): prioritized replay as Schaul et al. define it).
    crop_positions: int, random-shift offsets per axis of the augmentation: 8 = 0..7, the
      public code's (an exclusive maximum), or 9 = 0..8, every offset the 4-pixel padding allows.
    reset_schedule: str, when the periodic resets fire: 'public_code' (the public code's
      ``next_reset`` bookkeeping: a reset is due when the agent step exceeds ``next_reset``,
      first ``reset_every + reset_offset``, then the due step + ``reset_every``, and fires only
      if that next one stays within ``no_resets_after + reset_offset``: with BBF's values at
      steps 20,002, 40,003 and 60,004, three resets) or 'multiples' (at every positive multiple
      of ``reset_every`` while the next one comes by ``no_resets_after``: 20k, 40k, 60k, 80k).
    reset_offset: int, the public code's ``reset_offset`` (1), used by 'public_code'.
    n_step_bootstrap: str, the n-step target r_t + ... + gamma^(n-1) r_{t+n-1} + gamma^n Q(s):
      'public_code' bootstraps from s = s_{t+n-1}, one step early, and takes a terminal only
      in t .. t+n-2 (the public buffer, google-research issue 1851); 'corrected' from s_{t+n},
      terminals in t .. t+n-1.
    spr_mask: str, which SPR targets s_{t+j} (j = 1 .. jumps) count: 'public_code' (the public
      buffer's ``same_trajectory``: target j dropped when a terminal lies in t .. t+j, so a
      terminal at t itself drops every target and one at t+j drops that target; truncations
      are not looked at; and the first row of each sampled batch (``replay_ratio`` /
      ``batches_to_group`` samples of G*B rows per agent step, the row in the first group) is
      never masked, as its ``output[0, :] = 0`` clears that row's terminal flags) or
      'corrected' (target j dropped when a segment ends, terminal or truncation, in
      t .. t+j-1: the targets of the same life, in every row).
    frame_stacks: str, the frame stacks of replayed states: 'public_code' (the public buffer's
      ``censor_before``: every stack of a sample of key t, its jumps + 1 states and next state,
      zeroes the frames before 1 + the first terminal among steps t-3 .. t-1 (stack of 4);
      truncations do not cut a stack; keys 0 .. 2 are never sampled) or 'corrected' (each
      stack zeroes the frames before its own step's segment start, terminal or truncation:
      the agent's acting stack).
  """
  width_scale: int = 4
  stage_widths: tuple = (16, 32, 32)
  hidden_dim: int = 2048
  num_blocks: int = 2
  num_atoms: int = 51
  vmax: float = 10.0
  dueling: bool = True
  double_dqn: bool = True
  data_augmentation: bool = True
  spr_weight: float = 5.0
  jumps: int = 5
  batch_size: int = 32
  replay_ratio: int = 2
  batches_to_group: int = 2
  update_horizon: int = 3
  max_update_horizon: int = 10
  min_gamma: float = 0.97
  cycle_steps: int = 10_000
  replay_scheme: str = 'prioritized'
  replay_capacity: int = 200_000
  learning_rate: float = 1e-4
  adam_eps: float = 1.5e-4
  weight_decay: float = 0.1
  target_update_tau: float = 0.005
  target_action_selection: bool = True
  reset_every: int = 20_000
  no_resets_after: int = 100_000
  shrink_factor: float = 0.5
  perturb_factor: float = 0.5
  shrink_perturb_parts: tuple = ('encoder', 'transition_model')
  reinit_parts: tuple = ('projection', 'predictor', 'head')
  reset_target: bool = True
  reset_optimizer: bool = True
  ht_reset_period: int = 0
  ht_reset_optimizer: bool = False
  summary_writing_frequency: int = 1000
  priority_update: str = 'public_code'
  crop_positions: int = 8
  n_step_bootstrap: str = 'public_code'
  spr_mask: str = 'public_code'
  frame_stacks: str = 'public_code'
  reset_schedule: str = 'public_code'
  reset_offset: int = 1

  SETTING_RULES: ClassVar[dict] = {
      'width_scale': settings.POSITIVE_INT,
      'hidden_dim': settings.POSITIVE_INT,
      'num_blocks': settings.POSITIVE_INT,
      'num_atoms': settings.POSITIVE_INT,
      'vmax': settings.POSITIVE,
      'spr_weight': settings.NON_NEGATIVE,
      'jumps': settings.NON_NEGATIVE_INT,
      'batch_size': settings.POSITIVE_INT,
      'replay_ratio': settings.POSITIVE_INT,
      'batches_to_group': settings.POSITIVE_INT,
      'update_horizon': settings.POSITIVE_INT,
      'max_update_horizon': settings.POSITIVE_INT,
      'min_gamma': settings.FRACTION,
      'cycle_steps': settings.NON_NEGATIVE_INT,
      'replay_capacity': settings.POSITIVE_INT,
      'learning_rate': settings.POSITIVE,
      'adam_eps': settings.POSITIVE,
      'weight_decay': settings.NON_NEGATIVE,
      'target_update_tau': settings.RATE,
      'reset_every': settings.PERIOD,
      'no_resets_after': settings.NON_NEGATIVE_INT,
      'shrink_factor': settings.FRACTION,
      'perturb_factor': settings.FRACTION,
      'ht_reset_period': settings.PERIOD,
      'summary_writing_frequency': settings.POSITIVE_INT,
      'crop_positions': settings.POSITIVE_INT,
      'reset_offset': settings.NON_NEGATIVE_INT,
      'priority_update': settings.one_of('public_code', 'per_sample'),
      'reset_schedule': settings.one_of('public_code', 'multiples'),
      'n_step_bootstrap': settings.one_of('public_code', 'corrected'),
      'spr_mask': settings.one_of('public_code', 'corrected'),
      'frame_stacks': settings.one_of('public_code', 'corrected'),
  }

  def __post_init__(self):
    self.check_settings(dataclasses.asdict(self))
    for name in ('stage_widths', 'shrink_perturb_parts', 'reinit_parts'):  # gin gives lists
      object.__setattr__(self, name, tuple(getattr(self, name)))

  @classmethod
  def check_settings(cls, values: dict) -> None:
    """Raises ``settings.SettingError`` naming every setting out of its range."""
    settings.check('BBFSettings', values, cls.SETTING_RULES)
    ratio, group = values.get('replay_ratio', 2), values.get('batches_to_group', 2)
    if ratio % group:
      raise settings.SettingError(
          f'BBFSettings.replay_ratio ({ratio}) must be a multiple of '
          f'BBFSettings.batches_to_group ({group}).')
    low, high = values.get('update_horizon', 3), values.get('max_update_horizon', 10)
    if not low <= high:
      raise settings.SettingError(
          f'Need BBFSettings.update_horizon ({low}) <= BBFSettings.max_update_horizon '
          f'({high}).')
    positions = values.get('crop_positions', 8)
    if settings.POSITIVE_INT[0](positions) and positions > 9:
      raise settings.SettingError(
          f'BBFSettings.crop_positions = {positions}: must be at most 9 (the padding is 4 '
          'pixels: offsets 0..8).')
    scheme = values.get('replay_scheme', 'prioritized')
    if scheme not in ('prioritized', 'uniform'):
      raise settings.SettingError(
          f"BBFSettings.replay_scheme must be 'prioritized' or 'uniform', got {scheme!r}.")


@gin.configurable
class BBFAgent(DopamineLearnerAttributes, dqn_agent.JaxDQNAgent):
  """BBF with gin toggles for SPR, resets, S&P and Hare & Tortoise (see module docstring)."""

  def __init__(self, num_actions: int, settings: BBFSettings | None = None,
               seed: int | None = None, summary_writer=None):
    """Args:
      num_actions: int, number of actions of the game.
      settings: BBFSettings; None = ``BBFSettings()`` with the gin bindings applied.
      seed: int, seeds initialisation, exploration and replay sampling.
      summary_writer: a TF summary writer or a folder for one (Dopamine's argument).
    Dopamine's exploration settings stay on Dopamine's class: ``JaxDQNAgent.gamma``,
    ``epsilon_*``, ``min_replay_history``, ``epsilon_fn``.
    """
    self.settings = s = settings if settings is not None else BBFSettings()
    keep = (lambda parts: parts) if s.spr_weight > 0 else (
        lambda parts: [p for p in parts if p not in bbf_networks.SPR_ONLY_PARTS])
    self._frozen_prefixes = () if s.spr_weight > 0 else bbf_learning.SPR_ONLY_PREFIXES
    self._sp_prefixes = _prefixes(keep(s.shrink_perturb_parts))
    self._reinit_prefixes = _prefixes(keep(s.reinit_parts))
    if set(self._sp_prefixes) & set(self._reinit_prefixes):
      raise ValueError('shrink_perturb_parts and reinit_parts overlap: '
                       f'{sorted(set(s.shrink_perturb_parts) & set(s.reinit_parts))}.')
    self._support = jnp.linspace(-float(s.vmax), float(s.vmax), s.num_atoms)
    self.cycle_gradient_steps = 0  # gradient steps since the last periodic reset
    self._resets_stop_at = None    # the run's last training step (``stop_resets_at``)
    self.reset_log = []            # (agent step, 'reset') of every periodic reset
    self.last_metrics = {}
    network = functools.partial(
        bbf_networks.BBFNetwork, num_atoms=s.num_atoms, width_scale=s.width_scale,
        stage_widths=s.stage_widths, hidden_dim=s.hidden_dim, num_blocks=s.num_blocks,
        dueling=s.dueling)
    super().__init__(num_actions=num_actions, network=network,
                     update_horizon=s.max_update_horizon, seed=seed,
                     summary_writer=summary_writer,
                     summary_writing_frequency=s.summary_writing_frequency)
    self._loss_watch = divergence.LossWatch.create()
    self._learner_config = bbf_learning.LearnerConfig(
        network=self.network_def, optimizer=self.optimizer, spr_weight=s.spr_weight,
        double_dqn=s.double_dqn, data_augmentation=s.data_augmentation,
        ht_reset_period=s.ht_reset_period, ht_reset_optimizer=s.ht_reset_optimizer,
        frozen_prefixes=self._frozen_prefixes, crop_positions=s.crop_positions)

  @property
  def width_scale(self) -> int:
    """Encoder width multiplier (read by the runner: full width on a CPU takes days)."""
    return self.settings.width_scale

  # ------------------------------------------------------------------ building
  def _build_networks_and_optimizer(self):
    self._rng, rng = jax.random.split(self._rng)
    self.online_params = bbf_networks.init_params(
        self.network_def, rng, stack_size=self.stack_size, jumps=self.settings.jumps,
        frame_shape=self.observation_shape)
    self.optimizer = bbf_learning.make_optimizer(
        self.settings.learning_rate, eps=self.settings.adam_eps,
        weight_decay=self.settings.weight_decay,
        frozen_prefixes=self._frozen_prefixes)
    self.optimizer_state = self.optimizer.init(self.online_params)
    self.target_network_params = jax.tree_util.tree_map(jnp.copy, self.online_params)

  def _build_replay_buffer(self):
    s = self.settings
    return SubsequenceReplayBuffer(
        observation_shape=tuple(self.observation_shape), stack_size=self.stack_size,
        capacity=s.replay_capacity, subseq_len=s.jumps + 1,
        max_update_horizon=s.max_update_horizon,
        prioritized=s.replay_scheme == 'prioritized', seed=self._seed,
        bootstrap={'public_code': 'public_code', 'corrected': 'next'}[s.n_step_bootstrap],
        spr_mask={'public_code': 'public_code', 'corrected': 'segment'}[s.spr_mask],
        frame_stacks={'public_code': 'public_code', 'corrected': 'segment'}[s.frame_stacks])

  @property
  def replay_ratio(self) -> int:
    """Gradient steps per environment step."""
    return self.settings.replay_ratio

  # ------------------------------------------------------------------ schedules
  @property
  def current_update_horizon(self) -> int:
    s = self.settings
    return bbf_learning.update_horizon_at(self.cycle_gradient_steps, s.cycle_steps,
                                          s.max_update_horizon, s.update_horizon)

  @property
  def current_gamma(self) -> float:
    return bbf_learning.gamma_at(self.cycle_gradient_steps, self.settings.cycle_steps,
                                 self.settings.min_gamma, self.gamma)

  def reset_due(self, step: int) -> bool:
    """A periodic reset at agent step ``step`` (0-based, counted before the step's increment),
    by ``BBFSettings.reset_schedule``, and never on the run's last training step
    (``stop_resets_at``)."""
    s = self.settings
    if s.reset_every <= 0 or (self._resets_stop_at is not None
                              and step + 1 >= self._resets_stop_at):
      return False
    if s.reset_schedule == 'public_code':
      # The public code's candidates: step > next_reset, next_reset = reset_every + offset,
      # then candidate + reset_every: k (reset_every + 1) + offset for k = 1, 2, ...
      candidate = (step >= s.reset_every + s.reset_offset + 1
                   and (step - s.reset_offset) % (s.reset_every + 1) == 0)
      return candidate and step + s.reset_every <= s.no_resets_after + s.reset_offset
    return (step > 0 and step % s.reset_every == 0
            and step + s.reset_every <= s.no_resets_after)

  def stop_resets_at(self, step: int) -> None:
    """No periodic reset at or after agent step ``step`` (the runner's training length)."""
    self._resets_stop_at = int(step)

  # ------------------------------------------------------------------ learning
  def _train_step(self):
    if (self._replay.add_count > self.min_replay_history
        and self._replay.num_sampleable > 0):
      for _ in range(self.settings.replay_ratio // self.settings.batches_to_group):
        self._training_step_update()
    if self.reset_due(self.training_steps):
      self.periodic_reset()
    self.training_steps += 1

  def _sample_batches(self) -> dict:
    groups, batch = self.settings.batches_to_group, self.settings.batch_size
    # One sample of G*B rows, as the public code draws it: with spr_mask 'public_code' its row
    # 0, row 0 of the first group, is the one whose SPR targets are never masked.
    sample = self._replay.sample(groups * batch, self.current_update_horizon,
                                 self.current_gamma)
    if self.settings.replay_scheme == 'prioritized':
      weights = 1.0 / onp.sqrt(sample['sampling_probabilities'] + 1e-10)
      weights /= weights.max()
    else:
      weights = onp.ones(groups * batch)
    sample['loss_weights'] = weights.astype(onp.float32)
    keys = sample.pop('indices')
    sample.pop('sampling_probabilities')
    sample.pop('reward', None)
    batches = {k: onp.reshape(v, (groups, batch, *v.shape[1:])) for k, v in sample.items()}
    return batches, keys

  def _training_step_update(self):
    batches, keys = self._sample_batches()
    self.learner, metrics = bbf_learning.train_groups(
        self._learner_config, self.learner, batches, self._support,
        jnp.float32(self.settings.target_update_tau))
    self.cycle_gradient_steps += self.settings.batches_to_group
    self._loss_watch = divergence.observe_loss(self._loss_watch, metrics['loss'],
                                               self.learner.grad_step)
    if self.settings.replay_scheme == 'prioritized':
      self._replay.update_priorities(*priority_update(
          self.settings.priority_update, keys, onp.asarray(metrics['dqn_loss'])))
    if self.gradient_steps % self.summary_writing_frequency < self.settings.batches_to_group:
      self._write_summaries(metrics)

  def _write_summaries(self, metrics):
    self.last_metrics = {
        'Loss': float(onp.mean(metrics['loss'])),
        'DQNLoss': float(onp.mean(metrics['dqn_loss'])),
        'SPRLoss': float(onp.mean(metrics['spr_loss'])),
        'UpdateHorizon': self.current_update_horizon,
        'Gamma': self.current_gamma,
    }
    if self.summary_writer is not None:
      with self.summary_writer.as_default():
        for name, value in self.last_metrics.items():
          tf.summary.scalar(name, value, step=self.gradient_steps)

  def periodic_reset(self):
    """BBF's reset (jitted): S&P and re-initialisation; n-step/gamma annealing restarts."""
    self.learner = bbf_learning.reset_networks(
        self.network_def, self.optimizer, self.learner, jnp.float32(self.settings.shrink_factor),
        jnp.float32(self.settings.perturb_factor), sp_prefixes=self._sp_prefixes,
        reinit_prefixes=self._reinit_prefixes, frozen_prefixes=self._frozen_prefixes,
        reset_target=self.settings.reset_target, reset_optimizer=self.settings.reset_optimizer,
        stack_size=self.stack_size, jumps=self.settings.jumps)
    self.cycle_gradient_steps = 0
    self.reset_log.append((int(self.training_steps), 'reset'))

  def _sync_weights(self):
    pass  # the EMA target update happens inside the jitted train step

  # ------------------------------------------------------------------ health
  def divergence(self, last_good_gradient_step: int | None = None):
    """A ``divergence.Divergence`` if the loss or the parameters went non-finite, else None."""
    return divergence.find(self._loss_watch,
                           {'online parameters': self.online_params,
                            'target parameters': self.target_network_params},
                           last_good_gradient_step)

  # ------------------------------------------------------------------ acting
  def _epsilon(self) -> float:
    if self.eval_mode:
      return float(self.epsilon_eval)
    return float(self.epsilon_fn(self.epsilon_decay_period, self.training_steps,
                                 self.min_replay_history, self.epsilon_train))

  def step(self):
    """Trains if due (training mode), then returns one action per environment."""
    if not self.eval_mode:
      self._train_step()
    params = (self.target_network_params if self.settings.target_action_selection
              else self.online_params)
    n = self.state.shape[0]
    states = onp.zeros((_padded_size(n), *self.state.shape[1:]), onp.uint8)
    states[:n] = self.state
    self._rng, actions = bbf_learning.select_action(
        self.network_def, params, states, self._rng, jnp.float32(self._epsilon()),
        self._support, self.num_actions)
    self.action = onp.asarray(actions)[:n]
    return self.action

  # The vectorised runner's interface (Dopamine's DataEfficientAtariRunner).
  def _record_observation(self, observation):
    frames = onp.array(observation, dtype=onp.uint8).reshape(
        -1, *self.observation_shape)
    self._observation = frames
    self.state = onp.roll(self.state, -1, axis=-1)
    self.state[..., -1] = frames

  def reset_all(self, new_obs):
    self.state = onp.zeros((new_obs.shape[0], *self.observation_shape, self.stack_size),
                           onp.uint8)
    self._record_observation(new_obs)

  def reset_one(self, env_id):
    self.state[env_id].fill(0)

  def delete_one(self, env_id):
    self.state = onp.delete(self.state, env_id, axis=0)

  def cache_train_state(self):
    self.training_state = copy.deepcopy((self.state, self._last_observation,
                                         self._observation))

  def restore_train_state(self):
    self.state, self._last_observation, self._observation = self.training_state

  def log_transition(self, observation, action, reward, terminal, episode_end):
    """Stores (o_k, a_k, r_k, terminal_k, episode_end_k) for each env, then records o_{k+1}."""
    self._last_observation = self._observation
    self._record_observation(observation)
    if self.eval_mode:
      return
    action, reward = onp.reshape(action, -1), onp.reshape(reward, -1)
    terminal, episode_end = onp.reshape(terminal, -1), onp.reshape(episode_end, -1)
    if len(action) != 1:
      raise ValueError(f'BBFAgent trains on one environment; got {len(action)}.')
    self._replay.add(self._last_observation[0], action[0], reward[0], terminal[0],
                     episode_end[0])

  # ------------------------------------------------------------------ checkpointing
  def checkpoint_state(self) -> dict:
    """Everything needed to resume training (params, optimizer, counters, RNG, replay), as
    plain values and numpy arrays (``agents.checkpointing``)."""
    return {**checkpointing.agent_state(self, self._replay.to_state_dict()),
            'cycle_gradient_steps': int(self.cycle_gradient_steps)}

  def load_checkpoint_state(self, state: dict) -> None:
    """Restores ``checkpoint_state``; raises ``checkpointing.CheckpointMismatch`` if it
    belongs to another configuration."""
    checkpointing.restore_agent_state(self, state)
    try:
      self._replay.from_state_dict(state['replay'])
    except (KeyError, TypeError, ValueError) as e:
      raise checkpointing.CheckpointMismatch(f'replay buffer: {e}') from None
    self.cycle_gradient_steps = int(state['cycle_gradient_steps'])
    # The interrupted episode restarts: its partial segment must not continue into the new one.
    self._replay.end_segment()
