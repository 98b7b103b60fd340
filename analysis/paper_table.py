"""The Hare & Tortoise paper's Table 1 (its Atari-100k aggregates), so that
``python -m analysis.aggregate --paper-table`` can print it under our table: ours beside theirs.

Source: Table 1 of "Slow and Steady Wins the Race: Maintaining Plasticity with Hare and Tortoise
Networks" (Lee et al., ICML 2024); the project's copy is ``shared/paper/hare-tortoise-icml2024.txt``
(the table follows the line "Algorithm | Architecture | S&P | HR | H&T | SSL | GPU hours | IQM |
..."). The numbers are the paper's point estimates, kept as the strings the paper prints and never
recomputed here: the paper gives no intervals, and its GPU hours only for three rows (its table
leaves the cell empty for the others).

Each row is named by the paper's technique columns (S&P: Shrink & Perturb, HR: head reset, H&T,
SSL: BBF's self-supervised SPR loss), with the named configuration (``AGENT=``, ``gin/<agent>.gin``;
the mapping of README.md and docs/fidelity.md) that runs its setup here, and, where one exists,
the shipped published baseline whose runs give the row's four numbers exactly (the public BBF
code's runs at replay ratio 2: ``analysis/data/README.md``; ``tests/test_analysis.py`` checks it).
"""

from __future__ import annotations

import dataclasses

from analysis import report

SOURCE = ('Table 1 of "Slow and Steady Wins the Race: Maintaining Plasticity with Hare and '
          'Tortoise Networks" (Lee et al., ICML 2024)')
TITLE = "The paper's Table 1 (the paper's own numbers, not computed here)"
COLUMNS = ('Row (paper)', 'Configuration', 'Published scores', 'GPU hours', 'IQM', 'Median',
           'Mean', 'Optimality gap')
FILE_STEM = 'paper_table1'


@dataclasses.dataclass(frozen=True)
class PaperRow:
  """One row of the paper's Table 1; numbers as the paper prints them.

  Attributes:
    row: the row, named by the paper's technique columns.
    agent: our named configuration that runs the row's setup.
    baseline: the shipped published baseline (``--baselines``) whose runs give the row's IQM,
      median, mean and optimality gap, or '' if none does.
    gpu_hours: GPU hours per run on the authors' hardware, '' where the paper gives none.
    iqm, median, mean, optimality_gap: the paper's point estimates (human-normalized, 26 games).
  """
  row: str
  agent: str
  baseline: str
  gpu_hours: str
  iqm: str
  median: str
  mean: str
  optimality_gap: str


TABLE1 = (
    PaperRow('DrQ', 'drq', '', '0.5', '0.243', '0.193', '0.468', '0.642'),
    PaperRow('DrQ, S&P', 'drq_sp', '', '', '0.139', '0.138', '0.458', '0.728'),
    PaperRow('DrQ, H&T', 'drq_ht', '', '', '0.287', '0.260', '0.471', '0.617'),
    PaperRow('DrQ, HR 20k', 'drq_hr20k', '', '', '0.332', '0.254', '0.694', '0.580'),
    PaperRow('DrQ, HR 40k', 'drq_hr40k', '', '', '0.288', '0.241', '0.532', '0.607'),
    PaperRow('DrQ, HR 40k, H&T', 'drq_hr40k_ht', '', '', '0.328', '0.329', '0.584', '0.583'),
    PaperRow('BBF (S&P, HR)', 'bbf', 'BBF_noSPR', '1.4', '0.826', '0.711', '1.737', '0.397'),
    PaperRow('BBF (S&P, HR), H&T', 'bbf_ht', '', '', '0.891', '0.749', '1.719', '0.372'),
    PaperRow('BBF (S&P, HR), SSL', 'bbf_ssl', 'BBF', '2.8', '0.940', '0.755', '2.175', '0.377'),
)


def build_table() -> report.Table:
  """The paper's rows as a ``report.Table``, with footnotes naming the source and the columns."""
  rows = [[r.row, r.agent, r.baseline, r.gpu_hours, r.iqm, r.median, r.mean, r.optimality_gap]
          for r in TABLE1]
  records = [dataclasses.asdict(r) for r in TABLE1]
  matched = ', '.join(f'{r.baseline} gives "{r.row}"' for r in TABLE1 if r.baseline)
  notes = [
      f"Source: {SOURCE}. The paper's point estimates over the 26 games, human-normalized, "
      'exactly as the paper prints them; the paper gives no intervals. Optimality gap: lower '
      'is better.',
      'Configuration: the named configuration (AGENT=, gin/<name>.gin) that runs the row\'s '
      'setup in this suite; an agent of that name in a runs folder is its counterpart in the '
      'table above.',
      f'Published scores: the shipped baseline (--baselines) whose runs give the row\'s four '
      f'numbers exactly ({matched}: the public BBF code\'s runs at replay ratio 2).',
      "GPU hours: per run on the authors' hardware, as the paper gives them: for three rows "
      'only, its table leaves the cell empty for the others.']
  return report.Table(rows, records, notes, columns=COLUMNS, left_columns=3)


def to_text() -> str:
  """The titled table for the terminal and ``paper_table1.txt``."""
  return f'{TITLE}\n\n' + report.to_text(build_table())


def to_markdown() -> str:
  """The titled table as Markdown, for ``paper_table1.md``."""
  return f'**{TITLE}**\n\n' + report.to_markdown(build_table())
