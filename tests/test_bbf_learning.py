"""BBF's network and learning rules (agents/bbf_networks.py, agents/bbf_learning.py).

Exact values on tiny networks: the parameter count at full width, the C51 projection, the
n-step/gamma annealing, SPR off = SPR parts untouched, the reset (which parts are shrunk,
re-initialised or kept), Hare & Tortoise resets every N gradient steps, AdamW's decay mask.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents import bbf_learning as bl
from agents import bbf_networks as bn
from agents import plasticity
from agents.learner_state import LearnerState
from tests import helpers

SUPPORT = jnp.linspace(-10.0, 10.0, 51)
TINY = dict(num_actions=4, width_scale=1, hidden_dim=32, stage_widths=(4, 8, 8), num_blocks=1)


def tiny_network():
  return bn.BBFNetwork(**TINY)


def random_batches(groups=2, batch=4, subseq=6, seed=0):
  r = np.random.default_rng(seed)
  return {
      'state': r.integers(0, 255, (groups, batch, subseq, 84, 84, 4), dtype=np.uint8),
      'action': r.integers(0, 4, (groups, batch, subseq)).astype(np.int32),
      'next_state': r.integers(0, 255, (groups, batch, 84, 84, 4), dtype=np.uint8),
      'return': r.normal(size=(groups, batch)).astype(np.float32),
      'terminal': r.random((groups, batch)) < 0.25,
      'discount': np.full((groups, batch), 0.97 ** 3, np.float32),
      'same_trajectory': np.ones((groups, batch, subseq), np.float32),
      'loss_weights': np.ones((groups, batch), np.float32),
  }


def train(network, params, spr_weight, calls, ht_reset_period=0, groups=2):
  frozen = () if spr_weight > 0 else bl.SPR_ONLY_PREFIXES
  optimizer = bl.make_optimizer(frozen_prefixes=frozen)
  config = bl.LearnerConfig(network=network, optimizer=optimizer, spr_weight=spr_weight,
                            ht_reset_period=ht_reset_period, frozen_prefixes=frozen)
  learner = LearnerState(online=params, target=jax.tree_util.tree_map(jnp.copy, params),
                         opt_state=optimizer.init(params), grad_step=jnp.zeros((), jnp.int32))
  history = []
  for call in range(calls):
    learner, metrics = bl.train_groups(
        config, learner.replace(rng=jax.random.PRNGKey(call)),
        random_batches(groups, seed=call), SUPPORT, jnp.float32(0.005))
    history.append((int(learner.grad_step),
                    helpers.trees_equal(learner.online, learner.target), metrics))
  return learner.online, learner.target, learner.opt_state, optimizer, history


def reset_networks(network, optimizer, online, target, opt_state, rng, shrink, perturb,
                   **kwargs):
  """``bl.reset_networks`` on loose parts; returns (online, target, opt_state, rng)."""
  out = bl.reset_networks(
      network, optimizer, LearnerState(online=online, target=target, opt_state=opt_state,
                                       grad_step=jnp.zeros((), jnp.int32), rng=rng),
      shrink, perturb, **kwargs)
  return out.online, out.target, out.opt_state, out.rng


@pytest.fixture(scope='module')
def tiny_params():
  return bn.init_params(tiny_network(), jax.random.PRNGKey(0))


# --------------------------------------------------------------------------- network

def test_full_width_network_shapes_and_parameter_count():
  network = bn.BBFNetwork(num_actions=18, width_scale=4)
  params = jax.eval_shape(lambda r: bn.init_params(network, r), jax.random.PRNGKey(0))
  sizes = helpers.part_sizes(params)
  # Impala stages 64/128/128 channels: 150,080 + 664,192 + 737,920.
  assert sizes['encoder'] == 1_552_192
  assert sizes['projection'] == 11 * 11 * 128 * 2048 + 2048 == 31_721_472
  assert sizes['head'] == 2048 * (18 * 51 + 51) + 18 * 51 + 51 == 1_985_481
  assert sizes['transition_model'] == 3 * 3 * (128 + 18) * 128 + 128 + 3 * 3 * 128 * 128 + 128
  assert sizes['predictor'] == 2048 * 2048 + 2048
  q_network = sizes['encoder'] + sizes['projection'] + sizes['head']
  assert q_network == 35_259_145          # the Q-network alone, 18 actions
  assert bn.count_params(params) == 39_771_401  # with the SPR parts

  x = jax.ShapeDtypeStruct((3, 84, 84, 4), jnp.float32)
  out = jax.eval_shape(lambda p, x: network.apply(p, x, SUPPORT), params, x)
  assert out.q_values.shape == (3, 18)
  assert out.logits.shape == out.probabilities.shape == (3, 18, 51)
  assert out.latent.shape == (3, 11, 11, 128)
  actions = jax.ShapeDtypeStruct((3, 5), jnp.int32)
  predictions = jax.eval_shape(
      lambda p, x, a: network.apply(p, network.apply(p, x, SUPPORT).latent, a,
                                    method=bn.BBFNetwork.spr_predictions), params, x, actions)
  assert predictions.shape == (3, 5, 2048)


def test_q_values_are_expectations_of_normalised_distributions(tiny_params):
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, 84, 84, 4))
  out = tiny_network().apply(tiny_params, x, SUPPORT)
  np.testing.assert_allclose(out.probabilities.sum(-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(out.q_values, (out.probabilities * SUPPORT).sum(-1), rtol=1e-5)
  latent = np.asarray(out.latent).reshape(2, -1)  # renormalised to [0, 1] per sample
  np.testing.assert_allclose(latent.min(-1), 0.0, atol=1e-6)
  np.testing.assert_allclose(latent.max(-1), 1.0, atol=1e-4)


# --------------------------------------------------------------------------- pieces

def reference_projection(target_support, probabilities, support):
  """Textbook C51 projection with explicit floor/ceil (Bellemare et al. 2017, Algorithm 1)."""
  v_min, v_max, delta = support[0], support[-1], support[1] - support[0]
  out = np.zeros((len(target_support), len(support)))
  for b in range(len(target_support)):
    for tz, p in zip(np.clip(target_support[b], v_min, v_max), probabilities[b]):
      position = (tz - v_min) / delta
      low, high = int(np.floor(position)), int(np.ceil(position))
      if low == high:
        out[b, low] += p
      else:
        out[b, low] += p * (high - position)
        out[b, high] += p * (position - low)
  return out


def test_project_distribution_matches_the_textbook_algorithm():
  support = np.linspace(-10.0, 10.0, 51)
  r = np.random.default_rng(0)
  probabilities = r.dirichlet(np.ones(51), size=5)
  rewards = np.array([0.0, 0.2, -1.0, 1.0, 0.7])
  gammas = np.array([0.97, 0.0, 0.99, 0.5, 1.3])  # 1.3 pushes mass past both ends
  target_support = rewards[:, None] + gammas[:, None] * support[None]
  got = np.asarray(bl.project_distribution(jnp.asarray(target_support, jnp.float32),
                                           jnp.asarray(probabilities, jnp.float32),
                                           jnp.asarray(support, jnp.float32)))
  np.testing.assert_allclose(got, reference_projection(target_support, probabilities, support),
                             atol=1e-5)
  np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-5)


def test_annealing_of_update_horizon_and_gamma():
  # Right after a reset: n = 10, gamma = 0.97; after cycle_steps: n = 3, gamma = 0.997.
  assert bl.update_horizon_at(0, 10_000, 10, 3) == 10
  assert bl.update_horizon_at(10_000, 10_000, 10, 3) == 3
  assert bl.update_horizon_at(50_000, 10_000, 10, 3) == 3
  assert bl.update_horizon_at(5_000, 10_000, 10, 3) == round(10 * 0.3 ** 0.5) == 5
  assert bl.gamma_at(0, 10_000, 0.97, 0.997) == pytest.approx(0.97, abs=1e-12)
  assert bl.gamma_at(10_000, 10_000, 0.97, 0.997) == pytest.approx(0.997, abs=1e-12)
  assert bl.gamma_at(5_000, 10_000, 0.97, 0.997) == pytest.approx(1 - (0.03 * 0.003) ** 0.5)
  assert bl.exponential_schedule(3, 0, 1.0, 0.3) == 0.3  # no annealing period


def test_augment_is_the_public_codes_augmentation_bit_for_bit():
  """The public BBF code's ``drq_image_aug`` is Dopamine 4.1.2's ``drq_image_augmentation``
  (the same lines): with the default crop positions ours draws the same numbers."""
  # pylint: disable=import-outside-toplevel
  from dopamine.labs.atari_100k import atari_100k_rainbow_agent
  images = jax.random.uniform(jax.random.PRNGKey(3), (6, 2, 84, 84, 4))
  for k in range(3):
    key = jax.random.PRNGKey(10 + k)
    np.testing.assert_array_equal(  # both jitted, as in the update (XLA fuses the intensity)
        jax.jit(bl.augment)(key, images),
        atari_100k_rainbow_agent.drq_image_augmentation(key, images))


@pytest.mark.parametrize('positions, offsets', [(None, set(range(8))), (8, set(range(8))),
                                                (9, set(range(9)))])
def test_augment_crop_positions(positions, offsets):
  # 16x16 images holding 100 r + c at pixel (r, c); pixel (4, 4) of a crop at offset (x, y) is
  # image pixel (x, y) of the original whatever the offset (0..8): never a padded one.
  image = 100 * np.arange(16)[:, None] + np.arange(16)[None, :]
  images = jnp.asarray(np.broadcast_to(image[None, :, :, None], (256, 16, 16, 1)), jnp.float32)
  seen = set()
  for k in range(4):
    out = np.asarray(bl.augment(jax.random.PRNGKey(k), images, intensity_scale=0.0,
                                crop_positions=positions))
    seen.update((v // 100, v % 100) for v in out[:, 4, 4, 0].astype(int))
  assert {x for x, _ in seen} == offsets and {y for _, y in seen} == offsets


def test_augment_crops_a_shifted_window_of_the_edge_padded_image():
  images = jax.random.uniform(jax.random.PRNGKey(0), (3, 2, 84, 84, 4))
  out = np.asarray(bl.augment(jax.random.PRNGKey(1), images, intensity_scale=0.0))
  assert out.shape == images.shape
  padded = np.pad(np.asarray(images), ((0, 0), (0, 0), (4, 4), (4, 4), (0, 0)), mode='edge')
  offsets = set()
  for b in range(3):
    for t in range(2):
      matches = [(x, y) for x in range(9) for y in range(9)
                 if np.array_equal(out[b, t], padded[b, t, x:x + 84, y:y + 84])]
      assert matches, 'every augmented image is a crop of its padded original'
      offsets.add(matches[0])
  assert len(offsets) > 1  # each image draws its own crop


def test_adamw_decays_only_parameters_of_rank_above_one(tiny_params):
  optimizer = bl.make_optimizer(learning_rate=0.1, weight_decay=0.5)
  zeros = jax.tree_util.tree_map(jnp.zeros_like, tiny_params)
  updates, _ = optimizer.update(zeros, optimizer.init(tiny_params), tiny_params)
  for path, update, param in zip(plasticity.leaf_paths(tiny_params),
                                 jax.tree_util.tree_leaves(updates),
                                 jax.tree_util.tree_leaves(tiny_params)):
    expected = -0.1 * 0.5 * param if param.ndim > 1 else jnp.zeros_like(param)
    np.testing.assert_allclose(update, expected, rtol=1e-6, err_msg=path)


def test_select_action_is_greedy_at_epsilon_zero(tiny_params):
  network = tiny_network()
  states = np.random.default_rng(0).integers(0, 255, (5, 84, 84, 4), dtype=np.uint8)
  _, actions = bl.select_action(network, tiny_params, states, jax.random.PRNGKey(0), 0.0,
                                SUPPORT, 4)
  q_values = network.apply(tiny_params, states.astype(np.float32) / 255.0, SUPPORT).q_values
  np.testing.assert_array_equal(actions, np.argmax(q_values, -1))
  _, random_actions = bl.select_action(network, tiny_params, np.repeat(states[:1], 64, 0),
                                       jax.random.PRNGKey(0), 1.0, SUPPORT, 4)
  assert len(set(np.asarray(random_actions).tolist())) == 4


# --------------------------------------------------------------------------- the update

def test_spr_weight_zero_zeroes_the_loss_and_leaves_spr_parts_untouched(tiny_params):
  online, target, state, optimizer, history = train(tiny_network(), tiny_params, 0.0, calls=2)
  for _, _, metrics in history:
    assert np.all(np.asarray(metrics['spr_loss']) == 0.0)
    np.testing.assert_allclose(metrics['loss'], np.asarray(metrics['dqn_loss']).mean(-1),
                               rtol=1e-5)
  for part in bn.SPR_ONLY_PARTS:
    assert helpers.trees_equal(online['params'][part], tiny_params['params'][part])
  for part in ('encoder', 'projection', 'head'):
    assert not helpers.trees_equal(online['params'][part], tiny_params['params'][part])
  # ... and a periodic reset leaves them alone too.
  online, target, state, _ = reset_networks(
      tiny_network(), optimizer, online, target, state, jax.random.PRNGKey(9), 0.5, 0.5,
      sp_prefixes=('params/encoder',), reinit_prefixes=('params/projection', 'params/head'),
      frozen_prefixes=bl.SPR_ONLY_PREFIXES)
  for part in bn.SPR_ONLY_PARTS:
    assert helpers.trees_equal(online['params'][part], tiny_params['params'][part])
    assert helpers.trees_equal(target['params'][part], tiny_params['params'][part])


def test_spr_weight_trains_the_spr_parts(tiny_params):
  online, _, _, _, history = train(tiny_network(), tiny_params, 5.0, calls=1)
  spr_loss = np.asarray(history[0][2]['spr_loss'])
  assert np.all(spr_loss > 0) and np.all(spr_loss <= 4.0)  # squared distance of unit vectors
  for part in bn.PART_NAMES:
    assert not helpers.trees_equal(online['params'][part], tiny_params['params'][part])


def test_hare_tortoise_reset_every_n_gradient_steps(tiny_params):
  _, _, _, _, history = train(tiny_network(), tiny_params, 0.0, calls=7, ht_reset_period=3,
                              groups=1)
  equal_at = [step for step, equal, _ in history if equal]
  assert equal_at == [3, 6]
  _, _, _, _, history = train(tiny_network(), tiny_params, 0.0, calls=3, groups=1)
  assert not any(equal for _, equal, _ in history)


def test_reset_shrinks_perturbs_reinitialises_and_keeps_exactly(tiny_params):
  network = tiny_network()
  online, target, state, optimizer, _ = train(network, tiny_params, 5.0, calls=1)
  rng = jax.random.PRNGKey(42)
  new_online, new_target, new_state, _ = reset_networks(
      network, optimizer, online, target, state, rng, 0.5, 0.5,
      sp_prefixes=('params/encoder', 'params/transition_model'),
      reinit_prefixes=('params/projection', 'params/predictor', 'params/head'))
  _, rng_online, rng_target = jax.random.split(rng, 3)
  fresh_online = bn.init_params(network, rng_online)
  fresh_target = bn.init_params(network, rng_target)
  for new, old, fresh in ((new_online, online, fresh_online),
                          (new_target, target, fresh_target)):
    for part in ('encoder', 'transition_model'):
      jax.tree_util.tree_map(
          lambda n, o, f: np.testing.assert_allclose(n, 0.5 * o + 0.5 * f, rtol=1e-6,
                                                     atol=1e-7),
          new['params'][part], old['params'][part], fresh['params'][part])
    for part in ('projection', 'predictor', 'head'):
      assert helpers.trees_equal(new['params'][part], fresh['params'][part])
  # Every parameter was reset: the whole AdamW state is fresh, step count included.
  assert int(state[0].count) == 2 and int(new_state[0].count) == 0
  assert all(float(jnp.abs(m).max()) == 0.0 for m in jax.tree_util.tree_leaves(new_state[0].mu))


def test_partial_reset_keeps_the_other_parts_and_their_optimizer_state(tiny_params):
  network = tiny_network()
  online, target, state, optimizer, _ = train(network, tiny_params, 5.0, calls=1)
  new_online, _, new_state, _ = reset_networks(
      network, optimizer, online, target, state, jax.random.PRNGKey(3), 0.5, 0.5,
      sp_prefixes=(), reinit_prefixes=('params/head',))
  for part in ('encoder', 'transition_model', 'projection', 'predictor'):
    assert helpers.trees_equal(new_online['params'][part], online['params'][part])
    assert helpers.trees_equal(new_state[0].mu['params'][part], state[0].mu['params'][part])
  assert not helpers.trees_equal(new_online['params']['head'], online['params']['head'])
  assert all(float(jnp.abs(m).max()) == 0.0
             for m in jax.tree_util.tree_leaves(new_state[0].mu['params']['head']))
  assert int(new_state[0].count) == int(state[0].count)  # not every parameter was reset
