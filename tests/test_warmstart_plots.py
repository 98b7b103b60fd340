"""The warm-start figures (warmstart/plots.py) on small synthetic tables with known values."""

import csv
import math
import os

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from warmstart import plots

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
HEADER = list(plots.COLUMNS) + ['wall_time']  # an extra column the reader must drop


def make_row(**values):
  row = {'protocol': 'warmstart', 'dataset': 'cifar10', 'model': 'resnet18', 'method': 'warm',
         'seed': 0, 'subset': 0.1, 'noise': 0.0, 'phase': 1, 'phase_name': 'main',
         'train_acc': 1.0, 'test_acc': 0.5, 'weight_magnitude': '', 'weight_distance': '',
         'zero_activation_ratio': '', 'zero_gradient_ratio': '', 'srank': '',
         'wall_time': 12.5}
  row.update(values)
  return row


def write_csv(path, rows, header=HEADER):
  with open(path, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=header, extrasaction='ignore')
    writer.writeheader()
    writer.writerows(rows)
  return str(path)


def warm_phase(method, seed, acc, **values):
  """Phase 0 of a warm-start run, its metrics known functions of the seed."""
  return make_row(method=method, seed=seed, phase=0, phase_name='warm', test_acc=acc,
                  weight_magnitude=1.0 + seed, weight_distance=0.5 * seed,
                  zero_activation_ratio=0.1 * seed, zero_gradient_ratio=0.2,
                  srank=10 - seed, **values)


# Table A: the warmstart protocol at one configuration (subset 0.1, noise 0), three seeds.
FINAL_A = {'warm': [0.60, 0.62, 0.64], 'fresh': [0.65, 0.66, 0.67],
           'hare_tortoise': [0.70, 0.71, 0.75]}


def table_a():
  rows = []
  for method in ('warm', 'fresh', 'hare_tortoise'):
    for seed, acc in enumerate(FINAL_A[method]):
      if method != 'fresh':  # a fresh network has no warm phase
        rows.append(warm_phase(method, seed, 0.3 + 0.01 * seed))
      rows.append(make_row(method=method, seed=seed, test_acc=acc))
  return rows


# Table B: method 'warm' on a 2 x 2 subset x noise grid, 'fresh' with no ratios recorded, and
# the continual protocol.
SUBSETS, NOISES = (0.1, 0.5), (0.0, 0.2)


def grid_base(subset, noise):
  return 0.3 + subset - noise


def continual_acc(method, seed, phase):
  return (0.4 if method == 'warm' else 0.5) + 0.1 * phase + 0.02 * seed


def table_b():
  rows = []
  for subset in SUBSETS:
    for noise in NOISES:
      for seed in (0, 1):
        rows.append(warm_phase('warm', seed, 0.2, subset=subset, noise=noise))
        rows.append(make_row(seed=seed, subset=subset, noise=noise,
                             test_acc=grid_base(subset, noise) + 0.01 * seed))
  for seed in (0, 1):
    rows.append(make_row(method='fresh', seed=seed, subset='', noise='', test_acc=0.8))
  for method in ('warm', 'hare_tortoise'):
    for seed in (0, 1):
      for phase in range(3):
        rows.append(make_row(protocol='continual', method=method, seed=seed, phase=phase,
                             phase_name=f'phase_{phase}', subset=1.0, noise=0.0,
                             test_acc=continual_acc(method, seed, phase)))
  return rows


# Table C: 'warm' and 'fresh' on the same 2 x 2 grid, two seeds: warm - fresh is
# gap_c(subset, noise) + 0.01 * seed in each cell (fresh: one value per seed, as a copied run).
def gap_c(subset, noise):
  return subset - noise - 0.5


def table_c():
  rows = []
  for subset in SUBSETS:
    for noise in NOISES:
      for seed in (0, 1):
        fresh = 0.8 + 0.02 * seed
        rows.append(make_row(method='fresh', seed=seed, subset=subset, noise=noise,
                             test_acc=fresh))
        rows.append(make_row(method='warm', seed=seed, subset=subset, noise=noise,
                             test_acc=fresh + gap_c(subset, noise) + 0.01 * seed))
  return rows


@pytest.fixture
def rows_a(tmp_path):
  return plots.read_results(write_csv(tmp_path / 'a.csv', table_a()))


