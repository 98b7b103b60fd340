"""The BBF network (Schwarzer et al. 2023, "Bigger, Better, Faster"), in flax, batched.

One module with five named parts, the names every reset and optimizer mask refers to:

* ``encoder``           Impala-style ResNet: per stage a 3x3 conv, a 3x3/2 max pool and
                        ``num_blocks`` residual blocks; stage widths (16, 32, 32) x width_scale.
                        Output renormalised to [0, 1] per sample (MuZero-style).
* ``transition_model``  SPR's action-conditioned convolutional dynamics model, rolled over the
                        ``jumps`` future actions (one cell, shared weights).
* ``projection``        the ``hidden_dim`` (2048) dense layer: Q-head hidden layer and SPR
                        projection at once, as in BBF.
* ``predictor``         SPR's prediction layer on top of the projection.
* ``head``              dueling C51 head (advantage and value streams).

Inputs are float frames in [0, 1], shape (batch, 84, 84, stack). The module imports neither
TensorFlow nor Dopamine, so it runs where only jax, flax, optax and numpy are installed.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

PART_NAMES = ('encoder', 'transition_model', 'projection', 'predictor', 'head')
SPR_ONLY_PARTS = ('transition_model', 'predictor')

_init = nn.initializers.xavier_uniform()


class NetworkOutput(NamedTuple):
  q_values: jnp.ndarray        # (B, A)
  logits: jnp.ndarray          # (B, A, atoms)
  probabilities: jnp.ndarray   # (B, A, atoms)
  latent: jnp.ndarray          # (B, H, W, C) spatial latent of the encoder


def renormalize(x: jnp.ndarray) -> jnp.ndarray:
  """Min-max normalisation of each sample over all its non-batch axes."""
  flat = x.reshape(x.shape[0], -1)
  low = flat.min(axis=-1, keepdims=True)
  high = flat.max(axis=-1, keepdims=True)
  return ((flat - low) / (high - low + 1e-5)).reshape(x.shape)


class ResidualStage(nn.Module):
  """Conv 3x3, max pool 3x3 stride 2, then ``num_blocks`` pre-activation residual blocks."""
  features: int
  num_blocks: int

  @nn.compact
  def __call__(self, x):
    conv = lambda: nn.Conv(self.features, (3, 3), padding='SAME', kernel_init=_init)
    x = conv()(x)
    x = nn.max_pool(x, window_shape=(3, 3), strides=(2, 2), padding='SAME')
    for _ in range(self.num_blocks):
      y = conv()(nn.relu(x))
      y = conv()(nn.relu(y))
      x = x + y
    return x


class ImpalaEncoder(nn.Module):
  width_scale: int = 4
  stage_widths: tuple = (16, 32, 32)
  num_blocks: int = 2

  @nn.compact
  def __call__(self, x):
    for width in self.stage_widths:
      x = ResidualStage(int(width * self.width_scale), self.num_blocks)(x)
    return nn.relu(x)


class TransitionCell(nn.Module):
  """One SPR dynamics step: latent (B, H, W, C) and action (B,) -> next latent."""
  num_actions: int
  latent_dim: int

  @nn.compact
  def __call__(self, latent, action):
    onehot = jax.nn.one_hot(action, self.num_actions)  # (B, A)
    planes = jnp.broadcast_to(onehot[:, None, None, :],
                              latent.shape[:-1] + (self.num_actions,))
    x = jnp.concatenate([latent, planes], axis=-1)
    x = nn.relu(nn.Conv(self.latent_dim, (3, 3), padding='SAME', kernel_init=_init)(x))
    x = nn.relu(nn.Conv(self.latent_dim, (3, 3), padding='SAME', kernel_init=_init)(x))
    x = renormalize(x)
    return x, x


class TransitionModel(nn.Module):
  """Rolls ``TransitionCell`` over actions (B, K) with shared weights -> latents (B, K, ...).

  A Python loop over the K (5) steps rather than ``nn.scan``: XLA's CPU backend runs the
  convolutions of a while-loop body several times slower.
  """
  num_actions: int
  latent_dim: int

  @nn.compact
  def __call__(self, latent, actions):
    cell = TransitionCell(self.num_actions, self.latent_dim, name='cell')
    latents = []
    for k in range(actions.shape[1]):
      latent, _ = cell(latent, actions[:, k])
      latents.append(latent)
    return jnp.stack(latents, axis=1)


class DuelingHead(nn.Module):
  num_actions: int
  num_atoms: int
  dueling: bool = True

  @nn.compact
  def __call__(self, x):
    advantage = nn.Dense(self.num_actions * self.num_atoms, kernel_init=_init,
                         name='advantage')(x)
    advantage = advantage.reshape(x.shape[0], self.num_actions, self.num_atoms)
    if not self.dueling:
      return advantage
    value = nn.Dense(self.num_atoms, kernel_init=_init, name='value')(x)
    value = value.reshape(x.shape[0], 1, self.num_atoms)
    return value + advantage - advantage.mean(axis=1, keepdims=True)


class BBFNetwork(nn.Module):
  """Encoder, transition model, projection, predictor and dueling C51 head (see module doc)."""
  num_actions: int
  num_atoms: int = 51
  width_scale: int = 4
  hidden_dim: int = 2048
  stage_widths: tuple = (16, 32, 32)
  num_blocks: int = 2
  dueling: bool = True
  renormalize: bool = True

  def setup(self):
    self.encoder = ImpalaEncoder(self.width_scale, self.stage_widths, self.num_blocks)
    self.transition_model = TransitionModel(
        self.num_actions, int(self.stage_widths[-1] * self.width_scale))
    self.projection = nn.Dense(self.hidden_dim, kernel_init=_init)
    self.predictor = nn.Dense(self.hidden_dim, kernel_init=_init)
    self.head = DuelingHead(self.num_actions, self.num_atoms, self.dueling)

  def encode(self, x):
    latent = self.encoder(x)
    return renormalize(latent) if self.renormalize else latent

  def q_from_latent(self, latent, support) -> NetworkOutput:
    hidden = nn.relu(self.projection(latent.reshape(latent.shape[0], -1)))
    logits = self.head(hidden)
    probabilities = nn.softmax(logits, axis=-1)
    q_values = jnp.sum(probabilities * support, axis=-1)
    return NetworkOutput(q_values, logits, probabilities, latent)

  def __call__(self, x, support) -> NetworkOutput:
    return self.q_from_latent(self.encode(x), support)

  def encode_project(self, x):
    """SPR target embedding of frames x: projection of the flattened latent (no ReLU)."""
    latent = self.encode(x)
    return self.projection(latent.reshape(latent.shape[0], -1))

  def spr_predictions(self, latent, actions):
    """Predicted embeddings (B, K, hidden) of the K states after ``actions`` (B, K)."""
    latents = self.transition_model(latent, actions)  # (B, K, H, W, C)
    b, k = latents.shape[:2]
    projected = self.projection(latents.reshape(b * k, -1))
    return self.predictor(projected).reshape(b, k, -1)

  def init_all(self, x, actions, support):
    """Touches every part, so that ``init`` creates all parameters (SPR parts included)."""
    out = self(x, support)
    return out, self.spr_predictions(out.latent, actions)


def init_params(network: BBFNetwork, rng, stack_size: int = 4, jumps: int = 5,
                frame_shape=(84, 84)):
  """All parameters of ``network`` (SPR parts included), from one PRNG key."""
  x = jnp.zeros((1, *frame_shape, stack_size), jnp.float32)
  actions = jnp.zeros((1, max(jumps, 1)), jnp.int32)
  support = jnp.linspace(-10.0, 10.0, network.num_atoms)
  return network.init(rng, x, actions, support, method=BBFNetwork.init_all)


def count_params(params) -> int:
  return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
