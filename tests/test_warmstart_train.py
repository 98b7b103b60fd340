"""The jitted update of warmstart/train.py: EMA, Hare & Tortoise resets, phases and their
stops, warm-up, ReDo and the official test loop's dead-unit side effect."""

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


@pytest.fixture(scope='module')
def aug_trainer():  # augmentation: every update draws from its key
  return make_trainer('ema+aug')


def run_updates(trainer, state, data, count, reset_every=0):
  """``count`` single-update calls; an H&T reset after every update whose run-wide count is a
  multiple of ``reset_every`` (0: none)."""
  x, y = data
  for i in range(count):
    reset = reset_every > 0 and (int(state.step) + 1) % reset_every == 0
    state, _, _ = trainer.train_call(state, jnp.asarray(x), jnp.asarray(y),
                                     np.arange(16)[None] + 16 * (i % 4), jax.random.PRNGKey(i),
                                     warmup_steps=2, ht_resets=[reset])
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
  state = run_updates(ht_trainer, state, data, 1)
  expected = jax.tree_util.tree_map(lambda e, p: 0.9 * e + 0.1 * np.asarray(p), ema_before,
                                    state.params)
  for got, want in zip(jax.tree_util.tree_leaves(state.ema_params),
                       jax.tree_util.tree_leaves(expected)):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_hare_is_reset_to_the_tortoise_exactly_when_the_schedule_says(ht_trainer, data):
  state = ht_trainer.init_state(jax.random.PRNGKey(0))
  state = run_updates(ht_trainer, state, data, 2, reset_every=3)
  assert int(state.num_ht_resets) == 0
  assert not helpers.trees_equal(state.params, state.ema_params)
  state = run_updates(ht_trainer, state, data, 1, reset_every=3)
  assert int(state.num_ht_resets) == 1
  assert helpers.trees_equal(state.params, state.ema_params)
  assert helpers.trees_equal(state.batch_stats, state.ema_batch_stats)
  state = run_updates(ht_trainer, state, data, 3, reset_every=3)
  assert int(state.num_ht_resets) == 2 and int(state.step) == 6