@pytest.fixture
def rows_b(tmp_path):
  return plots.read_results(write_csv(tmp_path / 'b.csv', table_b()))


def assert_png(path):
  with open(path, 'rb') as f:
    head = f.read(8)
  assert head == PNG_SIGNATURE
  assert os.path.getsize(path) > 1000


def no_temporary_files(folder):
  return [name for name in os.listdir(folder) if name.endswith('.tmp')] == []


@pytest.fixture
def captured(monkeypatch):
  """Replaces the writer with one that keeps the figure, to look at what was drawn."""
  figures = []

  def keep(fig, out_path):
    figures.append(fig)
    return os.fspath(out_path)
  monkeypatch.setattr(plots, '_save', keep)
  return figures


# ------------------------------------------------------------------------------ read_results


def test_read_results_parses_types_and_reads_empty_cells_as_nan(tmp_path):
  path = write_csv(tmp_path / 'r.csv', [
      make_row(seed='3.0', phase=2, phase_name='phase_2', subset='0.25', noise='0.4',
               test_acc='0.75', weight_magnitude='1.5', srank='nan')])
  (row,) = plots.read_results(path)
  assert set(row) == set(plots.COLUMNS)  # wall_time dropped
  assert row['seed'] == 3 and isinstance(row['seed'], int)
  assert row['phase'] == 2 and isinstance(row['phase'], int)
  assert (row['protocol'], row['method'], row['phase_name']) == ('warmstart', 'warm', 'phase_2')
  assert row['subset'] == 0.25 and row['noise'] == 0.4 and row['test_acc'] == 0.75
  assert row['weight_magnitude'] == 1.5
  for column in ('weight_distance', 'zero_activation_ratio', 'zero_gradient_ratio', 'srank'):
    assert isinstance(row[column], float) and math.isnan(row[column])


def test_read_results_fills_absent_optional_columns_and_rejects_bad_tables(tmp_path):
  header = [c for c in HEADER if c not in ('srank', 'phase_name', 'train_acc')]
  (row,) = plots.read_results(write_csv(tmp_path / 'few.csv', [make_row()], header))
  assert math.isnan(row['srank']) and math.isnan(row['train_acc']) and row['phase_name'] == ''
  assert plots.read_results(write_csv(tmp_path / 'header_only.csv', [])) == []

  no_acc = [c for c in HEADER if c != 'test_acc']
  with pytest.raises(ValueError, match="lacks the column.*test_acc"):
    plots.read_results(write_csv(tmp_path / 'no_acc.csv', [make_row()], no_acc))
  (tmp_path / 'empty.csv').write_text('')
  with pytest.raises(ValueError, match='empty'):
    plots.read_results(tmp_path / 'empty.csv')
  bad = write_csv(tmp_path / 'bad.csv', [make_row(), make_row(seed='1.5')])
  with pytest.raises(ValueError, match=r"line 3: column 'seed' holds '1.5'"):
    plots.read_results(bad)
  bad = write_csv(tmp_path / 'bad_acc.csv', [make_row(test_acc='high')])
  with pytest.raises(ValueError, match="'test_acc' holds 'high', not a number"):
    plots.read_results(bad)


# -------------------------------------------------------------------------------- final_rows


def test_final_rows_picks_each_runs_last_phase_in_first_seen_order(tmp_path):
  rows = plots.read_results(write_csv(tmp_path / 'r.csv', [
      make_row(method='warm', seed=0, phase=1, test_acc=0.9),   # final phase listed first
      make_row(method='warm', seed=0, phase=0, test_acc=0.3),
      make_row(method='fresh', seed=0, phase=1, test_acc=0.7),  # only the final phase
      make_row(method='warm', seed=1, phase=0, test_acc=0.2),
      make_row(method='warm', seed=1, phase=2, test_acc=0.8),
      make_row(method='warm', seed=1, phase=1, test_acc=0.5),
      # NaN ratios (empty cells) still identify one run
      make_row(method='x', seed=0, subset='', noise='', phase=0, test_acc=0.1),
      make_row(method='x', seed=0, subset='', noise='', phase=1, test_acc=0.6),
      # the same run at another noise ratio is another run
      make_row(method='warm', seed=0, noise=0.2, phase=0, test_acc=0.4),
  ]))
  finals = plots.final_rows(rows)
  assert [(r['method'], r['seed'], r['noise'], r['phase'], r['test_acc']) for r in finals] == [
      ('warm', 0, 0.0, 1, 0.9), ('fresh', 0, 0.0, 1, 0.7), ('warm', 1, 0.0, 2, 0.8),
      ('x', 0, finals[3]['noise'], 1, 0.6), ('warm', 0, 0.2, 0, 0.4)]
  assert math.isnan(finals[3]['noise'])


