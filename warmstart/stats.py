"""Paired comparisons of final test accuracies, the one home of the arithmetic behind the study's
summary tables (warmstart/run.py) and its gap heat map (warmstart/plots.py). numpy only.

Runs are paired by a key that fixes everything but the method, e.g. ``(subset, noise, seed)``:
the same seed means the same initial weights, data order, subset and label noise
(warmstart/protocols.py), so a paired difference removes the seed's share of the spread.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

import numpy as np


def paired_difference(a: Mapping[Hashable, float], b: Mapping[Hashable, float]
                      ) -> dict | None:
  """``{'mean', 'se', 'n'}`` of ``a[k] - b[k]`` over the keys both hold; ``None`` when none.

  ``se`` is the standard error ``std(d, ddof=1) / sqrt(n)``, NaN for ``n = 1``. NaN values are
  kept (a diverged run makes the mean NaN rather than vanish from it).
  """
  common = sorted(set(a) & set(b), key=repr)
  if not common:
    return None
  d = np.array([a[k] - b[k] for k in common], dtype=float)
  se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
  return {'mean': float(d.mean()), 'se': se, 'n': int(len(d))}


def cell_differences(a: Mapping[tuple, float], b: Mapping[tuple, float]) -> dict[tuple, dict]:
  """``{(subset, noise): paired_difference}`` for keys ``(subset, noise, seed)``: the paired
  difference of ``a`` and ``b`` in each cell both ran, over the seeds both ran there; cells in
  sorted order."""
  cells = sorted({k[:2] for k in a} & {k[:2] for k in b})
  out = {}
  for cell in cells:
    diff = paired_difference({k: v for k, v in a.items() if k[:2] == cell},
                             {k: v for k, v in b.items() if k[:2] == cell})
    if diff is not None:
      out[cell] = diff
  return out
