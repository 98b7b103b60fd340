"""Real short Atari-100k runs through the command line: every DrQ configuration, resume, errors.

Each run trains a few hundred agent steps on a real ALE game with a small replay warm-up and
short reset periods (so that every toggle fires), evaluates 2 episodes capped at 100 steps, and
must write a result.json that follows DESIGN.md's run-output contract.
"""

import json
import os

import pytest

from atari100k import configs, files, run, runner

DRQ_AGENTS = ['drq', 'drq_sp', 'drq_ht', 'drq_hr20k', 'drq_hr40k', 'drq_hr40k_ht', 'drq_ema']
TINY = ['JaxDQNAgent.min_replay_history = 100',
        'Runner.max_steps_per_episode = 100',
        'DrQAgent.ht_reset_period = 50',
        'Atari100kRunner.chunk_steps = 100',
        'Atari100kRunner.checkpoint_every = 200']
PERIODS = {'drq_sp': ['DrQAgent.sp_period = 200'],
           'drq_hr20k': ['DrQAgent.head_reset_period = 150'],
           'drq_hr40k': ['DrQAgent.head_reset_period = 250'],
           'drq_hr40k_ht': ['DrQAgent.head_reset_period = 250']}


def cli(tmp_path, agent, game='Pong', steps=300, extra=(), seed=0):
  bindings = TINY + PERIODS.get(agent, []) + list(extra)
  if agent in ('drq', 'drq_sp', 'drq_hr20k', 'drq_hr40k'):
    bindings = [b for b in bindings if not b.startswith('DrQAgent.ht_reset_period')]
  argv = ['--agent', agent, '--game', game, '--seed', str(seed), '--runs', str(tmp_path),
          '--steps', str(steps), '--eval-episodes', '2', '--no-progress']
  for b in bindings:
    argv += ['--gin', b]
  return run.main(argv)


def result_of(tmp_path, agent, game='Pong', seed=0):
  with open(os.path.join(files.run_folder(str(tmp_path), agent, game, seed), 'result.json')) as f:
    return json.load(f)


def test_every_drq_configuration_is_registered():
  assert set(DRQ_AGENTS) <= set(configs.available_agents())


def test_the_registry_is_exactly_the_named_configurations():
  # Included files (gin/includes/, *_base.gin) are not agents: --help and AGENT= list these.
  assert configs.available_agents() == sorted(
      DRQ_AGENTS + ['bbf', 'bbf_ht', 'bbf_ssl', 'bbf_ssl_ht'])


@pytest.mark.parametrize('agent', DRQ_AGENTS)
def test_short_real_run_writes_valid_result(tmp_path, agent):
  assert cli(tmp_path, agent) == 0
  result = result_of(tmp_path, agent)
  assert result['agent'] == agent and result['game'] == 'Pong' and result['seed'] == 0
  assert result['env_steps'] == 300
  assert result['gradient_steps'] > 100
  assert result['eval_episodes'] == 2 and len(result['eval_returns']) == 2
  assert result['score'] == pytest.approx(sum(result['eval_returns']) / 2)
  assert result['versions']['dopamine-rl'] == '4.1.2'
  folder = files.run_folder(str(tmp_path), agent, 'Pong', 0)
  assert os.path.exists(os.path.join(folder, 'config.gin'))
  assert 'DrQAgent' in open(os.path.join(folder, 'config.gin')).read()
  rows = open(os.path.join(folder, 'progress.csv')).read().splitlines()
  assert rows[0].startswith('env_steps,') and rows[-1].startswith('300,')
  assert not os.path.exists(os.path.join(folder, 'checkpoints', runner.CHECKPOINT_FILE))
  kinds = {kind for _, kind in result['resets']}
  assert kinds == {'drq_sp': {'sp'}, 'drq_hr20k': {'head_reset'}, 'drq_hr40k': {'head_reset'},
                   'drq_hr40k_ht': {'head_reset'}}.get(agent, set())


