"""The four aggregate metrics with stratified-bootstrap confidence intervals, performance
profiles and probability of improvement, all through ``rliable``.

What comes from rliable:

* point estimates: ``rliable.metrics.aggregate_iqm``, ``aggregate_median``, ``aggregate_mean``,
  ``aggregate_optimality_gap`` and ``probability_of_improvement``, called as they are;
* every interval: ``rliable.library.get_interval_estimates`` (its ``StratifiedBootstrap``, runs
  resampled with replacement within each game, percentile 95% intervals) and
  ``create_performance_profile``.

Speed. The bootstrap re-evaluates its statistic ``reps`` times. rliable's ``aggregate_iqm`` goes
through ``scipy.stats.trim_mean``, whose argument-checking wrapper costs most of its time on a
100 x 26 matrix (the four rliable aggregates: about 650 us per evaluation), and
``probability_of_improvement`` calls ``scipy.stats.mannwhitneyu`` once per game (about 34 ms per
evaluation: 2000 replicates of one pair take over a minute). So the statistic handed to rliable's
bootstrap is, by default, ``fast_aggregates`` (about 50 us) / ``fast_probability_of_improvement``
(about 1 ms): the same arithmetic without the wrappers (trim_mean's ``np.partition`` at the same
cut points; the Mann-Whitney U as counts of wins plus half the ties), which gives bit-for-bit the
numbers rliable's functions give (``tests/test_analysis.py`` checks values and intervals against
rliable's own; ``--reference-statistics`` hands rliable's functions themselves to the bootstrap
and writes identical tables, about 5x slower). What remains per replicate is rliable's and arch's
resampling, about 150 us.

Measured (2 CPU cores shared with two Atari training runs, load average about 4.7): the default
50000 replicates for 4 agents of 100 runs x 26 games (DrQ_eps, SPR, DER, OTRainbow), with
profiles, probability of improvement and all plots, take 45 s with the default 2 processes
(60 s with ``jobs=1``; 37 s of CPU). rliable's default of 50000 is therefore kept.

Repeatability. rliable draws bootstrap indices from numpy's global RNG. Each bootstrap here
(one agent's aggregates, one agent's profile, one pair's probability of improvement) starts with
``np.random.seed(seed)``, so its interval is exactly what
``np.random.seed(seed); rliable.library.get_interval_estimates({name: scores}, ...)`` gives,
whatever other agents are analyzed and in whichever process it runs. The bootstraps are
independent, so they run in parallel processes (``jobs``).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import sys

import numpy as np
from rliable import library as rly
from rliable import metrics as rly_metrics

METRIC_NAMES = ('IQM', 'Median', 'Mean', 'Optimality Gap')
RLIABLE_FUNCTIONS = (rly_metrics.aggregate_iqm, rly_metrics.aggregate_median,
                     rly_metrics.aggregate_mean, rly_metrics.aggregate_optimality_gap)
DEFAULT_REPS = 50_000      # rliable's default for get_interval_estimates
DEFAULT_CURVE_REPS = 2_000  # rliable's default for create_performance_profile
PAIR_SEPARATOR = '\x00'    # joins the two agent names of a probability-of-improvement pair


# ------------------------------------------------------------------ statistics
def point_estimates(scores: np.ndarray) -> np.ndarray:
  """[IQM, median, mean, optimality gap] of a runs x games matrix, by rliable's functions."""
  return np.array([f(scores) for f in RLIABLE_FUNCTIONS])


reference_aggregates = point_estimates


