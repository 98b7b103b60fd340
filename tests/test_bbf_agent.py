"""The BBF agent (agents/bbf.py) and real short Atari runs of every BBF configuration.

Tiny widths and a few hundred steps: the reset schedule, the n-step/gamma annealing around a
reset, what the agent stores in replay, checkpoint round trips, and a real run of each named
BBF configuration through the command line that writes a valid result.json.
"""

import dataclasses
import json
import os

import gin
import numpy as np
import pytest

from atari100k import configs, files, run
from tests import helpers

BBF_AGENTS = ['bbf', 'bbf_ht', 'bbf_ssl', 'bbf_ssl_ht']
TINY = ['BBFSettings.width_scale = 1',
        'BBFSettings.stage_widths = (4, 8, 8)',
        'BBFSettings.hidden_dim = 32',
        'BBFSettings.num_blocks = 1',
        'BBFSettings.batch_size = 4',
        'BBFSettings.replay_capacity = 1000',
        'BBFSettings.cycle_steps = 50',
        'JaxDQNAgent.min_replay_history = 100']
RUN = ['BBFSettings.reset_every = 100',
       'BBFSettings.no_resets_after = 300',
       'Runner.max_steps_per_episode = 100',
       'Atari100kRunner.chunk_steps = 100',
       'Atari100kRunner.checkpoint_every = 200']


def make_agent(name='bbf_ssl', extra=(), num_actions=4, seed=0):
  configs.parse_agent_config(name, TINY + list(extra))
  from agents.bbf import BBFAgent  # pylint: disable=import-outside-toplevel
  return BBFAgent(num_actions=num_actions, seed=seed)


def feed(agent, steps, seed=0, terminal_every=37):
  """Random frames through the runner's interface (one environment)."""
  r = np.random.default_rng(seed)
  agent.eval_mode = False
  agent.reset_all(r.integers(0, 255, (1, 84, 84, 1), dtype=np.uint8))
  for k in range(steps):
    agent.step()
    done = float(k % terminal_every == terminal_every - 1)
    agent.log_transition(r.integers(0, 255, (1, 84, 84, 1), dtype=np.uint8),
                         np.array([k % 4]), np.array([float(k % 3 == 0)]), np.array([done]),
                         np.array([0.0]))
    if done:
      agent.reset_one(0)


def test_every_bbf_configuration_is_registered():
  assert set(BBF_AGENTS) <= set(configs.available_agents())


# The values of the public BBF code's configs/BBF.gin (replay_ratio there counts samples: 64/32).
BBF_GIN = {
    'width_scale': 4, 'stage_widths': (16, 32, 32), 'hidden_dim': 2048, 'num_blocks': 2,
    'num_atoms': 51, 'vmax': 10.0, 'dueling': True, 'double_dqn': True,
    'data_augmentation': True, 'spr_weight': 5.0, 'jumps': 5, 'batch_size': 32,
    'replay_ratio': 2, 'batches_to_group': 2, 'update_horizon': 3, 'max_update_horizon': 10,
    'min_gamma': 0.97, 'cycle_steps': 10_000, 'replay_scheme': 'prioritized',
    'replay_capacity': 200_000, 'learning_rate': 1e-4, 'adam_eps': 1.5e-4,
    'weight_decay': 0.1, 'target_update_tau': 0.005, 'target_action_selection': True,
    'reset_every': 20_000, 'no_resets_after': 100_000, 'shrink_factor': 0.5,
    'perturb_factor': 0.5, 'shrink_perturb_parts': ('encoder', 'transition_model'),
    'reinit_parts': ('projection', 'predictor', 'head'), 'reset_target': True,
    'reset_optimizer': True, 'ht_reset_period': 0, 'ht_reset_optimizer': False}


@pytest.mark.parametrize('name, changed', [
    ('bbf', {'spr_weight': 0.0}),
    ('bbf_ssl', {}),
    ('bbf_ht', {'spr_weight': 0.0, 'ht_reset_period': 4000}),
    ('bbf_ssl_ht', {'ht_reset_period': 4000})])
