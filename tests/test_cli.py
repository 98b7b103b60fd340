"""The command lines: one spelling (dashes, old underscore spellings kept as aliases), a
``build_parser()`` in every CLI module, and a start-up free of TensorFlow, XLA and gym messages
unless -v asks for them (``common.quiet``).
"""

import argparse
import importlib
import os
import pathlib
import subprocess
import sys
import warnings

import pytest

from common import quiet

REPO = pathlib.Path(__file__).resolve().parent.parent
CLI_MODULES = ['atari100k.run', 'atari100k.bench', 'atari100k.bench_bbf',
               'atari100k.bench_checkpoint', 'atari100k.gpu_check', 'analysis.aggregate',
               'warmstart.plots']
# One line of each kind of start-up noise the issue names (TensorFlow/XLA's C++ log, gym).
NOISE = ['Unable to register cuDNN factory', 'computation placer already registered',
         'Gym has been unmaintained']
RUN = ['--agent', 'drq', '--game', 'Pong']


@pytest.fixture(autouse=True)
def quiet_mode():
  """The quiet mode is the process's: every test starts and ends quiet."""
  quiet.configure(False)
  yield
  quiet.configure(False)


def parse(module: str, argv) -> dict:
  return vars(importlib.import_module(module).build_parser().parse_args(argv))


@pytest.mark.parametrize('module,new,old', [
    ('atari100k.run', RUN + ['--runs', 'r'], RUN + ['--base_dir', 'r']),
    ('atari100k.run', RUN + ['--runs', 'r'], RUN + ['--base-dir', 'r']),
    ('atari100k.run', RUN + ['--gin', 'A.b = 1;C.d = 2', '--gin', 'E.f = 3'],
     RUN + ['--gin_bindings', 'A.b = 1;C.d = 2', '--gin-bindings', 'E.f = 3']),
    ('atari100k.run', RUN + ['--eval-episodes', '4'], RUN + ['--eval_episodes', '4']),
    ('atari100k.run', RUN + ['--keep-checkpoint'], RUN + ['--keep_checkpoint']),
    ('atari100k.run', RUN + ['--no-progress'], RUN + ['--no_progress']),
    ('atari100k.run', RUN + ['--verbose'], RUN + ['-v']),
    ('atari100k.bench_bbf', ['--num-actions', '6'], ['--num_actions', '6']),
    ('analysis.aggregate', ['--score-files', 'a.json', 'b.json'],
     ['--score_files', 'a.json', 'b.json']),
    ('analysis.aggregate', ['--curve-reps', '7'], ['--curve_reps', '7']),
    ('analysis.aggregate', ['--common-games'], ['--common_games']),
    ('analysis.aggregate', ['--reference-statistics'], ['--reference_statistics']),
    ('analysis.aggregate', ['--no-plots'], ['--no_plots']),
    ('analysis.aggregate', ['--skip-failed'], ['--skip_failed']),
])
def test_old_spelling_parses_to_the_same_value(module, new, old):
  assert parse(module, new) == parse(module, old)
  assert parse(module, new) != parse(module, RUN if module == 'atari100k.run' else [])


def test_run_flags_reach_the_names_main_reads():
  args = parse('atari100k.run', RUN + ['--runs', 'r', '--gin', 'A.b = 1;C.d = 2', '--gin',
                                       'E.f = 3', '--eval-episodes', '4', '--keep-checkpoint',
                                       '--no-progress', '-v'])
  assert args['base_dir'] == 'r' and args['eval_episodes'] == 4
  assert args['gin_bindings'] == ['A.b = 1;C.d = 2', 'E.f = 3']
  assert args['keep_checkpoint'] and args['no_progress'] and args['verbose']
  defaults = parse('atari100k.run', RUN)
  assert defaults['base_dir'] == 'runs' and defaults['gin_bindings'] == []
  assert not defaults['verbose']


@pytest.mark.parametrize('module', CLI_MODULES)
def test_every_cli_has_build_parser_with_dashed_names_first(module):
  parser = importlib.import_module(module).build_parser()
  assert isinstance(parser, argparse.ArgumentParser)
  for action in parser._actions:  # pylint: disable=protected-access
    if action.option_strings:
      assert '_' not in action.option_strings[0], (module, action.option_strings)


def test_entry_points_edit_no_sys_path():
  for folder in ('agents', 'analysis', 'atari100k', 'common', 'warmstart'):
    for path in (REPO / folder).glob('*.py'):
      assert 'sys.path.insert' not in path.read_text(), path