def test_final_rows_groups_nan_ratios_from_any_source_and_later_duplicates_win():
  rows = [make_row(subset=float('nan'), phase=1, test_acc=0.1),
          make_row(subset=float('nan'), phase=1, test_acc=0.2),
          make_row(subset=float('nan'), phase=0, test_acc=0.3)]
  (final,) = plots.final_rows(rows)
  assert final['test_acc'] == 0.2


# ----------------------------------------------------------------------------------- pearson


def test_pearson_matches_numpy_and_skips_nan_pairs():
  rng = np.random.default_rng(0)
  x = rng.normal(size=20)
  y = 0.5 * x + rng.normal(size=20)
  assert plots.pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
  assert plots.pearson(x, -2 * x + 1) == pytest.approx(-1.0)
  x_gaps, y_gaps = x.copy(), y.copy()
  x_gaps[3], y_gaps[7] = np.nan, np.nan
  keep = np.ones(20, bool)
  keep[[3, 7]] = False
  assert plots.pearson(x_gaps, y_gaps) == pytest.approx(np.corrcoef(x[keep], y[keep])[0, 1])


@pytest.mark.parametrize('x, y', [
    ([1.0, 2.0], [3.0, 1.0]),                        # fewer than 3 points
    ([1.0, 2.0, np.nan, 4.0], [1.0, np.nan, 2.0, 3.0]),  # 2 finite pairs left
    ([0.1, 0.1, 0.1, 0.1], [1.0, 2.0, 3.0, 4.0]),    # constant x
    ([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]),              # constant y
    ([], []),
])
def test_pearson_is_nan_when_undefined(x, y):
  assert math.isnan(plots.pearson(x, y))


def test_pearson_rejects_unequal_lengths():
  with pytest.raises(ValueError, match='as many x as y'):
    plots.pearson([1, 2, 3], [1, 2])


# ------------------------------------------------------------------------ numbers behind plots


def test_heatmap_grid_means_final_accuracy_over_seeds(rows_b):
  subsets, noises, grid = plots.heatmap_grid(rows_b, 'warm')
  assert subsets == [0.1, 0.5] and noises == [0.0, 0.2]
  expected = np.array([[grid_base(s, n) + 0.005 for s in SUBSETS] for n in NOISES])
  np.testing.assert_allclose(grid, expected, rtol=0, atol=1e-12)
  assert grid[1, 0] == pytest.approx(0.205)  # noise 0.2, subset 0.1: mean of 0.2 and 0.21


def test_heatmap_grid_leaves_missing_cells_nan_and_sorts_axes(rows_b):
  rows = [r for r in rows_b if not (r['subset'] == 0.5 and r['noise'] == 0.2)][::-1]
  subsets, noises, grid = plots.heatmap_grid(rows, 'warm')
  assert subsets == [0.1, 0.5] and noises == [0.0, 0.2]
  assert math.isnan(grid[1, 1]) and np.isfinite(grid).sum() == 3


def test_heatmap_grid_errors_name_what_is_missing(rows_a, rows_b):
  with pytest.raises(ValueError, match=r"method 'shrink_perturb'.*found methods \['fresh', "
                                       r"'hare_tortoise', 'warm'\]"):
    plots.heatmap_grid(rows_a, 'shrink_perturb')
  continual = [r for r in rows_b if r['protocol'] == 'continual']
  with pytest.raises(ValueError, match=r"protocol 'warmstart'.*found protocols \['continual'\]"):
    plots.heatmap_grid(continual, 'warm')
  with pytest.raises(ValueError, match='no subset and noise'):
    plots.heatmap_grid(rows_b, 'fresh')


