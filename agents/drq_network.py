"""DrQ(eps)'s network with its widths as gin settings, for runs at tiny widths on a CPU.

``DrQNetwork`` is Dopamine's ``FullRainbowNetwork`` (Nature CNN torso: convolutions of 32, 64
and 64 channels with kernels 8, 4, 3 and strides 4, 2, 1; a 512-unit layer; dueling head) with
the channel counts and the hidden layer's size as fields. At its defaults it is the same
network: the same parameter names and shapes, and the same values from the same key
(``tests/test_learning_check.py`` checks it), so head resets and S&P prefixes carry over.
Bound with ``JaxFullRainbowAgent.network = @DrQNetwork`` and ``DrQNetwork.conv_features``,
``DrQNetwork.hidden_units`` (``gin/includes/learning_check.gin``).
"""

from __future__ import annotations

import time
from typing import Sequence

import gin
import jax
import jax.numpy as jnp
from dopamine.discrete_domains import atari_lib
from dopamine.jax import networks
from flax import linen as nn


@gin.configurable
class DrQNetwork(networks.FullRainbowNetwork):
  """``FullRainbowNetwork`` with settable widths (see the module docstring).

  Attributes (beyond Dopamine's num_actions, num_atoms, noisy, dueling, distributional,
  inputs_preprocessed):
    conv_features: ints, output channels of the three convolutions (32, 64, 64).
    hidden_units: int, units of the hidden dense layer (512).
  """

  conv_features: Sequence[int] = (32, 64, 64)
  hidden_units: int = 512

  @nn.compact
  def __call__(self, x, support, eval_mode=False, key=None):
    if key is None:  # as Dopamine's (only noisy layers draw from it)
      key = jax.random.PRNGKey(int(time.time() * 1e6))
    if not self.inputs_preprocessed:
      x = networks.preprocess_atari_inputs(x)
    for features, kernel, stride in zip(tuple(self.conv_features), (8, 4, 3), (4, 2, 1)):
      x = nn.Conv(features=int(features), kernel_size=(kernel, kernel),
                  strides=(stride, stride), kernel_init=nn.initializers.xavier_uniform())(x)
      x = nn.relu(x)
    x = x.reshape((-1))
    net = networks.feature_layer(key, self.noisy, eval_mode=eval_mode)
    x = nn.relu(net(x, features=int(self.hidden_units)))
    if self.dueling:
      adv = net(x, features=self.num_actions * self.num_atoms)
      value = net(x, features=self.num_atoms)
      adv = adv.reshape((self.num_actions, self.num_atoms))
      value = value.reshape((1, self.num_atoms))
      logits = value + (adv - jnp.mean(adv, axis=0, keepdims=True))
    else:
      logits = net(x, features=self.num_actions * self.num_atoms)
      logits = logits.reshape((self.num_actions, self.num_atoms))
    if self.distributional:
      probabilities = nn.softmax(logits)
      q_values = jnp.sum(support * probabilities, axis=1)
      return atari_lib.RainbowNetworkType(q_values, logits, probabilities)
    return atari_lib.DQNNetworkType(jnp.sum(logits, axis=1))
