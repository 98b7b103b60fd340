"""Reference computations that only the tests use (the library computes the same on its own).

* ``normalize``: the human-normalized score of one game, written out from the table, to check
  the runs x games matrices that ``analysis.loading`` builds with
  ``normalization.normalize_columns``.
* ``param_count``: the number of scalars in a parameter pytree, to check the warm-start models
  against hand-worked counts.

Import as ``from tests import helpers`` (``pytest.ini`` puts the repository root on sys.path).
"""

import jax
import numpy as np

from analysis import normalization


def normalize(score, game: str):
  """Human-normalized score(s) of raw ``score`` (a float or an array) on ``game``."""
  random_score, human_score = normalization.load_table()[game]
  return (np.asarray(score, dtype=np.float64) - random_score) / (human_score - random_score)


def param_count(params) -> int:
  """Number of scalars in a pytree of arrays (or of ``jax.ShapeDtypeStruct``s)."""
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(params))