def test_gap_grid_pairs_warm_and_fresh_by_seed_in_each_cell(tmp_path):
  rows = plots.read_results(write_csv(tmp_path / 'c.csv', table_c()))
  subsets, noises, mean, se, n = plots.gap_grid(rows)
  assert subsets == [0.1, 0.5] and noises == [0.0, 0.2]
  expected = np.array([[gap_c(s, v) + 0.005 for s in SUBSETS] for v in NOISES])
  np.testing.assert_allclose(mean, expected, rtol=0, atol=1e-12)
  # the differences of a cell are gap + 0.00 and gap + 0.01: s.e. = std([0, 0.01]) / sqrt(2)
  np.testing.assert_allclose(se, np.full((2, 2), 0.005), rtol=1e-9)
  assert (n == 2).all()
  one_cell = [r for r in rows if not (r['method'] == 'fresh' and r['subset'] == 0.5)]
  subsets, _, mean, _, n = plots.gap_grid(one_cell)
  assert subsets == [0.1] and (n == 2).all()
  with pytest.raises(ValueError, match=r"both 'warm' and 'fresh'"):
    plots.gap_grid([r for r in rows if r['method'] == 'warm'])


def test_gap_heatmap_annotates_points_and_standard_errors(tmp_path, captured):
  rows = plots.read_results(write_csv(tmp_path / 'c.csv', table_c()))
  plots.plot_gap_heatmap(rows, 'unused.png')
  (fig,) = captured
  ax = fig.axes[0]
  texts = sorted(t.get_text() for t in ax.texts)
  assert texts == sorted(f'{100 * (gap_c(s, v) + 0.005):+.2f}\n\u00b10.50' for s in SUBSETS
                         for v in NOISES)
  assert 'warm - fresh' in ax.get_title() and '2 seeds' in ax.get_title()
  low, high = ax.images[0].get_clim()
  assert low == -high  # centred on no gap


def test_plot_all_draws_the_gap_beside_the_heatmap(tmp_path):
  paths = plots.plot_all(write_csv(tmp_path / 'results.csv', table_c()), tmp_path / 'out')
  names = [os.path.basename(p) for p in paths]
  assert names[:2] == ['cifar10_resnet18_heatmap.png', 'cifar10_resnet18_gap.png']
  for path in paths:
    assert_png(path)


def test_method_summary_is_exact_and_in_first_seen_order(rows_a, rows_b):
  summary = plots.method_summary(rows_a)
  assert [name for name, *_ in summary] == ['warm', 'fresh', 'hare_tortoise']
  for name, mean, std, n in summary:
    assert n == 3
    assert mean == pytest.approx(np.mean(FINAL_A[name]), abs=1e-12)
    assert std == pytest.approx(np.std(FINAL_A[name], ddof=1), abs=1e-12)
  # continual rows are not warm-start results; a NaN accuracy is skipped; one seed has no std
  extra = rows_b[-12:] + [dict(rows_a[1], test_acc=math.nan, seed=9),
                          dict(rows_a[1], method='solo', seed=0)]
  summary = {name: rest for name, *rest in plots.method_summary(rows_a + extra)}
  assert set(summary) == {'warm', 'fresh', 'hare_tortoise', 'solo'}
  assert summary['warm'][2] == 3 and summary['warm'][0] == pytest.approx(0.62)
  mean, std, n = summary['solo']
  assert (mean, n) == (0.60, 1) and math.isnan(std)


def test_warm_final_pairs_pairs_phase_zero_with_the_last_phase(rows_a):
  pairs = plots.warm_final_pairs(rows_a)
  assert [(w['method'], w['seed'], w['phase'], f['phase']) for w, f in pairs] == [
      ('warm', 0, 0, 1), ('warm', 1, 0, 1), ('warm', 2, 0, 1),
      ('hare_tortoise', 0, 0, 1), ('hare_tortoise', 1, 0, 1), ('hare_tortoise', 2, 0, 1)]


# ------------------------------------------------------------------------------------- plots


def test_each_plot_writes_a_png_atomically(tmp_path, rows_a, rows_b):
  out = tmp_path / 'figs'
  written = [
      plots.plot_heatmap(rows_b, out / 'heatmap.png'),
      plots.plot_methods(rows_a, str(out / 'methods.png')),
      plots.plot_continual(rows_b, out / 'continual.png'),
      plots.plot_correlations(rows_a, out / 'correlations.png'),
  ]
  assert written == [str(out / name) for name in
                     ('heatmap.png', 'methods.png', 'continual.png', 'correlations.png')]
  for path in written:
    assert_png(path)
  assert sorted(os.listdir(out)) == ['continual.png', 'correlations.png', 'heatmap.png',
                                     'methods.png']