def test_scanned_calls_equal_single_update_calls(data, aug_trainer):
  one, four = aug_trainer, make_trainer('ema+aug', steps_per_call=4)
  x, y = jnp.asarray(data[0]), jnp.asarray(data[1])
  s1, s4 = one.init_state(jax.random.PRNGKey(0)), four.init_state(jax.random.PRNGKey(0))
  indices = np.arange(64).reshape(4, 16)
  for i in range(4):
    s1, _, _ = one.train_call(s1, x, y, indices[i:i + 1], jax.random.PRNGKey(9), 2)
  s4, _, _ = four.train_call(s4, x, y, indices, jax.random.PRNGKey(9), 2)
  for a, b in zip(jax.tree_util.tree_leaves((s1.params, s1.ema_params, s1.batch_stats)),
                  jax.tree_util.tree_leaves((s4.params, s4.ema_params, s4.batch_stats))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert int(s1.step) == int(s4.step) == 4
  other, _, _ = four.train_call(four.init_state(jax.random.PRNGKey(0)), x, y, indices,
                                jax.random.PRNGKey(10), 2)
  assert not helpers.trees_equal(other.params, s4.params)  # the key matters (augmentation)


def test_start_phase_shrinks_resets_head_and_restarts_the_optimizer(data):
  trainer = make_trainer('shrink_perturb+head_reset')
  state = trainer.init_state(jax.random.PRNGKey(0))
  state = run_updates(trainer, state, data, 3)
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
  state = run_updates(ht_trainer, ht_trainer.init_state(jax.random.PRNGKey(0)), data, 2)
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


def test_a_phase_resets_after_the_named_updates_and_stops_where_asked(data):
  trainer = make_trainer('hare_tortoise:ema=0.9', steps_per_call=2)  # scans of 2 updates
  seen = []

  def at_stop(state, point):
    synced = helpers.trees_equal(state.params, state.ema_params)
    seen.append((point, int(state.step), int(state.num_ht_resets), synced))
    return state
  x, y = data
  train.train_phase(trainer, trainer.init_state(jax.random.PRNGKey(0)), x, y, 6,
                    np.random.default_rng(0), jax.random.PRNGKey(1), ht_resets=[1, 4],
                    stops=[0, 4, 6], at_stop=at_stop)
  # chunks 0-2 | 2-4 | 4-6: a reset inside a scan (after update 1) and one that ends a chunk
  # (after 4); right after a reset the Hare is the Tortoise, updates later it is not
  assert seen == [(0, 0, 0, True), (4, 4, 2, True), (6, 6, 2, False)]


def test_where_a_phase_stops_does_not_change_its_updates(data, aug_trainer):
  trainer = aug_trainer
  x, y = data
  run = lambda stops: train.train_phase(
      trainer, trainer.init_state(jax.random.PRNGKey(0)), x, y, 6, np.random.default_rng(0),
      jax.random.PRNGKey(1), stops=stops, at_stop=lambda state, point: state)
  assert helpers.trees_equal(run([]).params, run([0, 2, 3, 6]).params)


class HiddenHeadNet(models.Classifier):
  """8 ReLU features and a head Dense(6)-ReLU-Dense(5)-ReLU-Dense(classes), no batch norm."""

  def setup(self):
    self.backbone = models.MLPBackbone((8,), use_batch_norm=False)
    self.head = models.Head(self.num_classes, hidden=(6, 5))


def test_the_official_side_effect_redraws_dead_hidden_head_units_only(data):
  trainer = train.Trainer(HiddenHeadNet(num_classes=10), methods.parse_method('warm'),
                          train.OptimConfig(batch_size=16), (8, 8, 1))
  state = trainer.init_state(jax.random.PRNGKey(0))
  params = jax.tree_util.tree_map(np.array, state.params)
  params['backbone']['Dense_0']['bias'][:] = 1.0  # every feature positive
  for layer in ('Dense_0', 'Dense_1'):  # positive weights, zero biases: every hidden unit
    params['head'][layer]['kernel'][:] = 0.1  # fires ...
    params['head'][layer]['bias'][:] = 0.0
  params['head']['Dense_0']['bias'][[0, 1]] = -100.0  # ... but units 0, 1 of the first layer
  params['head']['Dense_1']['bias'][2] = -100.0       # and unit 2 of the second
  features = trainer.model.apply({'params': params}, data[0], train=False, method='embed')
  params['head']['Dense_0']['bias'][3] = -0.1 * np.median(np.sum(features, axis=1))  # fires
  before = jax.tree_util.tree_map(jnp.asarray, params)                # on half: kept
  state, count = trainer.reset_dead_head_units(state.replace(params=before), data[0],
                                               jax.random.PRNGKey(5))
  fresh = jax.tree_util.tree_map(np.asarray,
                                 trainer.init_variables(jax.random.PRNGKey(5))['params']['head'])
  after = jax.tree_util.tree_map(np.asarray, state.params['head'])
  assert count == 3
  before = jax.tree_util.tree_map(np.asarray, before)
  for layer, dead in (('Dense_0', [0, 1]), ('Dense_1', [2])):
    width = after[layer]['bias'].shape[0]
    kept = [u for u in range(width) if u not in dead]
    np.testing.assert_array_equal(after[layer]['kernel'][:, dead], fresh[layer]['kernel'][:, dead])
    np.testing.assert_array_equal(after[layer]['bias'][dead], fresh[layer]['bias'][dead])
    np.testing.assert_array_equal(after[layer]['kernel'][:, kept],
                                  before['head'][layer]['kernel'][:, kept])
    np.testing.assert_array_equal(after[layer]['bias'][kept], before['head'][layer]['bias'][kept])
  # outgoing weights and the output layer untouched (the official pairing zeroes none here)
  assert helpers.trees_equal(after['Dense_2'], before['head']['Dense_2'])
  assert helpers.trees_equal(state.params['backbone'], before['backbone'])
  # a head without hidden layers has nothing to re-draw
  plain = make_trainer('warm')
  plain_state = plain.init_state(jax.random.PRNGKey(0))
  same, none = plain.reset_dead_head_units(plain_state, data[0], jax.random.PRNGKey(5))
  assert none == 0 and helpers.trees_equal(same.params, plain_state.params)
