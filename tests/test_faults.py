"""Fault injection on real short runs through the command line (``atari100k.run``).

* kill -9 at a random agent step, and in the middle of a checkpoint write: the same command
  then resumes from the last complete checkpoint and ends with the counters of a run that was
  never interrupted, and ``progress.csv`` has each row once;
* a failed checkpoint write (disk full, simulated): exit code 7, the previous checkpoint
  still loads, the same command resumes from it;
* divergence (learning rate 1e8): exit code 4, ``failed.json`` instead of ``result.json``,
  in Dopamine's stock DrQ update (parameters checked) and in the jitted H&T update (the loss
  watched at every gradient step), refused by a second run and by the analysis;
* unreadable, foreign and old-format checkpoints (exit code 6, ``--restart``), bad values and
  an unwritable run folder (exit code 2, before anything is built), a folder run by another
  live process (exit code 5).

Every run: Pong, 300 agent steps (100 of warm-up), checkpoints at 200 and 300, 2 evaluation
episodes of at most 100 steps.
"""

import json
import os
import random
import shutil
import subprocess
import sys
import textwrap

import pytest

from analysis import AnalysisError, loading
from atari100k import checkpoint_file, exit_codes, files, run, run_lock, runner

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 300
TINY = ['JaxDQNAgent.min_replay_history = 100',
        'Runner.max_steps_per_episode = 100',
        'DrQAgent.ht_reset_period = 50',
        'Atari100kRunner.chunk_steps = 100',
        'Atari100kRunner.checkpoint_every = 200']
DIVERGENT = ['create_optimizer.learning_rate = 1e8']


def argv(base, agent='drq_ht', extra=(), steps=STEPS, game='Pong'):
  bindings = [b for b in TINY + list(extra)
              if agent.endswith('_ht') or not b.startswith('DrQAgent.ht_reset_period')]
  return ['--agent', agent, '--game', game, '--base_dir', str(base), '--steps', str(steps),
          '--eval_episodes', '2', '--no_progress', '--gin_bindings', ';'.join(bindings)]


def folder_of(base, agent='drq_ht', game='Pong'):
  return files.run_folder(str(base), agent, game, 0)


def read_json(path):
  with open(path) as f:
    return json.load(f)


def progress_steps(folder):
  with open(os.path.join(folder, runner.PROGRESS_FILE)) as f:
    return [line.split(',')[0] for line in f.read().split()]


def run_killed(base, patch: str, extra=()):
  """Runs ``atari100k.run`` in a child process after ``patch`` (Python source that sets up a
  SIGKILL); returns the child's return code and output."""
  code = textwrap.dedent('''
      import os, signal, sys
      def die():
        os.kill(os.getpid(), signal.SIGKILL)
      {patch}
      from atari100k import run
      sys.exit(run.main({argv!r}))
  ''').format(patch=textwrap.indent(textwrap.dedent(patch), '').strip(),
              argv=argv(base, extra=extra))
  # The child finds the repository through its working directory (``-c`` puts it on sys.path)
  # and, where PYTHONSAFEPATH leaves the working directory out, through PYTHONPATH.
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3',
             PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get('PYTHONPATH')])))
  proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=600, check=False)
  return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
  base = tmp_path_factory.mktemp('uninterrupted')
  assert run.main(argv(base)) == exit_codes.FINISHED
  return read_json(os.path.join(folder_of(base), runner.RESULT_FILE))


def assert_same_counters(result, reference):
  for key in ('env_steps', 'gradient_steps', 'eval_episodes'):
    assert result[key] == reference[key], key


