"""Short real runs of both protocols on scikit-learn's digits, and the command line."""

import csv
import dataclasses
import json
import os

import numpy as np
import pytest

from warmstart import data as data_lib
from warmstart import methods, protocols
from warmstart import run as run_cli
from warmstart import train as train_lib

TINY = dict(dataset='digits', model='mlp', width=0.04, epochs=1, batch_size=64, steps_per_call=1,
            metric_examples=200)


@pytest.fixture(scope='module')
def digits():
  return data_lib.load_digits()


def ends(rows):
  """The rows that end a phase (a phase's last evaluation point)."""
  return [row for row in rows if row['epoch'] == row['phase_epochs']]


def test_warm_start_runs_two_phases_with_equal_updates(digits):
  config = protocols.ProtocolConfig(subset=0.2, noise=0.5, **TINY)
  rows = protocols.run_warmstart(config, 'hare_tortoise', methods.parse_method(
      'hare_tortoise:ema=0.9'), digits)
  # evaluation every 5 full-set epochs (warm phase: int(5 / 0.2) = 25 of its 4-update epochs):
  # in a 1-epoch run, each phase's start and end
  assert [(r['phase_name'], r['epoch'], r['phase_epochs'], r['step']) for r in rows] == [
      ('warm', 0.0, 5.75, 0), ('warm', 5.75, 5.75, 23), ('main', 0.0, 1.0, 23),
      ('main', 1.0, 1.0, 46)]
  assert [r['phase_examples'] for r in rows] == [300, 300, 1500, 1500]
  assert all(r['updates'] == 1500 // 64 for r in rows)
  # official schedule: a reset after local epoch 1 of each phase (and 11, 21, ...)
  assert [r['ht_resets'] for r in rows] == [0, 1, 1, 2]
  for row in rows:
    assert 0.0 <= row['test_acc'] <= 1.0 and 0.0 <= row['train_acc'] <= 1.0
    assert row['srank'] >= 1
  assert rows[1]['weight_distance'] > 0
  assert [r['phase_noise'] for r in rows] == [0.5, 0.5, 0.0, 0.0]


def spy(monkeypatch, name):
  """Records the run-wide update count each time Trainer.<name> is called."""
  calls, original = [], getattr(train_lib.Trainer, name)

  def recorded(self, state, *args):
    calls.append(int(state.step))
    return original(self, state, *args)
  monkeypatch.setattr(train_lib.Trainer, name, recorded)
  return calls


def test_resets_evaluations_and_redo_fire_at_their_points_in_each_phase(digits, monkeypatch):
  redo, dead = spy(monkeypatch, 'redo'), spy(monkeypatch, 'reset_dead_head_units')
  config = protocols.ProtocolConfig(subset=0.2, eval_every=0.2, **TINY)
  rows = protocols.run_warmstart(config, 'ht', methods.parse_method(
      'hare_tortoise+redo:ema=0.9,ht_reset_epochs=2'), digits)
  # warm phase: 300 examples, 4-update epochs, 23 updates; evaluation every int(0.2 / 0.2) = 1
  # epoch; resets after local epochs 1, 3, 5 (e % 2 == 0) = updates 4, 12, 20. Main phase:
  # 23-update epochs, one of them: evaluation at 0 and 23, a reset after its epoch 1.
  assert [(r['phase'], r['epoch'], r['ht_resets']) for r in rows] == [
      (0, 0.0, 0), (0, 1.0, 1), (0, 2.0, 1), (0, 3.0, 2), (0, 4.0, 2), (0, 5.0, 3),
      (0, 5.75, 3), (1, 0.0, 3), (1, 1.0, 4)]
  steps = [r['step'] for r in rows]
  assert steps == [0, 4, 8, 12, 16, 20, 23, 23, 46]
  assert redo == dead == steps  # both at every evaluation point, after its row
  redo.clear(), dead.clear()
  # ours before: H&T on the full set's epochs of the whole run (23 updates); no evaluation
  # inside phases (ReDo then at phase ends), no side effect
  config = dataclasses.replace(config, eval_every=0, eval_dead_reset=False)
  rows = protocols.run_warmstart(config, 'ht', methods.parse_method(
      'hare_tortoise+redo:ema=0.9,ht_reset_epochs=1,ht_reset_clock=full_set'), digits)
  assert [(r['phase'], r['epoch'], r['ht_resets']) for r in rows] == [(0, 5.75, 1), (1, 1.0, 2)]
  assert (redo, dead) == ([23, 46], [])


def test_fresh_runs_the_main_phase_alone_from_the_same_start(digits):
  config = protocols.ProtocolConfig(**TINY)
  fresh = protocols.run_warmstart(config, 'fresh', methods.parse_method('fresh'), digits)
  assert [(r['phase'], r['phase_name'], r['epoch']) for r in fresh] == [
      (1, 'main', 0.0), (1, 'main', 1.0)]
  again = protocols.run_warmstart(config, 'fresh', methods.parse_method('fresh'), digits)
  assert again[-1]['test_acc'] == fresh[-1]['test_acc']  # seeded: the same run twice


@pytest.mark.parametrize('access, sizes', [
    ('full', [500, 1000, 1500]),
    ('buffer', [500, 500 + 300, 500 + 300]),
])
def test_continual_phases_grow_and_get_cleaner(digits, access, sizes):
  config = protocols.ProtocolConfig(num_phases=3, noise=0.5, access=access, buffer_size=300,
                                    **TINY)
  rows = protocols.run_continual(config, 'warm', methods.parse_method('warm'), digits)
  # evaluation every 20 epochs of a phase's data: its start and end in 1-epoch phases
  assert [(r['phase'], r['epoch']) for r in rows] == [(p, e) for p in range(3) for e in (0, 1)]
  assert [r['phase_examples'] for r in ends(rows)] == sizes
  assert [r['phase_noise'] for r in ends(rows)] == [0.5, 0.5, 0.0]  # official: steps of two
  assert all(0.0 <= r['test_acc'] <= 1.0 for r in rows)
  assert protocols.planned_updates(config, methods.parse_method('warm'), 'continual', 1500) == \
      sum(r['updates'] for r in ends(rows))


def test_continual_noise_steps_as_the_official_config():
  config = protocols.ProtocolConfig()  # 10 phases from 0.5
  assert tuple(protocols.continual_noise(config, p) for p in range(10)) == \
      protocols.OFFICIAL_CONTINUAL_NOISE == (0.5, 0.4, 0.4, 0.3, 0.3, 0.2, 0.2, 0.1, 0.1, 0.0)
  linear = dataclasses.replace(config, noise_schedule='linear')
  np.testing.assert_allclose([protocols.continual_noise(linear, p) for p in range(10)],
                             np.linspace(0.5, 0.0, 10), atol=1e-12)
  with pytest.raises(ValueError, match='noise_schedule must be one of official, linear'):
    protocols.ProtocolConfig(noise_schedule='cosine')


def test_the_continual_buffer_is_a_memory_across_phases():
  labels = np.arange(12) % 3  # official indices: class 0 = examples 0, 3, 6, 9 -> 0..3,
  order = np.arange(12)[::-1]  # class 1 = 1, 4, 7, 10 -> 4..7, class 2 = 2, 5, 8, 11 -> 8..11
  config = protocols.ProtocolConfig(num_phases=3, access='buffer', buffer_size=3)
  phases = protocols.continual_phase_indices(config, labels, order)
  # slices 11 10 9 8 | 7 6 5 4 | 3 2 1 0; the memory keeps the lowest official indices:
  # after phase 0 examples 9, 10, 8 (indices 3, 7, 10); after phase 1 examples 6, 9, 4 (2, 3, 5)
  assert [p.tolist() for p in phases] == [
      [11, 10, 9, 8], [9, 10, 8, 7, 6, 5, 4], [6, 9, 4, 3, 2, 1, 0]]
  full = protocols.continual_phase_indices(dataclasses.replace(config, access='full'), labels,
                                           order)
  assert [p.tolist() for p in full] == [list(order[:4]), list(order[:8]), list(order)]
  reservoir = protocols.continual_phase_indices(
      dataclasses.replace(config, buffer_rule='reservoir'), labels, order)
  assert [len(p) for p in reservoir] == [4, 7, 7]
  assert set(reservoir[2][:3].tolist()) <= set(order[:8].tolist())
  assert set(reservoir[2][:3].tolist()) <= set(reservoir[1].tolist())  # no example comes back


def test_continual_phase_labels_carry_the_phase_noise(digits):
  config = protocols.ProtocolConfig(**TINY)
  data = protocols.prepare_data(digits, config)
  phase, x, y, noise = next(protocols.continual_phases(data, config))
  assert (phase, noise, len(x)) == (0, 0.5, 150)
  truth = np.array([data.y_train[np.flatnonzero((data.x_train == image).all(axis=(1, 2, 3)))[0]]
                    for image in x])
  assert 0.3 < np.mean(y != truth) < 0.55  # half re-drawn (a draw of the true label counts 0)


def test_the_continual_protocol_augments_every_method_by_default():
  warm = methods.parse_method('warm')
  config = protocols.ProtocolConfig()
  assert protocols.protocol_method(warm, config, 'continual').augment
  assert not protocols.protocol_method(warm, config, 'warmstart').augment
  assert not protocols.protocol_method(
      warm, dataclasses.replace(config, augment_all=False), 'continual').augment
  assert protocols.protocol_method(
      warm, dataclasses.replace(config, augment_all=True), 'warmstart').augment


def test_the_official_schedule_flags_reach_the_config():
  def config_of(argv):
    args = run_cli.build_parser().parse_args(argv)
    run_cli.apply_model_defaults(args)
    return run_cli.configs_from_args(args)[0][0]
  default = config_of([])
  assert (default.eval_every, default.eval_dead_reset, default.augment_all,
          default.noise_schedule, default.buffer_rule) == (None, True, None, 'official',
                                                           'official')
  assert default.eval_every_for('warmstart') == 5 and default.eval_every_for('continual') == 20
  other = config_of(['--eval-every', '2', '--no-eval-dead-reset', '--augment', 'method',
                     '--noise-schedule', 'linear', '--buffer-rule', 'reservoir'])
  assert (other.eval_every, other.eval_dead_reset, other.augment_all, other.noise_schedule,
          other.buffer_rule) == (2.0, False, False, 'linear', 'reservoir')
  assert config_of(['--augment', 'all']).augment_all is True


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
  header = lines[0].split(',')
  assert header[:5] == ['protocol', 'dataset', 'model', 'width', 'method']
  assert {'epoch', 'phase_epochs', 'step'} <= set(header)
  assert len(lines) == 1 + 2 * (2 * 2 + 2)  # a start and an end row per phase: warm has two
  with open(os.path.join(out, 'results.csv')) as f:  # phases, fresh one; two seeds
    rows = list(csv.DictReader(f))
  warm_ends = [float(r['test_acc']) for r in rows if r['method'] == 'warm'
               and r['phase'] == '1' and r['epoch'] == r['phase_epochs']]
  with open(os.path.join(out, 'summary.json')) as f:
    summary = json.load(f)
  assert set(summary['methods']) == {'warm', 'fresh'}
  assert summary['methods']['warm']['mean'] == pytest.approx(np.mean(warm_ends))  # run ends
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


def test_summary_gives_each_methods_gap_from_fresh_per_cell():
  accs = {('warm', 0.1): (0.80, 0.84), ('warm', 1.0): (0.90, 0.90), ('fresh', 0.1): (0.85, 0.87),
          ('fresh', 1.0): (0.85, 0.87), ('ema', 0.1): (0.86, 0.88)}
  rows = [{'method': m, 'subset': subset, 'noise': 0.5, 'seed': s, 'phase': 1, 'test_acc': acc}
          for (m, subset), values in accs.items() for s, acc in enumerate(values)]
  summary = run_cli.summarize(rows)
  cells = {(d['a'], d['subset']): d for d in summary['cell_differences']}
  assert set(cells) == {('warm', 0.1), ('warm', 1.0), ('ema', 0.1)}  # ema ran one cell
  assert all(d['b'] == 'fresh' and d['noise'] == 0.5 and d['n'] == 2 for d in cells.values())
  assert cells[('warm', 0.1)]['mean'] == pytest.approx(-0.04)
  assert cells[('warm', 0.1)]['se'] == pytest.approx(np.std([-0.05, -0.03], ddof=1) / np.sqrt(2))
  assert cells[('warm', 1.0)]['mean'] == pytest.approx(0.04)
  markdown = run_cli.summary_markdown(summary, 'grid')
  assert 'warm - fresh per cell' in markdown
  assert '| 0.5 | -4.00 +/- 1.00 (n=2) | +4.00 +/- 1.00 (n=2) |' in markdown
  one_cell = run_cli.summarize([r for r in rows if r['subset'] == 0.1])
  assert one_cell['cell_differences'] == []  # one cell: the paired differences say it all


TINY_CLI = ['--dataset', 'digits', '--model', 'mlp', '--width', '0.04', '--epochs', '1',
            '--batch-size', '64', '--no-progress', '--jobs', '1']


def test_fresh_runs_the_same_in_every_cell(digits):
  """What lets the command line run fresh once per seed for a whole grid (run.copy_run)."""
  method = methods.parse_method('fresh_ema:ema=0.9')
  rows = [protocols.run_warmstart(protocols.ProtocolConfig(subset=subset, noise=noise, **TINY),
                                  'fresh_ema', method, digits)
          for subset, noise in ((0.2, 0.5), (0.5, 0.0))]
  strip = lambda row: {k: v for k, v in row.items() if k not in ('subset', 'noise', 'seconds')}
  assert [strip(r) for r in rows[0]] == [strip(r) for r in rows[1]]
  assert run_cli.cell_independent('warmstart', method)
  assert not run_cli.cell_independent('continual', method)
  assert not run_cli.cell_independent('warmstart', methods.parse_method('warm'))


def test_cli_grid_runs_fresh_once_per_seed_and_resumes(tmp_path, monkeypatch, capsys):
  ran = []
  original = protocols.PROTOCOLS['warmstart']

  def spy(config, spec, *args, **kwargs):
    ran.append((spec, config.subset, config.noise, config.seed))
    return original(config, spec, *args, **kwargs)
  monkeypatch.setitem(protocols.PROTOCOLS, 'warmstart', spy)
  out = tmp_path / 'grid'
  argv = TINY_CLI + ['--methods', 'warm', 'fresh', '--seeds', '2', '--subset', '0.2', '0.5',
                     '--noise', '0', '0.5', '--out', str(out)]
  assert run_cli.main(argv) == 0
  assert sorted(r for r in ran if r[0] == 'fresh') == [('fresh', 0.2, 0.0, 0), ('fresh', 0.2, 0.0, 1)]
  assert len([r for r in ran if r[0] == 'warm']) == 8
  assert '6 runs of methods without a warm phase are copies' in capsys.readouterr().out
  runs = out / 'runs'
  assert len(os.listdir(runs)) == 16
  source = json.loads((runs / 'warmstart_fresh_sub0.2_noise0_seed1.json').read_text())
  copy = json.loads((runs / 'warmstart_fresh_sub0.5_noise0.5_seed1.json').read_text())
  assert copy['copied_from'] == 'warmstart_fresh_sub0.2_noise0_seed1'
  assert (copy['config']['subset'], copy['config']['noise']) == (0.5, 0.5)
  assert [(r['subset'], r['noise']) for r in copy['rows']] == [(0.5, 0.5)] * len(source['rows'])
  assert [r['test_acc'] for r in copy['rows']] == [r['test_acc'] for r in source['rows']]
  summary = json.loads((out / 'summary.json').read_text())
  assert len(summary['cell_differences']) == 4 and all(
      d['n'] == 2 for d in summary['cell_differences'])
  assert (out / 'digits_mlp_gap.png').exists() and (out / 'digits_mlp_heatmap.png').exists()
  # interrupted: a copy and a warm run missing; the copy comes back from a finished fresh run
  (runs / 'warmstart_fresh_sub0.5_noise0_seed0.json').unlink()
  (runs / 'warmstart_fresh_sub0.2_noise0_seed0.json').unlink()
  (runs / 'warmstart_warm_sub0.5_noise0_seed0.json').unlink()
  ran.clear()
  assert run_cli.main(argv) == 0
  assert ran == [('warm', 0.5, 0.0, 0)]
  assert len(os.listdir(runs)) == 16
  restored = json.loads((runs / 'warmstart_fresh_sub0.2_noise0_seed0.json').read_text())
  assert restored['copied_from'] in {f'warmstart_fresh_sub{s}_noise{n}_seed0'
                                     for s, n in (('0.2', '0.5'), ('0.5', '0.5'))}
