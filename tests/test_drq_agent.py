"""DrQAgent against Dopamine's stock Atari100kRainbowAgent, and its plasticity toggles.

* toggles off: same seed and same logged transitions give bit-identical parameters;
* the jitted EMA path with tau = 1 reproduces Dopamine's hard target copy;
* Hare & Tortoise resets fire exactly every N gradient steps and leave online == target;
* head reset re-initialises only the head (online and target) and its Adam moments;
* Shrink & Perturb mixes with a fresh init (zero-initialised biases: exactly shrink * old);
* no reset at or after ``resets_stop_at``.
Uses the real DrQ(eps) network (Nature CNN) on random frames; no environment.
"""

import gin
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from dopamine.labs.atari_100k import atari_100k_rainbow_agent

from agents import plasticity
from agents.drq import DrQAgent
from atari100k import configs
from tests import helpers

NUM_ACTIONS = 4


def parse_drq(*bindings):
  configs.parse_agent_config('drq', ['JaxDQNAgent.min_replay_history = 20',
                                     'ReplayBuffer.batch_size = 8', *bindings])


def feed(agent, num_steps, seed=0, life_every=23, frame_dtype=np.uint8):
  """Logs ``num_steps`` random transitions the way the vectorised runner does (one env;
  Dopamine's runner hands the frames over in a float64 array: ``frame_dtype``)."""
  rng = np.random.default_rng(seed)
  agent.eval_mode = False
  agent.reset_all(rng.integers(0, 255, (1, 84, 84, 1)).astype(frame_dtype))
  for k in range(num_steps):
    agent.step()  # trains (once past min_replay_history), then acts
    obs = rng.integers(0, 255, (1, 84, 84, 1)).astype(frame_dtype)
    done = np.array([float((k + 1) % life_every == 0)])
    agent.log_transition(obs, np.array([rng.integers(NUM_ACTIONS)]),
                         np.array([float(rng.integers(0, 2))]), done, np.zeros(1))


def params_equal(a, b):
  return helpers.trees_equal(a, b)


def plasticity_toggles_off(agent) -> bool:
  """Every toggle of ``agent`` off: Dopamine's update, no S&P, no head reset, no target acting."""
  # pylint: disable=protected-access
  return (agent.uses_stock_update and not agent._sp_period and not agent._head_reset_period
          and not agent._act_with_target)


def test_toggles_off_matches_stock_dopamine_agent_bit_for_bit():
  parse_drq('DrQAgent.fix_replay_pipeline = False')
  stock = atari_100k_rainbow_agent.Atari100kRainbowAgent(num_actions=NUM_ACTIONS, seed=7)
  ours = DrQAgent(num_actions=NUM_ACTIONS, seed=7)
  assert plasticity_toggles_off(ours)
  assert params_equal(stock.online_params, ours.online_params)
  feed(stock, 40)
  feed(ours, 40)
  assert stock.training_steps == ours.training_steps == 40
  assert ours.gradient_steps > 10
  assert params_equal(stock.online_params, ours.online_params)
  assert params_equal(stock.target_network_params, ours.target_network_params)
  assert params_equal(stock.optimizer_state, ours.optimizer_state)


def stored_state_dtypes(agent):
  return {element.unpack().state.dtype for element in agent._replay._memory.values()}  # pylint: disable=protected-access


def test_float64_frames_are_stored_as_uint8_and_train_bit_for_bit_as_stock():
  parse_drq('DrQAgent.fix_replay_pipeline = False')
  stock = atari_100k_rainbow_agent.Atari100kRainbowAgent(num_actions=NUM_ACTIONS, seed=7)
  ours = DrQAgent(num_actions=NUM_ACTIONS, seed=7)
  feed(stock, 40, frame_dtype=np.float64)
  feed(ours, 40, frame_dtype=np.float64)
  assert stored_state_dtypes(stock) == {np.dtype(np.float64)}
  assert stored_state_dtypes(ours) == {np.dtype(np.uint8)}
  assert ours.gradient_steps > 10
  assert params_equal(stock.online_params, ours.online_params)
  assert params_equal(stock.optimizer_state, ours.optimizer_state)


def test_frames_uint8_cannot_hold_are_kept_as_they_are():
  from agents.drq import as_uint8_frame  # pylint: disable=import-outside-toplevel
  exact = np.array([[0.0, 255.0], [17.0, 3.0]])
  assert as_uint8_frame(exact).dtype == np.uint8
  np.testing.assert_array_equal(as_uint8_frame(exact), exact)
  for inexact in (np.array([0.5, 1.0]), np.array([-1.0, 2.0]), np.array([256.0, 0.0]),
                  np.array([np.nan, 0.0])):
    assert as_uint8_frame(inexact) is inexact


