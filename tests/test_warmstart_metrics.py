"""The plasticity metrics of Appendix C (warmstart/metrics.py) on inputs with known answers."""

import numpy as np
import pytest

from warmstart import metrics

PARAMS = {'dense_0': {'kernel': np.array([[1.0, 2.0], [3.0, 4.0]]),  # mean square 7.5
                      'bias': np.array([10.0])},
          'dense_1': {'kernel': np.full((3, 1), 2.0)}}                # mean square 4


def matrix_with_singular_values(values, rows=7, seed=0):
  r = np.random.default_rng(seed)
  u, _ = np.linalg.qr(r.normal(size=(rows, rows)))
  v, _ = np.linalg.qr(r.normal(size=(len(values), len(values))))
  s = np.zeros((rows, len(values)))
  s[:len(values), :len(values)] = np.diag(values)
  return u @ s @ v.T


def test_weight_magnitude_averages_layers_equally():
  assert metrics.weight_magnitude(PARAMS) == pytest.approx((7.5 + 4.0) / 2)
  assert metrics.weight_magnitude(PARAMS, include_rank_one=True) == pytest.approx(
      (7.5 + 100.0 + 4.0) / 3)


def test_weight_distance_is_the_magnitude_of_the_change():
  initial = {'dense_0': {'kernel': np.zeros((2, 2)), 'bias': np.array([9.0])},
             'dense_1': {'kernel': np.full((3, 1), 1.0)}}           # change: 1 everywhere
  assert metrics.weight_distance(PARAMS, initial) == pytest.approx((7.5 + 1.0) / 2)
  assert metrics.weight_distance(PARAMS, PARAMS) == 0.0
  with pytest.raises(ValueError, match='same tree structure'):
    metrics.weight_distance(PARAMS, {'dense_0': PARAMS['dense_0']})


def test_no_weight_matrix_is_a_clear_error():
  with pytest.raises(ValueError, match='include_rank_one'):
    metrics.weight_magnitude({'bias': np.ones(3)})


def test_zero_ratios_count_exact_zeros():
  features = np.array([[0.0, 1.0, 0.0, 2.0], [3.0, 0.0, 1e-9, 4.0]])
  assert metrics.zero_activation_ratio(features) == pytest.approx(3 / 8)
  assert metrics.zero_gradient_ratio(np.zeros((5, 2))) == 1.0


@pytest.mark.parametrize('values,delta,expected', [
    ([10.0, 5.0, 1.0, 0.0], 0.01, 3),  # shares 0.625, 0.9375, 1.0
    ([10.0, 5.0, 1.0, 0.0], 0.1, 2),
    ([10.0, 5.0, 1.0, 0.0], 0.5, 1),
    ([1.0, 1.0, 1.0, 1.0], 0.01, 4),
    ([1.0, 1.0, 1.0, 1.0], 0.25, 3),   # exactly 0.75: the boundary counts
    ([0.0, 0.0], 0.01, 0),
])
def test_srank_of_matrices_with_known_singular_values(values, delta, expected):
  assert metrics.srank(matrix_with_singular_values(values), delta) == expected


def test_srank_bad_input():
  with pytest.raises(ValueError, match='delta'):
    metrics.srank(np.eye(3), delta=1.0)
  with pytest.raises(ValueError, match='matrix'):
    metrics.srank(np.ones(3))