def fast_aggregates(scores: np.ndarray) -> np.ndarray:
  """Same numbers as ``point_estimates`` (bit for bit), without the wrappers' overhead.

  The bootstrap statistic: about 50 us instead of 650 us on a 100 x 26 matrix. The arithmetic
  is rliable's, in the same order (numpy's mean is ``add.reduce`` divided by the count):
  IQM, ``scipy.stats.trim_mean(scores, 0.25, axis=None)``: ``np.partition`` of the flattened
  scores at ``(lo, n - lo - 1)``, ``lo = int(0.25 n)``, then the mean of ``[lo:n - lo]``;
  median and mean of the per-game means (``np.median`` averages the two middle values of an
  even count); optimality gap ``1 - mean(min(scores, 1))``.
  """
  scores = np.asarray(scores)
  flat = np.ravel(scores)
  size = flat.size
  lo = int(0.25 * size)
  hi = size - lo
  iqm = np.add.reduce(np.partition(flat, (lo, hi - 1))[lo:hi]) / (hi - lo)
  task_means = np.add.reduce(scores, axis=0) / scores.shape[0]
  ordered = np.sort(task_means)
  middle = ordered.size // 2
  median = ordered[middle] if ordered.size % 2 else (ordered[middle - 1] + ordered[middle]) / 2
  mean = np.add.reduce(task_means) / task_means.size
  gap = 1 - np.add.reduce(np.minimum(scores, 1), axis=None) / size
  return np.array([iqm, median, mean, gap])


def fast_probability_of_improvement(scores_x: np.ndarray, scores_y: np.ndarray) -> float:
  """``rliable.metrics.probability_of_improvement`` without ``scipy.stats.mannwhitneyu``.

  Per game, the Mann-Whitney U of x over y is the number of pairs (run of x, run of y) where x
  scores higher plus half the ties; divided by the number of pairs and averaged over games.
  Identical columns give exactly 0.5, as rliable's special case does.
  """
  num_x, num_y = scores_x.shape[0], scores_y.shape[0]
  sorted_y = np.sort(scores_y, axis=0)
  per_task = np.empty(scores_x.shape[1])
  for task in range(scores_x.shape[1]):
    below = np.searchsorted(sorted_y[:, task], scores_x[:, task], 'left').sum()
    not_above = np.searchsorted(sorted_y[:, task], scores_x[:, task], 'right').sum()
    per_task[task] = (below + 0.5 * (not_above - below)) / (num_x * num_y)
  return np.mean(per_task)