def test_a_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, rows_a, monkeypatch):
  target = tmp_path / 'methods.png'
  target.write_bytes(b'old')

  def broken(self, fname, **kwargs):  # fname: a path or a binary file, as savefig takes
    if hasattr(fname, 'write'):
      fname.write(b'half a PNG')
    else:
      with open(fname, 'wb') as f:
        f.write(b'half a PNG')
    raise RuntimeError('disk full')
  monkeypatch.setattr(Figure, 'savefig', broken)
  with pytest.raises(RuntimeError, match='disk full'):
    plots.plot_methods(rows_a, target)
  assert target.read_bytes() == b'old'
  assert sorted(os.listdir(tmp_path)) == ['a.csv', 'methods.png']  # a.csv: the fixture's


def test_heatmap_annotates_every_cell_with_its_mean(rows_b, captured):
  plots.plot_heatmap(rows_b, 'unused.png')
  (fig,) = captured
  ax = fig.axes[0]
  texts = sorted(t.get_text() for t in ax.texts)
  assert texts == sorted(f'{grid_base(s, n) + 0.005:.3f}' for s in SUBSETS for n in NOISES)
  assert [t.get_text() for t in ax.get_xticklabels()] == ['0.1', '0.5']
  assert [t.get_text() for t in ax.get_yticklabels()] == ['0', '0.2']
  assert 'cifar10 / resnet18' in ax.get_title()
  assert ax.get_xlabel() and ax.get_ylabel() and len(fig.axes) == 2  # plus the colour bar


def test_methods_plot_draws_bars_seeds_and_the_reference_line(rows_a, captured):
  plots.plot_methods(rows_a, 'unused.png')
  plots.plot_methods([r for r in rows_a if r['method'] != 'fresh'], 'unused.png')
  with_reference, without = (fig.axes[0] for fig in captured)
  heights = [p.get_height() for p in with_reference.patches]
  np.testing.assert_allclose(heights, [np.mean(FINAL_A[m]) for m in
                                       ('warm', 'fresh', 'hare_tortoise')])
  assert [t.get_text() for t in with_reference.get_xticklabels()] == [
      'warm', 'fresh', 'hare_tortoise']
  dashed = [line for line in with_reference.get_lines() if line.get_linestyle() == '--']
  assert len(dashed) == 1 and dashed[0].get_ydata()[0] == pytest.approx(0.66)
  seeds = np.concatenate([c.get_offsets()[:, 1] for c in with_reference.collections
                          if isinstance(c, PathCollection)])
  assert sorted(np.round(seeds, 6)) == sorted(acc for accs in FINAL_A.values() for acc in accs)
  assert not [line for line in without.get_lines() if line.get_linestyle() == '--']
  assert 'subset 0.1, noise 0' in with_reference.get_title()


def test_continual_plot_has_one_line_per_method_with_phase_means(rows_b, captured):
  plots.plot_continual(rows_b, 'unused.png')
  ax = captured[0].axes[0]
  lines = {line.get_label(): line for line in ax.get_lines()}
  assert set(lines) == {'warm', 'hare_tortoise'}
  np.testing.assert_allclose(lines['warm'].get_ydata(),
                             [continual_acc('warm', 0, p) + 0.01 for p in range(3)])
  assert [t.get_text() for t in ax.get_xticklabels()] == ['phase_0', 'phase_1', 'phase_2']
  # several (subset, noise) configurations: one line per method and configuration
  continual = [r for r in rows_b if r['protocol'] == 'continual']
  plots.plot_continual(continual + [dict(r, noise=math.nan, phase_name='') for r in continual],
                       'unused.png')
  ax = captured[1].axes[0]
  assert sorted(line.get_label() for line in ax.get_lines()) == [
      'hare_tortoise (subset 1, noise 0)', 'hare_tortoise (subset 1, noise n/a)',
      'warm (subset 1, noise 0)', 'warm (subset 1, noise n/a)']
  assert [t.get_text() for t in ax.get_xticklabels()] == ['0', '1', '2']  # names disagree


