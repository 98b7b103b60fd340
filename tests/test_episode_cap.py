"""The episode cap is a truncation: counted in agent steps after the no-op start, it stores no
terminal in either agent's replay and restarts the frame stack; the ALE frame cap of Dopamine
4.1.2 (``create_atari100k_environment.max_frames_per_episode = 108000``) is a switch away.

Real Pong (no lives, so nothing but the cap ends an episode in a few hundred steps), the real
runner and agents, no gradient step (the replay warm-up is longer than the run).
"""

import numpy as np
import pytest

from agents import settings
from atari100k import configs, environment, runner

CAP = 40     # Runner.max_steps_per_episode in the runner tests (agent steps)
STEPS = 240  # training steps: 6 capped episodes when the cap counts agent steps only
NO_TRAINING = {'drq': ['JaxDQNAgent.min_replay_history = 100000'],
               'bbf': ['BBFSettings.width_scale = 1', 'JaxDQNAgent.min_replay_history = 100000']}


def test_the_ale_does_not_cap_episodes_by_default():
  env = environment.create_atari100k_environment('Pong', seed=0)
  assert env.environment.unwrapped.ale.getInt('max_num_frames_per_episode') == 0


def test_an_ale_frame_cap_ends_the_episode_as_a_terminal():
  # Dopamine 4.1.2's behaviour, kept as a switch: 40 frames = 10 agent steps, then terminal.
  env = environment.create_atari100k_environment('Pong', seed=0, max_frames_per_episode=40)
  env.reset()
  assert [env.step(0)[2] for _ in range(10)] == [False] * 9 + [True]
  assert env.game_over


@pytest.mark.parametrize('value', [0, -108000, 1.5, True])
def test_a_bad_frame_cap_is_a_clear_error(value):
  with pytest.raises(settings.SettingError,
                     match=r'create_atari100k_environment.max_frames_per_episode = .*or None'):
    environment.create_atari100k_environment('Pong', max_frames_per_episode=value)


def test_a_bad_frame_cap_stops_the_command_line_before_the_run(tmp_path, capsys):
  from atari100k import run  # pylint: disable=import-outside-toplevel
  code = run.main(['--agent', 'drq', '--game', 'Pong', '--runs', str(tmp_path), '--steps', '100',
                   '--no-progress', '--gin',
                   'create_atari100k_environment.max_frames_per_episode = -1'])
  assert code != 0
  assert 'max_frames_per_episode = -1' in capsys.readouterr().err
  assert not list(tmp_path.rglob('result.json'))


def train_and_log(tmp_path, agent, extra=()):
  """Trains ``agent`` for STEPS steps of Pong with the runner's cap at CAP steps; returns
  (runner, [(terminal, episode_end)] per logged step, [acting frame stack] per step)."""
  configs.parse_agent_config(agent, NO_TRAINING[agent] + [
      f'Runner.training_steps = {STEPS}', f'Runner.max_steps_per_episode = {CAP}',
      'Atari100kRunner.chunk_steps = 120', f'Atari100kRunner.checkpoint_every = {STEPS}',
      *extra])
  run = runner.Atari100kRunner(str(tmp_path), game='Pong', seed=0, agent_name=agent,
                               progress=False)
  agent_ = run._agent  # pylint: disable=protected-access
  logged, stacks = [], []
  log_transition, step = agent_.log_transition, agent_.step

  def spy_log(observation, action, reward, terminal, episode_end):
    logged.append((bool(np.any(terminal)), bool(np.any(episode_end))))
    return log_transition(observation, action, reward, terminal, episode_end)

  def spy_step(*args, **kwargs):
    stacks.append(np.array(agent_.state, copy=True))
    return step(*args, **kwargs)

  agent_.log_transition, agent_.step = spy_log, spy_step
  run._train(0, [], 0.0)  # pylint: disable=protected-access
  assert len(logged) == STEPS == len(stacks)
  return run, logged, stacks


def episode_lengths(logged):
  ends = [i + 1 for i, (_, end) in enumerate(logged) if end]
  return list(np.diff([0] + ends))


def stored_terminals(agent) -> int:
  replay = agent._replay  # pylint: disable=protected-access
  if hasattr(replay, '_memory'):  # DrQ: Dopamine's buffer of n-step elements
    return sum(bool(np.any(e.unpack().is_terminal)) for e in replay._memory.values())  # pylint: disable=protected-access
  return int(np.sum(replay._terminals[:replay.add_count]))  # pylint: disable=protected-access


@pytest.mark.parametrize('agent', ['drq', 'bbf'])
def test_the_runners_cap_is_a_truncation_counted_after_the_no_ops(tmp_path, agent):
  run, logged, stacks = train_and_log(tmp_path, agent)
  # Every episode is exactly CAP agent steps, whatever its 0-29 no-ops took.
  assert episode_lengths(logged) == [CAP] * (STEPS // CAP)
  assert not any(terminal for terminal, _ in logged)
  assert stored_terminals(run._agent) == 0  # pylint: disable=protected-access
  # The frame stack restarts: the first step of each later episode sees one frame, three zeros.
  for start in range(CAP, STEPS, CAP):
    assert not np.any(stacks[start][..., :-1]) and np.any(stacks[start][..., -1])
    assert np.any(stacks[start - 1][..., 0])


@pytest.mark.parametrize('agent', ['drq', 'bbf'])
def test_the_ale_cap_switch_stores_capped_episodes_as_terminals(tmp_path, agent):
  run, logged, _ = train_and_log(
      tmp_path, agent, [f'create_atari100k_environment.max_frames_per_episode = {4 * CAP}'])
  lengths = episode_lengths(logged)
  # The ALE counts the no-op frames: episodes after a no-op start end early, as terminals.
  assert all(length <= CAP for length in lengths) and min(lengths) < CAP
  assert all(terminal for terminal, end in logged if end)
  assert stored_terminals(run._agent) > 0  # pylint: disable=protected-access