def score_distribution(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
  """rliable's score distribution (fraction of all runs x games above each tau), vectorized:
  the same numbers as ``rliable.library.score_distributions``."""
  return np.mean(np.asarray(scores).reshape(-1, 1) > np.asarray(taus).reshape(1, -1), axis=0)


def profile_taus(matrices, num: int = 101) -> np.ndarray:
  """Thresholds from 0 to the 99th percentile of all normalized scores rounded up to 0.5
  (at least 1, human level; at most 8)."""
  pooled = np.concatenate([np.ravel(m) for m in matrices])
  top = float(np.clip(np.ceil(2 * np.quantile(pooled, 0.99)) / 2, 1.0, 8.0))
  return np.linspace(0.0, top, num)


# ------------------------------------------------------------------ estimates
@dataclasses.dataclass
class Estimates:
  """One agent's aggregates: arrays indexed like ``METRIC_NAMES``."""
  name: str
  point: np.ndarray
  low: np.ndarray
  high: np.ndarray


@dataclasses.dataclass
class Profile:
  """One agent's score distribution with its pointwise 95% interval."""
  name: str
  taus: np.ndarray
  fraction: np.ndarray
  low: np.ndarray
  high: np.ndarray


@dataclasses.dataclass
class Improvement:
  """P(X > Y): probability that a run of ``x`` beats a run of ``y`` on a game, averaged."""
  x: str
  y: str
  point: float
  low: float
  high: float


def aggregate_estimates(name: str, scores: np.ndarray, reps: int = DEFAULT_REPS, seed: int = 0,
                        reference: bool = False) -> Estimates:
  """IQM, median, mean, optimality gap with 95% stratified-bootstrap percentile intervals."""
  statistic = reference_aggregates if reference else fast_aggregates
  np.random.seed(seed)
  _, intervals = rly.get_interval_estimates({name: scores}, statistic, reps=reps)
  ci = np.asarray(intervals[name]).reshape(2, len(METRIC_NAMES))
  return Estimates(name, point_estimates(scores), ci[0], ci[1])


def performance_profile(name: str, scores: np.ndarray, taus: np.ndarray,
                        reps: int = DEFAULT_CURVE_REPS, seed: int = 0,
                        reference: bool = False) -> Profile:
  """Score distribution with 95% intervals, by ``rliable.library.create_performance_profile``."""
  np.random.seed(seed)
  profiles, cis = rly.create_performance_profile(
      {name: scores}, taus, reps=reps,
      custom_profile_func=None if reference else score_distribution)
  return Profile(name, np.asarray(taus), np.asarray(profiles[name]), np.asarray(cis[name][0]),
                 np.asarray(cis[name][1]))


def probability_of_improvement(x: str, scores_x: np.ndarray, y: str, scores_y: np.ndarray,
                               reps: int = DEFAULT_CURVE_REPS, seed: int = 0,
                               reference: bool = False) -> Improvement:
  """P(X > Y) with a 95% interval from rliable's stratified independent bootstrap."""
  statistic = rly_metrics.probability_of_improvement if reference else \
      fast_probability_of_improvement
  key = f'{x}{PAIR_SEPARATOR}{y}'
  np.random.seed(seed)
  _, intervals = rly.get_interval_estimates({key: (scores_x, scores_y)}, statistic, reps=reps)
  low, high = np.ravel(intervals[key])
  point = rly_metrics.probability_of_improvement(scores_x, scores_y)
  return Improvement(x, y, float(point), float(low), float(high))


# ------------------------------------------------------------------ all of it, in parallel
@dataclasses.dataclass
class Results:
  estimates: dict[str, Estimates]
  profiles: dict[str, Profile]
  improvement: Improvement | None


def _run_task(task):
  kind, args = task
  function = {'aggregate': aggregate_estimates, 'profile': performance_profile,
              'improvement': probability_of_improvement}[kind]
  return kind, function(*args)


def _pool_context():
  methods = multiprocessing.get_all_start_methods()
  return multiprocessing.get_context('fork' if 'fork' in methods and sys.platform.startswith(
      'linux') else 'spawn')


def compute_all(scores: dict[str, np.ndarray], reps: int = DEFAULT_REPS,
                curve_reps: int = DEFAULT_CURVE_REPS, seed: int = 0,
                compare: tuple[str, str] | None = None, jobs: int | None = None,
                reference: bool = False, taus: np.ndarray | None = None) -> Results:
  """Every estimate for the agents in ``scores`` (``{name: runs x games matrix}``).

  Args:
    scores: normalized score matrices, all with the same games in the same order.
    reps: bootstrap replicates for the four aggregates.
    curve_reps: bootstrap replicates for performance profiles and probability of improvement.
    seed: seeds numpy's global RNG before each bootstrap.
    compare: (X, Y) for P(X > Y), or None.
    jobs: processes (default: the CPU count); 1 computes in this process.
    reference: hand rliable's own statistic functions to the bootstrap (slower, same numbers).
    taus: profile thresholds (default ``profile_taus``).
  """
  if taus is None:
    taus = profile_taus(list(scores.values()))
  tasks = [('aggregate', (n, s, reps, seed, reference)) for n, s in scores.items()]
  if compare:
    x, y = compare
    tasks.append(('improvement', (x, scores[x], y, scores[y], curve_reps, seed, reference)))
  tasks += [('profile', (n, s, taus, curve_reps, seed, reference)) for n, s in scores.items()]
  jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
  if jobs == 1:
    done = [_run_task(t) for t in tasks]
  else:
    with _pool_context().Pool(jobs) as pool:
      done = pool.map(_run_task, tasks, chunksize=1)
  estimates = {r.name: r for kind, r in done if kind == 'aggregate'}
  profiles = {r.name: r for kind, r in done if kind == 'profile'}
  improvement = next((r for kind, r in done if kind == 'improvement'), None)
  return Results({n: estimates[n] for n in scores}, {n: profiles[n] for n in scores}, improvement)