def test_named_bbf_configurations_are_bbf_gin_plus_their_changes(name, changed):
  configs.parse_agent_config(name)
  from agents.bbf import BBFSettings  # pylint: disable=import-outside-toplevel
  settings = dataclasses.asdict(BBFSettings())
  assert {k: settings[k] for k in BBF_GIN} == {**BBF_GIN, **changed}


def test_a_bbf_setting_bound_on_the_agent_names_its_new_spelling():
  with pytest.raises(configs.ConfigError,
                     match="write 'BBFSettings.width_scale = 1'"):
    configs.parse_agent_config('bbf', ['BBFAgent.width_scale = 1'])


def test_reset_schedule_of_the_published_configuration():
  agent = make_agent('bbf_ssl', ["BBFSettings.reset_schedule = 'multiples'"])
  steps = [s for s in range(0, 200_001, 500) if agent.reset_due(s)]
  assert steps == [20_000, 40_000, 60_000, 80_000]  # none at or after 100k


def test_public_code_reset_schedule():
  """The public code's bookkeeping, stepped by hand with BBF's values (reset_every 20,000,
  no_resets_after 100,000, reset_offset 1): next_reset = 20,001; at each step > next_reset,
  next_reset = step + 20,000, and the reset fires if that is <= 100,001."""
  next_reset, expected = 20_001, []
  for step in range(200_001):
    if step > next_reset:
      next_reset = step + 20_000
      if next_reset <= 100_001:
        expected.append(step)
  assert expected == [20_002, 40_003, 60_004]
  agent = make_agent('bbf_ssl')
  assert [s for s in range(200_001) if agent.reset_due(s)] == expected


def test_no_periodic_reset_on_the_runs_last_training_step():
  agent = make_agent('bbf_ssl', ["BBFSettings.reset_schedule = 'multiples'"])
  agent.stop_resets_at(20_001)  # steps 0 .. 20,000: step 20,000 is the last
  assert not agent.reset_due(20_000)
  agent.stop_resets_at(20_002)
  assert agent.reset_due(20_000)


@pytest.mark.parametrize('name,spr', [('bbf', False), ('bbf_ssl', True)])
def test_reset_parts_follow_the_spr_toggle(name, spr):
  agent = make_agent(name)
  prefixes = set(agent._sp_prefixes) | set(agent._reinit_prefixes)  # pylint: disable=protected-access
  assert set(agent._sp_prefixes) == ({'params/encoder', 'params/transition_model'} if spr  # pylint: disable=protected-access
                                     else {'params/encoder'})
  assert ('params/predictor' in prefixes) == spr
  assert {'params/projection', 'params/head'} <= prefixes


def test_annealing_restarts_at_each_periodic_reset():
  agent = make_agent('bbf_ssl', ['BBFSettings.cycle_steps = 10000'])
  assert (agent.current_update_horizon, agent.current_gamma) == (10, pytest.approx(0.97))
  agent.cycle_gradient_steps = 10_000  # end of a cycle
  assert (agent.current_update_horizon, agent.current_gamma) == (3, pytest.approx(0.997))
  agent.training_steps = 20_000
  agent.periodic_reset()
  assert agent.cycle_gradient_steps == 0 and agent.reset_log == [(20_000, 'reset')]
  assert (agent.current_update_horizon, agent.current_gamma) == (10, pytest.approx(0.97))