def test_kill_9_at_a_random_step_then_resume(tmp_path, uninterrupted):
  step = random.Random(1234).randint(201, STEPS - 1)  # after the step-200 checkpoint
  chunks = ['Atari100kRunner.chunk_steps = 50']  # progress rows past the checkpoint
  code, out = run_killed(tmp_path, f'''
      from agents import drq
      original = drq.DrQAgent._train_step
      def train_step(self):
        if self.training_steps == {step}:
          die()
        original(self)
      drq.DrQAgent._train_step = train_step''', chunks)
  assert code == -9, out[-3000:]
  folder = folder_of(tmp_path)
  assert checkpoint_file.read_info(os.path.join(folder, 'checkpoints',
                                                runner.CHECKPOINT_FILE))['steps_done'] == 200
  assert progress_steps(folder)[-1] == str(50 * (step // 50))
  assert run.main(argv(tmp_path, extra=chunks)) == exit_codes.FINISHED
  assert_same_counters(read_json(os.path.join(folder, runner.RESULT_FILE)), uninterrupted)
  assert progress_steps(folder) == ['env_steps'] + [str(s) for s in range(50, 301, 50)]


def test_kill_9_during_a_checkpoint_write_keeps_the_previous_one(tmp_path, uninterrupted):
  code, out = run_killed(tmp_path, '''
      import numpy as np
      from atari100k import checkpoint_file
      saves, arrays = [], []
      original_save, original_write = checkpoint_file.save, np.lib.format.write_array
      def save(*args, **kwargs):
        saves.append(1)
        return original_save(*args, **kwargs)
      def write_array(*args, **kwargs):
        arrays.append(1)
        if len(saves) == 2 and len(arrays) > 40:  # well into the step-300 checkpoint
          die()
        return original_write(*args, **kwargs)
      checkpoint_file.save = save
      np.lib.format.write_array = write_array''')
  assert code == -9, out[-3000:]
  folder = folder_of(tmp_path)
  checkpoints = os.path.join(folder, 'checkpoints')
  leftovers = [n for n in os.listdir(checkpoints) if '.tmp-' in n]
  assert len(leftovers) == 1  # the half-written file
  info, _ = checkpoint_file.load(os.path.join(checkpoints, runner.CHECKPOINT_FILE))
  assert info['steps_done'] == 200
  assert run.main(argv(tmp_path)) == exit_codes.FINISHED
  assert_same_counters(read_json(os.path.join(folder, runner.RESULT_FILE)), uninterrupted)
  assert progress_steps(folder) == ['env_steps', '100', '200', '300']
  assert not os.path.exists(checkpoints) or os.listdir(checkpoints) == []


def test_disk_full_at_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, capsys,
                                                         uninterrupted):
  original = checkpoint_file.save

  def full_disk_at_300(path, tree, info):
    if info['steps_done'] == 300:
      raise OSError(28, 'No space left on device')
    return original(path, tree, info)
  monkeypatch.setattr(checkpoint_file, 'save', full_disk_at_300)
  assert run.main(argv(tmp_path)) == exit_codes.CANNOT_WRITE
  err = capsys.readouterr().err
  assert 'No space left on device' in err and 'previous checkpoint is intact' in err
  folder = folder_of(tmp_path)
  path = os.path.join(folder, 'checkpoints', runner.CHECKPOINT_FILE)
  assert checkpoint_file.load(path)[0]['steps_done'] == 200
  assert not os.path.exists(os.path.join(folder, runner.RESULT_FILE))
  monkeypatch.setattr(checkpoint_file, 'save', original)
  assert run.main(argv(tmp_path)) == exit_codes.FINISHED
  assert 'Resuming' in capsys.readouterr().err
  assert_same_counters(read_json(os.path.join(folder, runner.RESULT_FILE)), uninterrupted)


@pytest.mark.parametrize('agent, quantity', [('drq', 'online parameters (params/'),
                                             ('drq_ht', 'loss')])
def test_divergence_stops_the_run_with_failed_json(tmp_path, capsys, agent, quantity):
  assert run.main(argv(tmp_path, agent, DIVERGENT)) == exit_codes.DIVERGED
  err = capsys.readouterr().err
  folder = folder_of(tmp_path, agent)
  assert 'diverged' in err and 'failed.json' in err and 'Traceback' not in err
  assert not os.path.exists(os.path.join(folder, runner.RESULT_FILE))
  failure = read_json(os.path.join(folder, runner.FAILED_FILE))
  assert failure['status'] == 'diverged' and failure['quantity'].startswith(quantity)
  assert failure['detected_at_env_step'] == 200  # the first check after training started
  assert failure['agent'] == agent and failure['gin_bindings'][-1] == DIVERGENT[0]
  if agent == 'drq_ht':  # the loss is watched at every gradient step
    assert 1 <= failure['gradient_step'] <= failure['detected_at_gradient_step']
    assert failure['last_finite_loss'] is not None
    assert failure['last_finite_loss_step'] == failure['gradient_step'] - 1
  else:  # Dopamine's stock update: parameters checked after each chunk
    assert failure['gradient_step'] is None and failure['last_good_gradient_step'] == 0
  # Deterministic: the same command refuses to train it again.
  assert run.main(argv(tmp_path, agent, DIVERGENT)) == exit_codes.DIVERGED
  assert 'holds a run that diverged' in capsys.readouterr().err
  # The analysis refuses it by name, or leaves it out when asked to.
  other = os.path.join(str(tmp_path), agent, 'Pong', 'seed_1')
  os.makedirs(other)
  with open(os.path.join(other, 'result.json'), 'w') as f:
    json.dump({'agent': agent, 'game': 'Pong', 'seed': 1, 'score': -20.0}, f)
  with pytest.raises(AnalysisError, match=f'diverged.*{agent}/Pong/seed_0.*--skip-failed'):
    loading.load_runs(str(tmp_path))
  agents, summary = loading.load_runs(str(tmp_path), skip_failed=True)
  assert [a.name for a in agents] == [agent] and len(summary.failed) == 1


def test_unreadable_checkpoint_names_the_file_and_restart_starts_over(tmp_path, capsys):
  folder = folder_of(tmp_path, 'drq')
  path = os.path.join(folder, 'checkpoints', runner.CHECKPOINT_FILE)
  os.makedirs(os.path.dirname(path))
  with open(path, 'wb') as f:
    f.write(os.urandom(1000))
  assert run.main(argv(tmp_path, 'drq', steps=150)) == exit_codes.BAD_CHECKPOINT
  err = capsys.readouterr().err
  assert path in err and '--restart' in err and 'Traceback' not in err
  assert open(path, 'rb').read() and not os.path.exists(os.path.join(folder, 'config.gin'))
  assert run.main(argv(tmp_path, 'drq', steps=150) + ['--restart']) == exit_codes.FINISHED
  assert '--restart' in capsys.readouterr().err
  assert any(n.startswith(runner.CHECKPOINT_FILE + '.aside-')
             for n in os.listdir(os.path.dirname(path)))
  assert read_json(os.path.join(folder, runner.RESULT_FILE))['env_steps'] == 150


def test_old_pickle_checkpoint_is_refused_unloaded(tmp_path, capsys):
  folder = folder_of(tmp_path, 'drq')
  os.makedirs(os.path.join(folder, 'checkpoints'))
  marker = tmp_path / 'unpickled'
  with open(os.path.join(folder, 'checkpoints', runner.OLD_PICKLE_CHECKPOINT), 'wb') as f:
    # A pickle that would create a file if it were ever loaded.
    f.write(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
  assert run.main(argv(tmp_path, 'drq')) == exit_codes.BAD_CHECKPOINT
  assert 'pickle format of earlier versions' in capsys.readouterr().err
  assert not marker.exists()


def test_checkpoint_of_another_run_or_configuration_is_refused(tmp_path, capsys):
  source = tmp_path / 'source'
  assert run.main(argv(source, 'drq', steps=200) + ['--keep_checkpoint']) == 0
  saved = os.path.join(folder_of(source, 'drq'), 'checkpoints', runner.CHECKPOINT_FILE)
  # Another game's folder: refused from its header, before anything is built.
  other_game = os.path.join(folder_of(tmp_path, 'drq', 'Breakout'), 'checkpoints')
  os.makedirs(other_game)
  shutil.copy(saved, other_game)
  assert run.main(argv(tmp_path, 'drq', game='Breakout')) == exit_codes.BAD_CHECKPOINT
  assert "belongs to another run (game 'Pong', this run 'Breakout')" in capsys.readouterr().err
  # Same run, another network: refused when the arrays do not fit.
  os.remove(os.path.join(folder_of(source, 'drq'), runner.RESULT_FILE))
  assert run.main(argv(source, 'drq', ['JaxFullRainbowAgent.dueling = False'], steps=300)
                  ) == exit_codes.BAD_CHECKPOINT
  err = capsys.readouterr().err
  assert 'does not fit this run' in err and 'online parameters' in err


@pytest.mark.parametrize('binding, message', [
    ('DrQAgent.ht_reset_period = -5', 'DrQAgent.ht_reset_period = -5: must be an integer >= 0'),
    ('DrQAgent.sp_shrink = 1.5', 'DrQAgent.sp_shrink = 1.5: must be a number in [0, 1]'),
    ('DrQAgent.target_update_tau = 0.0', 'DrQAgent.target_update_tau = 0.0: must be'),
    ('BBFSettings.reset_every = -1', 'BBFSettings.reset_every = -1: must be an integer >= 0'),
    ('Atari100kRunner.chunk_steps = 99', 'chunk_steps must be even'),
    ('Atari100kRunner.checkpoint_every = 150', 'must be a multiple of'),
    ('Runner.training_steps = -5', 'Runner.training_steps = -5: must be an integer >= 1'),
    ('JaxDQNAgent.gamma = 2', 'JaxDQNAgent.gamma = 2: must be a number in [0, 1]'),
])
def test_bad_values_are_refused_before_anything_is_built(tmp_path, capsys, binding, message):
  agent = 'bbf' if binding.startswith('BBF') else 'drq_ht'
  code = run.main(['--agent', agent, '--game', 'Pong', '--base_dir', str(tmp_path),
                   '--gin_bindings', binding])
  assert code == exit_codes.BAD_INPUT
  err = capsys.readouterr().err
  assert message in err and 'Traceback' not in err
  assert not os.listdir(tmp_path)


def test_unwritable_runs_folder_is_refused_before_anything_is_built(capsys):
  code = run.main(['--agent', 'drq', '--game', 'Pong', '--base_dir', '/proc/nope'])
  assert code == exit_codes.BAD_INPUT
  err = capsys.readouterr().err
  assert 'cannot write the run folder /proc/nope/drq/Pong/seed_0' in err
  assert 'RUNS=' in err and 'Traceback' not in err


def test_a_folder_run_by_a_live_process_is_refused(tmp_path, capsys):
  folder = folder_of(tmp_path, 'drq')
  os.makedirs(folder)
  with run_lock.RunLock(folder):
    assert run.main(argv(tmp_path, 'drq')) == exit_codes.FOLDER_BUSY
  err = capsys.readouterr().err
  assert f'pid {os.getpid()}' in err and 'another live process' in err
  assert os.listdir(folder) == [run_lock.LOCK_FILE]
  # A lock file left by a process that died does not block: the kernel dropped its lock.
  with run_lock.RunLock(folder):
    pass


def test_runner_docs_list_every_exit_code():
  with open(os.path.join(REPO, 'docs', 'runner.md')) as f:
    page = f.read()
  for code in exit_codes.MEANING:
    assert f'\n| {code} | ' in page, code