def test_continual_plot_draws_every_evaluation_point_with_resets_as_steps(tmp_path, captured):
  # two phases of 4 epochs, evaluated at 0, 2 and 4 epochs; each phase's start drops (a reset)
  acc = {(0, 0): 0.1, (0, 2): 0.5, (0, 4): 0.6, (1, 0): 0.3, (1, 2): 0.7, (1, 4): 0.8}
  rows = [make_row(protocol='continual', method='shrink_perturb', seed=seed, phase=phase,
                   phase_name=f'phase_{phase}', epoch=epoch, phase_epochs=4,
                   test_acc=acc[phase, epoch] + 0.02 * seed)
          for seed in (0, 1) for phase in (0, 1) for epoch in (0, 2, 4)]
  rows = plots.read_results(write_csv(tmp_path / 'c.csv', rows, HEADER))
  assert [plots.continual_position(r) for r in rows[:6]] == [-1.0, -0.5, 0.0, 0.0, 0.5, 1.0]
  plots.plot_continual(rows, 'unused.png')
  (line,) = captured[0].axes[0].get_lines()
  np.testing.assert_allclose(line.get_xdata(), [-1.0, -0.5, 0.0, 0.0, 0.5, 1.0])
  np.testing.assert_allclose(line.get_ydata(), [acc[k] + 0.01 for k in sorted(acc)])
  # a table without the epoch columns: one point per phase, at the phase
  old = plots.read_results(write_csv(tmp_path / 'old.csv', [r for r in rows if r['epoch'] == 4],
                                     [c for c in HEADER if c not in ('epoch', 'phase_epochs')]))
  assert [plots.continual_position(r) for r in old] == [0.0, 1.0, 0.0, 1.0]


def test_correlation_panels_report_pearson_r(rows_a, captured):
  plots.plot_correlations(rows_a, 'unused.png')
  axes = [ax for ax in captured[0].axes if ax.get_visible()]
  assert len(axes) == 5
  titles = {ax.get_title().split('\n')[0]: ax.get_title() for ax in axes}
  finals = [0.60, 0.62, 0.64, 0.70, 0.71, 0.75]
  r = np.corrcoef([1, 2, 3, 1, 2, 3], finals)[0, 1]
  assert titles['weight_magnitude'] == f'weight_magnitude\nr = {r:.2f} (n = 6)'
  assert titles['zero_gradient_ratio'] == 'zero_gradient_ratio\nr = n/a (n = 6)'  # constant
  # with the metric unmeasured for all but two runs, r is undefined
  rows = [dict(r, srank=math.nan) if r['seed'] > 0 else r for r in rows_a]
  plots.plot_correlations(rows, 'unused.png', metrics=['srank'])
  assert captured[1].axes[0].get_title() == 'srank\nr = n/a (n = 2)'


def test_plots_raise_clear_errors_when_their_rows_are_missing(rows_a, rows_b):
  continual = [r for r in rows_b if r['protocol'] == 'continual']
  with pytest.raises(ValueError, match=r"continual plot needs rows with protocol 'continual'; "
                                       r"found protocols \['warmstart'\]"):
    plots.plot_continual(rows_a, 'x.png')
  with pytest.raises(ValueError, match=r"methods plot needs rows with protocol 'warmstart'; "
                                       r"found protocols \['continual'\]"):
    plots.plot_methods(continual, 'x.png')
  with pytest.raises(ValueError, match="method 'warm'.*found methods"):
    plots.plot_heatmap([r for r in rows_a if r['method'] != 'warm'], 'x.png')
  fresh_only = [r for r in rows_a if r['method'] == 'fresh']
  with pytest.raises(ValueError, match=r'phase 0 \(warm phase\) and a later phase; the rows '
                                       r'hold 3 run\(s\) and phases \[1\]'):
    plots.plot_correlations(fresh_only, 'x.png')
  with pytest.raises(ValueError, match='Unknown metric'):
    plots.plot_correlations(rows_a, 'x.png', metrics=['dormant_ratio'])
  with pytest.raises(ValueError, match="the table has no rows"):
    plots.plot_methods([], 'x.png')


