"""Paired differences (warmstart/stats.py) on small dictionaries with known values."""

import math

import numpy as np
import pytest

from warmstart import stats


def test_paired_difference_is_the_mean_and_standard_error_over_shared_keys():
  a = {('x', 0): 0.80, ('x', 1): 0.90, ('x', 2): 0.70, ('x', 9): 0.0}  # key 9: a alone
  b = {('x', 0): 0.70, ('x', 1): 0.70, ('x', 2): 0.70, ('y', 0): 1.0}  # ('y', 0): b alone
  d = stats.paired_difference(a, b)
  assert d['n'] == 3
  assert d['mean'] == pytest.approx(0.1)
  assert d['se'] == pytest.approx(np.std([0.1, 0.2, 0.0], ddof=1) / math.sqrt(3))
  assert d['se'] == pytest.approx(0.1 / math.sqrt(3))


def test_paired_difference_of_one_pair_has_no_standard_error_and_none_without_pairs():
  d = stats.paired_difference({1: 0.5}, {1: 0.25, 2: 0.0})
  assert (d['mean'], d['n']) == (0.25, 1) and math.isnan(d['se'])
  assert stats.paired_difference({1: 0.5}, {2: 0.5}) is None


def test_paired_difference_keeps_a_nan_run_visible():
  d = stats.paired_difference({0: float('nan'), 1: 0.5}, {0: 0.5, 1: 0.5})
  assert d['n'] == 2 and math.isnan(d['mean'])


def test_cell_differences_pair_within_each_cell_only():
  warm = {(0.1, 0.5, 0): 0.80, (0.1, 0.5, 1): 0.84, (1.0, 0.0, 0): 0.90, (1.0, 0.0, 1): 0.92,
          (0.4, 0.2, 0): 0.5}  # (0.4, 0.2): no fresh there
  fresh = {(0.1, 0.5, 0): 0.85, (0.1, 0.5, 1): 0.87, (1.0, 0.0, 0): 0.85, (1.0, 0.0, 1): 0.87}
  cells = stats.cell_differences(warm, fresh)
  assert list(cells) == [(0.1, 0.5), (1.0, 0.0)]
  assert cells[(0.1, 0.5)]['mean'] == pytest.approx(-0.04)
  assert cells[(0.1, 0.5)]['se'] == pytest.approx(np.std([-0.05, -0.03], ddof=1) / math.sqrt(2))
  assert cells[(1.0, 0.0)]['mean'] == pytest.approx(0.05) and cells[(1.0, 0.0)]['n'] == 2
