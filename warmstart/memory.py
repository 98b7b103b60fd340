"""The continual protocol's memory of earlier examples: at most ``capacity`` example indices.

With limited data access (paper section 5.2: "limited access with a buffer size of 5000") a
phase trains on its new slice plus the memory; after the phase the memory takes in the slice,
keeping at most ``capacity`` examples, so no example that left it can come back. Two rules
choose what stays:

* ``'official'``: the ``capacity`` examples of lowest *official index*. The official data set
  (``src/datasets/dataset.py``) trains phase t on ``prev_indices[:buffer_size]`` plus the new
  slice, and ``src/datasets/__init__.py`` keeps ``prev_indices = list(set(prev_indices +
  cur_indices))``, every index seen so far. Its indices number a torchvision ``ImageFolder``:
  class folders in order, each class's files in the order the download scripts wrote them
  (``{count:04d}.png``), i.e. the training set stably sorted by label
  (:func:`official_ranks`). CPython lists a set of ints in increasing order once its table is
  larger than the largest index (50,000 indices in slices of 5,000: from 20,000 seen on),
  before that in hash order; where the order switches, the official buffer takes back
  examples that had left it, so it is no memory there (tests/test_warmstart_memory.py). We take
  the increasing order throughout: the lowest N of everything seen are the lowest N of
  (memory + new slice), a true memory, equal to the official buffer wherever CPython's list is
  in order. It is deterministic and fills with the lowest classes first. (The official configs
  set ``buffer_size`` to the whole training set, i.e. full access, in every published run.)
* ``'reservoir'``: reservoir sampling (Vitter's Algorithm R) over the examples in the order they
  arrive: the first ``capacity`` are kept, then the t-th (0-based) replaces a uniformly chosen
  slot with probability ``capacity / (t + 1)``, so every example seen so far is in the memory
  with the same probability.
"""

from __future__ import annotations

import numpy as np

RULES = ('official', 'reservoir')


def official_ranks(labels: np.ndarray) -> np.ndarray:
  """(N,) int: each example's index in the official ``ImageFolder`` numbering, i.e. its
  position in the training set stably sorted by label."""
  order = np.argsort(np.asarray(labels), kind='stable')
  ranks = np.empty(len(order), np.int64)
  ranks[order] = np.arange(len(order))
  return ranks


class Memory:
  """At most ``capacity`` example indices of the earlier phases.

  Args:
    capacity: int >= 0, the most examples kept.
    rule: 'official' or 'reservoir' (module docstring).
    labels: (N,) labels of the whole training set (rule 'official': the official numbering).
    rng: np.random.Generator (rule 'reservoir').
  """

  def __init__(self, capacity: int, rule: str, labels: np.ndarray | None = None,
               rng: np.random.Generator | None = None):
    if rule not in RULES:
      raise ValueError(f'buffer rule must be one of {", ".join(RULES)}, got {rule!r}.')
    if capacity < 0:
      raise ValueError(f'buffer size must be >= 0, got {capacity}.')
    if rule == 'official' and labels is None:
      raise ValueError("the 'official' buffer rule needs the training labels.")
    if rule == 'reservoir' and rng is None:
      raise ValueError("the 'reservoir' buffer rule needs a random generator.")
    self.capacity = capacity
    self.rule = rule
    self._ranks = official_ranks(labels) if rule == 'official' else None
    self._rng = rng
    self._kept = np.zeros(0, np.int64)
    self.seen = 0  # examples offered so far

  @property
  def indices(self) -> np.ndarray:
    """The kept example indices (official: by official index; reservoir: by slot)."""
    return self._kept.copy()

  def add(self, indices) -> None:
    """Offers ``indices`` (a phase's new slice, in arrival order) to the memory."""
    indices = np.asarray(indices, np.int64)
    if self.rule == 'official':
      candidates = np.concatenate([self._kept, indices])
      keep = np.argsort(self._ranks[candidates], kind='stable')[:self.capacity]
      self._kept = candidates[keep]
    else:
      kept = list(self._kept)
      for arrival, index in enumerate(indices, start=self.seen):  # arrival: 0-based, run-wide
        if len(kept) < self.capacity:
          kept.append(index)
        else:
          slot = self._rng.integers(0, arrival + 1)
          if slot < self.capacity:
            kept[slot] = index
      self._kept = np.asarray(kept, np.int64)
    self.seen += len(indices)
