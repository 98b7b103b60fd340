"""The warm-start command line (warmstart/run.py): the sweep's seed syntax (common/seeds.py),
``--first-seed`` with a count only, and the options of the official code's choices reaching the
run's settings. No training: the jobs are only listed.
"""

import os

import numpy as np
import optax
import pytest

from atari100k.sweep import grid as sweep_grid
from warmstart import methods
from warmstart import protocols
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


# --------------------------------------------------------------------------- issue 15's options

def prepared(labels, image_shape=(1, 1, 1)):
  """The protocols' prepared training data: zero images with these labels, no test split."""
  # pylint: disable-next=protected-access
  return protocols._Prepared(np.zeros((len(labels),) + image_shape, np.float32),
                             np.asarray(labels, np.int32), None, None, 10)


def config_of(argv):
  """The ProtocolConfig of the first job the arguments ask for."""
  args = run_cli.build_parser().parse_args(argv)
  run_cli.apply_model_defaults(args)
  return run_cli.configs_from_args(args)[0][0]


def test_label_noise_flag_reaches_the_protocols_labels():
  assert config_of([]).label_noise == 'other'
  assert config_of(['--label-noise', 'any']).label_noise == 'any'
  labels = np.full(400, 3, np.int32)  # one class: the phase's shuffled order cannot matter
  wrong = {}
  for kind in ('other', 'any'):
    config = protocols.ProtocolConfig(noise=1.0, num_phases=1, label_noise=kind)
    _, _, noisy, noise = next(protocols.continual_phases(prepared(labels), config))
    assert noise == 1.0
    wrong[kind] = int(np.sum(noisy != labels))
  assert wrong['other'] == 400  # every label moved to another class
  assert 300 < wrong['any'] < 400  # about 9 in 10


def test_init_and_normalize_flags_reach_the_model():
  def model_of(argv):
    config = config_of(['--dataset', 'digits', '--model', 'mlp'] + argv)
    data = prepared(np.zeros(4), (8, 8, 1))
    return protocols.make_trainer(config, methods.parse_method('warm'), data).model
  model = model_of([])
  assert (model.init_scheme, model.input_mean, model.input_std) == ('torch', (0.4914,), (0.3081,))
  model = model_of(['--init', 'flax', '--normalize', 'unit'])
  assert (model.init_scheme, model.input_mean, model.input_std) == ('flax', (), ())


def test_adam_flags_reach_the_optimizer():
  argv = ['--dataset', 'digits', '--model', 'mlp', '--weight-decay', '0',
          '--adam-b1', '0.5', '--adam-b2', '0.75', '--adam-eps', '0.1']
  config = config_of(argv)
  optim = config.optim()
  assert (optim.b1, optim.b2, optim.eps, optim.weight_decay) == (0.5, 0.75, 0.1, 0.0)
  default = config_of([]).optim()  # official configs/trainer/base.yaml: betas, eps
  assert (default.b1, default.b2, default.eps) == (0.9, 0.999, 1e-8)
  data = prepared(np.zeros(4), (8, 8, 1))
  transform = protocols.make_trainer(config, methods.parse_method('warm'), data).transform
  # Two Adam steps worked by hand on gradients under the clipping norm 0.5 (no clipping):
  # m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, update = m / (1 - b1^t) / (sqrt(v / (1 -
  # b2^t)) + eps).
  params = {'w': np.array([1.0, -2.0], np.float32)}
  g1, g2 = np.array([0.3, -0.1]), np.array([0.1, 0.2])
  state = transform.init(params)
  update, state = transform.update({'w': g1.astype(np.float32)}, state, params)
  adam = next(s for s in state if isinstance(s, optax.ScaleByAdamState))
  np.testing.assert_allclose(adam.mu['w'], [0.15, -0.05], rtol=1e-6)    # (1 - b1) g1
  np.testing.assert_allclose(adam.nu['w'], [0.0225, 0.0025], rtol=1e-6)  # (1 - b2) g1^2
  np.testing.assert_allclose(update['w'], [0.3 / 0.4, -0.1 / 0.2], rtol=1e-6)  # g / (|g| + eps)
  update, state = transform.update({'w': g2.astype(np.float32)}, state, params)
  m = 0.5 * np.array([0.15, -0.05]) + 0.5 * g2
  v = 0.75 * np.array([0.0225, 0.0025]) + 0.25 * g2 ** 2
  np.testing.assert_allclose(update['w'], m / 0.75 / (np.sqrt(v / (1 - 0.75 ** 2)) + 0.1),
                             rtol=1e-5)