def test_jitted_step_donates_distinct_online_and_target_buffers():
  parse_drq('DrQAgent.target_update_tau = 0.005', 'DrQAgent.ht_reset_period = 4')
  agent = DrQAgent(num_actions=NUM_ACTIONS, seed=2)
  pointers = lambda tree: {x.unsafe_buffer_pointer() for x in jax.tree_util.tree_leaves(tree)}  # noqa: E731
  assert not pointers(agent.online_params) & pointers(agent.target_network_params)
  feed(agent, 21)
  for _ in range(5):  # through the H&T reset at step 4 (online <- target)
    old_online, old_target = agent.online_params, agent.target_network_params
    agent._training_step_update()  # pylint: disable=protected-access
    assert all(x.is_deleted() for x in jax.tree_util.tree_leaves((old_online, old_target)))
    assert not pointers(agent.online_params) & pointers(agent.target_network_params)


def test_jitted_ema_path_with_tau_one_reproduces_the_hard_copy():
  parse_drq()
  stock_like = DrQAgent(num_actions=NUM_ACTIONS, seed=3)
  gin.bind_parameter('DrQAgent.target_update_tau', 1.0)
  ema = DrQAgent(num_actions=NUM_ACTIONS, seed=3)
  feed(stock_like, 30)
  feed(ema, 30)
  for a, b in zip(jax.tree_util.tree_leaves(stock_like.online_params),
                  jax.tree_util.tree_leaves(ema.online_params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert params_equal(ema.online_params, ema.target_network_params)


def test_ema_target_lags_online():
  parse_drq('DrQAgent.target_update_tau = 0.25')
  agent = DrQAgent(num_actions=NUM_ACTIONS, seed=0)
  feed(agent, 40)
  assert agent.gradient_steps >= 1
  # Copies: the jitted step donates (deletes) the agent's old buffers.
  before_target = jax.tree_util.tree_map(np.array, agent.target_network_params)
  before_online = jax.tree_util.tree_map(np.array, agent.online_params)
  agent._training_step_update()  # pylint: disable=protected-access
  expected = plasticity.ema_update(before_target, agent.online_params, 0.25)
  for a, b in zip(jax.tree_util.tree_leaves(expected),
                  jax.tree_util.tree_leaves(agent.target_network_params)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  assert not params_equal(agent.online_params, before_online)


def test_hare_tortoise_resets_every_n_gradient_steps():
  period = 4
  parse_drq('DrQAgent.target_update_tau = 0.005', f'DrQAgent.ht_reset_period = {period}')
  agent = DrQAgent(num_actions=NUM_ACTIONS, seed=1)
  feed(agent, 21)  # fill the replay buffer, no gradient step yet
  assert agent.gradient_steps == 0
  equal_after = []
  for _ in range(3 * period + 1):
    agent._training_step_update()  # pylint: disable=protected-access
    equal_after.append(params_equal(agent.online_params, agent.target_network_params))
  steps = np.arange(1, 3 * period + 2)
  np.testing.assert_array_equal(equal_after, steps % period == 0)
  assert int(agent.learner.grad_step) == 3 * period + 1


def test_hare_tortoise_optimizer_reset_flag():
  parse_drq('DrQAgent.target_update_tau = 0.005', 'DrQAgent.ht_reset_period = 2',
            'DrQAgent.ht_reset_optimizer = True')
  agent = DrQAgent(num_actions=NUM_ACTIONS, seed=1)
  feed(agent, 21)
  agent._training_step_update()  # pylint: disable=protected-access
  agent._training_step_update()  # pylint: disable=protected-access  (reset here)
  fresh = agent.optimizer.init(agent.online_params)
  assert params_equal(agent.optimizer_state, fresh)


def capture_params_before_reset(agent):
  """Wraps the agent's reset so that the parameters just before it can be inspected."""
  captured = {}
  original = agent._periodic_reset  # pylint: disable=protected-access

  def spy(**kwargs):
    captured['online'] = jax.tree_util.tree_map(np.array, agent.online_params)
    captured['opt'] = jax.tree_util.tree_map(np.array, agent.optimizer_state)
    original(**kwargs)
  agent._periodic_reset = spy  # pylint: disable=protected-access
  return captured


def test_head_reset_reinitialises_only_the_head_online_and_target():
  parse_drq('DrQAgent.head_reset_period = 30', "DrQAgent.head_prefixes = ['params/Dense_']")
  agent = DrQAgent(num_actions=NUM_ACTIONS, seed=2)
  feed(agent, 29)
  captured = capture_params_before_reset(agent)
  feed(agent, 1, seed=99)  # training_steps 30: gradient step, then the head reset
  assert agent.reset_log == [(30, 'head_reset')]
  before, after = captured['online']['params'], agent.online_params['params']
  target = agent.target_network_params['params']
  for layer in ('Conv_0', 'Conv_1', 'Conv_2'):
    for name in ('kernel', 'bias'):
      np.testing.assert_array_equal(after[layer][name], before[layer][name])
  for layer in ('Dense_0', 'Dense_1', 'Dense_2'):
    np.testing.assert_array_equal(after[layer]['bias'], 0.0)  # fresh init: zero biases
    np.testing.assert_array_equal(after[layer]['kernel'], target[layer]['kernel'])
    assert not np.allclose(after[layer]['kernel'], before[layer]['kernel'])
  adam, adam_before = agent.optimizer_state[0], captured['opt'][0]
  for layer in ('Dense_0', 'Dense_1', 'Dense_2'):
    np.testing.assert_array_equal(adam.mu['params'][layer]['kernel'], 0.0)
    np.testing.assert_array_equal(adam.nu['params'][layer]['kernel'], 0.0)
  np.testing.assert_array_equal(adam.mu['params']['Conv_0']['kernel'],
                                adam_before.mu['params']['Conv_0']['kernel'])
  assert np.any(adam.mu['params']['Conv_0']['kernel'] != 0)


def test_shrink_and_perturb_mixes_with_a_fresh_init():
  parse_drq('DrQAgent.sp_period = 30', 'DrQAgent.sp_shrink = 0.3',
            'DrQAgent.sp_perturb = 0.7')
  agent = DrQAgent(num_actions=NUM_ACTIONS, seed=4)
  feed(agent, 29)
  captured = capture_params_before_reset(agent)
  feed(agent, 1, seed=5)  # training_steps 30: gradient step, then S&P
  assert agent.reset_log == [(30, 'sp')]
  before = captured['online']['params']
  after = agent.online_params['params']
  for layer in before:
    # Biases are initialised to zero, so S&P leaves exactly 0.3 * old bias.
    np.testing.assert_allclose(after[layer]['bias'], 0.3 * before[layer]['bias'],
                               rtol=1e-6, atol=1e-8)
    # The kernel moved toward a fresh init: it is neither the old one nor 0.3 * old.
    assert not np.allclose(after[layer]['kernel'], 0.3 * before[layer]['kernel'])


def test_no_reset_at_or_after_resets_stop_at():
  parse_drq('DrQAgent.head_reset_period = 10', 'DrQAgent.resets_stop_at = 40')
  agent = DrQAgent(num_actions=NUM_ACTIONS, seed=0)
  feed(agent, 60)
  # Resets need a started learner (more than 20 elements in replay: from step 24 on here,
  # n = 10), and none may fire at or after step 40.
  assert [s for s, _ in agent.reset_log] == [30]


def test_bad_prefix_fails_at_construction():
  parse_drq('DrQAgent.head_reset_period = 10', "DrQAgent.head_prefixes = ['params/Densee']")
  with pytest.raises(ValueError, match='matches no parameter'):
    DrQAgent(num_actions=NUM_ACTIONS, seed=0)


def test_ht_without_ema_target_is_refused():
  parse_drq('DrQAgent.ht_reset_period = 10')
  with pytest.raises(ValueError, match='target_update_tau'):
    DrQAgent(num_actions=NUM_ACTIONS, seed=0)


def test_act_with_target_uses_target_parameters():
  parse_drq('DrQAgent.target_update_tau = 0.005', 'DrQAgent.act_with_target = True')
  agent = DrQAgent(num_actions=NUM_ACTIONS, seed=0)
  feed(agent, 25)
  # Make online and target disagree strongly; the action must follow the target.
  agent.online_params = jax.tree_util.tree_map(jnp.zeros_like, agent.online_params)
  agent.eval_mode = True
  agent.epsilon_eval = 0.0
  state = agent.preprocess_fn(agent.state)
  q = agent.network_def.apply(agent.target_network_params, state[0],
                              support=agent._support).q_values  # pylint: disable=protected-access
  assert int(agent.step()[0]) == int(jnp.argmax(q))


def test_exploration_schedule_is_drq_eps():
  """Epsilon 1 during the 1,600-step warm-up, then linear to 0.01 over 5,000 agent steps."""
  configs.parse_agent_config('drq')
  agent = DrQAgent(num_actions=NUM_ACTIONS, seed=0)
  eps = [float(agent.epsilon_fn(agent.epsilon_decay_period, t, agent.min_replay_history,
                                agent.epsilon_train)) for t in (0, 1600, 4100, 6600, 50000)]
  np.testing.assert_allclose(eps, [1.0, 1.0, 0.505, 0.01, 0.01], rtol=1e-6)
  assert agent.epsilon_eval == 0.001
  assert agent.update_horizon == 10 and agent.gamma == 0.99
  assert agent.cumulative_gamma == pytest.approx(0.99 ** 10)


@pytest.mark.parametrize('bindings', [(), ('DrQAgent.target_update_tau = 0.005',
                                           'DrQAgent.ht_reset_period = 7')])
def test_checkpoint_file_round_trip_continues_identically(tmp_path, bindings):
  # pylint: disable=import-outside-toplevel,protected-access
  from atari100k import checkpoint_file
  parse_drq(*bindings)
  agent = DrQAgent(num_actions=NUM_ACTIONS, seed=3)
  feed(agent, 45)
  path = str(tmp_path / 'checkpoint.npz')
  checkpoint_file.save(path, agent.checkpoint_state(), {'test': 1})
  twin = DrQAgent(num_actions=NUM_ACTIONS, seed=11)
  twin.load_checkpoint_state(checkpoint_file.load(path)[1])
  assert params_equal(agent.online_params, twin.online_params)
  assert params_equal(agent.optimizer_state, twin.optimizer_state)
  assert (twin.training_steps, twin.gradient_steps) == (45, agent.gradient_steps)
  assert int(twin.learner.grad_step) == int(agent.learner.grad_step)
  # The same replay, parameters, optimizer and RNG: the same next updates.
  agent._replay._transition_accumulator.clear()
  for a in (agent, twin):
    for _ in range(3):
      a._training_step_update()
  assert params_equal(agent.online_params, twin.online_params)
  assert params_equal(agent.target_network_params, twin.target_network_params)


@pytest.mark.parametrize('augmentation', ['per_image', 'per_batch_2021'])
def test_fused_augmentation_equals_dopamines_host_side_preprocessing(augmentation):
  # pylint: disable=import-outside-toplevel,protected-access
  from agents import divergence, drq
  parse_drq('DrQAgent.target_update_tau = 0.005', 'DrQAgent.ht_reset_period = 3',
            f"DrQAgent.augmentation = '{augmentation}'")
  agent = DrQAgent(num_actions=NUM_ACTIONS, seed=5)
  feed(agent, 25)
  agent._sample_from_replay_buffer()
  batch = agent.replay_elements
  statics = dict(use_ema=True, ht_reset_period=3, ht_reset_optimizer=False)
  weights = np.ones(len(batch['action']), np.float32)
  rng, rng1, rng2 = jax.random.split(agent._rng, num=3)  # as Dopamine's update does
  host_state, host_loss, host_mean_loss = drq.train_with_plasticity(
      agent.network_def, agent.optimizer, agent.learner.replace(rng=rng),
      agent.train_preprocess_fn(batch['state'], rng=rng1), batch['action'],
      agent.train_preprocess_fn(batch['next_state'], rng=rng2), batch['reward'],
      batch['terminal'], weights, agent._support, agent.cumulative_gamma, agent._double_dqn,
      agent._distributional, agent._mse_loss, jnp.float32(0.005), **statics)
  host = (host_state.opt_state, host_state.online, host_state.target, host_loss,
          host_mean_loss, host_state.rng, host_state.grad_step)
  fused_state, fused_loss, fused_mean_loss, _ = drq.augment_and_train(
      agent.network_def, agent.optimizer, agent.learner, batch['state'], batch['action'],
      batch['next_state'], batch['reward'], batch['terminal'], weights, agent._support,
      agent.cumulative_gamma, agent._double_dqn, agent._distributional, agent._mse_loss,
      jnp.float32(0.005), divergence.LossWatch.create(), jnp.float32(255.0),
      data_augmentation=True, augmentation=augmentation, **statics)
  fused = (fused_state.opt_state, fused_state.online, fused_state.target, fused_loss,
           fused_mean_loss, fused_state.rng, fused_state.grad_step)
  for name, a, b in zip(['optimizer state', 'online', 'target', 'loss', 'mean loss', 'rng',
                         'step'], host, fused):
    assert params_equal(a, b), name
