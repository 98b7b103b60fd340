"""The warm-start command line's seeds (warmstart/run.py): the sweep's seed syntax
(common/seeds.py), and ``--first-seed`` with a count only. No training: the jobs are only listed.
"""

import os

import pytest

from atari100k.sweep import grid as sweep_grid
from warmstart import run as run_cli


def seeds_of(argv):
  """The seeds the study would run for ``argv``, in its job order (first cell, first method)."""
  args = run_cli.build_parser().parse_args(argv)
  run_cli.apply_model_defaults(args)
  jobs = run_cli.configs_from_args(args)
  return [config.seed for config, spec in jobs if spec == args.methods[0]]


def test_default_seeds_are_0_1_2():
  assert seeds_of([]) == [0, 1, 2]
  assert seeds_of(['--seeds', '2', '--first-seed', '3']) == [3, 4]  # a count from K, as before


@pytest.mark.parametrize('spec, expected', [
    ('5', [0, 1, 2, 3, 4]), ('3-6', [3, 4, 5, 6]), ('0,2,7', [0, 2, 7]), ('7,', [7])])
def test_seeds_take_the_sweeps_syntax(spec, expected):
  assert seeds_of(['--seeds', spec]) == expected == sweep_grid.parse_seeds(spec)


def test_every_cell_runs_every_seed():
  args = run_cli.build_parser().parse_args(['--seeds', '4,1', '--subset', '0.1', '0.5',
                                            '--methods', 'warm', 'fresh'])
  run_cli.apply_model_defaults(args)
  jobs = [(c.subset, c.seed, spec) for c, spec in run_cli.configs_from_args(args)]
  assert jobs == [(subset, seed, spec) for subset in (0.1, 0.5) for seed in (4, 1)
                  for spec in ('warm', 'fresh')]


@pytest.mark.parametrize('argv, message', [
    (['--seeds', 'two'], "--seeds 'two' is not a seed count or list"),
    (['--seeds', '1,1'], 'with distinct non-negative seeds'),
    (['--seeds', '3-6', '--first-seed', '2'],
     "--first-seed applies to a seed count only, and --seeds '3-6' names its seeds: drop "
     '--first-seed (seeds 3-6 as written), or give a count with it (--seeds 4 --first-seed 2: '
     'seeds 2..5).'),
    (['--seeds', '0,3', '--first-seed', '0'], 'drop --first-seed'),
    (['--seeds', '2', '--first-seed', '-1'], '--first-seed must be 0 or more'),
])
def test_bad_seeds_are_exit_code_2_before_anything_runs(tmp_path, capsys, argv, message):
  out = tmp_path / 'study'
  assert run_cli.main(['--dataset', 'digits', '--out', str(out), '--no-progress'] + argv) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: ') and message in err and 'Traceback' not in err
  assert not os.path.exists(out)