def test_interrupted_run_resumes_from_checkpoint(tmp_path, monkeypatch):
  original = runner.Atari100kRunner._append_progress

  def crash_at_300(self, row):
    original(self, row)
    if row['env_steps'] == 300:
      raise KeyboardInterrupt('simulated interruption')
  monkeypatch.setattr(runner.Atari100kRunner, '_append_progress', crash_at_300)
  assert cli(tmp_path, 'drq_ht', steps=400) == 130  # interrupted: exit code 130
  folder = files.run_folder(str(tmp_path), 'drq_ht', 'Pong', 0)
  assert os.path.exists(os.path.join(folder, 'checkpoints', runner.CHECKPOINT_FILE))
  assert not os.path.exists(os.path.join(folder, 'result.json'))
  monkeypatch.setattr(runner.Atari100kRunner, '_append_progress', original)

  loaded = {}
  original_load = runner.Atari100kRunner._load_checkpoint

  def spy_load(self):
    payload = original_load(self)
    loaded['steps'] = payload['steps_done']
    loaded['training_steps'] = self._agent.training_steps
    return payload
  monkeypatch.setattr(runner.Atari100kRunner, '_load_checkpoint', spy_load)
  assert cli(tmp_path, 'drq_ht', steps=400) == 0
  assert loaded == {'steps': 200, 'training_steps': 200}  # resumed, not restarted
  result = result_of(tmp_path, 'drq_ht')
  assert result['env_steps'] == 400
  rows = [r.split(',')[0] for r in open(os.path.join(folder, 'progress.csv')).read().split()]
  assert rows == ['env_steps', '100', '200', '300', '400']  # the re-trained 300 once


def test_unknown_game_lists_the_26_games(tmp_path, capsys):
  assert run.main(['--agent', 'drq', '--game', 'Pongg', '--runs', str(tmp_path)]) == 2
  err = capsys.readouterr().err
  assert "Unknown game 'Pongg'" in err and "Did you mean 'Pong'?" in err
  assert 'UpNDown' in err and '26 games' in err
  assert not os.listdir(tmp_path)


def test_unknown_agent_lists_the_names(tmp_path, capsys):
  assert run.main(['--agent', 'drq_hat', '--game', 'Pong', '--runs', str(tmp_path)]) == 2
  err = capsys.readouterr().err
  assert "Unknown agent 'drq_hat'" in err and 'drq_ht' in err and 'drq_hr40k_ht' in err


@pytest.mark.parametrize('binding', ['DrQAgent.ht_reset_perod = 10',
                                     'NoSuchThing.value = 1',
                                     'DrQAgent.ht_reset_period = = 3'])
def test_bad_gin_binding_is_a_clear_error(tmp_path, capsys, binding):
  argv = ['--agent', 'drq', '--game', 'Pong', '--runs', str(tmp_path), '--gin', binding]
  assert run.main(argv) == 2
  err = capsys.readouterr().err
  assert f'The gin binding {binding!r} cannot be applied' in err
  assert 'Traceback' not in err
  assert not os.listdir(tmp_path)


def test_finished_run_is_not_overwritten_without_force(tmp_path, capsys):
  folder = files.run_folder(str(tmp_path), 'drq', 'Pong', 0)
  os.makedirs(folder)
  with open(os.path.join(folder, 'result.json'), 'w') as f:
    f.write('{"score": 1.0}')
  assert run.main(['--agent', 'drq', '--game', 'Pong', '--runs', str(tmp_path)]) == 3
  assert 'already holds a finished run' in capsys.readouterr().err
  assert open(os.path.join(folder, 'result.json')).read() == '{"score": 1.0}'


def test_force_keeps_the_old_run_beside_the_new_one(tmp_path):
  folder = files.run_folder(str(tmp_path), 'drq', 'Pong', 0)
  os.makedirs(folder)
  with open(os.path.join(folder, 'result.json'), 'w') as f:
    f.write('{"score": 1.0}')
  argv = ['--agent', 'drq', '--game', 'Pong', '--runs', str(tmp_path), '--steps', '150',
          '--eval-episodes', '1', '--no-progress', '--force',
          '--gin', 'JaxDQNAgent.min_replay_history = 100;Runner.max_steps_per_episode = 50']
  assert run.main(argv) == 0
  siblings = os.listdir(os.path.dirname(folder))
  old = [s for s in siblings if s.startswith('seed_0.old-')]
  assert len(old) == 1
  assert open(os.path.join(os.path.dirname(folder), old[0], 'result.json')).read() == \
      '{"score": 1.0}'
  assert result_of(tmp_path, 'drq')['env_steps'] == 150


def test_eta_is_written_in_the_unit_a_reader_wants():
  assert runner.format_duration(600) == '10 min'
  assert runner.format_duration(3 * 3600) == '3.0 h'
  assert runner.format_duration(12.5 * 86400) == '12.5 days'


def test_no_periodic_reset_on_the_runs_last_training_step(tmp_path):
  # S&P every 150 agent steps in a 300-step run: at 150, not at 300 (the step before the
  # evaluation), whatever DrQAgent.resets_stop_at (100,000) says.
  assert cli(tmp_path, 'drq_sp', extra=['DrQAgent.sp_period = 150']) == 0
  assert result_of(tmp_path, 'drq_sp')['resets'] == [[150, 'sp']]
