"""The figures, each written as PNG and PDF (atomically), with matplotlib's Agg backend:

* ``interval_estimates``: IQM, median, mean, optimality gap with 95% intervals
  (``rliable.plot_utils.plot_interval_estimates``);
* ``performance_profiles``: score distributions with 95% bands
  (``rliable.plot_utils.plot_performance_profiles``);
* ``per_game_scores``: each agent's mean normalized score on each game;
* ``probability_of_improvement``: P(X > Y) with its 95% interval
  (``rliable.plot_utils.plot_probability_of_improvement``).
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from rliable import plot_utils  # noqa: E402

from analysis import metrics as metrics_lib  # noqa: E402
from common.files import write_atomically  # noqa: E402
from analysis.loading import AgentMatrix  # noqa: E402

FORMATS = ('png', 'pdf')
DPI = 150
XLABEL = 'Human-normalized score'


def agent_colors(names) -> dict:
  """One colour per agent, the same in every figure (seaborn's colour-blind palette)."""
  palette = sns.color_palette('colorblind', n_colors=max(len(names), 1))
  return dict(zip(names, palette))


def save_figure(fig, out_dir: str, stem: str) -> list[str]:
  """Writes ``<out_dir>/<stem>.png`` and ``.pdf`` atomically; closes the figure."""
  paths = []
  for fmt in FORMATS:
    path = os.path.join(out_dir, f'{stem}.{fmt}')
    write_atomically(path, lambda f, fmt=fmt: fig.savefig(
        f, format=fmt, dpi=DPI, bbox_inches='tight', pad_inches=0.15))
    paths.append(path)
  plt.close(fig)
  return paths


def plot_interval_estimates(results: metrics_lib.Results, names, colors, subtitle: str = ''):
  """The four aggregates with their intervals, one panel per metric, one row per agent (the
  first agent on top)."""
  names = list(names)
  points = {n: results.estimates[n].point for n in names}
  intervals = {n: np.stack([results.estimates[n].low, results.estimates[n].high]) for n in names}
  fig, axes = plot_utils.plot_interval_estimates(
      points, intervals, metrics_lib.METRIC_NAMES, algorithms=names[::-1], colors=colors,
      xlabel=XLABEL, subfigure_width=3.6, row_height=0.55)
  for text in list(fig.texts):  # rliable's x label, placed for its own figure size
    text.remove()
  width, height = 3.6 * len(metrics_lib.METRIC_NAMES), 0.55 * len(names) + 1.7
  fig.set_size_inches(width, height)
  fig.subplots_adjust(left=0.0, right=1.0, top=1 - 0.85 / height, bottom=0.8 / height,
                      wspace=0.18)
  for ax in np.atleast_1d(axes):
    ax.tick_params(axis='x', labelsize='large')
    ax.set_title(ax.get_title(), fontsize='x-large', pad=8)
  fig.supxlabel(XLABEL, fontsize='x-large', y=0.0, va='bottom')
  fig.suptitle('Aggregate metrics with 95% stratified-bootstrap intervals'
               + (f' ({subtitle})' if subtitle else ''), fontsize='x-large',
               y=1.0, va='top')
  return fig


def plot_performance_profiles(results: metrics_lib.Results, names, colors, subtitle: str = ''):
  """Score distributions: fraction of runs (all games) above each normalized score tau."""
  fig, ax = plt.subplots(figsize=(7.5, 4.8))
  taus = results.profiles[names[0]].taus
  profiles = {n: results.profiles[n].fraction for n in names}
  cis = {n: np.stack([results.profiles[n].low, results.profiles[n].high]) for n in names}
  step = 0.5 if taus[-1] <= 3 else 1.0
  plot_utils.plot_performance_profiles(
      profiles, taus, performance_profile_cis=cis, colors=colors, ax=ax,
      xticks=list(np.arange(0, taus[-1] + 1e-9, step)),
      xlabel=r'Human-normalized score ($\tau$)', ylabel=r'Fraction of runs with score $> \tau$',
      labelsize='large', ticklabelsize='large', legend=True, legendsize='large')
  ax.axhline(0.5, color='gray', linestyle='--', linewidth=1, alpha=0.6)
  ax.axvline(1.0, color='gray', linestyle=':', linewidth=1, alpha=0.6)
  ax.set_xlim(taus[0], taus[-1])
  ax.set_ylim(0, 1)
  ax.set_title('Performance profiles (score distributions, 95% bands)'
               + (f'\n{subtitle}' if subtitle else ''), fontsize='large')
  return fig


def plot_per_game(matrices: list[AgentMatrix], colors):
  """Mean normalized score of each agent on each game (dots), the spread of its runs
  (thin lines from the 25th to the 75th percentile), random (0) and human (1) marked."""
  games = matrices[0].games
  n_agents = len(matrices)
  fig, ax = plt.subplots(figsize=(8, max(3.0, 0.32 * len(games) * max(1, n_agents / 3) + 1.2)))
  # The first agent on top within each game's band, as in the legend and the table.
  offsets = ((n_agents - 1) / 2 - np.arange(n_agents)) * min(0.8 / max(n_agents, 1), 0.25)
  rows = np.arange(len(games))[::-1]
  for offset, matrix in zip(offsets, matrices):
    means = np.mean(matrix.scores, axis=0)
    q25, q75 = np.percentile(matrix.scores, [25, 75], axis=0)
    y = rows + offset
    ax.hlines(y, q25, q75, color=colors[matrix.name], linewidth=1.2, alpha=0.6)
    ax.plot(means, y, 'o', color=colors[matrix.name], markersize=5,
            label=f'{matrix.name} ({matrix.runs_used} run{"s" if matrix.runs_used > 1 else ""})')
  ax.axvline(0, color='gray', linewidth=1, linestyle='-', alpha=0.7)
  ax.axvline(1, color='gray', linewidth=1, linestyle='--', alpha=0.7)
  for j in range(len(games) - 1):
    ax.axhline(j + 0.5, color='gray', linewidth=0.4, alpha=0.3)
  ax.set_yticks(rows)
  ax.set_yticklabels(games, fontsize='medium')
  ax.set_ylim(-0.6, len(games) - 0.4)
  ax.set_xlabel(f'{XLABEL} (0 = random, 1 = human)', fontsize='large')
  ax.grid(True, axis='x', alpha=0.25)
  ax.spines['top'].set_visible(False)
  ax.spines['right'].set_visible(False)
  legend_rows = -(-n_agents // 4)
  ax.legend(loc='lower center', bbox_to_anchor=(0.5, 1.0), ncol=min(n_agents, 4),
            fontsize='medium', frameon=False, handletextpad=0.2, columnspacing=1.2)
  ax.set_title('Per-game scores: mean over runs (dot), 25th-75th percentile of runs (line)',
               fontsize='large', pad=8 + 20 * legend_rows)
  return fig


def plot_improvement(improvement: metrics_lib.Improvement, colors):
  """P(X > Y) with its interval, by rliable's plot (one pair)."""
  fig, ax = plt.subplots(figsize=(6.5, 1.9))
  key = f'{improvement.x}{metrics_lib.PAIR_SEPARATOR}{improvement.y}'
  plot_utils.plot_probability_of_improvement(
      {key: improvement.point}, {key: np.array([improvement.low, improvement.high])},
      pair_separator=metrics_lib.PAIR_SEPARATOR, ax=ax, colors=[colors[improvement.x]],
      xticks=[0.0, 0.25, 0.5, 0.75, 1.0], xlabel=f'P({improvement.x} > {improvement.y})',
      left_ylabel='Algorithm X', right_ylabel='Algorithm Y', labelsize='large',
      ticklabelsize='large', interval_height=0.4)
  for axis in fig.axes:  # rliable's axis and its twin (the right-hand labels)
    axis.set_xlim(0, 1)
    axis.set_ylim(-0.8, 0.8)
  ax.axvline(0.5, color='gray', linestyle='--', linewidth=1, alpha=0.7)
  ax.set_title(f'Probability of improvement: {improvement.point:.3f} '
               f'[{improvement.low:.3f}, {improvement.high:.3f}]', fontsize='large', pad=22)
  return fig


def write_all(matrices: list[AgentMatrix], results: metrics_lib.Results, out_dir: str,
              subtitle: str = '') -> list[str]:
  """Every figure, PNG and PDF, into ``out_dir``; returns the paths written."""
  names = [m.name for m in matrices]
  colors = agent_colors(names)
  paths = save_figure(plot_interval_estimates(results, names, colors, subtitle), out_dir,
                      'interval_estimates')
  paths += save_figure(plot_performance_profiles(results, names, colors, subtitle), out_dir,
                       'performance_profiles')
  paths += save_figure(plot_per_game(matrices, colors), out_dir, 'per_game_scores')
  if results.improvement is not None:
    paths += save_figure(plot_improvement(results.improvement, colors), out_dir,
                         'probability_of_improvement')
  return paths
