"""The results table: one row per agent (IQM, median, mean, optimality gap as
``point [low, high]``, games and runs counted) with footnotes, as terminal text, CSV and Markdown;
plus a per-game CSV of mean normalized scores. Files are written atomically.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os

import numpy as np

from analysis import metrics as metrics_lib
from analysis.loading import AgentMatrix, RunsSummary

COLUMNS = ('Agent', 'Source', 'IQM', 'Median', 'Mean', 'Optimality gap', 'Games', 'Runs')
_MAX_LISTED = 5


def format_interval(point: float, low: float, high: float, digits: int = 3) -> str:
  return f'{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]'


def _count(n: int, noun: str) -> str:
  return f'{n} {noun}' + ('' if n == 1 else 's')


def _listing(items: list[str]) -> str:
  shown = ', '.join(items[:_MAX_LISTED])
  return shown + (f' and {len(items) - _MAX_LISTED} more' if len(items) > _MAX_LISTED else '')


@dataclasses.dataclass
class Table:
  """Rows of formatted cells, numeric records for the CSV, and footnotes.

  Attributes:
    rows: one list of cells per row, in the order of ``columns``.
    records: one dict per row for the CSV.
    footnotes: numbered under the table.
    columns: the header.
    left_columns: how many leading columns hold text (left-aligned in Markdown); the rest are
      numbers (right-aligned).
  """
  rows: list[list[str]]
  records: list[dict]
  footnotes: list[str]
  columns: tuple[str, ...] = COLUMNS
  left_columns: int = 2


def build_table(matrices: list[AgentMatrix], results: metrics_lib.Results, reps: int,
                curve_reps: int, seed: int, all_games: int | None = None,
                summary: RunsSummary | None = None) -> Table:
  """The table of ``results`` with its footnotes.

  Args:
    matrices: the agents' matrices, in table order.
    results: ``metrics.compute_all``'s output for them.
    reps, curve_reps, seed: the bootstrap settings, stated in the footnotes.
    all_games: how many games the agents had together, when ``--common-games`` dropped some.
    summary: what was found under the runs folder (unfinished and superseded runs), if any.
  """
  rows, records = [], []
  for matrix in matrices:
    estimate = results.estimates[matrix.name]
    cells = [format_interval(p, lo, hi)
             for p, lo, hi in zip(estimate.point, estimate.low, estimate.high)]
    rows.append([matrix.name, matrix.source, *cells, str(len(matrix.games)),
                 matrix.runs_label()])
    record = {'agent': matrix.name, 'source': matrix.source}
    for i, metric in enumerate(metrics_lib.METRIC_NAMES):
      key = metric.lower().replace(' ', '_')
      record[key] = float(estimate.point[i])
      record[f'{key}_low'] = float(estimate.low[i])
      record[f'{key}_high'] = float(estimate.high[i])
    record.update(games=len(matrix.games), runs_min=min(matrix.run_counts.values()),
                  runs_max=max(matrix.run_counts.values()), runs_used=matrix.runs_used,
                  reps=reps, seed=seed)
    records.append(record)

  games = matrices[0].games
  notes = [
      'Human-normalized scores, (score - random) / (human - random); point estimate '
      f'[95% stratified-bootstrap percentile interval], rliable, {reps} bootstrap replicates, '
      f'seed {seed}. IQM, median, mean: higher is better; optimality gap (mean shortfall below '
      'human level): lower is better. Runs: runs per game.']
  if all_games is not None and all_games > len(games):
    notes.append(f'--common-games: aggregated over the {_count(len(games), "game")} all agents '
                 f'have ({", ".join(games)}), not over all {all_games} games found.')
  for matrix in matrices:
    if not matrix.equal_seeds:
      extra = [f'{g} {n - matrix.runs_used}' for g, n in matrix.run_counts.items()
               if n > matrix.runs_used]
      # Score files have no seed numbers: their runs are ranked by position in the file.
      kept = ('lowest-numbered seeds' if matrix.source == 'runs' else
              'runs listed first in its file')
      notes.append(
          f'{matrix.name}: unequal seed counts per game ({matrix.runs_label().split()[0]}). '
          f'rliable needs a rectangular runs x games matrix (every game weighs the same), so '
          f'the {matrix.runs_used} {kept} for each game are used and '
          f'{matrix.runs_left_out} run(s) are left out (per game: {_listing(extra)}).')
    if matrix.runs_used == 1:
      notes.append(f'{matrix.name}: one run per game, so the bootstrap has nothing to resample: '
                   'its intervals have zero width.')
  if summary is not None:
    if summary.unfinished:
      names = [os.path.relpath(p, summary.runs_dir) for p in sorted(summary.unfinished)]
      notes.append(f'{len(names)} unfinished run(s) (seed folder without result.json) under '
                   f'{summary.runs_dir} not counted: {_listing(names)}.')
    for agent, where in sorted(summary.devices.items()):
      notes.append(f'{agent} ran on ' + ', '.join(f'{device} x{count}' for device, count
                                                  in sorted(where.items())) + '.')
    if summary.failed:
      names = [os.path.relpath(p, summary.runs_dir) for p in sorted(summary.failed)]
      notes.append(f'{len(names)} diverged run(s) (failed.json, left out by --skip-failed) '
                   f'under {summary.runs_dir}: {_listing(names)}.')
    if summary.superseded:
      notes.append(f'{summary.superseded} superseded run folder(s) (*.old-*, kept by --force) '
                   'skipped.')
  improvement = results.improvement
  if improvement is not None:
    notes.append(
        f'P({improvement.x} > {improvement.y}) = '
        f'{format_interval(improvement.point, improvement.low, improvement.high)}: probability '
        f'that a run of {improvement.x} scores higher than a run of {improvement.y} on a game, '
        f'averaged over games ({curve_reps} bootstrap replicates; performance profiles too).')
  return Table(rows, records, notes)


def to_text(table: Table) -> str:
  """Aligned columns for the terminal, then the numbered footnotes."""
  cells = [list(table.columns)] + table.rows
  widths = [max(len(row[i]) for row in cells) for i in range(len(table.columns))]
  lines = ['  '.join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
  lines.insert(1, '  '.join('-' * w for w in widths))
  lines.append('')
  lines += [f'({i}) {note}' for i, note in enumerate(table.footnotes, 1)]
  return '\n'.join(lines) + '\n'


def _escape_markdown(text: str) -> str:
  return text.replace('|', '\\|')


def to_markdown(table: Table) -> str:
  """A GitHub-flavoured Markdown table with the footnotes below it."""
  lines = ['| ' + ' | '.join(table.columns) + ' |',
           '|' + '|'.join(['---'] * table.left_columns +
                          ['--:'] * (len(table.columns) - table.left_columns)) + '|']
  lines += ['| ' + ' | '.join(_escape_markdown(c) for c in row) + ' |' for row in table.rows]
  lines.append('')
  lines += [f'{i}. {_escape_markdown(note)}' for i, note in enumerate(table.footnotes, 1)]
  return '\n'.join(lines) + '\n'


def to_csv(table: Table) -> str:
  """One row per agent, numeric columns (``iqm``, ``iqm_low``, ``iqm_high``, ...)."""
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=list(table.records[0]), lineterminator='\n')
  writer.writeheader()
  writer.writerows(table.records)
  return out.getvalue()


def per_game_csv(matrices: list[AgentMatrix]) -> str:
  """Mean human-normalized score per game (rows) and agent (columns), over the runs used."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  writer.writerow(['game'] + [m.name for m in matrices])
  means = [np.mean(m.scores, axis=0) for m in matrices]
  for j, game in enumerate(matrices[0].games):
    writer.writerow([game] + [f'{mean[j]:.6g}' for mean in means])
  return out.getvalue()
