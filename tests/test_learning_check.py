"""The learning check: drq, drq_ht, bbf and bbf_ht learn ToyCorridor's optimal policy on a CPU.

ToyCorridor (``atari100k/toy_games.py``) is one choice: EXIT now for 0.25, or RIGHT to a goal
worth 1 whose reward comes 11 steps later, beyond the agents' 10-step returns (the episode
ends two steps after it). Each named
configuration runs through the real command line at tiny widths
(``gin/includes/learning_check.gin``) and must reach the optimal return, 1, in all 10
evaluation episodes. A learner whose bootstrap, terminals or target sign is broken exits or
wanders instead; the last test breaks one on purpose (terminals dropped from the replayed
batches) and shows the check fails it.

Also here: the game itself, and ``agents.drq_network.DrQNetwork`` (the gin-sized DrQ network)
against Dopamine's ``FullRainbowNetwork``.
"""

import json
import os

import jax
import numpy as np
import pytest
from dopamine.jax import networks

from agents.drq_network import DrQNetwork
from atari100k import environment, files, run, toy_games

# Per agent: agent steps, and bindings that make its toggles fire within them.
CHECKS = {
    'drq': (700, []),
    'drq_ht': (700, ['DrQAgent.ht_reset_period = 200']),
    'bbf': (700, []),
    'bbf_ht': (700, ['BBFSettings.ht_reset_period = 300']),
}


def run_check(tmp_path, agent, steps, bindings=()):
  argv = ['--agent', agent, '--game', 'ToyCorridor', '--seed', '0', '--runs', str(tmp_path),
          '--steps', str(steps), '--no-progress',
          '--gin', 'include "includes/learning_check.gin"']
  for binding in bindings:
    argv += ['--gin', binding]
  assert run.main(argv) == 0
  folder = files.run_folder(str(tmp_path), agent, 'ToyCorridor', 0)
  with open(os.path.join(folder, 'result.json')) as f:
    return json.load(f)


@pytest.mark.parametrize('agent', CHECKS)
def test_named_configuration_learns_the_optimal_policy(tmp_path, agent):
  steps, bindings = CHECKS[agent]
  result = run_check(tmp_path, agent, steps, bindings)
  assert result['eval_returns'] == [toy_games.GOAL_REWARD] * 10, result['eval_returns']
  if agent.endswith('_ht'):  # the Hare was reset to the Tortoise several times on the way
    period = int(bindings[0].split('=')[1])
    assert result['gradient_steps'] >= 2 * period


def test_the_check_fails_a_learner_that_drops_terminals(tmp_path, monkeypatch):
  # pylint: disable=import-outside-toplevel
  from agents.drq import DrQAgent
  sample = DrQAgent._sample_from_replay_buffer

  def sample_without_terminals(self):
    sample(self)
    self.replay_elements['terminal'] = np.zeros_like(self.replay_elements['terminal'])
  monkeypatch.setattr(DrQAgent, '_sample_from_replay_buffer', sample_without_terminals)
  steps, bindings = CHECKS['drq']
  result = run_check(tmp_path, 'drq', steps, bindings)
  # Without terminals EXIT is worth 0.25 every step forever: the learner exits.
  assert result['score'] < toy_games.GOAL_REWARD
  assert result['eval_returns'].count(toy_games.EXIT_REWARD) >= 5


def play(env, actions):
  frames, rewards, terminals = [env.reset()], [], []
  for action in actions:
    frame, reward, terminal, _ = env.step(action)
    frames.append(frame)
    rewards.append(reward)
    terminals.append(terminal)
  return frames, rewards, terminals


def test_toy_corridor_rewards_and_episode_ends():
  env = environment.create_atari100k_environment('ToyCorridor', seed=3)
  assert env.action_space.n == 3
  _, rewards, terminals = play(env, [toy_games.NOOP, toy_games.NOOP, toy_games.EXIT])
  assert rewards == [0.0, 0.0, 0.25] and terminals == [False, False, True] and env.game_over
  # After RIGHT every action moves on; the goal's reward comes with the 11th step, the end
  # two steps later.
  _, rewards, terminals = play(env, [toy_games.RIGHT] + [toy_games.EXIT, toy_games.NOOP] * 6)
  assert rewards == [0.0] * 10 + [1.0, 0.0, 0.0] and terminals == [False] * 12 + [True]
  with pytest.raises(RuntimeError, match='reset'):
    env.step(toy_games.RIGHT)
  env.reset()
  with pytest.raises(ValueError, match='actions 0'):
    env.step(3)


def test_toy_corridor_frames_show_the_agent_and_the_goal():
  env = toy_games.ToyCorridor()
  frames, _, _ = play(env, [toy_games.RIGHT] * 13)
  assert all(f.shape == (84, 84, 1) and f.dtype == np.uint8 for f in frames)
  assert len({f.tobytes() for f in frames}) == 14  # every cell looks different
  start = frames[0][..., 0]
  assert (start == 255).sum() == 25 and (start == 128).sum() == 25  # agent, goal: 5x5 each
  assert np.argwhere(start == 255)[:, 1].max() < np.argwhere(start == 128)[:, 1].min()


def test_toy_corridor_is_a_reserved_game_name_not_an_atari100k_game():
  assert environment.check_game('toycorridor') == 'ToyCorridor'
  assert 'ToyCorridor' not in environment.GAMES and len(environment.GAMES) == 26
  with pytest.raises(ValueError, match='length \\+ tail <= 14; got length 13, tail 2'):
    toy_games.ToyCorridor(length=13)


@pytest.mark.parametrize('dueling', [True, False])
def test_drq_network_at_its_defaults_is_dopamines_full_rainbow_network(dueling):
  kwargs = dict(num_actions=4, num_atoms=1, noisy=False, dueling=dueling, distributional=False)
  x = np.random.default_rng(0).integers(0, 255, (84, 84, 4)).astype(np.uint8)
  support = np.zeros(1, np.float32)
  key = jax.random.PRNGKey(7)
  ours, theirs = DrQNetwork(**kwargs), networks.FullRainbowNetwork(**kwargs)
  ours_params = ours.init(key, x, support=support)
  theirs_params = theirs.init(key, x, support=support)
  assert jax.tree_util.tree_structure(ours_params) == jax.tree_util.tree_structure(theirs_params)
  for a, b in zip(jax.tree_util.tree_leaves(ours_params), jax.tree_util.tree_leaves(theirs_params)):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(ours.apply(ours_params, x, support=support).q_values,
                                theirs.apply(theirs_params, x, support=support).q_values)


def test_drq_network_widths_set_the_layer_shapes():
  net = DrQNetwork(num_actions=3, num_atoms=1, noisy=False, dueling=True, distributional=False,
                   conv_features=(8, 16, 16), hidden_units=64)
  params = net.init(jax.random.PRNGKey(0), np.zeros((84, 84, 4), np.uint8),
                    support=np.zeros(1, np.float32))['params']
  assert [params[f'Conv_{i}']['kernel'].shape[-1] for i in range(3)] == [8, 16, 16]
  assert params['Dense_0']['kernel'].shape == (11 * 11 * 16, 64)  # 'SAME' padding: 84 -> 21 -> 11 -> 11
  assert params['Dense_1']['kernel'].shape == (64, 3) and params['Dense_2']['kernel'].shape == (64, 1)