def test_plots_refuse_to_mix_datasets_or_configurations(rows_a, rows_b):
  mixed = rows_a + [dict(r, dataset='mnist') for r in rows_a]
  with pytest.raises(ValueError, match=r"one dataset/model.*\('mnist', 'resnet18'\)"):
    plots.plot_methods(mixed, 'x.png')
  with pytest.raises(ValueError, match='one dataset/model'):
    plots.plot_correlations(mixed, 'x.png')
  with pytest.raises(ValueError, match=r'subsets \[0.1, 0.5\] and noises \[0.0, 0.2\]'):
    plots.plot_methods(rows_b, 'x.png')


# ---------------------------------------------------------------------------- plot_all and CLI


def test_plot_all_on_a_single_configuration_table(tmp_path):
  csv_path = write_csv(tmp_path / 'results.csv', table_a())
  out = tmp_path / 'out'
  paths = plots.plot_all(csv_path, out)
  assert paths == [str(out / 'cifar10_resnet18_methods.png'),
                   str(out / 'cifar10_resnet18_correlations.png')]
  assert sorted(os.listdir(out)) == sorted(os.path.basename(p) for p in paths)
  for path in paths:
    assert_png(path)


def test_plot_all_on_a_grid_with_continual_rows(tmp_path):
  csv_path = write_csv(tmp_path / 'results.csv', table_b())
  paths = plots.plot_all(csv_path, tmp_path / 'out')
  assert [os.path.basename(p) for p in paths] == [
      'cifar10_resnet18_heatmap.png',
      'cifar10_resnet18_methods_subset0.1_noise0.png',
      'cifar10_resnet18_methods_subset0.1_noise0.2.png',
      'cifar10_resnet18_methods_subset0.5_noise0.png',
      'cifar10_resnet18_methods_subset0.5_noise0.2.png',
      'cifar10_resnet18_continual.png',
      'cifar10_resnet18_correlations.png']
  for path in paths:
    assert_png(path)
  assert no_temporary_files(tmp_path / 'out')


def test_plot_all_draws_each_dataset_model_and_refuses_empty_tables(tmp_path, captured):
  rows = table_a() + [make_row(protocol='continual', dataset='mnist', model='mlp', seed=s,
                               phase=p, test_acc=0.5) for s in (0, 1) for p in (0, 1)]
  paths = plots.plot_all(write_csv(tmp_path / 'results.csv', rows), tmp_path / 'out')
  assert [os.path.basename(p) for p in paths] == [
      'cifar10_resnet18_methods.png', 'cifar10_resnet18_correlations.png',
      'mnist_mlp_continual.png', 'mnist_mlp_correlations.png']
  # a grid of method 'warm' alone: the heatmap, no one-bar methods plot per cell
  warm_grid = [r for r in table_b() if r['method'] == 'warm' and r['protocol'] == 'warmstart']
  paths = plots.plot_all(write_csv(tmp_path / 'grid.csv', warm_grid), tmp_path / 'out')
  assert [os.path.basename(p) for p in paths] == [
      'cifar10_resnet18_heatmap.png', 'cifar10_resnet18_correlations.png']
  with pytest.raises(ValueError, match='no result rows'):
    plots.plot_all(write_csv(tmp_path / 'empty.csv', []), tmp_path / 'out')
  other = write_csv(tmp_path / 'other.csv', [make_row(protocol='pretrain', phase=0)])
  with pytest.raises(ValueError, match=r"Nothing to plot.*\['pretrain'\]"):
    plots.plot_all(other, tmp_path / 'out')


def test_command_line_prints_the_paths(tmp_path, capsys, captured):
  csv_path = write_csv(tmp_path / 'results.csv', table_a())
  assert plots.main([csv_path, '--out', str(tmp_path / 'figs')]) == 0
  assert capsys.readouterr().out.split() == [
      str(tmp_path / 'figs' / 'cifar10_resnet18_methods.png'),
      str(tmp_path / 'figs' / 'cifar10_resnet18_correlations.png')]
  assert plots.main([csv_path]) == 0  # default: plots/ beside the table
  assert capsys.readouterr().out.split()[0] == str(
      tmp_path / 'plots' / 'cifar10_resnet18_methods.png')
  assert plots.main([str(tmp_path / 'missing.csv')]) == 1
  assert 'missing.csv' in capsys.readouterr().err
  with pytest.raises(SystemExit) as exit_info:
    plots.main(['--help'])
  assert exit_info.value.code == 0
  assert '--out DIR' in capsys.readouterr().out