def test_drop_noise_keeps_every_other_line():
  text = ('WARNING: All log messages before absl::InitializeLog() is called are written to '
          'STDERR\n'
          'E0000 00:00:1796185406.153798    4266 cuda_dnn.cc:8579] Unable to register cuDNN '
          'factory: Attempting to register factory for plugin cuDNN when one has already been '
          'registered\n'
          'W0000 00:00:1796185406.215996    4266 computation_placer.cc:177] computation placer '
          'already registered. Please check linkage and avoid linking the same target more '
          'than once.\n'
          'a real warning of ours\n'
          'Gym has been unmaintained since 2022 and does not support NumPy 2.0 amongst other '
          'critical functionality.\n'
          'Please upgrade to Gymnasium, the maintained drop-in replacement of Gym, or contact '
          'the authors of your software and request that they upgrade.\n'
          'See the migration guide at https://gymnasium.farama.org/introduction/'
          'migration_guide/ for additional information.\n'
          'E0000 00:00:1.0 1 gpu.cc:1] a real error\n')
  assert quiet.drop_noise(text) == ('a real warning of ours\n'
                                    'E0000 00:00:1.0 1 gpu.cc:1] a real error\n')


def test_library_imports_filters_noise_from_both_streams_and_keeps_the_rest(capfd):
  with quiet.library_imports():
    os.write(2, b'W0000 00:00:1.0 1 computation_placer.cc:177] computation placer already '
                b'registered. Please check linkage and avoid linking the same target\n'
                b'a real C++ error\n')
    print('Gym has been unmaintained since 2022 and does not support NumPy 2.0',
          file=sys.stderr)
    print('a real Python warning', file=sys.stderr)
  err = capfd.readouterr().err
  assert 'a real C++ error' in err and 'a real Python warning' in err
  assert not any(noise in err for noise in NOISE)


def test_library_deprecations_are_hidden_and_ours_are_not():
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    with quiet.library_imports():
      warnings.warn_explicit('their old API', DeprecationWarning, 'ops.py', 1,
                             module='tensorflow_probability.python.ops')
      warnings.warn_explicit('our old API', DeprecationWarning, 'drq.py', 1, module='agents.drq')
  assert [str(w.message) for w in caught] == ['our old API']


def test_library_imports_passes_everything_through_when_verbose(capfd):
  quiet.configure(True)
  with quiet.library_imports():
    print('Gym has been unmaintained since 2022', file=sys.stderr)
  assert 'Gym has been unmaintained' in capfd.readouterr().err


def test_library_imports_restores_stderr_after_an_error(capfd):
  with pytest.raises(RuntimeError, match='boom'):
    with quiet.library_imports():
      print('said before the error', file=sys.stderr)
      raise RuntimeError('boom')
  print('said after', file=sys.stderr)
  err = capfd.readouterr().err
  assert 'said before the error' in err and 'said after' in err


def python_m(*argv, timeout=600):
  """``python -m ...`` from the repo root in a fresh process, without the test suite's own
  TF_CPP_MIN_LOG_LEVEL (conftest sets it), as a user would start it."""
  env = {k: v for k, v in os.environ.items()
         if k not in ('TF_CPP_MIN_LOG_LEVEL', 'PYTHONWARNINGS')}
  return subprocess.run([sys.executable, '-m', *argv], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=timeout, check=False)


def test_run_help_is_quiet_and_verbose_shows_the_noise():
  done = python_m('atari100k.run', '--help')
  assert done.returncode == 0, done.stderr
  assert '--runs DIR' in done.stdout and '--gin BINDINGS' in done.stdout
  output = done.stdout + done.stderr
  assert not any(noise in output for noise in NOISE), output
  loud = python_m('atari100k.run', '--help', '-v')
  assert loud.returncode == 0 and 'Gym has been unmaintained' in loud.stderr


def test_short_real_run_is_quiet(tmp_path):
  done = python_m('atari100k.run', '--agent', 'drq', '--game', 'Pong', '--runs', str(tmp_path),
                  '--steps', '150', '--eval-episodes', '1', '--no-progress', '--gin',
                  'JaxDQNAgent.min_replay_history = 100;Runner.max_steps_per_episode = 50')
  assert done.returncode == 0, done.stderr
  assert 'score' in done.stdout
  output = done.stdout + done.stderr
  assert not any(noise in output for noise in NOISE + ['Arcade Learning Environment']), output
