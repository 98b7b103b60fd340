"""Short real runs of both protocols on scikit-learn's digits, and the command line."""

import json
import os

import numpy as np
import pytest

from warmstart import data as data_lib
from warmstart import methods, protocols
from warmstart import run as run_cli

TINY = dict(dataset='digits', model='mlp', width=0.04, epochs=1, batch_size=64, steps_per_call=0,
            metric_examples=200)


@pytest.fixture(scope='module')
def digits():
  return data_lib.load_digits()


def test_warm_start_runs_two_phases_with_equal_updates(digits):
  config = protocols.ProtocolConfig(subset=0.2, noise=0.5, **TINY)
  rows = protocols.run_warmstart(config, 'hare_tortoise', methods.parse_method(
      'hare_tortoise:ema=0.9'), digits)
  assert [r['phase_name'] for r in rows] == ['warm', 'main']
  assert [r['phase_examples'] for r in rows] == [300, 1500]
  assert rows[0]['updates'] == rows[1]['updates'] == 1500 // 64
  assert rows[1]['ht_resets'] == 2  # reset every epoch of the full set (23 updates), 46 updates
  for row in rows:
    assert 0.0 <= row['test_acc'] <= 1.0 and 0.0 <= row['train_acc'] <= 1.0
    assert row['srank'] >= 1 and row['weight_distance'] > 0
  assert rows[0]['phase_noise'] == 0.5 and rows[1]['phase_noise'] == 0.0


def test_fresh_runs_the_main_phase_alone_from_the_same_start(digits):
  config = protocols.ProtocolConfig(**TINY)
  fresh = protocols.run_warmstart(config, 'fresh', methods.parse_method('fresh'), digits)
  assert [(r['phase'], r['phase_name']) for r in fresh] == [(1, 'main')]
  again = protocols.run_warmstart(config, 'fresh', methods.parse_method('fresh'), digits)
  assert again[0]['test_acc'] == fresh[0]['test_acc']  # seeded: the same run twice


@pytest.mark.parametrize('access, sizes', [
    ('full', [500, 1000, 1500]),
    ('buffer', [500, 500 + 300, 500 + 300]),
])
def test_continual_phases_grow_and_get_cleaner(digits, access, sizes):
  config = protocols.ProtocolConfig(num_phases=3, noise=0.5, access=access, buffer_size=300,
                                    **TINY)
  rows = protocols.run_continual(config, 'warm', methods.parse_method('warm'), digits)
  assert [r['phase_examples'] for r in rows] == sizes
  assert [r['phase_noise'] for r in rows] == [0.5, 0.25, 0.0]
  assert all(0.0 <= r['test_acc'] <= 1.0 for r in rows)
  assert protocols.planned_updates(config, methods.parse_method('warm'), 'continual', 1500) == \
      sum(r['updates'] for r in rows)


def test_continual_phase_data_labels_carry_the_phase_noise(digits):
  config = protocols.ProtocolConfig(**TINY)
  data = protocols.prepare_data(digits, config)
  order = np.arange(len(data.x_train))
  x, y, noise = protocols.continual_phase_data(data, config, 0, order,
                                               np.random.default_rng(0))
  assert noise == 0.5 and len(x) == 150
  changed = np.mean(y != data.y_train[:150])
  assert 0.3 < changed < 0.55  # half re-drawn, a tenth of those by chance to the true label


def test_cli_writes_results_resumes_and_plots(tmp_path, capsys):
  out = str(tmp_path / 'study')
  argv = ['--dataset', 'digits', '--model', 'mlp', '--width', '0.04', '--methods', 'warm',
          'fresh', '--seeds', '2', '--epochs', '1', '--batch-size', '64', '--out', out,
          '--no-progress']
  assert run_cli.main(argv) == 0
  runs = sorted(os.listdir(os.path.join(out, 'runs')))
  assert len(runs) == 4 and all(name.endswith('.json') for name in runs)
  with open(os.path.join(out, 'results.csv')) as f:
    lines = f.read().splitlines()
  assert lines[0].split(',')[:5] == ['protocol', 'dataset', 'model', 'width', 'method']
  assert len(lines) == 1 + 2 * 2 + 2  # warm: two phases, fresh: one, for two seeds
  with open(os.path.join(out, 'summary.json')) as f:
    summary = json.load(f)
  assert set(summary['methods']) == {'warm', 'fresh'}
  assert summary['paired_differences'][0]['n'] == 2
  assert any(name.endswith('.png') for name in os.listdir(out))
  mtime = os.path.getmtime(os.path.join(out, 'runs', runs[0]))
  assert run_cli.main(argv) == 0  # everything finished: nothing re-run
  assert '4 of 4 runs already finished' in capsys.readouterr().out
  assert os.path.getmtime(os.path.join(out, 'runs', runs[0])) == mtime


def test_cli_rejects_unknown_methods_and_data_sets(tmp_path, capsys):
  assert run_cli.main(['--dataset', 'digits', '--methods', 'hare', '--out',
                       str(tmp_path)]) == 2
  assert 'Unknown method' in capsys.readouterr().err
  assert run_cli.main(['--dataset', 'cifar11', '--out', str(tmp_path)]) == 2
  assert 'cifar10' in capsys.readouterr().err


def test_summary_paired_differences_and_standard_errors():
  rows = [{'method': m, 'subset': 0.1, 'noise': 0.5, 'seed': s, 'phase': 1, 'test_acc': acc}
          for m, accs in (('a', (0.8, 0.9, 0.7)), ('b', (0.7, 0.7, 0.7))) for s, acc in
          enumerate(accs)]
  summary = run_cli.summarize(rows)
  assert summary['methods']['a']['mean'] == pytest.approx(0.8)
  assert summary['methods']['a']['std'] == pytest.approx(0.1)
  (diff,) = summary['paired_differences']
  assert (diff['a'], diff['b'], diff['n']) == ('a', 'b', 3)
  assert diff['mean'] == pytest.approx(0.1)
  assert diff['se'] == pytest.approx(0.1 / np.sqrt(3))
