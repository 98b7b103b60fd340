"""The evaluation loop of Dopamine's vectorised runner, as our runner uses it.

Driven with the deterministic ``FakeEnv`` of ``test_replay.py`` (rewards scaled to 10x so that
training-time clipping would show): every evaluation environment plays exactly one game, the
reported returns are the unclipped game scores, nothing is stored in the replay buffer, no
gradient step or agent step is counted, and the agent acts with epsilon_eval.
"""

import numpy as np
import pytest
from dopamine.discrete_domains import iteration_statistics
from dopamine.labs.atari_100k import atari_100k_runner

import test_replay as tr  # the FakeEnv, runner fixture and gin settings


class ScaledRewardEnv(tr.FakeEnv):
  """FakeEnv with rewards x10 (outside [-1, 1]) that counts its resets."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.resets = 0

  def reset(self):
    self.resets += 1
    return super().reset()

  def step(self, action):
    obs, reward, done, info = super().step(action)
    return obs, 10.0 * reward, done, info


@pytest.mark.parametrize('num_envs', [1, 5])
def test_eval_plays_one_unclipped_game_per_env_and_stores_nothing(tmp_path, num_envs):
  run = tr.build_and_run(tmp_path, 'drq', life_lengths=(9,), lives=3,
                         max_steps_per_episode=27000, chunks=(40,))
  runner, agent = run.runner, run.agent
  created = []

  def make_eval_env():
    env = ScaledRewardEnv(life_lengths=(7, 4), lives=2)
    created.append(env)
    return env
  runner.create_environment_fn = atari_100k_runner.create_env_wrapper(make_eval_env)
  runner.num_eval_envs = num_envs
  runner._num_eval_episodes = num_envs  # pylint: disable=protected-access
  add_count, steps = agent._replay.add_count, agent.training_steps  # pylint: disable=protected-access
  stats = iteration_statistics.IterationStatistics()
  runner._run_eval_phase(stats)  # pylint: disable=protected-access

  returns = stats.data_lists['eval_episode_returns']
  assert len(created) == num_envs and [env.resets for env in created] == [1] * num_envs
  # A game: lives of 7 and 4 steps, 11 steps; rewards 10 * (1, 0, -1, 0.5) cycled per env.
  expected = 10.0 * sum(tr.REWARD_CYCLE[t % 4] for t in range(11))
  assert returns == [pytest.approx(expected)] * num_envs
  clipped = sum(np.clip(10.0 * tr.REWARD_CYCLE[t % 4], -1, 1) for t in range(11))
  assert expected == 10.0 and clipped == 2.0  # the returns are not the clipped ones
  assert stats.data_lists['eval_episode_lengths'] == [11] * num_envs
  assert agent._replay.add_count == add_count and agent.training_steps == steps  # pylint: disable=protected-access
  assert agent.eval_mode
  assert agent.epsilon_eval == pytest.approx(0.001)
