"""The jitted update of warmstart/train.py: EMA, Hare & Tortoise resets, phases, warm-up."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from warmstart import methods, models, train
from tests import helpers


@pytest.fixture(scope='module')
def data():
  rng = np.random.default_rng(0)
  x = rng.random((64, 8, 8, 1), dtype=np.float32)
  y = rng.integers(0, 10, 64).astype(np.int32)
  return x, y


def make_trainer(spec, steps_per_call=1):
  model = models.make_model('mlp_paper', 10, width=0.1)  # 10 features
  return train.Trainer(model, methods.parse_method(spec), train.OptimConfig(batch_size=16),
                       (8, 8, 1), steps_per_call)


@pytest.fixture(scope='module')
def ht_trainer():
  return make_trainer('hare_tortoise:ema=0.9')


def run_updates(trainer, state, data, count, ht_period):
  x, y = data
  for i in range(count):
    state, _, _ = trainer.train_call(state, jnp.asarray(x), jnp.asarray(y),
                                     np.arange(16)[None] + 16 * (i % 4), jax.random.PRNGKey(i),
                                     warmup_steps=2, ht_period=ht_period)
  return state


def test_warmup_learning_rate():
  lrs = [float(train.warmup_learning_rate(s, 4, 1.0)) for s in range(6)]
  assert lrs == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_batch_schedule_is_shuffled_epochs_without_repeats():
  schedule = train.batch_schedule(10, 7, 3, np.random.default_rng(0))
  assert schedule.shape == (7, 3)
  first_epoch = schedule[:3].ravel()  # 3 batches of 3 from 10 examples per epoch
  assert len(set(first_epoch.tolist())) == 9
  assert train.batch_schedule(5, 2, 256, np.random.default_rng(0)).shape == (2, 5)


def test_ema_update_inside_the_step_follows_the_formula(ht_trainer, data):
  state = ht_trainer.init_state(jax.random.PRNGKey(0))
  ema_before = jax.tree_util.tree_map(np.asarray, state.ema_params)
  state = run_updates(ht_trainer, state, data, 1, ht_period=0)
  expected = jax.tree_util.tree_map(lambda e, p: 0.9 * e + 0.1 * np.asarray(p), ema_before,
                                    state.params)
  for got, want in zip(jax.tree_util.tree_leaves(state.ema_params),
                       jax.tree_util.tree_leaves(expected)):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_hare_is_reset_to_the_tortoise_exactly_every_period(ht_trainer, data):
  state = ht_trainer.init_state(jax.random.PRNGKey(0))
  state = run_updates(ht_trainer, state, data, 2, ht_period=3)
  assert int(state.num_ht_resets) == 0
  assert not helpers.trees_equal(state.params, state.ema_params)
  state = run_updates(ht_trainer, state, data, 1, ht_period=3)
  assert int(state.num_ht_resets) == 1
  assert helpers.trees_equal(state.params, state.ema_params)
  assert helpers.trees_equal(state.batch_stats, state.ema_batch_stats)
  state = run_updates(ht_trainer, state, data, 3, ht_period=3)
  assert int(state.num_ht_resets) == 2 and int(state.step) == 6


def test_scanned_calls_equal_single_update_calls(data):
  one, four = make_trainer('ema+aug'), make_trainer('ema+aug', steps_per_call=4)
  x, y = jnp.asarray(data[0]), jnp.asarray(data[1])
  s1, s4 = one.init_state(jax.random.PRNGKey(0)), four.init_state(jax.random.PRNGKey(0))
  indices = np.arange(64).reshape(4, 16)
  for i in range(4):
    s1, _, _ = one.train_call(s1, x, y, indices[i:i + 1], jax.random.PRNGKey(9), 2, 0)
  s4, _, _ = four.train_call(s4, x, y, indices, jax.random.PRNGKey(9), 2, 0)
  for a, b in zip(jax.tree_util.tree_leaves((s1.params, s1.ema_params, s1.batch_stats)),
                  jax.tree_util.tree_leaves((s4.params, s4.ema_params, s4.batch_stats))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert int(s1.step) == int(s4.step) == 4
  other, _, _ = four.train_call(four.init_state(jax.random.PRNGKey(0)), x, y, indices,
                                jax.random.PRNGKey(10), 2, 0)
  assert not helpers.trees_equal(other.params, s4.params)  # the key matters (augmentation)


def test_start_phase_shrinks_resets_head_and_restarts_the_optimizer(data):
  trainer = make_trainer('shrink_perturb+head_reset')
  state = trainer.init_state(jax.random.PRNGKey(0))
  state = run_updates(trainer, state, data, 3, ht_period=0)
  trained = jax.tree_util.tree_map(np.asarray, state.params)
  initial = jax.tree_util.tree_map(np.asarray, state.initial_params)
  state = trainer.start_phase(state, is_first=False)
  got = state.params
  np.testing.assert_allclose(got['backbone']['Dense_0']['kernel'],
                             0.2 * trained['backbone']['Dense_0']['kernel']
                             + 0.8 * initial['backbone']['Dense_0']['kernel'], rtol=1e-5,
                             atol=1e-7)
  np.testing.assert_array_equal(got['head']['Dense_0']['kernel'],
                                initial['head']['Dense_0']['kernel'])
  assert int(state.phase_step) == 0
  adam_state = state.opt_state[1]
  assert int(adam_state.count) == 0
  assert all(float(jnp.abs(m).sum()) == 0 for m in jax.tree_util.tree_leaves(adam_state.mu))
  unchanged = trainer.start_phase(state, is_first=True)  # the first phase never shrinks
  assert helpers.trees_equal(unchanged.params, state.params)


def test_the_predictor_is_the_ema_network_only_for_ema_methods(ht_trainer, data):
  state = run_updates(ht_trainer, ht_trainer.init_state(jax.random.PRNGKey(0)), data, 2, 0)
  assert ht_trainer.predictor(state)[0] is state.ema_params
  plain = make_trainer('warm')
  state = plain.init_state(jax.random.PRNGKey(0))
  assert plain.predictor(state)[0] is state.params


def test_redo_recycles_dead_feature_units(data):
  trainer = make_trainer('redo:redo_tau=0.5')
  state = trainer.init_state(jax.random.PRNGKey(0))
  params = jax.tree_util.tree_map(np.array, state.params)
  params['backbone']['BatchNorm_1']['bias'][:3] = -100.0  # units 0-2 never fire
  params['head']['Dense_0']['kernel'][:] = 1.0
  state = state.replace(params=jax.tree_util.tree_map(jnp.asarray, params))
  state, count = trainer.redo(state, data[0][:32], jax.random.PRNGKey(1))
  assert count >= 3
  head = np.asarray(state.params['head']['Dense_0']['kernel'])
  assert (head[:3] == 0).all()
  assert (np.asarray(state.params['backbone']['BatchNorm_1']['bias'])[:3] == 0).all()


def test_plasticity_metrics_of_a_fresh_network(data):
  trainer = make_trainer('warm')
  state = trainer.init_state(jax.random.PRNGKey(0))
  metrics = trainer.plasticity_metrics(state, data[0], data[1])
  assert metrics['weight_distance'] == 0.0
  assert metrics['weight_magnitude'] > 0
  assert 0.0 < metrics['zero_activation_ratio'] < 1.0
  assert 1 <= metrics['srank'] <= 10
