"""Figures of the warm-start study (paper section 5.3) from the warm-start CLI's ``results.csv``.

The table has one row per (run, evaluation point), in time order within a run: a phase's
points are its start (``epoch`` 0), every few epochs and its end (``epoch`` = ``phase_epochs``,
the phase's last row); tables without those two columns have one row per phase, its end. A run
is identified by ``protocol``, ``dataset``, ``model``, ``method``, ``seed``, ``subset`` and
``noise``. From it this module draws:

* :func:`plot_heatmap` (paper Fig. 2): mean final test accuracy of one method over seeds on the
  warm-start subset ratio (x) x label-noise ratio (y) grid; :func:`plot_gap_heatmap`: the same
  grid as the warm-start gap (warm - fresh, paired over seeds, with its standard error);
* :func:`plot_methods` (Figs. 4/5): one bar per method, mean final test accuracy with the
  standard deviation over seeds and each seed as a dot, the reference method's mean dashed;
* :func:`plot_continual` (Fig. 6): test accuracy at every evaluation point of the continual
  protocol, so the drops after resets show;
* :func:`plot_correlations` (Fig. 8): each plasticity metric measured at the end of the warm
  phase (phase 0) against the run's final test accuracy, with Pearson's r;
* :func:`plot_all`, also reachable as ``python -m warmstart.plots results.csv --out DIR``:
  every figure the table supports, one set per (dataset, model).

The numbers behind the figures come from small pure helpers (:func:`read_results`,
:func:`final_rows`, :func:`heatmap_grid`, :func:`method_summary`, :func:`pearson`). Standard
deviations are sample standard deviations (``ddof=1``; NaN for a single seed). Figures are built
with :class:`matplotlib.figure.Figure` (no pyplot, no window, no global figure list), rendered by
the Agg backend and written atomically (``common.files.write_atomically``).
Only the standard library, numpy, matplotlib and warmstart/stats.py are used.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import sys
from collections.abc import Iterable, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from common.files import write_atomically
from warmstart import stats

DPI = 120
METRICS = ('weight_magnitude', 'weight_distance', 'zero_activation_ratio',
           'zero_gradient_ratio', 'srank')
STRING_COLUMNS = ('protocol', 'dataset', 'model', 'method', 'phase_name')
INT_COLUMNS = ('seed', 'phase')
FLOAT_COLUMNS = ('subset', 'noise', 'epoch', 'phase_epochs', 'train_acc', 'test_acc') + METRICS
COLUMNS = ('protocol', 'dataset', 'model', 'method', 'seed', 'subset', 'noise', 'phase',
           'phase_name', 'epoch', 'phase_epochs', 'train_acc', 'test_acc') + METRICS
# Columns read_results insists on; the others become '' (strings) or NaN (numbers) when absent.
REQUIRED_COLUMNS = ('protocol', 'dataset', 'model', 'method', 'seed', 'subset', 'noise', 'phase',
                    'test_acc')
RUN_KEY = ('protocol', 'dataset', 'model', 'method', 'seed', 'subset', 'noise')

WARMSTART = 'warmstart'
CONTINUAL = 'continual'


# ----------------------------------------------------------------------------------------------
# Reading and the numbers behind the figures.


def _parse_float(text: str | None, column: str, line: int) -> float:
  text = (text or '').strip()
  if not text:
    return math.nan
  try:
    value = float(text)
  except ValueError:
    raise ValueError(f'line {line}: column {column!r} holds {text!r}, not a number') from None
  return math.nan if math.isnan(value) else value  # one NaN object: rows group by identity


def _parse_int(text: str | None, column: str, line: int) -> int:
  text = (text or '').strip()
  try:
    return int(text)
  except ValueError:
    pass
  try:
    value = float(text)  # '3.0', as pandas writes an integer column that once held a NaN
  except ValueError:
    value = math.nan
  if not math.isfinite(value) or value != int(value):
    raise ValueError(f'line {line}: column {column!r} holds {text!r}, not an integer')
  return int(value)


def read_results(path) -> list[dict]:
  """Rows of ``results.csv`` as dicts with exactly the keys of :data:`COLUMNS`.

  ``seed`` and ``phase`` are ints, the numeric columns floats with '' (or 'nan') read as NaN;
  columns the table lacks besides :data:`REQUIRED_COLUMNS` are filled with '' / NaN, extra
  columns are dropped. A header-only file gives []."""
  with open(path, newline='', encoding='utf-8') as f:
    reader = csv.DictReader(f)
    if reader.fieldnames is None:
      raise ValueError(f'{path} is empty: expected a header row naming at least the columns '
                       f'{list(REQUIRED_COLUMNS)}.')
    reader.fieldnames = [name.strip() for name in reader.fieldnames]
    missing = [c for c in REQUIRED_COLUMNS if c not in reader.fieldnames]
    if missing:
      raise ValueError(f'{path} lacks the column(s) {missing}; its header is '
                       f'{reader.fieldnames}.')
    rows = []
    for raw in reader:
      line = reader.line_num
      row = {}
      for column in COLUMNS:
        if column in STRING_COLUMNS:
          row[column] = (raw.get(column) or '').strip()
        elif column in INT_COLUMNS:
          row[column] = _parse_int(raw.get(column), column, line)
        else:
          row[column] = _parse_float(raw.get(column), column, line)
      rows.append(row)
  return rows


def _is_nan(value) -> bool:
  return isinstance(value, float) and math.isnan(value)


def run_key(row: dict) -> tuple:
  """The run a row belongs to: its :data:`RUN_KEY` values, NaN replaced by None (NaN != NaN)."""
  return tuple(None if _is_nan(row[c]) else row[c] for c in RUN_KEY)


def final_rows(rows: Iterable[dict]) -> list[dict]:
  """For each run, the row of its last (highest) phase, runs in the order first seen. Of two
  rows for the same (run, phase) the later one in ``rows`` wins: the phase's end, since a run's
  evaluation points are written in time order."""
  last: dict[tuple, dict] = {}
  for row in rows:
    key = run_key(row)
    best = last.get(key)
    if best is None or row['phase'] >= best['phase']:
      last[key] = row
  return list(last.values())


def select(rows: Iterable[dict], **equals) -> list[dict]:
  """The rows whose columns equal the given values (NaN matches NaN), e.g.
  ``select(rows, dataset='cifar10', model='resnet18')``."""
  def matches(row):
    return all(row[c] == v or (_is_nan(row[c]) and _is_nan(v)) for c, v in equals.items())
  return [row for row in rows if matches(row)]


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
  """Pearson's correlation of the pairs where both values are finite; NaN when fewer than 3
  such pairs remain or either side is constant."""
  x = np.asarray(x, dtype=float).ravel()
  y = np.asarray(y, dtype=float).ravel()
  if x.shape != y.shape:
    raise ValueError(f'pearson needs as many x as y values, got {x.size} and {y.size}.')
  finite = np.isfinite(x) & np.isfinite(y)
  x, y = x[finite], y[finite]
  if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
    return math.nan
  dx, dy = x - x.mean(), y - y.mean()
  r = float(np.sum(dx * dy) / math.sqrt(float(np.sum(dx * dx)) * float(np.sum(dy * dy))))
  return max(-1.0, min(1.0, r))


def _mean_std(values: Iterable[float]) -> tuple[float, float, int]:
  """(mean, sample std, n) of the finite values; NaN mean with n = 0, NaN std with n < 2."""
  v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
  mean = float(v.mean()) if v.size else math.nan
  std = float(v.std(ddof=1)) if v.size > 1 else math.nan
  return mean, std, int(v.size)


def _found(rows: Sequence[dict], column: str) -> list:
  return sorted({row[column] for row in rows}, key=str)


def _protocol_rows(rows: Sequence[dict], protocol: str, what: str) -> list[dict]:
  chosen = [row for row in rows if row['protocol'] == protocol]
  if not chosen:
    found = f'found protocols {_found(rows, "protocol")}' if rows else 'the table has no rows'
    raise ValueError(f'The {what} needs rows with protocol {protocol!r}; {found}.')
  return chosen


def heatmap_grid(rows: Sequence[dict], method: str = 'warm'
                 ) -> tuple[list[float], list[float], np.ndarray]:
  """``(subsets, noises, grid)``: the sorted subset and noise ratios of ``method``'s
  warm-start runs and ``grid[i, j]``, the mean over seeds of the final test accuracy at
  ``noises[i]``, ``subsets[j]`` (NaN for a missing cell). Runs with a NaN subset or noise
  are left out."""
  warmstart = _protocol_rows(rows, WARMSTART, f'heatmap of method {method!r}')
  finals = [row for row in final_rows(warmstart) if row['method'] == method]
  if not finals:
    raise ValueError(f'The heatmap needs warmstart rows of method {method!r}; found methods '
                     f'{_found(warmstart, "method")}.')
  cells: dict[tuple[float, float], list[float]] = {}
  for row in finals:
    if math.isfinite(row['subset']) and math.isfinite(row['noise']):
      cells.setdefault((row['subset'], row['noise']), []).append(row['test_acc'])
  if not cells:
    raise ValueError(f'The warmstart runs of method {method!r} record no subset and noise '
                     'ratios (empty cells), so there is no grid to draw.')
  subsets = sorted({s for s, _ in cells})
  noises = sorted({n for _, n in cells})
  grid = np.full((len(noises), len(subsets)), np.nan)
  for (s, n), accuracies in cells.items():
    grid[noises.index(n), subsets.index(s)] = _mean_std(accuracies)[0]
  return subsets, noises, grid


def gap_grid(rows: Sequence[dict], method: str = 'warm', reference: str = 'fresh'
             ) -> tuple[list[float], list[float], np.ndarray, np.ndarray, np.ndarray]:
  """``(subsets, noises, mean, se, n)``: in each (subset, noise) cell where both ran, the paired
  difference of the final test accuracies ``method - reference`` over the seeds both ran
  (``stats.cell_differences``); ``mean[i, j]``, its standard error and seed count at
  ``noises[i]``, ``subsets[j]``, NaN (n 0) for a cell without a pair."""
  warmstart = _protocol_rows(rows, WARMSTART, f'gap of {method!r} from {reference!r}')
  values: dict[str, dict] = {method: {}, reference: {}}
  for row in final_rows(warmstart):
    if row['method'] in values and math.isfinite(row['subset']) and math.isfinite(row['noise']):
      values[row['method']][(row['subset'], row['noise'], row['seed'])] = row['test_acc']
  differences = stats.cell_differences(values[method], values[reference])
  if not differences:
    raise ValueError(f'No (subset, noise, seed) has final warmstart rows of both {method!r} and '
                     f'{reference!r}; found methods {_found(warmstart, "method")}.')
  subsets = sorted({s for s, _ in differences})
  noises = sorted({n for _, n in differences})
  mean, se = (np.full((len(noises), len(subsets)), np.nan) for _ in range(2))
  n = np.zeros((len(noises), len(subsets)), dtype=int)
  for (s, noise), d in differences.items():
    i, j = noises.index(noise), subsets.index(s)
    mean[i, j], se[i, j], n[i, j] = d['mean'], d['se'], d['n']
  return subsets, noises, mean, se, n


def _method_values(rows: Sequence[dict]) -> dict[str, list[tuple[int, float]]]:
  """method -> [(seed, final test accuracy)] over the warmstart runs, methods as first seen."""
  values: dict[str, list[tuple[int, float]]] = {}
  for row in final_rows(r for r in rows if r['protocol'] == WARMSTART):
    values.setdefault(row['method'], []).append((row['seed'], row['test_acc']))
  return values


def method_summary(rows: Sequence[dict]) -> list[tuple[str, float, float, int]]:
  """``[(method, mean, std, n)]`` of the final test accuracies of the warmstart runs of each
  method (methods in the order first seen; NaN accuracies skipped, n counts the rest; std is the
  sample std, NaN for n < 2). Runs of every (subset, noise) given are pooled: select one
  configuration first."""
  return [(method, *_mean_std(acc for _, acc in pairs))
          for method, pairs in _method_values(rows).items()]


def warm_final_pairs(rows: Sequence[dict]) -> list[tuple[dict, dict]]:
  """``[(phase-0 row, final row)]`` of every run that has a phase 0 and a later phase; the
  phase-0 row is its last (the end of the warm phase)."""
  first: dict[tuple, dict] = {}
  for row in rows:
    if row['phase'] == 0:
      first[run_key(row)] = row
  return [(first[run_key(last)], last) for last in final_rows(rows)
          if last['phase'] > 0 and run_key(last) in first]


# ----------------------------------------------------------------------------------------------
# Figures.


def _dataset_model(rows: Sequence[dict], what: str) -> str:
  pairs = sorted({(row['dataset'], row['model']) for row in rows})
  if len(pairs) != 1:
    raise ValueError(f'The {what} draws one dataset/model at a time; the rows hold {pairs}. '
                     'Choose one with select(rows, dataset=..., model=...).')
  dataset, model = pairs[0]
  return f'{dataset} / {model}'


def _colours(names: Sequence[str]) -> dict:
  cmap = matplotlib.colormaps['tab10']
  return {name: cmap(i % 10) for i, name in enumerate(names)}


def _save(fig: Figure, out_path) -> str:
  """Writes ``fig`` to ``out_path`` (format from the extension, PNG without one) through a
  temporary file in the same folder and ``os.replace``; returns ``out_path``."""
  out_path = os.fspath(out_path)
  folder = os.path.dirname(os.path.abspath(out_path))
  os.makedirs(folder, exist_ok=True)
  fmt = os.path.splitext(out_path)[1].lstrip('.').lower() or 'png'
  try:
    write_atomically(out_path, lambda f: fig.savefig(f, format=fmt, dpi=DPI, bbox_inches='tight'))
  finally:
    fig.clear()  # a bare Figure is in no pyplot list: dropping it closes it
  return out_path


def _fmt(value: float) -> str:
  return f'{value:g}'


def _fmt_or_na(value: float | None) -> str:
  return 'n/a' if value is None else _fmt(value)


def _annotate_grid(ax, subsets, noises, values: np.ndarray, cell) -> None:
  """Writes ``cell(i, j) -> (text, colour)`` on every finite cell of a subset (x) x noise (y)
  image ('n/a' on the others) and labels both axes."""
  for i in range(len(noises)):
    for j in range(len(subsets)):
      text, colour = cell(i, j) if math.isfinite(values[i, j]) else ('n/a', 'black')
      ax.text(j, i, text, ha='center', va='center', color=colour, fontsize='small')
  ax.set_xticks(range(len(subsets)), [_fmt(s) for s in subsets])
  ax.set_yticks(range(len(noises)), [_fmt(n) for n in noises])
  ax.set_xlabel('Warm-start subset ratio')
  ax.set_ylabel('Label-noise ratio of the warm phase')


def plot_heatmap(rows: Sequence[dict], out_path, method: str = 'warm') -> str:
  """Paper Fig. 2: mean final test accuracy of ``method`` over seeds, subset ratio (x) by
  label-noise ratio (y), each cell annotated. Returns ``out_path``."""
  subsets, noises, grid = heatmap_grid(rows, method)
  title = _dataset_model(
      [r for r in rows if r['protocol'] == WARMSTART and r['method'] == method], 'heatmap')
  if not np.isfinite(grid).any():
    raise ValueError(f'Every final test accuracy of method {method!r} is missing (NaN).')
  fig = Figure(figsize=(1.2 * len(subsets) + 2.8, 0.8 * len(noises) + 2.0))
  ax = fig.subplots()
  cmap = matplotlib.colormaps['viridis'].with_extremes(bad='lightgrey')
  image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, origin='lower', aspect='auto')
  decimals = 3 if np.nanmax(grid) <= 1.0 else 1
  _annotate_grid(ax, subsets, noises, grid, lambda i, j: (
      f'{grid[i, j]:.{decimals}f}', 'white' if image.norm(grid[i, j]) < 0.5 else 'black'))
  ax.set_title(f'{title}: final test accuracy of {method!r}')
  fig.colorbar(image, ax=ax, label='Final test accuracy (mean over seeds)')
  return _save(fig, out_path)


def plot_gap_heatmap(rows: Sequence[dict], out_path, method: str = 'warm',
                     reference: str = 'fresh') -> str:
  """Fig. 2 as a gap: in each subset (x) x label-noise (y) cell, ``method - reference`` in
  points (paired over seeds, :func:`gap_grid`), annotated with its standard error; a diverging
  colour scale centred on 0 (red: the warm start loses). Returns ``out_path``."""
  subsets, noises, mean, se, n = gap_grid(rows, method, reference)
  title = _dataset_model(
      [r for r in rows if r['protocol'] == WARMSTART and r['method'] in (method, reference)],
      'gap heatmap')
  points = 100 * mean
  limit = np.nanmax(np.abs(points)) if np.isfinite(points).any() else 1.0
  limit = limit if limit > 0 else 1.0
  fig = Figure(figsize=(1.4 * len(subsets) + 2.8, 0.8 * len(noises) + 2.0))
  ax = fig.subplots()
  cmap = matplotlib.colormaps['RdBu'].with_extremes(bad='lightgrey')
  image = ax.imshow(np.ma.masked_invalid(points), cmap=cmap, vmin=-limit, vmax=limit,
                    origin='lower', aspect='auto')
  spread = lambda i, j: f'\n\u00b1{100 * se[i, j]:.2f}' if math.isfinite(se[i, j]) else ''
  _annotate_grid(ax, subsets, noises, points, lambda i, j: (
      f'{points[i, j]:+.2f}{spread(i, j)}',
      'white' if abs(points[i, j]) > 0.6 * limit else 'black'))
  seeds = sorted({int(v) for v in n.ravel() if v > 0})
  ax.set_title(f'{title}: {method} - {reference} (points, paired over '
               f'{"/".join(map(str, seeds))} seeds, \u00b1 s.e.)')
  fig.colorbar(image, ax=ax, label=f'Final test accuracy, {method} - {reference} (points)')
  return _save(fig, out_path)


def _configs(rows: Sequence[dict]) -> list[tuple[float, float]]:
  """Distinct (subset, noise) with both values finite, in the order first seen."""
  return list(dict.fromkeys((r['subset'], r['noise']) for r in rows
                            if math.isfinite(r['subset']) and math.isfinite(r['noise'])))


def plot_methods(rows: Sequence[dict], out_path, reference: str = 'fresh') -> str:
  """Paper Figs. 4/5: one bar per method (order first seen) at the mean final test accuracy of
  its warmstart runs, the sample std over seeds as error bar, each seed as a dot, and a dashed
  line at the mean of ``reference`` when that method is present. The warmstart rows must hold
  one (subset, noise) configuration (runs with NaN ratios join any). Returns ``out_path``."""
  warmstart = _protocol_rows(rows, WARMSTART, 'methods plot')
  title = _dataset_model(warmstart, 'methods plot')
  subsets = {r['subset'] for r in warmstart if math.isfinite(r['subset'])}
  noises = {r['noise'] for r in warmstart if math.isfinite(r['noise'])}
  if len(subsets) > 1 or len(noises) > 1:
    raise ValueError(f'The methods plot compares methods at one warm-start configuration; the '
                     f'rows hold subsets {sorted(subsets)} and noises {sorted(noises)}. Choose '
                     'one with select(rows, subset=..., noise=...).')
  values = _method_values(warmstart)
  summary = method_summary(warmstart)
  names = [name for name, *_ in summary]
  colours = _colours(names)
  fig = Figure(figsize=(max(4.0, 1.1 * len(names) + 1.5), 4.2))
  ax = fig.subplots()
  x = np.arange(len(names))
  means = np.array([m for _, m, _, _ in summary])
  stds = np.array([s for _, _, s, _ in summary])
  ax.bar(x, np.nan_to_num(means), yerr=stds, capsize=4, alpha=0.75,
         color=[colours[n] for n in names], edgecolor='black', linewidth=0.6,
         error_kw={'elinewidth': 1.0})
  for i, name in enumerate(names):
    accuracies = [acc for _, acc in values[name] if math.isfinite(acc)]
    spread = 0.18 if len(accuracies) > 1 else 0.0  # the seeds side by side on the bar
    ax.scatter(i + np.linspace(-spread, spread, len(accuracies)), accuracies, s=14,
               color='black', zorder=3, label='seeds' if i == 0 else None)
  reference_mean = {n: m for n, m, _, _ in summary}.get(reference, math.nan)
  if math.isfinite(reference_mean):
    ax.axhline(reference_mean, color='black', linestyle='--', linewidth=1.0,
               label=f'{reference} (mean)')
  ax.set_xticks(x, names, rotation=30 if len(names) > 4 else 0,
                ha='right' if len(names) > 4 else 'center')
  ax.set_xlabel('Method')
  ax.set_ylabel('Final test accuracy (axis zoomed to the data)')
  # Differences of a point or two vanish on a 0-1 axis: zoom to the seeds and error bars.
  shown = [acc for name in names for _, acc in values[name] if math.isfinite(acc)]
  shown += [v for v in np.concatenate([means - np.nan_to_num(stds), means + np.nan_to_num(stds)])
            if math.isfinite(v)]
  if shown:
    low, high = min(shown), max(shown)
    pad = max(0.002, 0.15 * (high - low))
    ax.set_ylim(max(0.0, low - pad), min(1.0, high + pad))
  config = ', '.join([f'subset {_fmt(s)}' for s in subsets] +
                     [f'noise {_fmt(n)}' for n in noises])
  config = f' ({config})' if config else ''
  ax.set_title(f'{title}: warm-start methods{config}')
  ax.legend(loc='best', fontsize='small')
  return _save(fig, out_path)


def _phase_labels(rows: Sequence[dict], phases: Sequence[int]) -> list[str]:
  """Each phase's phase_name when every row of that phase agrees on a non-empty one, else its
  number."""
  labels = []
  for phase in phases:
    names = {r['phase_name'] for r in rows if r['phase'] == phase}
    labels.append(names.pop() if len(names) == 1 and '' not in names else str(phase))
  return labels


def continual_position(row: dict) -> float:
  """Where a continual row sits on Fig. 6's x axis: its phase at the phase's end, ``phase -
  1`` at its start (``phase - 1 + epoch / phase_epochs``), so one phase's end and the next
  one's start share an x and a reset's drop is a vertical step. A row without the epoch
  columns (older tables: phase ends only) sits at its phase."""
  epoch, length = row['epoch'], row['phase_epochs']
  if not (math.isfinite(epoch) and math.isfinite(length) and length > 0):
    return float(row['phase'])
  return row['phase'] - 1 + epoch / length


def plot_continual(rows: Sequence[dict], out_path) -> str:
  """Paper Fig. 6: test accuracy at every evaluation point of the continual protocol
  (:func:`continual_position` on x), one line per method (mean over seeds, shaded +/- sample
  std). When the continual rows hold several (subset, noise) configurations, each (method,
  configuration) gets its own line. Returns ``out_path``."""
  continual = _protocol_rows(rows, CONTINUAL, 'continual plot')
  title = _dataset_model(continual, 'continual plot')

  def point(row):  # a phase's evaluation point; NaN epoch (older tables) is the phase's end
    return row['phase'], row['epoch'] if math.isfinite(row['epoch']) else math.inf
  by_run_point = {(run_key(r), point(r)): r for r in continual}  # the later duplicate wins

  def config(row):  # NaN -> None, so that NaN ratios compare equal
    return tuple(None if _is_nan(row[c]) else row[c] for c in ('subset', 'noise'))
  several_configs = len({config(r) for r in continual}) > 1
  series: dict[tuple, dict[tuple, list[float]]] = {}
  positions: dict[tuple, list[float]] = {}
  for (_, at), row in by_run_point.items():
    line = (row['method'],) + (config(row) if several_configs else ())
    series.setdefault(line, {}).setdefault(at, []).append(row['test_acc'])
    positions.setdefault(at, []).append(continual_position(row))
  phases = sorted({phase for _, (phase, _) in by_run_point})
  colours = _colours(list(series))
  fig = Figure(figsize=(6.4, 4.2))
  ax = fig.subplots()
  for line, per_point in series.items():
    at = sorted(per_point)
    xs = [float(np.mean(positions[p])) for p in at]
    stats = [_mean_std(per_point[p]) for p in at]
    mean = np.array([m for m, _, _ in stats])
    std = np.array([s for _, s, _ in stats])
    label = line[0] if len(line) == 1 else \
        f'{line[0]} (subset {_fmt_or_na(line[1])}, noise {_fmt_or_na(line[2])})'
    several = len(at) > len({phase for phase, _ in at})
    ax.plot(xs, mean, marker='o', markersize=2.5 if several else 4, color=colours[line],
            label=label)
    ax.fill_between(xs, mean - std, mean + std, color=colours[line], alpha=0.2, linewidth=0)
  if len(phases) <= 20:
    labels = _phase_labels(continual, phases)
    long_labels = sum(len(label) for label in labels) > 40  # e.g. phase_0 ... phase_9
    ax.set_xticks(phases, labels, rotation=30 if long_labels else 0,
                  ha='right' if long_labels else 'center')
  ax.set_xlabel('Phase (tick: its end; the phase trains from the tick before)')
  ax.set_ylabel('Test accuracy')
  ax.set_title(f'{title}: continual protocol (mean \u00b1 std over seeds)')
  ax.legend(fontsize='small')
  return _save(fig, out_path)


def plot_correlations(rows: Sequence[dict], out_path, metrics: Sequence[str] = METRICS,
                      protocol: str | None = None) -> str:
  """Paper Fig. 8: one panel per metric, x = the metric at the end of phase 0 (the warm phase)
  of each run, y = that run's final test accuracy, Pearson's r in the title ('n/a' below 3
  points or with zero variance). Only runs with a phase 0 and a later phase count; NaN points are
  skipped. ``protocol`` restricts the runs (default: every protocol). Returns ``out_path``."""
  metrics = list(metrics)
  if not metrics:
    raise ValueError('plot_correlations needs at least one metric.')
  if protocol is not None:
    rows = _protocol_rows(rows, protocol, 'correlation plot')
  known = [c for c in FLOAT_COLUMNS if c not in ('subset', 'noise')]
  unknown = [m for m in metrics if m not in known]
  if unknown:
    raise ValueError(f'Unknown metric(s) {unknown}; the table measures {known}.')
  pairs = warm_final_pairs(rows)
  if not pairs:
    phases = sorted({r['phase'] for r in rows})
    raise ValueError('The correlation plot needs runs with a phase 0 (warm phase) and a later '
                     f'phase; the rows hold {len(final_rows(rows))} run(s) and phases {phases}.')
  title = _dataset_model([p for pair in pairs for p in pair], 'correlation plot')
  methods = list(dict.fromkeys(last['method'] for _, last in pairs))
  colours = _colours(methods)
  ncols = min(3, len(metrics))
  nrows = math.ceil(len(metrics) / ncols)
  fig = Figure(figsize=(3.6 * ncols, 3.2 * nrows), layout='constrained')
  axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
  for ax, metric in zip(axes, metrics):
    x = np.array([warm[metric] for warm, _ in pairs], dtype=float)
    y = np.array([last['test_acc'] for _, last in pairs], dtype=float)
    finite = np.isfinite(x) & np.isfinite(y)
    for method in methods:
      mine = finite & np.array([last['method'] == method for _, last in pairs])
      if mine.any():
        ax.scatter(x[mine], y[mine], s=18, color=colours[method], label=method)
    r = pearson(x, y)
    r_text = f'r = {r:.2f}' if math.isfinite(r) else 'r = n/a'
    ax.set_title(f'{metric}\n{r_text} (n = {int(finite.sum())})', fontsize='medium')
    ax.set_xlabel(f'{metric} after the warm phase')
    ax.set_ylabel('Final test accuracy')
  for ax in axes[len(metrics):]:
    ax.set_visible(False)
  handles, labels = [], []
  for ax in axes[:len(metrics)]:
    for handle, label in zip(*ax.get_legend_handles_labels()):
      if label not in labels:
        handles.append(handle)
        labels.append(label)
  if handles:
    fig.legend(handles, labels, loc='outside lower center', ncols=min(len(labels), 6),
               fontsize='small')
  fig.suptitle(f'{title}: plasticity after the warm phase vs final test accuracy')
  return _save(fig, out_path)


# ----------------------------------------------------------------------------------------------
# Everything at once, and the command line.


def _slug(text: str) -> str:
  return re.sub(r'[^A-Za-z0-9._-]+', '-', text).strip('-') or 'results'


def plot_all(results_csv, out_dir) -> list[str]:
  """Reads ``results_csv`` and writes into ``out_dir`` (created) every figure the table supports,
  for each (dataset, model) in the order first seen, named ``<dataset>_<model>_<figure>.png``:

  * ``heatmap``: when method 'warm' has more than one distinct subset or noise ratio; then also
    ``gap`` (warm - fresh per cell, paired over seeds) when 'fresh' ran in some of its cells;
  * ``methods``: when there are warmstart rows; with several (subset, noise) configurations,
    one ``methods_subset<s>_noise<n>`` per configuration that holds at least two methods (runs
    with NaN ratios join each configuration);
  * ``continual``: when there are continual rows;
  * ``correlations``: when some run has a phase 0 and a later phase.

  Returns the paths written."""
  rows = read_results(results_csv)
  if not rows:
    raise ValueError(f'{results_csv} holds no result rows.')
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  for dataset, model in dict.fromkeys((r['dataset'], r['model']) for r in rows):
    mine = select(rows, dataset=dataset, model=model)
    stem = os.path.join(out_dir, _slug(f'{dataset}_{model}') + '_')
    warm = [r for r in mine if r['protocol'] == WARMSTART and r['method'] == 'warm']
    if len({r['subset'] for r in warm if math.isfinite(r['subset'])}) > 1 or \
       len({r['noise'] for r in warm if math.isfinite(r['noise'])}) > 1:
      paths.append(plot_heatmap(mine, stem + 'heatmap.png', method='warm'))
      fresh = [r for r in mine if r['protocol'] == WARMSTART and r['method'] == 'fresh']
      if set(_configs(fresh)) & set(_configs(warm)):
        paths.append(plot_gap_heatmap(mine, stem + 'gap.png', method='warm', reference='fresh'))
    warmstart = [r for r in mine if r['protocol'] == WARMSTART]
    configs = _configs(warmstart)
    if len(configs) > 1:
      for subset, noise in configs:
        chosen = [r for r in warmstart
                  if (r['subset'] == subset or math.isnan(r['subset']))
                  and (r['noise'] == noise or math.isnan(r['noise']))]
        if len({r['method'] for r in chosen}) > 1:  # one bar per cell is what the heatmap shows
          paths.append(plot_methods(
              chosen, f'{stem}methods_subset{_fmt(subset)}_noise{_fmt(noise)}.png'))
    elif warmstart:
      paths.append(plot_methods(warmstart, stem + 'methods.png'))
    if any(r['protocol'] == CONTINUAL for r in mine):
      paths.append(plot_continual(mine, stem + 'continual.png'))
    if warm_final_pairs(mine):
      paths.append(plot_correlations(mine, stem + 'correlations.png'))
  if not paths:
    raise ValueError(f'Nothing to plot in {results_csv}: found protocols '
                     f'{_found(rows, "protocol")}, expected {WARMSTART!r} or {CONTINUAL!r}.')
  return paths


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m warmstart.plots',
      description='Draw the warm-start study figures (paper Figs. 2, 4/5, 6 and 8) from the '
                  'results.csv written by the warm-start CLI, one set per dataset/model.',
      epilog='Figures: <dataset>_<model>_heatmap.png (method "warm" over subset x noise), '
             '_gap.png (warm - fresh per subset x noise cell, paired over seeds), '
             '_methods[_subset<s>_noise<n>].png (final test accuracy per method; per '
             'subset/noise cell holding two or more methods when there are several), '
             '_continual.png (test accuracy at every evaluation point), _correlations.png (plasticity '
             'metrics after the warm phase vs final test accuracy); each only when the table '
             'holds the data for it. Prints the paths written.')
  parser.add_argument('results_csv', help='the results table (one row per run and phase)')
  parser.add_argument('--out', metavar='DIR', default=None,
                      help='folder for the PNG files, created if needed '
                           '(default: "plots" beside RESULTS_CSV)')
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.results_csv)), 'plots')
  try:
    paths = plot_all(args.results_csv, out)
  except (OSError, ValueError) as error:
    print(f'error: {error}', file=sys.stderr)
    return 1
  for path in paths:
    print(path)
  return 0


if __name__ == '__main__':
  sys.exit(main())
