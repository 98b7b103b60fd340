"""When things happen inside a phase: the update counts of resets, evaluations and ReDo.

Pure functions of sizes and settings, no JAX: the trainer (warmstart/train.py) and the
protocols (warmstart/protocols.py) take their schedules from here, and the tests check them as
exact lists of update counts. A *point* ``k`` is a count of updates made in the current phase:
an event at point k happens after the phase's k-th update and before its (k + 1)-th; point 0 is
the phase's start. An *epoch* is one pass over the phase's own training set,
``epoch_updates(examples, batch_size)`` updates (the last partial batch dropped).

The official supervised code (dojeon-ai/Hare-Tortoise, ``src/trainers/base.py``) counts both
schedules on the phase's local epochs of its own data:

* the Hare & Tortoise reset after every epoch whose 0-based index ``epoch`` has
  ``epoch % cfg.hare_tortoise.reset_every == 0`` (reset_every = 10 in every paper script): after
  local epochs 1, 11, 21, ...; in a 10% subset phase that is about every full-set epoch of
  updates, and there is always a reset after the first epoch of a phase;
* ``self.test()`` before each phase's first update and after every epoch with
  ``self.epoch % test_every == 0``, ``test_every = int(cfg.base_test_every /
  cfg.input_data_ratios[task_idx])`` (5 / 0.1 = every 50 epochs of the 10% subset, 5 / 0.9 = 5
  full-set epochs; continual: 2 / 0.1 = every 20 epochs of each phase). ``self.epoch`` counts
  over all phases, but every official phase length is a multiple of its ``test_every``, so
  local and global counts agree; we count locally. The test loop ends with ReDo
  (``reset_dormant_neurons``), so the official ReDo runs at exactly these points.
"""

from __future__ import annotations

import numpy as np

from warmstart import methods as methods_lib


def epoch_updates(examples: int, batch_size: int) -> int:
  """Updates in one epoch of ``examples`` examples: full batches only, at least 1 (a set
  smaller than a batch is one batch, as ``train.batch_schedule`` makes it)."""
  return max(1, examples // batch_size)


def phase_updates(examples: int, epochs: float, batch_size: int) -> int:
  """Updates of ``epochs`` epochs of ``examples`` examples (at least 1)."""
  return max(1, int(round(epochs * epoch_updates(examples, batch_size))))


def ht_reset_points(method: methods_lib.MethodConfig, *, phase_examples: int,
                    reference_examples: int, batch_size: int, num_updates: int,
                    updates_before: int) -> list[int]:
  """Points of the phase after which the Hare takes the Tortoise's weights.

  Args:
    method: MethodConfig; ``ht_reset_epochs`` R (0: no resets) on ``ht_reset_clock``.
    phase_examples: size of this phase's training set (clock 'phase').
    reference_examples: size of the set whose epoch is the unit of clock 'full_set' (the full
      clean set; continual: one slice).
    batch_size: int.
    num_updates: updates of this phase.
    updates_before: updates of the run before this phase (clock 'full_set' counts them).

  Returns:
    Sorted points in 1..num_updates. Clock 'phase' (official): ``(e + 1) * U`` for every whole
    local epoch e (0-based) with ``e % R == 0``, U the phase's epoch in updates. Clock
    'full_set' (ours before): the points whose run-wide update count is a multiple of
    ``round(R * reference epoch)``.
  """
  every = method.ht_reset_epochs
  if every <= 0:
    return []
  if method.ht_reset_clock == 'phase':
    epoch = epoch_updates(phase_examples, batch_size)
    return [(e + 1) * epoch for e in range(num_updates // epoch) if e % every == 0]
  period = max(1, int(round(every * epoch_updates(reference_examples, batch_size))))
  first = period - updates_before % period
  return list(range(first, num_updates + 1, period))


def eval_interval_epochs(every: float, data_ratio: float = 1.0) -> int:
  """Local epochs between evaluations: ``int(every / data_ratio)`` as the official
  ``test_every``, at least 1; 0 when ``every`` is 0 (no evaluation inside phases).

  ``data_ratio`` is the phase's share of the full set when ``every`` counts full-set epochs
  (the warm-start protocol's warm phase: its subset ratio), else 1.
  """
  if every <= 0:
    return 0
  return max(1, int(every / data_ratio))


def evaluation_points(num_updates: int, epoch: int, interval_epochs: int) -> list[int]:
  """The phase's start (0), every ``interval_epochs`` local epochs of ``epoch`` updates, and
  its end (``num_updates``; our runs always evaluate there, the official code only when the
  grid reaches it). ``interval_epochs`` 0: the end alone."""
  points = {num_updates}
  if interval_epochs > 0:
    points.update(range(0, num_updates, interval_epochs * epoch))
  return sorted(points)


def redo_points(method: methods_lib.MethodConfig, eval_points: list[int], num_updates: int,
                epoch: int) -> list[int]:
  """Points at which ReDo recycles dormant units (none without ``redo_tau``).

  ``redo_every_epochs`` 0 (default): the evaluation points, where the official code runs it
  (``reset_dormant_neurons`` at the end of ``test()``). > 0: every that many local epochs of
  ``epoch`` updates, never at the phase's end (ours before; the paper's text: every 5 epochs).
  """
  if method.redo_tau <= 0:
    return []
  if method.redo_every_epochs == 0:
    return list(eval_points)
  period = max(1, int(round(method.redo_every_epochs * epoch)))
  return list(range(period, num_updates, period))


def epochs_done(points, epoch: int) -> list[float]:
  """Local epochs of the phase's data done at ``points`` (for the results' ``epoch`` column)."""
  return [round(point / epoch, 6) for point in points]


def reset_mask(points, num_updates: int) -> np.ndarray:
  """(num_updates,) bool: entry i is True when a reset follows update i + 1 of the phase."""
  mask = np.zeros(num_updates, bool)
  mask[np.asarray(list(points), int) - 1] = True
  return mask