def test_agent_trains_at_the_replay_ratio_and_resets_hare_to_tortoise():
  agent = make_agent('bbf_ht', ['BBFSettings.ht_reset_period = 8',
                                'BBFSettings.cycle_steps = 50'])
  feed(agent, 110)
  # 2 gradient steps per env step once more than 100 steps are stored (steps 101..109).
  assert agent.gradient_steps == 2 * 9
  assert agent._replay.add_count == 110  # pylint: disable=protected-access
  # The last H&T reset was at gradient step 16; two more steps since: online != target.
  assert not helpers.trees_equal(agent.online_params, agent.target_network_params)
  feed_more = 3  # gradient steps 20, 22, 24: a reset at 24 makes online == target
  for _ in range(feed_more):
    agent.step()
    agent.log_transition(np.zeros((1, 84, 84, 1), np.uint8), np.array([0]), np.array([0.0]),
                         np.array([0.0]), np.array([0.0]))
  assert agent.gradient_steps == 24
  assert helpers.trees_equal(agent.online_params, agent.target_network_params)


def test_stored_steps_are_copies_of_what_the_runner_logged():
  agent = make_agent('bbf')
  agent.eval_mode = False
  frames = np.zeros((2, 1, 84, 84, 1), np.uint8)  # the runner's two-slot buffer
  frames[0] = 7
  agent.reset_all(frames[0])
  frames[1] = 9
  agent.log_transition(frames[1], np.array([2]), np.array([1.0]), np.array([0.0]),
                       np.array([0.0]))
  frames[0] = 11  # the runner reuses slot 0 for the next frame
  state = agent._replay.to_state_dict()  # pylint: disable=protected-access
  assert state['observations'][0].min() == state['observations'][0].max() == 7
  assert int(state['actions'][0]) == 2 and float(state['rewards'][0]) == 1.0
  np.testing.assert_array_equal(agent.state[0, ..., -2:], np.stack(
      [np.full((84, 84), 7), np.full((84, 84), 9)], -1))


def test_checkpoint_round_trip_continues_identically(tmp_path):
  # pylint: disable=import-outside-toplevel
  from atari100k import checkpoint_file
  agent = make_agent('bbf_ssl_ht')
  feed(agent, 104)
  path = str(tmp_path / 'checkpoint.npz')
  checkpoint_file.save(path, agent.checkpoint_state(), {'test': 1})
  twin = make_agent('bbf_ssl_ht', seed=1)
  twin.load_checkpoint_state(checkpoint_file.load(path)[1])
  assert helpers.trees_equal(agent.online_params, twin.online_params)
  assert twin.gradient_steps == agent.gradient_steps and twin.training_steps == 104
  # Both continue from the same replay, parameters and RNG: the same next update.
  agent._replay.end_segment()  # pylint: disable=protected-access
  for a in (agent, twin):
    a._training_step_update()  # pylint: disable=protected-access
  assert helpers.trees_equal(agent.online_params, twin.online_params)


def test_bad_part_name_is_a_clear_error():
  with pytest.raises(ValueError, match='Unknown network part'):
    make_agent('bbf', ["BBFSettings.reinit_parts = ('haed',)"])


# --------------------------------------------------------------------------- real runs

def cli(tmp_path, agent, steps=300, extra=()):
  bindings = TINY + RUN + list(extra)
  if agent.endswith('_ht'):
    bindings.append('BBFSettings.ht_reset_period = 40')
  argv = ['--agent', agent, '--game', 'Pong', '--seed', '0', '--base_dir', str(tmp_path),
          '--steps', str(steps), '--eval_episodes', '2', '--no_progress']
  for b in bindings:
    argv += ['--gin_bindings', b]
  return run.main(argv)


@pytest.mark.parametrize('agent', BBF_AGENTS)
def test_short_real_run_writes_valid_result(tmp_path, agent):
  assert cli(tmp_path, agent) == 0
  folder = files.run_folder(str(tmp_path), agent, 'Pong', 0)
  with open(os.path.join(folder, 'result.json')) as f:
    result = json.load(f)
  assert result['agent'] == agent and result['env_steps'] == 300
  assert result['gradient_steps'] == 2 * (300 - 101)  # replay ratio 2 after 100 warm-up steps
  assert result['eval_episodes'] == 2 and len(result['eval_returns']) == 2
  assert result['score'] == pytest.approx(np.mean(result['eval_returns']))
  # The public code's schedule: candidates at k * 101 + 1; 203 + 100 > 300 + 1: one reset.
  assert result['resets'] == [[102, 'reset']]
  assert 'BBFAgent' in open(os.path.join(folder, 'config.gin')).read()
  gin.clear_config()


