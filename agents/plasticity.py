"""Plasticity operations shared by every agent family (DrQ, BBF) and the warm-start study.

Implements the parameter-space operations of "Slow and Steady Wins the Race: Maintaining
Plasticity with Hare and Tortoise Networks" (Lee et al., ICML 2024), sections 4.1 and 5.3,
and the re-initialisation baselines it compares against:

* EMA / Tortoise update      tortoise <- m * tortoise + (1 - m) * hare       (m = 1 - tau)
* Hare & Tortoise reset      hare <- tortoise  (optionally: optimizer state <- fresh)
* Shrink & Perturb           p <- shrink * p + perturb * p_fresh  on selected sub-trees
                             (Ash & Adams 2020; BBF's variant interpolates with a fresh init)
* Head reset / re-init       p <- p_fresh on selected sub-trees (Nikishin et al. 2022)

``tortoise_step`` (EMA, then the H&T reset on its period), ``reset_network`` (S&P and
re-initialisation of one network) and ``reset_learner`` (that reset on online, target and
optimizer state) are the compositions DrQ, BBF and the warm-start trainer call.

Every function is pure, works on arbitrary parameter pytrees (flax ``FrozenDict`` or plain
dicts) and is safe to call inside ``jax.jit``. Floats (tau, shrink, perturb) may be traced
values. Sub-trees are chosen by *path prefixes* of the flattened parameter tree, e.g.
``("params/Dense_",)`` selects every ``Dense_k`` layer of a flax module; the selection itself
is static (computed from the tree structure at trace time), so it costs nothing at run time.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Sequence

import jax
import jax.numpy as jnp

from agents.learner_state import LearnerState

PyTree = Any


# --------------------------------------------------------------------------- selection

def leaf_paths(tree: PyTree) -> list[str]:
  """Returns the '/'-joined key path of every leaf of ``tree``, in flattening order.

  Example: ``{'params': {'Dense_0': {'kernel': x}}}`` -> ``['params/Dense_0/kernel']``.
  """
  paths_and_leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  return ['/'.join(_key_name(k) for k in path) for path, _ in paths_and_leaves]


def _key_name(key) -> str:
  for attr in ('key', 'name', 'idx'):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def select_mask(tree: PyTree, prefixes: Sequence[str] | None) -> PyTree:
  """A pytree of Python bools, True where the leaf's path starts with one of ``prefixes``.

  Args:
    tree: pytree, the parameters.
    prefixes: sequence of str, path prefixes ('params/Dense_'); None selects every leaf,
      an empty sequence selects none.

  Raises:
    ValueError: if a prefix matches no leaf (a misspelt layer name would otherwise make a
      reset silently do nothing). The message lists the available paths.
  """
  paths = leaf_paths(tree)
  if prefixes is None:
    flags = [True] * len(paths)
  else:
    prefixes = tuple(prefixes)
    for prefix in prefixes:
      if not any(p.startswith(prefix) for p in paths):
        raise ValueError(
            f'Parameter prefix {prefix!r} matches no parameter. Available paths: '
            + ', '.join(paths))
    flags = [any(p.startswith(prefix) for prefix in prefixes) for p in paths]
  treedef = jax.tree_util.tree_structure(tree)
  return jax.tree_util.tree_unflatten(treedef, flags)


def _where_mask(mask: PyTree | None, new: PyTree, old: PyTree) -> PyTree:
  """Leaf-wise ``new if mask else old``; ``mask=None`` takes ``new`` everywhere."""
  if mask is None:
    return new
  return jax.tree_util.tree_map(lambda m, n, o: n if m else o, mask, new, old)


# --------------------------------------------------------------------------- operations

def ema_update(tortoise: PyTree, hare: PyTree, tau) -> PyTree:
  """Tortoise (target) update: ``tortoise <- (1 - tau) * tortoise + tau * hare``.

  ``tau = 1`` is a hard copy (Dopamine's target sync); the paper's momentum m is 1 - tau.
  """
  return jax.tree_util.tree_map(
      lambda t, h: (1.0 - tau) * t + tau * h, tortoise, hare)


def hare_tortoise_reset(hare: PyTree, tortoise: PyTree, mask: PyTree | None = None) -> PyTree:
  """Hare & Tortoise reset: returns the new Hare, equal to the Tortoise (on ``mask``).

  Without a mask the Hare's own weights are forgotten entirely (paper Algorithm 1).
  """
  if mask is None:
    return jax.tree_util.tree_map(lambda t: t, tortoise)
  return _where_mask(mask, tortoise, hare)


def shrink_perturb(params: PyTree, fresh: PyTree, shrink, perturb,
                   mask: PyTree | None = None) -> PyTree:
  """Shrink & Perturb: ``p <- shrink * p + perturb * p_fresh`` on the leaves in ``mask``.

  Args:
    params: pytree, current parameters.
    fresh: pytree of the same structure, a fresh random initialisation (the perturbation).
    shrink: float, factor on the current weights (BBF: 0.5).
    perturb: float, factor on the fresh weights (BBF: 0.5).
    mask: pytree of bools from ``select_mask``, or None for every leaf.
  """
  mixed = jax.tree_util.tree_map(lambda p, f: shrink * p + perturb * f, params, fresh)
  return _where_mask(mask, mixed, params)


def reinitialize(params: PyTree, fresh: PyTree, mask: PyTree | None = None) -> PyTree:
  """Head reset: the leaves in ``mask`` take their fresh values, the others are kept."""
  return _where_mask(mask, fresh, params)


def reset_optimizer_state(opt_state: PyTree, fresh_opt_state: PyTree,
                          params_mask: PyTree | None = None) -> PyTree:
  """Re-initialises optimizer statistics for the parameters in ``params_mask``.

  Optax states hold parameter-shaped sub-trees (Adam's mu and nu) next to scalars (the step
  count). Parameter-shaped sub-trees are reset leaf-wise with ``params_mask``; scalar leaves
  are reset only when every parameter is (``params_mask`` None), as in a full re-init.
  """
  if params_mask is None:
    return fresh_opt_state
  params_treedef = jax.tree_util.tree_structure(params_mask)

  def is_params_like(node):
    try:
      return jax.tree_util.tree_structure(node) == params_treedef
    except Exception:  # pylint: disable=broad-except
      return False

  def merge(old_node, fresh_node):
    if is_params_like(old_node):
      return _where_mask(params_mask, fresh_node, old_node)
    return old_node

  return jax.tree_util.tree_map(merge, opt_state, fresh_opt_state, is_leaf=is_params_like)


def schedule_off(period) -> bool:
  """True for a period known at trace time to turn its schedule off (None or an int <= 0)."""
  return period is None or (isinstance(period, int) and period <= 0)


def periodic(step, period):
  """True (traced bool) when ``step`` is a positive multiple of ``period``; False if period <= 0.

  ``period`` is a Python int (a static schedule: no test is traced when it is off) or a traced
  integer (a schedule that changes between phases, as the warm-start study's does).
  """
  if schedule_off(period):
    return jnp.asarray(False)
  if isinstance(period, int):
    return jnp.logical_and(step > 0, step % period == 0)
  return jnp.logical_and(jnp.logical_and(period > 0, step > 0),
                         step % jnp.maximum(period, 1) == 0)


def tortoise_step(hare: PyTree, tortoise: PyTree, opt_state: PyTree, step, *, tau,
                  reset_period, init_optimizer: Callable[[PyTree], PyTree] | None = None,
                  frozen: PyTree | None = None, reset_due=None):
  """The Tortoise's part of a gradient step: EMA, then the Hare & Tortoise reset on its period.

  One home for DrQ's, BBF's and the warm-start trainer's Tortoise (paper Algorithm 1):

    tortoise <- (1 - tau) tortoise + tau hare          (every step; skipped if tau is None)
    if step is a positive multiple of reset_period:
      hare <- tortoise;  opt_state <- init_optimizer(hare)  (if given)

  Args:
    hare: pytree, the Hare after this step's update (any structure: the warm-start trainer
      passes (params, batch_stats)).
    tortoise: pytree of the same structure.
    opt_state: the optimizer state, returned unchanged unless a reset re-initialises it.
    step: int scalar, gradient steps done including this one.
    tau: EMA rate (float or traced), or None for no EMA (a Tortoise kept elsewhere).
    reset_period: int (static; 0 or None: no reset) or traced int (0: no reset).
    init_optimizer: ``hare -> fresh optimizer state``, to restart the optimizer at a reset.
    frozen: optional mask (``select_mask``) of Tortoise leaves kept bit-identical (BBF's
      frozen layers: an EMA of equal values would still round).
    reset_due: optional traced bool that decides the reset instead of the period (then
      ``reset_period`` is ignored): for schedules that are not multiples of one period, such as
      the warm-start study's epochs of each phase's own data, worked out by the caller.

  Returns:
    (hare, tortoise, opt_state, reset) with ``reset`` a traced bool: whether it fired.
  """
  if tau is not None:
    new_tortoise = ema_update(tortoise, hare, tau)
    tortoise = new_tortoise if frozen is None else _where_mask(frozen, tortoise, new_tortoise)
  if reset_due is not None:
    due = jnp.asarray(reset_due, bool)
  elif schedule_off(reset_period):  # static: no lax.cond is traced at all
    return hare, tortoise, opt_state, jnp.asarray(False)
  else:
    due = periodic(step, reset_period)

  def reset(old_hare, old_opt_state):
    new_hare = hare_tortoise_reset(old_hare, tortoise)
    return new_hare, (old_opt_state if init_optimizer is None else init_optimizer(new_hare))
  hare, opt_state = apply_if(due, reset, hare, opt_state)
  return hare, tortoise, opt_state, due


def apply_if(predicate, fn: Callable[..., PyTree], *operands) -> PyTree:
  """``fn(*operands)`` if ``predicate`` else ``operands`` unchanged, inside jit (lax.cond).

  ``fn`` must return a structure equal to the tuple of operands (or the single operand).
  """
  single = len(operands) == 1
  def true_fn(ops):
    out = fn(*ops)
    return (out,) if single else tuple(out)
  out = jax.lax.cond(predicate, true_fn, lambda ops: tuple(ops), tuple(operands))
  return out[0] if single else out


def reset_network(params: PyTree, fresh: PyTree, *, shrink, perturb,
                  sp_prefixes: Sequence[str] | None = (),
                  reinit_prefixes: Sequence[str] | None = ()) -> PyTree:
  """One periodic reset of a network: S&P on ``sp_prefixes``, re-init on ``reinit_prefixes``.

  BBF's reset is S&P (0.5 / 0.5) on the encoder and transition model and a re-initialisation
  of the head; DrQ's head reset is re-initialisation of the dense layers alone. Prefixes are
  static; the two selections must not overlap.
  """
  sp_mask = select_mask(params, sp_prefixes) if sp_prefixes != () else None
  reinit_mask = select_mask(params, reinit_prefixes) if reinit_prefixes != () else None
  if sp_mask is not None and reinit_mask is not None:
    overlap = [a and b for a, b in zip(jax.tree_util.tree_leaves(sp_mask),
                                       jax.tree_util.tree_leaves(reinit_mask))]
    if any(overlap):
      raise ValueError('S&P and re-initialisation prefixes select the same parameters.')
  if sp_mask is not None:
    params = shrink_perturb(params, fresh, shrink, perturb, sp_mask)
  if reinit_mask is not None:
    params = reinitialize(params, fresh, reinit_mask)
  return params


def reset_learner(state: LearnerState, fresh_online: PyTree, fresh_target: PyTree, *,
                  shrink, perturb, sp_prefixes: Sequence[str] | None = (),
                  reinit_prefixes: Sequence[str] | None = (), reset_target: bool = True,
                  init_optimizer: Callable[[PyTree], PyTree] | None = None,
                  optimizer_prefixes: Sequence[str] | None = (),
                  restart_optimizer: bool = False) -> LearnerState:
  """A periodic reset of a learner (DrQ's S&P and head reset, BBF's reset): ``reset_network``
  on the online network and, if ``reset_target``, on the target, then a fresh optimizer state
  for the parameters in ``optimizer_prefixes``.

  Args:
    state: LearnerState, the learner before the reset (its ``rng`` is not used: the caller
      draws the fresh initialisations).
    fresh_online, fresh_target: pytrees, fresh initialisations for each network (DrQ passes
      one for both, BBF one each, as their public codes do).
    shrink, perturb: floats (may be traced), the S&P factors on current and fresh weights.
    sp_prefixes, reinit_prefixes: static path prefixes (see ``reset_network``).
    reset_target: bool, reset the target network too.
    init_optimizer: ``online -> fresh optimizer state``; needed when the optimizer resets.
    optimizer_prefixes: the parameters whose optimizer statistics (Adam's moments) restart,
      the step count kept: ``()`` none, path prefixes, or ``None`` every parameter.
    restart_optimizer: bool, a whole fresh optimizer state instead (step count included).

  Returns:
    The LearnerState after the reset (``grad_step`` and ``rng`` unchanged).
  """
  reset = functools.partial(reset_network, shrink=shrink, perturb=perturb,
                            sp_prefixes=sp_prefixes, reinit_prefixes=reinit_prefixes)
  online = reset(state.online, fresh_online)
  target = reset(state.target, fresh_target) if reset_target else state.target
  opt_state = state.opt_state
  if restart_optimizer:
    opt_state = init_optimizer(online)
  elif optimizer_prefixes is None or tuple(optimizer_prefixes) != ():
    opt_state = reset_optimizer_state(opt_state, init_optimizer(online),
                                      select_mask(online, optimizer_prefixes))
  return state.replace(online=online, target=target, opt_state=opt_state)


__all__: Iterable[str] = (
    'leaf_paths', 'select_mask', 'ema_update', 'hare_tortoise_reset', 'shrink_perturb',
    'reinitialize', 'reset_optimizer_state', 'schedule_off', 'periodic', 'tortoise_step',
    'apply_if', 'reset_network', 'reset_learner')
