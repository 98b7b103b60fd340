"""Divergence detection: a non-finite loss or parameter ends a run instead of becoming a score.

Two checks, both cheap:

* ``observe_loss`` runs after every gradient step, on the device and without a host sync (an
  asynchronous jitted call on scalars). It keeps a ``LossWatch``: the first gradient step whose
  loss was non-finite, and the last finite loss with its step.
* ``first_nonfinite_leaf`` scans a parameter pytree in one jitted reduction; the runner calls it
  (through ``find``) once per progress chunk, so a run whose loss is not observed (Dopamine's
  stock DrQ update keeps its loss to itself) is still caught within a chunk.

``find`` combines them into a ``Divergence`` (or None) that names the quantity and the step.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from agents import plasticity


@struct.dataclass
class LossWatch:
  """Device-side record of the losses seen.

  Attributes:
    first_nonfinite_step: int32 scalar, gradient step of the first non-finite loss (-1: none).
    last_finite_loss: float32 scalar, the last finite loss (NaN before the first).
    last_finite_step: int32 scalar, its gradient step (-1 before the first).
  """
  first_nonfinite_step: jnp.ndarray
  last_finite_loss: jnp.ndarray
  last_finite_step: jnp.ndarray

  @classmethod
  def create(cls) -> 'LossWatch':
    return cls(first_nonfinite_step=jnp.asarray(-1, jnp.int32),
               last_finite_loss=jnp.asarray(jnp.nan, jnp.float32),
               last_finite_step=jnp.asarray(-1, jnp.int32))


@jax.jit
def observe_loss(watch: LossWatch, losses, gradient_step) -> LossWatch:
  """Records the losses of the gradient steps ending at ``gradient_step``.

  Args:
    watch: LossWatch, the record so far.
    losses: scalar or float array (k,): the mean losses of gradient steps
      ``gradient_step - k + 1 .. gradient_step`` (BBF runs k steps per jitted call).
    gradient_step: int scalar, the gradient step of the last loss (counting from 1).
  """
  losses = jnp.atleast_1d(jnp.asarray(losses, jnp.float32))
  steps = jnp.asarray(gradient_step, jnp.int32) - losses.shape[0] + 1 + jnp.arange(
      losses.shape[0], dtype=jnp.int32)
  finite = jnp.isfinite(losses)
  first_bad_here = jnp.min(jnp.where(finite, jnp.iinfo(jnp.int32).max, steps))
  first_bad = jnp.where((watch.first_nonfinite_step < 0) & ~jnp.all(finite), first_bad_here,
                        watch.first_nonfinite_step)
  any_finite = jnp.any(finite)
  last = jnp.max(jnp.where(finite, jnp.arange(losses.shape[0]), -1))
  return LossWatch(first_nonfinite_step=first_bad,
                   last_finite_loss=jnp.where(any_finite, losses[last], watch.last_finite_loss),
                   last_finite_step=jnp.where(any_finite, steps[last], watch.last_finite_step))


@jax.jit
def _leaf_finite_flags(tree) -> jnp.ndarray:
  leaves = jax.tree_util.tree_leaves(tree)
  if not leaves:
    return jnp.ones((0,), bool)
  return jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves])


def first_nonfinite_leaf(tree) -> str | None:
  """Path ('params/Dense_0/kernel') of the first leaf of ``tree`` holding a NaN or inf; None if
  every leaf is finite. One jitted reduction and one small transfer."""
  flags = np.asarray(_leaf_finite_flags(tree))
  bad = np.flatnonzero(~flags)
  if bad.size == 0:
    return None
  return plasticity.leaf_paths(tree)[int(bad[0])]


@dataclasses.dataclass
class Divergence:
  """What went non-finite and when.

  Attributes:
    quantity: str, e.g. 'loss' or 'online parameters (params/Dense_0/kernel)'.
    gradient_step: int or None, the gradient step it was first seen at (None: only known to
      lie after ``last_good_gradient_step``).
    last_good_gradient_step: int or None, the last gradient step known to be finite.
    last_finite_loss: float or None, the last finite loss observed.
    last_finite_loss_step: int or None, its gradient step.
  """
  quantity: str
  gradient_step: int | None
  last_good_gradient_step: int | None
  last_finite_loss: float | None
  last_finite_loss_step: int | None

  def describe(self) -> str:
    if self.gradient_step is not None:
      when = f'at gradient step {self.gradient_step}'
    elif self.last_good_gradient_step is not None:
      when = f'after gradient step {self.last_good_gradient_step} (the last check it passed)'
    else:
      when = 'before the first check'
    loss = ('no finite loss was observed' if self.last_finite_loss is None else
            f'last finite loss {self.last_finite_loss:.6g} at gradient step '
            f'{self.last_finite_loss_step}')
    return f'non-finite {self.quantity} {when}; {loss}'


def find(watch: LossWatch | None, trees: dict, last_good_gradient_step: int | None
         ) -> Divergence | None:
  """A ``Divergence`` if ``watch`` saw a non-finite loss or a tree of ``trees`` holds one.

  Args:
    watch: LossWatch or None (the agent does not observe its loss).
    trees: {name: pytree}, e.g. {'online parameters': ..., 'target parameters': ...}.
    last_good_gradient_step: int or None, the gradient step of the last check that passed.
  """
  last_loss, last_loss_step, first_bad = None, None, -1
  if watch is not None:
    first_bad, loss, loss_step = jax.device_get(
        (watch.first_nonfinite_step, watch.last_finite_loss, watch.last_finite_step))
    if int(loss_step) >= 0:
      last_loss, last_loss_step = float(loss), int(loss_step)
  if int(first_bad) >= 0:
    return Divergence('loss', int(first_bad), last_good_gradient_step, last_loss,
                      last_loss_step)
  for name, tree in trees.items():
    leaf = first_nonfinite_leaf(tree)
    if leaf is not None:
      return Divergence(f'{name} ({leaf})', None, last_good_gradient_step, last_loss,
                        last_loss_step)
  return None