# --------------------------------------------------------------------------- public-code switches

def test_priority_update_rules_on_a_hand_worked_batch():
  from agents.bbf import priority_update  # pylint: disable=import-outside-toplevel
  keys = np.array([[10, 11, 12], [13, 14, 15]])
  loss = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
  public_keys, public = priority_update('public_code', keys, loss)
  np.testing.assert_array_equal(public_keys, [10, 11])  # the first G sampled keys ...
  np.testing.assert_allclose(public, np.sqrt([2.0 + 1e-10, 5.0 + 1e-10]), rtol=0)  # ... batch means
  every_key, each = priority_update('per_sample', keys, loss)
  np.testing.assert_array_equal(every_key, [10, 11, 12, 13, 14, 15])
  np.testing.assert_allclose(each, np.sqrt(loss.reshape(-1) + 1e-10), rtol=0)


def sum_tree_priorities(agent) -> dict:
  """{key: priority} of every key in the agent's prioritized sampler."""
  sampler = agent._replay._sampler  # pylint: disable=protected-access
  return {key: float(sampler._sum_tree.get(index))  # pylint: disable=protected-access
          for index, key in enumerate(sampler._key_by_index)}  # pylint: disable=protected-access


@pytest.mark.parametrize('rule', ['public_code', 'per_sample'])
def test_one_update_writes_back_the_priorities_its_rule_says(rule, monkeypatch):
  # pylint: disable=import-outside-toplevel,protected-access
  from agents import bbf
  agent = make_agent('bbf', [f"BBFSettings.priority_update = '{rule}'"])
  feed(agent, 120)  # 20 steps past the warm-up: some keys already hold updated priorities
  seen = {}
  original = bbf.priority_update

  def spy(rule_, keys, dqn_loss):
    seen.update(keys=np.asarray(keys).reshape(-1), dqn_loss=np.asarray(dqn_loss))
    return original(rule_, keys, dqn_loss)
  monkeypatch.setattr(bbf, 'priority_update', spy)
  before = sum_tree_priorities(agent)
  agent._training_step_update()
  after = sum_tree_priorities(agent)
  changed = {k for k in after if after[k] != before.get(k)}
  groups, batch = seen['dqn_loss'].shape
  assert (groups, batch) == (2, 4)
  if rule == 'public_code':
    first = seen['keys'][:groups]
    assert changed <= set(first) and len(changed) >= 1
    for key, loss in zip(first, seen['dqn_loss'].mean(axis=1)):  # both: sqrt(batch-mean loss)
      assert after[key] == pytest.approx(np.sqrt(loss + 1e-10), rel=1e-6)
  else:
    assert changed <= set(seen['keys']) and len(changed) > groups
    for key, loss in zip(seen['keys'], seen['dqn_loss'].reshape(-1)):
      if list(seen['keys']).count(key) == 1:  # a duplicate keeps the first priority given
        assert after[key] == pytest.approx(np.sqrt(loss + 1e-10), rel=1e-6)


@pytest.mark.parametrize('binding, message', [
    ("BBFSettings.priority_update = 'mean'",
     "BBFSettings.priority_update = 'mean': must be one of 'public_code', 'per_sample'"),
    ('BBFSettings.crop_positions = 10', 'BBFSettings.crop_positions = 10: must be at most 9'),
    ("BBFSettings.reset_schedule = 'often'",
     "BBFSettings.reset_schedule = 'often': must be one of 'public_code', 'multiples'"),
    ("BBFSettings.n_step_bootstrap = 'late'",
     "BBFSettings.n_step_bootstrap = 'late': must be one of 'public_code', 'corrected'"),
    ("BBFSettings.spr_mask = 'segment'",
     "BBFSettings.spr_mask = 'segment': must be one of 'public_code', 'corrected'"),
    ("BBFSettings.frame_stacks = 'zeros'",
     "BBFSettings.frame_stacks = 'zeros': must be one of 'public_code', 'corrected'")])
