"""Human normalization of Atari-100k scores with the 26-game random/human table.

The table is package data (``analysis/data/human_random.csv``, columns ``game,random,human``);
the normalized score of a raw game score is ``(score - random) / (human - random)``: 0 is the
random agent, 1 the human reference.
"""

from __future__ import annotations

import csv
import functools
import os

import numpy as np

from analysis import DATA_DIR, AnalysisError
from common.suggest import did_you_mean

HUMAN_RANDOM_CSV = os.path.join(DATA_DIR, 'human_random.csv')


@functools.lru_cache(maxsize=None)
def load_table(path: str = HUMAN_RANDOM_CSV) -> dict[str, tuple[float, float]]:
  """Returns ``{game: (random, human)}`` in the file's (alphabetical) order."""
  with open(path, newline='') as f:
    rows = list(csv.DictReader(f))
  return {row['game']: (float(row['random']), float(row['human'])) for row in rows}


def games() -> tuple[str, ...]:
  """The 26 Atari-100k games, canonical CamelCase names, alphabetical."""
  return tuple(load_table())


def check_game(game, source: str) -> str:
  """Returns ``game`` if it is one of the 26 games, else raises ``AnalysisError``.

  Args:
    game: the name found in the input.
    source: where it was found (a file path), named in the error.
  """
  if isinstance(game, str) and game in load_table():
    return game
  raise AnalysisError(
      f'{source}: unknown game {game!r}.{did_you_mean(game, games())} '
      'Game names must be one of the 26 Atari-100k '
      f'games, spelled exactly: {", ".join(games())}.')


def normalize_columns(matrix: np.ndarray, game_names) -> np.ndarray:
  """Normalizes a runs x games matrix of raw scores, column ``j`` being ``game_names[j]``."""
  matrix = np.asarray(matrix, dtype=np.float64)
  table = load_table()
  random_scores = np.array([table[g][0] for g in game_names])
  human_scores = np.array([table[g][1] for g in game_names])
  return (matrix - random_scores) / (human_scores - random_scores)
