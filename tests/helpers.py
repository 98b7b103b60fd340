"""Reference computations that only the tests use (the library computes the same on its own).

* ``normalize``: the human-normalized score of one game, written out from the table, to check
  the runs x games matrices that ``analysis.loading`` builds with
  ``normalization.normalize_columns``.
* ``param_count``: the number of scalars in a parameter pytree, to check the warm-start models
  against hand-worked counts; ``part_sizes``: the same for each named part of BBF's network.
* ``trees_equal``: two pytrees of the same structure and values, bit for bit.
* ``count_selected``: the number of scalars a ``plasticity.select_mask`` mask selects.

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


def part_sizes(params) -> dict:
  """Number of scalars in each named part of a BBF network's parameters."""
  return {name: param_count(params['params'][name]) for name in params['params']}


def trees_equal(a, b) -> bool:
  """True when two pytrees have identical structure and values (host-side)."""
  if jax.tree_util.tree_structure(a) != jax.tree_util.tree_structure(b):
    return False
  return all(bool(np.array_equal(x, y)) for x, y in
             zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def count_selected(mask, tree) -> int:
  """Number of scalars selected by ``mask`` (a ``plasticity.select_mask`` result)."""
  return int(sum(np.size(x) for m, x in zip(jax.tree_util.tree_leaves(mask),
                                            jax.tree_util.tree_leaves(tree)) if m))