def test_bad_public_code_switch_values_name_the_allowed_ones(binding, message):
  configs.parse_agent_config('bbf', [binding])
  from agents import settings  # pylint: disable=import-outside-toplevel
  with pytest.raises(settings.SettingError, match=message):
    configs.check_settings()


def switches(settings) -> tuple:
  return (settings.priority_update, settings.crop_positions, settings.n_step_bootstrap,
          settings.reset_schedule, settings.spr_mask, settings.frame_stacks)


def test_one_include_turns_every_correction_on():
  configs.parse_agent_config('bbf_ht', ['include "includes/bbf_corrections.gin"'])
  from agents.bbf import BBFSettings  # pylint: disable=import-outside-toplevel
  settings = BBFSettings()
  assert switches(settings) == ('per_sample', 9, 'corrected', 'multiples', 'corrected',
                                'corrected')
  assert settings.ht_reset_period == 4000 and settings.spr_weight == 0.0  # bbf_ht kept
  for name in BBF_AGENTS:  # every named configuration is the public code's
    configs.parse_agent_config(name)
    assert switches(BBFSettings()) == ('public_code', 8, 'public_code', 'public_code',
                                       'public_code', 'public_code')


@pytest.mark.parametrize('setting, rule', [('public_code', 'public_code'), ('corrected', 'next')])
def test_the_agents_buffer_bootstraps_as_its_setting_says(setting, rule):
  agent = make_agent('bbf', [f"BBFSettings.n_step_bootstrap = '{setting}'"])
  assert agent._replay._bootstrap == rule  # pylint: disable=protected-access


@pytest.mark.parametrize('setting, rule', [('public_code', 'public_code'), ('corrected', 'segment')])
def test_the_agents_buffer_masks_and_stacks_as_its_settings_say(setting, rule):
  agent = make_agent('bbf', [f"BBFSettings.spr_mask = '{setting}'",
                             f"BBFSettings.frame_stacks = '{setting}'"])
  assert agent._replay._spr_mask == rule  # pylint: disable=protected-access
  assert agent._replay._frame_stacks == rule  # pylint: disable=protected-access


@pytest.mark.parametrize('rule', ['public_code', 'corrected'])
def test_public_spr_mask_spares_the_first_row_of_the_whole_sampled_batch(rule):
  """The agent draws G*B rows at once and splits them into G groups, as the public code does:
  with the public mask only row 0 of group 0 escapes it. A terminal every 3 steps puts one in
  every 6-step window, so every other row has a zero."""
  # pylint: disable=protected-access
  agent = make_agent('bbf_ssl', [f"BBFSettings.spr_mask = '{rule}'"])
  feed(agent, 60, terminal_every=3)  # before the warm-up ends: nothing trained, keys to sample
  batches, keys = agent._sample_batches()
  masks = batches['same_trajectory']
  groups, batch, length = masks.shape
  assert (groups, batch, length) == (2, 4, 6)
  stored = agent._replay._terminals
  ends = stored | agent._replay._episode_ends
  for row, key in enumerate(np.asarray(keys).reshape(-1)):
    steps = key + np.arange(length)
    if rule == 'public_code':  # no terminal in k .. k + j
      expected = np.cumsum(stored[steps]) == 0
      if row == 0:
        expected[:] = True
    else:                      # no segment end in k .. k + j - 1
      expected = np.concatenate([[True], np.cumsum(ends[steps[:-1]]) == 0])
    np.testing.assert_array_equal(masks.reshape(-1, length)[row], expected.astype(np.float32))
  assert (masks[0, 0] == 1).all() == (rule == 'public_code')
  assert not (masks[1, 0] == 1).all()  # the second group's first row is masked
