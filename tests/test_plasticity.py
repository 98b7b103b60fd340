"""Exact-value tests for ``agents/plasticity.py``.

The module implements the parameter-space operations of Hare & Tortoise networks (EMA /
Tortoise update, Hare <- Tortoise reset) and the baselines it is compared against (Shrink &
Perturb, head re-initialisation, optimizer-state reset), plus the helpers used to drive them
inside ``jax.jit`` (path-prefix selection masks, ``periodic``, ``apply_if``).

Every test runs on three tiny hand-made float32 parameter trees shaped like a flax module's
``{'params': {'Conv_0': ..., 'Dense_0': ..., 'Dense_1': ...}}`` (19 scalars in all) and
compares against numbers worked out by hand. All inputs and factors are dyadic rationals, so
every expected value is exactly representable in float32 and the comparisons are bit-exact
(``assert_array_equal``), both eagerly and under ``jax.jit`` with traced factors.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.core import FrozenDict

from agents import plasticity as P
from tests import helpers


# --------------------------------------------------------------------------- fixtures

def _f32(x):
  return jnp.asarray(np.asarray(x, dtype=np.float32))


def _net(conv_k, conv_b, d0_k, d0_b, d1_k, d1_b):
  return {'params': {
      'Conv_0': {'kernel': _f32(conv_k), 'bias': _f32(conv_b)},   # (2, 2), (2,)
      'Dense_0': {'kernel': _f32(d0_k), 'bias': _f32(d0_b)},      # (2, 3), (3,)
      'Dense_1': {'kernel': _f32(d1_k), 'bias': _f32(d1_b)},      # (3, 1), (1,)
  }}


def hare():
  """The online (Hare) / current parameters. No zero entries (gradients below use 2 * p)."""
  return _net([[1, 2], [3, 4]], [1, -1],
              [[1, -2, 3], [-4, 5, -6]], [0.5, 1, 1.5],
              [[2], [4], [-8]], [10])


def tortoise():
  """The slow (Tortoise / target) parameters."""
  return _net([[5, 6], [7, 8]], [-3, 3],
              [[1, 2, 3], [4, 5, 6]], [0.5, 0, -0.5],
              [[2], [0], [8]], [-2])


def fresh():
  """A 'fresh initialisation' used as the perturbation / re-init source."""
  return _net([[-1, 0], [1, 2]], [0, 4],
              [[0, 0, 0], [1, 1, 1]], [-1, -1, -1],
              [[1], [1], [1]], [2])


PATHS = [
    'params/Conv_0/bias', 'params/Conv_0/kernel',
    'params/Dense_0/bias', 'params/Dense_0/kernel',
    'params/Dense_1/bias', 'params/Dense_1/kernel',
]


def _mask(conv, dense0, dense1):
  return {'params': {
      'Conv_0': {'kernel': conv, 'bias': conv},
      'Dense_0': {'kernel': dense0, 'bias': dense0},
      'Dense_1': {'kernel': dense1, 'bias': dense1},
  }}


def assert_tree_exact(actual, expected):
  """Same structure, every leaf float32 with bit-identical values (up to -0.0 == 0.0)."""
  assert jax.tree_util.tree_structure(actual) == jax.tree_util.tree_structure(expected)
  for path, a, e in zip(P.leaf_paths(actual), jax.tree_util.tree_leaves(actual),
                        jax.tree_util.tree_leaves(expected)):
    a = np.asarray(a)
    e = np.asarray(e)
    assert a.dtype == e.dtype, path
    assert a.shape == e.shape, path
    np.testing.assert_array_equal(a, e, err_msg=path)


def assert_bits_identical(a, b):
  """Leaf-wise identical bit patterns (stronger than ==: distinguishes -0.0 and NaNs)."""
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    x = np.asarray(x)
    y = np.asarray(y)
    assert x.dtype == y.dtype and x.shape == y.shape
    np.testing.assert_array_equal(x.reshape(-1).view(np.uint8), y.reshape(-1).view(np.uint8))


# --------------------------------------------------------------------------- leaf_paths / select_mask

def test_leaf_paths_flattening_order():
  assert P.leaf_paths(hare()) == PATHS


def test_leaf_paths_frozen_dict():
  tree = FrozenDict(hare())
  assert P.leaf_paths(tree) == PATHS
  mask = P.select_mask(tree, ('params/Dense_1',))
  assert isinstance(mask, FrozenDict)
  assert jax.tree_util.tree_leaves(mask) == [False, False, False, False, True, True]


def test_select_mask_dense_prefix_selects_both_dense_layers_not_conv():
  mask = P.select_mask(hare(), ('params/Dense_',))
  assert mask == _mask(conv=False, dense0=True, dense1=True)
  # Python bools, not arrays: the selection is static.
  assert all(type(m) is bool for m in jax.tree_util.tree_leaves(mask))


def test_select_mask_several_prefixes_and_leaf_level_prefix():
  mask = P.select_mask(hare(), ('params/Conv_0', 'params/Dense_1/kernel'))
  assert jax.tree_util.tree_leaves(mask) == [True, True, False, False, False, True]


def test_select_mask_none_selects_all():
  assert P.select_mask(hare(), None) == _mask(True, True, True)


def test_select_mask_empty_selects_none():
  assert P.select_mask(hare(), ()) == _mask(False, False, False)
  assert P.select_mask(hare(), []) == _mask(False, False, False)


def test_select_mask_misspelt_prefix_raises_and_lists_paths():
  with pytest.raises(ValueError, match='params/Dence_') as info:
    P.select_mask(hare(), ('params/Dense_0', 'params/Dence_'))
  message = str(info.value)
  for path in PATHS:
    assert path in message


# --------------------------------------------------------------------------- ema_update

# tortoise <- 0.75 * tortoise + 0.25 * hare, worked by hand.
EMA_QUARTER = _net([[4, 5], [6, 7]], [-2, 2],
                   [[1, 1, 3], [2, 5, 3]], [0.5, 0.25, 0],
                   [[2], [1], [4]], [1])


def test_ema_update_exact_values():
  assert_tree_exact(P.ema_update(tortoise(), hare(), 0.25), EMA_QUARTER)


def test_ema_update_tau_one_copies_hare_tau_zero_keeps_tortoise():
  assert_bits_identical(P.ema_update(tortoise(), hare(), 1.0), hare())
  assert_bits_identical(P.ema_update(tortoise(), hare(), 0.0), tortoise())


def test_ema_update_jit_traced_tau():
  traces = []

  @jax.jit
  def step(t, h, tau):
    traces.append(tau)
    return P.ema_update(t, h, tau)

  assert_tree_exact(step(tortoise(), hare(), jnp.float32(0.25)), EMA_QUARTER)
  assert_bits_identical(step(tortoise(), hare(), jnp.float32(1.0)), hare())
  assert_bits_identical(step(tortoise(), hare(), jnp.float32(0.0)), tortoise())
  # One compilation: tau really is a traced value, not baked in as a constant.
  assert len(traces) == 1
  assert isinstance(traces[0], jax.core.Tracer)


# --------------------------------------------------------------------------- tortoise_step

def _opt_state():
  return {'count': jnp.int32(7)}


def _fresh_opt(new_hare):
  del new_hare
  return {'count': jnp.int32(0)}


@pytest.mark.parametrize('period', [3, 'traced'])
def test_tortoise_step_is_ema_then_reset_on_positive_multiples_of_the_period(period):
  @jax.jit
  def step_fn(step, traced_period):
    return P.tortoise_step(hare(), tortoise(), _opt_state(), step, tau=0.25,
                           reset_period=3 if period == 3 else traced_period,
                           init_optimizer=_fresh_opt)
  for step in (1, 2, 3, 4, 6):
    new_hare, new_tortoise, opt, reset = step_fn(jnp.int32(step), jnp.int32(3))
    assert_tree_exact(new_tortoise, EMA_QUARTER)
    assert bool(reset) == (step % 3 == 0)
    # At a reset the Hare takes the Tortoise *after* this step's EMA, and Adam restarts.
    assert_tree_exact(new_hare, EMA_QUARTER if step % 3 == 0 else hare())
    assert int(opt['count']) == (0 if step % 3 == 0 else 7)


@pytest.mark.parametrize('period', [0, None, 'traced zero'])
def test_tortoise_step_without_a_period_never_resets(period):
  @jax.jit
  def step_fn(step, traced_period):
    return P.tortoise_step(hare(), tortoise(), _opt_state(), step, tau=0.25,
                           reset_period=traced_period if period == 'traced zero' else period)
  new_hare, new_tortoise, opt, reset = step_fn(jnp.int32(6), jnp.int32(0))
  assert not bool(reset)
  assert_tree_exact(new_hare, hare())
  assert_tree_exact(new_tortoise, EMA_QUARTER)
  assert int(opt['count']) == 7


def test_tortoise_step_resets_when_the_caller_says_so_whatever_the_step():
  @jax.jit
  def step_fn(step, due):
    return P.tortoise_step(hare(), tortoise(), _opt_state(), step, tau=0.25, reset_period=3,
                           init_optimizer=_fresh_opt, reset_due=due)
  for step, due in ((3, False), (4, True)):  # the period is ignored
    new_hare, new_tortoise, opt, reset = step_fn(jnp.int32(step), jnp.asarray(due))
    assert bool(reset) == due
    assert_tree_exact(new_tortoise, EMA_QUARTER)
    assert_tree_exact(new_hare, EMA_QUARTER if due else hare())
    assert int(opt['count']) == (0 if due else 7)


def test_tortoise_step_keeps_the_optimizer_without_init_and_skips_ema_without_tau():
  new_hare, new_tortoise, opt, reset = P.tortoise_step(
      hare(), tortoise(), _opt_state(), jnp.int32(2), tau=None, reset_period=2)
  assert bool(reset)
  assert_bits_identical(new_tortoise, tortoise())  # no EMA: the Tortoise is kept elsewhere
  assert_bits_identical(new_hare, tortoise())
  assert int(opt['count']) == 7


def test_tortoise_step_frozen_leaves_stay_bit_identical():
  frozen = P.select_mask(tortoise(), ('params/Conv_0',))
  _, new_tortoise, _, _ = P.tortoise_step(hare(), tortoise(), _opt_state(), jnp.int32(1),
                                          tau=0.25, reset_period=0, frozen=frozen)
  assert_bits_identical(new_tortoise['params']['Conv_0'], tortoise()['params']['Conv_0'])
  assert_tree_exact(new_tortoise['params']['Dense_0'], EMA_QUARTER['params']['Dense_0'])


def test_tortoise_step_on_a_pair_of_trees_resets_both():
  # The warm-start trainer's Tortoise: (params, batch-norm statistics).
  stats, ema_stats = {'mean': _f32([4.0])}, {'mean': _f32([8.0])}
  (new_params, new_stats), (ema, new_ema_stats), _, reset = P.tortoise_step(
      (hare(), stats), (tortoise(), ema_stats), _opt_state(), jnp.int32(4), tau=0.25,
      reset_period=4)
  assert bool(reset)
  assert_tree_exact(ema, EMA_QUARTER)
  assert float(new_ema_stats['mean'][0]) == 7.0  # 0.75 * 8 + 0.25 * 4
  assert_tree_exact(new_params, EMA_QUARTER)
  assert float(new_stats['mean'][0]) == 7.0


# --------------------------------------------------------------------------- hare_tortoise_reset

def test_hare_tortoise_reset_returns_tortoise():
  h, t = hare(), tortoise()
  new_hare = P.hare_tortoise_reset(h, t)
  assert_bits_identical(new_hare, t)
  assert helpers.trees_equal(new_hare, t)
  assert_bits_identical(h, hare())  # inputs untouched


def test_hare_tortoise_reset_under_jit_with_apply_if():
  @jax.jit
  def maybe_reset(step, h, t):
    # With two operands fn must return a pair (new hare, tortoise unchanged).
    return P.apply_if(P.periodic(step, 3),
                      lambda h_, t_: (P.hare_tortoise_reset(h_, t_), t_), h, t)[0]

  assert_bits_identical(maybe_reset(jnp.int32(6), hare(), tortoise()), tortoise())
  assert_bits_identical(maybe_reset(jnp.int32(5), hare(), tortoise()), hare())


def test_hare_tortoise_reset_with_mask_changes_only_masked_leaves():
  mask = P.select_mask(hare(), ('params/Dense_',))
  new_hare = P.hare_tortoise_reset(hare(), tortoise(), mask)
  expected = {'params': {'Conv_0': hare()['params']['Conv_0'],
                         'Dense_0': tortoise()['params']['Dense_0'],
                         'Dense_1': tortoise()['params']['Dense_1']}}
  assert_bits_identical(new_hare, expected)


# --------------------------------------------------------------------------- shrink_perturb

# 0.5 * hare + 0.25 * fresh on every leaf, worked by hand.
SP_ALL = _net([[0.25, 1], [1.75, 2.5]], [0.5, 0.5],
              [[0.5, -1, 1.5], [-1.75, 2.75, -2.75]], [0, 0.25, 0.5],
              [[1.25], [2.25], [-3.75]], [5.5])


def _sp_dense_only():
  h = hare()
  return {'params': {'Conv_0': h['params']['Conv_0'],
                     'Dense_0': SP_ALL['params']['Dense_0'],
                     'Dense_1': SP_ALL['params']['Dense_1']}}


def test_shrink_perturb_masked_exact_and_unmasked_bit_identical():
  mask = P.select_mask(hare(), ('params/Dense_',))
  out = P.shrink_perturb(hare(), fresh(), 0.5, 0.25, mask)
  assert_tree_exact(out, _sp_dense_only())
  assert_bits_identical(out['params']['Conv_0'], hare()['params']['Conv_0'])


def test_shrink_perturb_no_mask_touches_every_leaf():
  assert_tree_exact(P.shrink_perturb(hare(), fresh(), 0.5, 0.25), SP_ALL)


def test_shrink_perturb_factor_order():
  # shrink multiplies params, perturb multiplies fresh: (1, 0) keeps, (0, 1) replaces.
  assert_bits_identical(P.shrink_perturb(hare(), fresh(), 1.0, 0.0), hare())
  assert_tree_exact(P.shrink_perturb(hare(), fresh(), 0.0, 1.0), fresh())


def test_shrink_perturb_jit_traced_factors():
  mask = P.select_mask(hare(), ('params/Dense_',))  # static, closed over
  fn = jax.jit(lambda p, f, s, q: P.shrink_perturb(p, f, s, q, mask))
  out = fn(hare(), fresh(), jnp.float32(0.5), jnp.float32(0.25))
  assert_tree_exact(out, _sp_dense_only())
  assert_bits_identical(out['params']['Conv_0'], hare()['params']['Conv_0'])


# --------------------------------------------------------------------------- reinitialize

def test_reinitialize_masked_leaves_take_fresh_values():
  mask = P.select_mask(hare(), ('params/Dense_1',))
  out = P.reinitialize(hare(), fresh(), mask)
  expected = {'params': {'Conv_0': hare()['params']['Conv_0'],
                         'Dense_0': hare()['params']['Dense_0'],
                         'Dense_1': fresh()['params']['Dense_1']}}
  assert_bits_identical(out, expected)


def test_reinitialize_no_mask_and_under_jit():
  assert_bits_identical(P.reinitialize(hare(), fresh()), fresh())
  mask = P.select_mask(hare(), ('params/Conv_0',))
  out = jax.jit(lambda p, f: P.reinitialize(p, f, mask))(hare(), fresh())
  expected = {'params': {'Conv_0': fresh()['params']['Conv_0'],
                         'Dense_0': hare()['params']['Dense_0'],
                         'Dense_1': hare()['params']['Dense_1']}}
  assert_bits_identical(out, expected)


# --------------------------------------------------------------------------- reset_optimizer_state

def _adam_after_one_update(tx):
  params = hare()
  fresh_state = tx.init(params)
  grads = jax.grad(lambda p: sum(jnp.sum(x ** 2) for x in jax.tree_util.tree_leaves(p)))(
      params)  # = 2 * params, no zero entries
  _, state = tx.update(grads, fresh_state, params)
  return fresh_state, state


def _adam_substate(state):
  found = [s for s in jax.tree_util.tree_leaves(
      state, is_leaf=lambda s: isinstance(s, optax.ScaleByAdamState))
           if isinstance(s, optax.ScaleByAdamState)]
  assert len(found) == 1
  return found[0]


@pytest.mark.parametrize('make_tx', [
    lambda: optax.adam(1e-3),
    lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3)),
], ids=['adam', 'clip+adam'])
def test_reset_optimizer_state_resets_only_masked_moments(make_tx):
  fresh_state, state = _adam_after_one_update(make_tx())
  old = _adam_substate(state)
  # Sanity: one real update made every moment non-zero and count 1.
  for leaf in jax.tree_util.tree_leaves((old.mu, old.nu)):
    assert np.all(np.asarray(leaf) != 0)
  assert int(old.count) == 1

  mask = P.select_mask(hare(), ('params/Dense_',))
  new_state = P.reset_optimizer_state(state, fresh_state, mask)
  assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)
  new = _adam_substate(new_state)
  fresh_adam = _adam_substate(fresh_state)

  for moment in ('mu', 'nu'):
    new_m = getattr(new, moment)['params']
    old_m = getattr(old, moment)['params']
    fresh_m = getattr(fresh_adam, moment)['params']
    for layer in ('Dense_0', 'Dense_1'):
      assert_bits_identical(new_m[layer], fresh_m[layer])
      for leaf in jax.tree_util.tree_leaves(new_m[layer]):
        np.testing.assert_array_equal(np.asarray(leaf), 0.0)
    assert_bits_identical(new_m['Conv_0'], old_m['Conv_0'])
  # Scalar step count is kept on a partial reset.
  assert int(new.count) == 1
  assert np.asarray(new.count).dtype == np.asarray(old.count).dtype


def test_reset_optimizer_state_mu_values_exact():
  # Adam's first moment after one step from zero is (1 - b1) * g = 0.5 * g with b1 = 0.5.
  tx = optax.adam(1e-3, b1=0.5, b2=0.75)
  fresh_state, state = _adam_after_one_update(tx)
  mask = P.select_mask(hare(), ('params/Conv_0',))
  new = _adam_substate(P.reset_optimizer_state(state, fresh_state, mask))
  h = hare()['params']
  # mu = 0.5 * (2 * p) = p; nu = 0.25 * (2 p)^2 = p^2.
  assert_tree_exact(new.mu['params']['Dense_1'], h['Dense_1'])
  assert_tree_exact(new.nu['params']['Dense_0'],
                    jax.tree_util.tree_map(lambda x: x * x, h['Dense_0']))
  assert_tree_exact(new.mu['params']['Conv_0'],
                    jax.tree_util.tree_map(jnp.zeros_like, h['Conv_0']))


def test_reset_optimizer_state_none_mask_returns_fresh_state():
  fresh_state, state = _adam_after_one_update(optax.adam(1e-3))
  out = P.reset_optimizer_state(state, fresh_state, None)
  assert helpers.trees_equal(out, fresh_state)
  assert int(_adam_substate(out).count) == 0


def test_reset_optimizer_state_under_jit():
  fresh_state, state = _adam_after_one_update(optax.adam(1e-3))
  mask = P.select_mask(hare(), ('params/Dense_1',))
  out = jax.jit(lambda s, f: P.reset_optimizer_state(s, f, mask))(state, fresh_state)
  eager = P.reset_optimizer_state(state, fresh_state, mask)
  assert_bits_identical(out, eager)


# --------------------------------------------------------------------------- periodic

def test_periodic_values():
  assert not bool(P.periodic(0, 4))
  for step in (4, 8, 12, 400):
    assert bool(P.periodic(step, 4)), step
  for step in (1, 2, 3, 5, 7, 9, 401):
    assert not bool(P.periodic(step, 4)), step
  assert bool(P.periodic(1, 1)) and bool(P.periodic(7, 1))


@pytest.mark.parametrize('period', [0, -1, -4, None])
def test_periodic_never_fires_for_nonpositive_period(period):
  for step in (0, 1, 4, 8):
    assert not bool(P.periodic(step, period))
  assert not bool(jax.jit(lambda s: P.periodic(s, period))(jnp.int32(4)))


def test_periodic_jit_traced_step_and_vectorised():
  fn = jax.jit(lambda s: P.periodic(s, 3))
  got = [bool(fn(jnp.int32(s))) for s in range(10)]
  assert got == [False, False, False, True, False, False, True, False, False, True]
  np.testing.assert_array_equal(
      np.asarray(P.periodic(jnp.arange(10), 3)),
      [False, False, False, True, False, False, True, False, False, True])


# --------------------------------------------------------------------------- apply_if

def test_apply_if_single_operand_traced_predicate():
  traces = []

  @jax.jit
  def fn(pred, tree):
    traces.append(pred)
    return P.apply_if(pred, lambda t: jax.tree_util.tree_map(lambda x: 2.0 * x + 1.0, t),
                      tree)

  expected = jax.tree_util.tree_map(lambda x: 2.0 * x + 1.0, hare())
  assert_tree_exact(fn(jnp.bool_(True), hare()), expected)
  assert_bits_identical(fn(jnp.bool_(False), hare()), hare())
  assert len(traces) == 1  # predicate is traced, one compile for both branches


def test_apply_if_two_operands_traced_predicate():
  @jax.jit
  def fn(pred, a, b):
    return P.apply_if(pred, lambda x, y: (x + y, x * y), a, b)

  a, b = _f32([1.5, -2.0, 3.0]), _f32([2.0, 4.0, -0.5])
  out_a, out_b = fn(jnp.bool_(True), a, b)
  np.testing.assert_array_equal(np.asarray(out_a), [3.5, 2.0, 2.5])
  np.testing.assert_array_equal(np.asarray(out_b), [3.0, -8.0, -1.5])
  out_a, out_b = fn(jnp.bool_(False), a, b)
  np.testing.assert_array_equal(np.asarray(out_a), np.asarray(a))
  np.testing.assert_array_equal(np.asarray(out_b), np.asarray(b))


def test_apply_if_two_pytree_operands_with_shrink_perturb():
  mask = P.select_mask(hare(), ('params/Dense_',))

  @jax.jit
  def fn(step, params, fresh_params):
    return P.apply_if(P.periodic(step, 2),
                      lambda p, f: (P.shrink_perturb(p, f, 0.5, 0.25, mask), f),
                      params, fresh_params)

  p, f = fn(jnp.int32(4), hare(), fresh())
  assert_tree_exact(p, _sp_dense_only())
  assert_bits_identical(f, fresh())
  p, f = fn(jnp.int32(3), hare(), fresh())
  assert_bits_identical(p, hare())
  assert_bits_identical(f, fresh())


# --------------------------------------------------------------------------- reset_network

def test_reset_network_sp_and_reinit_in_one_call():
  out = P.reset_network(hare(), fresh(), shrink=0.5, perturb=0.25,
                        sp_prefixes=('params/Conv_',), reinit_prefixes=('params/Dense_1',))
  expected = {'params': {'Conv_0': SP_ALL['params']['Conv_0'],   # [[.25, 1], [1.75, 2.5]], [.5, .5]
                         'Dense_0': hare()['params']['Dense_0'],
                         'Dense_1': fresh()['params']['Dense_1']}}
  assert_tree_exact(out, expected)
  assert_bits_identical(out['params']['Dense_0'], hare()['params']['Dense_0'])
  assert_bits_identical(out['params']['Dense_1'], fresh()['params']['Dense_1'])


def test_reset_network_bbf_style_under_jit():
  # BBF: S&P 0.5/0.5 on the encoder, re-init of the head; factors traced.
  fn = jax.jit(lambda p, f, s, q: P.reset_network(
      p, f, shrink=s, perturb=q, sp_prefixes=('params/Conv_0', 'params/Dense_0'),
      reinit_prefixes=('params/Dense_1',)))
  out = fn(hare(), fresh(), jnp.float32(0.5), jnp.float32(0.25))
  expected = {'params': {'Conv_0': SP_ALL['params']['Conv_0'],
                         'Dense_0': SP_ALL['params']['Dense_0'],
                         'Dense_1': fresh()['params']['Dense_1']}}
  assert_tree_exact(out, expected)


def test_reset_network_defaults_do_nothing_and_single_kinds():
  assert_bits_identical(
      P.reset_network(hare(), fresh(), shrink=0.5, perturb=0.25), hare())
  assert_tree_exact(
      P.reset_network(hare(), fresh(), shrink=0.5, perturb=0.25,
                      sp_prefixes=('params/Dense_',)),
      _sp_dense_only())
  assert_bits_identical(
      P.reset_network(hare(), fresh(), shrink=0.5, perturb=0.25, reinit_prefixes=None),
      fresh())


def test_reset_network_overlapping_prefixes_raise():
  with pytest.raises(ValueError, match='same parameters'):
    P.reset_network(hare(), fresh(), shrink=0.5, perturb=0.5,
                    sp_prefixes=('params/Dense_',), reinit_prefixes=('params/Dense_1',))
  with pytest.raises(ValueError):
    P.reset_network(hare(), fresh(), shrink=0.5, perturb=0.5,
                    sp_prefixes=None, reinit_prefixes=('params/Conv_0/bias',))


def test_reset_network_misspelt_prefix_raises():
  with pytest.raises(ValueError, match='Available paths'):
    P.reset_network(hare(), fresh(), shrink=0.5, perturb=0.5,
                    sp_prefixes=('params/Conv_',), reinit_prefixes=('params/Head',))


# --------------------------------------------------------------------------- trees_equal / count_selected

def test_trees_equal():
  assert helpers.trees_equal(hare(), hare())
  assert not helpers.trees_equal(hare(), tortoise())
  changed = hare()
  changed['params']['Dense_1']['bias'] = _f32([10.5])
  assert not helpers.trees_equal(hare(), changed)
  fewer = hare()
  del fewer['params']['Dense_1']
  assert not helpers.trees_equal(hare(), fewer)


def test_count_selected_counts_scalars():
  h = hare()
  assert helpers.count_selected(P.select_mask(h, None), h) == 19
  assert helpers.count_selected(P.select_mask(h, ()), h) == 0
  assert helpers.count_selected(P.select_mask(h, ('params/Dense_',)), h) == 13   # 6+3 + 3+1
  assert helpers.count_selected(P.select_mask(h, ('params/Conv_0/kernel',)), h) == 4
  assert helpers.count_selected(P.select_mask(h, ('params/Conv_0', 'params/Dense_1/bias')), h) == 7
