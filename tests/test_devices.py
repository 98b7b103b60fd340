"""TensorFlow never sees the GPU (every entry point hides it before TensorFlow runs anything),
and a run says on which JAX device it computed."""

import json
import os

import jax
import pytest
import tensorflow as tf

from atari100k import bench, configs, devices, files, run
from atari100k.sweep import grid as sweep_grid


@pytest.fixture
def hidden(monkeypatch):
  """Counts the calls of devices.hide_gpu_from_tensorflow (and still makes them)."""
  calls = []
  original = devices.hide_gpu_from_tensorflow
  monkeypatch.setattr(devices, 'hide_gpu_from_tensorflow',
                      lambda: calls.append(1) or original())
  return calls


def test_hiding_empties_tensorflows_visible_gpus(monkeypatch):
  # This machine may have no GPU: TensorFlow is shown one, and must be told to drop it.
  visible = {'GPU': ['a GPU']}
  monkeypatch.setattr(tf.config, 'get_visible_devices', lambda kind=None: visible[kind])
  monkeypatch.setattr(tf.config, 'set_visible_devices',
                      lambda devices_, kind=None: visible.__setitem__(kind, list(devices_)))
  devices.hide_gpu_from_tensorflow()
  assert visible['GPU'] == []


@pytest.mark.parametrize('entry_point', ['run', 'sweep', 'bench', 'configs'])
def test_every_entry_point_hides_the_gpu_from_tensorflow(tmp_path, hidden, entry_point):
  if entry_point == 'run':  # stops at a bad value, after parsing the configuration
    assert run.main(['--agent', 'drq', '--game', 'Pong', '--base_dir', str(tmp_path),
                     '--gin_bindings', 'DrQAgent.sp_period = -1']) == 2
  elif entry_point == 'sweep':
    sweep_grid.check_bindings(['drq', 'bbf'], [], 100, 1)
  elif entry_point == 'bench':
    bench.build('drq_ht', seed=0, bindings=['JaxDQNAgent.min_replay_history = 10'])
  else:
    configs.parse_agent_config('bbf_ssl_ht')
  assert hidden  # before the configuration is built: nothing of TensorFlow has run yet
  assert tf.config.get_visible_devices('GPU') == []


def test_sweep_refuses_bad_values_before_starting():
  with pytest.raises(sweep_grid.SweepError, match='DrQAgent.sp_shrink = 2'):
    sweep_grid.check_bindings(['drq_sp'], ['DrQAgent.sp_shrink = 2'], 100, 1)


def test_describe_names_the_jax_backend_and_device():
  where = devices.describe()
  assert where['backend'] == jax.default_backend()
  assert where['device_count'] == len(jax.devices()) and where['device_kind']


def test_a_run_records_its_device_and_announces_it(tmp_path, capsys):
  argv = ['--agent', 'drq', '--game', 'Pong', '--base_dir', str(tmp_path), '--steps', '150',
          '--eval_episodes', '1', '--no_progress', '--gin_bindings',
          'JaxDQNAgent.min_replay_history = 100;Runner.max_steps_per_episode = 50;'
          'Atari100kRunner.chunk_steps = 50;Atari100kRunner.checkpoint_every = 150']
  assert run.main(argv) == 0
  with open(os.path.join(files.run_folder(str(tmp_path), 'drq', 'Pong', 0), 'result.json')) as f:
    result = json.load(f)
  assert result['device'] == devices.describe()
  err = capsys.readouterr().err
  assert f'drq Pong seed 0: JAX on {jax.default_backend()} (' in err
  assert 'make install GPU=1' not in err  # only full-width BBF on a CPU is warned


def test_full_width_bbf_on_a_cpu_is_told_the_cost_before_the_warm_up(tmp_path, capsys,
                                                                     monkeypatch):
  from atari100k import runner  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(runner.Atari100kRunner, '_load_checkpoint',
                      lambda self: (_ for _ in ()).throw(KeyboardInterrupt()))
  assert run.main(['--agent', 'bbf_ht', '--game', 'Pong', '--base_dir', str(tmp_path),
                   '--no_progress']) == 130  # stopped right after the start-up lines
  err = capsys.readouterr().err
  if jax.default_backend() == 'cpu':
    assert 'BBF at width 4 on a CPU' in err and '200,000 gradient steps' in err
    assert 'make install GPU=1' in err


def test_gpu_check_speed_is_measured_after_the_warm_up(tmp_path):
  from atari100k import gpu_check  # pylint: disable=import-outside-toplevel
  path = tmp_path / 'progress.csv'
  path.write_text('env_steps,gradient_steps,wall_time_s\n100,0,1.0\n200,0,2.0\n'
                  '300,100,12.0\n400,200,22.0\n')
  assert gpu_check.training_speed(str(path), warmup=200) == pytest.approx(200 / 20.0)
  with pytest.raises(ValueError, match='no row after the warm-up'):
    gpu_check.training_speed(str(path), warmup=400)


def test_gpu_check_short_run_projects_a_full_run(tmp_path):
  from atari100k import gpu_check  # pylint: disable=import-outside-toplevel
  result = gpu_check.short_run('drq', 160, 100, str(tmp_path))
  assert result['steps_per_s'] > 0 and result['paper_gpu_hours'] == 0.5
  assert result['projected_hours'] == pytest.approx(
      100_000 / result['steps_per_s'] / 3600, rel=0.01)
  assert gpu_check.main(['--steps', '100', '--warmup', '100']) == 2
