"""Plasticity metrics of the paper's Appendix C, as pure functions on arrays and pytrees.

Measured at the end of a phase of the warm-start and continual protocols and correlated with
test accuracy (paper Fig. 8):

* ``weight_magnitude``       mean over layers of the layer's mean squared weight;
* ``weight_distance``        mean over layers of the layer's mean squared distance to its
                             initial weights;
* ``zero_activation_ratio``  fraction of exactly-zero entries of the backbone's features;
* ``zero_gradient_ratio``    fraction of exactly-zero entries of d loss / d features;
* ``srank``                  feature rank of Kumar et al. (2020): the smallest k whose top-k
                             singular values hold a 1 - delta share of their sum (delta 0.01).

The paper's formulas were lost in extraction. Our reading: a "layer" is a weight array of rank
>= 2 (kernels and dense matrices; biases and normalisation scales are left out unless
``include_rank_one``), and each layer weighs equally in the mean, whatever its size.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


def _layers(params: PyTree, include_rank_one: bool) -> list:
  leaves = jax.tree_util.tree_leaves(params)
  layers = [x for x in leaves if include_rank_one or jnp.ndim(x) >= 2]
  if not layers:
    raise ValueError('The parameter tree holds no weight arrays of rank >= 2; pass '
                     'include_rank_one=True to measure vectors too.')
  return layers


def weight_magnitude(params: PyTree, include_rank_one: bool = False) -> float:
  """(1/|L|) sum_l mean_i(theta_{l,i}^2) over the layers ``L`` of ``params``."""
  layers = _layers(params, include_rank_one)
  return float(np.mean([float(jnp.mean(jnp.square(w))) for w in layers]))


def weight_distance(params: PyTree, initial_params: PyTree,
                    include_rank_one: bool = False) -> float:
  """(1/|L|) sum_l mean_i((theta_{l,i} - theta0_{l,i})^2): distance from the initial weights."""
  if jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure(initial_params):
    raise ValueError('params and initial_params must have the same tree structure.')
  diffs = jax.tree_util.tree_map(lambda a, b: a - b, params, initial_params)
  return weight_magnitude(diffs, include_rank_one)


def zero_activation_ratio(features) -> float:
  """Fraction of exactly-zero entries of the backbone's features (N, D): dead ReLU outputs."""
  features = jnp.asarray(features)
  return float(jnp.mean(features == 0))


def zero_gradient_ratio(feature_gradients) -> float:
  """Fraction of exactly-zero entries of the loss gradient w.r.t. the features (N, D)."""
  return zero_activation_ratio(feature_gradients)


def srank(features, delta: float = 0.01) -> int:
  """Effective rank: min k with sum_{i<=k} sigma_i >= (1 - delta) sum_i sigma_i.

  ``features`` is the (N, D) feature matrix; singular values in decreasing order. A zero
  matrix has rank 0.
  """
  if not 0.0 <= delta < 1.0:
    raise ValueError(f'delta must be in [0, 1), got {delta}.')
  features = np.asarray(features, np.float64)
  if features.ndim != 2:
    raise ValueError(f'features must be a matrix (N, D), got shape {features.shape}.')
  singular_values = np.linalg.svd(features, compute_uv=False)
  total = singular_values.sum()
  if total == 0.0:
    return 0
  cumulative = np.cumsum(singular_values) / total
  return int(np.searchsorted(cumulative, 1.0 - delta - 1e-12) + 1)
