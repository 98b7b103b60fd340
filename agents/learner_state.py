"""The learner's state as one pytree, shared by the DrQ and BBF agents.

``LearnerState`` holds everything a jitted training step reads and writes: the online network
(the Hare), the target network (the Tortoise), the optimizer state, the gradient-step counter
and the PRNG key. The jitted steps (``agents.drq.augment_and_train``,
``agents.bbf_learning.train_groups``, ``agents.plasticity.reset_learner``) take a
``LearnerState`` and return the next one, so that no counter or key is carried beside it by hand.

``DopamineLearnerAttributes`` is the bridge to Dopamine's agents, whose own code reads and
writes ``online_params``, ``target_network_params``, ``optimizer_state`` and ``_rng``: in our
subclasses those names are views of the one ``learner`` pytree, and ``gradient_steps`` (what
the runner logs and checkpoints) is read from its counter.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

PyTree = Any


@struct.dataclass
class LearnerState:
  """One learner's state (a pytree; every field is a leaf or a sub-tree).

  Attributes:
    online: pytree, the online (Hare) parameters, trained by gradients.
    target: pytree of the same structure, the target (Tortoise) parameters.
    opt_state: the optax state of ``online``.
    grad_step: int32 scalar, gradient steps done since the start of training.
    rng: PRNG key, split by every step that draws random numbers.
  """
  online: PyTree = None
  target: PyTree = None
  opt_state: PyTree = None
  grad_step: jax.Array = None
  rng: jax.Array = None


def _view(field: str, doc: str) -> property:
  def get(self):
    return getattr(self.learner, field)

  def set_(self, value):
    self.learner = self.learner.replace(**{field: value})
  return property(get, set_, doc=doc)


class DopamineLearnerAttributes:
  """Mixin for a Dopamine agent subclass: Dopamine's attribute names as views of ``learner``.

  Dopamine's ``__init__`` assigns ``_rng``, ``online_params``, ``optimizer_state`` and
  ``target_network_params`` one by one, before ``learner`` exists: the first assignment
  starts an empty ``LearnerState`` with ``grad_step`` 0.
  """

  @property
  def learner(self) -> LearnerState:
    state = self.__dict__.get('_learner_state')
    if state is None:
      state = LearnerState(grad_step=jnp.zeros((), jnp.int32))
    return state

  @learner.setter
  def learner(self, state: LearnerState) -> None:
    self.__dict__['_learner_state'] = state

  online_params = _view('online', 'Online (Hare) parameters: ``learner.online``.')
  target_network_params = _view('target', 'Target (Tortoise) parameters: ``learner.target``.')
  optimizer_state = _view('opt_state', 'Optimizer state: ``learner.opt_state``.')
  _rng = _view('rng', 'PRNG key: ``learner.rng``.')

  @property
  def gradient_steps(self) -> int:
    """Gradient steps done (the learner's counter, read from the device)."""
    return int(self.learner.grad_step)
