"""Where each of our runs stands among a published baseline's runs of the same game.

One run cannot be aggregated the rliable way, but it can be placed in a published
distribution: the baseline's median and interquartile range on that game, and the share of its
runs that scored below ours (e.g. a ``drq`` run against the 100 published DrQ(eps) runs of its
game). Raw scores throughout: the comparison is within one game.
"""

from __future__ import annotations

import csv
import dataclasses
import io

import numpy as np

from analysis import AnalysisError
from analysis.loading import AgentScores


@dataclasses.dataclass(frozen=True)
class Standing:
  """One run of ours against the baseline's runs of its game.

  Attributes:
    agent, game, seed: the run.
    score: its raw score.
    median, q25, q75: the baseline's median and quartiles on the game (numpy's linear
      interpolation).
    below: fraction of the baseline's runs that scored strictly below ``score``; ``ties`` the
      fraction that scored exactly the same.
    baseline_runs: how many runs the baseline has on the game.
  """
  agent: str
  game: str
  seed: int
  score: float
  median: float
  q25: float
  q75: float
  below: float
  ties: float
  baseline_runs: int


def standings(agent: AgentScores, baseline: AgentScores) -> list[Standing]:
  """One ``Standing`` per run of ``agent`` on a game the baseline has, sorted by game and seed.

  Raises:
    AnalysisError: no game in common.
  """
  games = sorted(set(agent.scores) & set(baseline.scores))
  if not games:
    raise AnalysisError(
        f'--standing {baseline.name}: {agent.name} has no game in common with it (its games: '
        f'{", ".join(sorted(agent.scores)) or "none"}).')
  rows = []
  for game in games:
    published = np.array([score for _, score in baseline.scores[game]], float)
    q25, median, q75 = np.percentile(published, [25, 50, 75])
    for seed, score in agent.scores[game]:
      rows.append(Standing(agent.name, game, seed, float(score), float(median), float(q25),
                           float(q75), float(np.mean(published < score)),
                           float(np.mean(published == score)), len(published)))
  return rows


def to_markdown(rows: list[Standing], baseline: str) -> str:
  """A table: run, score, the baseline's median and IQR, its runs below ours."""
  lines = [f'Our runs among the published {baseline} runs of the same game (raw scores)', '',
           f'| agent | game | seed | score | {baseline} median | {baseline} IQR | '
           f'{baseline} runs below ours |',
           '|---|---|--:|--:|--:|---|--:|']
  for r in rows:
    ties = f' (+{r.ties:.0%} equal)' if r.ties else ''
    lines.append(f'| {r.agent} | {r.game} | {r.seed} | {r.score:.1f} | {r.median:.1f} | '
                 f'[{r.q25:.1f}, {r.q75:.1f}] | {r.below:.0%} of {r.baseline_runs}{ties} |')
  return '\n'.join(lines) + '\n'


def to_csv(rows: list[Standing]) -> str:
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=[f.name for f in dataclasses.fields(Standing)],
                          lineterminator='\n')
  writer.writeheader()
  writer.writerows(dataclasses.asdict(r) for r in rows)
  return out.getvalue()
