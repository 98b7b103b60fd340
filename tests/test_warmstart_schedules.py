"""Schedules inside a phase (warmstart/schedules.py): the exact update counts of H&T resets,
evaluations and ReDo, on hand-worked sizes."""

import numpy as np
import pytest

from warmstart import methods, schedules


def ht_points(spec, **sizes):
  return schedules.ht_reset_points(methods.parse_method(spec), **sizes)


def test_epochs_count_full_batches_only():
  assert schedules.epoch_updates(1000, 256) == 3
  assert schedules.epoch_updates(100, 256) == 1  # a set smaller than a batch is one batch
  assert schedules.phase_updates(1000, 2.5, 256) == 8  # round(7.5): banker's rounding, 8
  assert schedules.phase_updates(10, 0.1, 256) == 1


def test_official_ht_resets_follow_local_epochs_of_the_phase_data():
  # src/trainers/base.py: after each epoch, `epoch % cfg.hare_tortoise.reset_every == 0`
  # (0-based local epoch), reset_every = 10: after epochs 1, 11, 21, ... of the phase's data.
  # Here a 10-update epoch, 250 updates: local epochs 0..24, resets after e = 0, 10, 20.
  sizes = dict(phase_examples=100, reference_examples=1000, batch_size=10, num_updates=250,
               updates_before=12345)
  assert ht_points('hare_tortoise', **sizes) == [10, 110, 210]
  # the paper's scale: warm phase 1000 epochs of a 10% subset of 60,000 (23 updates each),
  # as many updates as 100 full-set epochs (234 each): a reset about every full-set epoch
  warm = ht_points('hare_tortoise', phase_examples=6000, reference_examples=60000,
                   batch_size=256, num_updates=23400, updates_before=0)
  assert warm[:3] == [23, 253, 483] and len(warm) == 102 and warm[-1] == 23253
  main = ht_points('hare_tortoise', phase_examples=60000, reference_examples=60000,
                   batch_size=256, num_updates=23400, updates_before=23400)
  assert main == [234 * (e + 1) for e in range(0, 100, 10)]  # a reset right after epoch 1
  # a partial last epoch is not an epoch; an interval of 2.5 epochs as the official modulo
  assert ht_points('hare_tortoise:ht_reset_epochs=1', **dict(sizes, num_updates=35)) == [
      10, 20, 30]
  assert ht_points('hare_tortoise:ht_reset_epochs=2.5', **sizes) == [10, 60, 110, 160, 210]


def test_full_set_clock_counts_the_whole_runs_updates():
  # ours before: every R epochs of the reference set's length (here 20 updates), on the
  # run-wide update counter: after global updates 20, 40, 60 = local 5, 25, 45.
  sizes = dict(phase_examples=50, reference_examples=200, batch_size=10, num_updates=50,
               updates_before=15)
  assert ht_points('hare_tortoise:ht_reset_epochs=1,ht_reset_clock=full_set', **sizes) == [
      5, 25, 45]
  assert ht_points('hare_tortoise:ht_reset_epochs=1,ht_reset_clock=full_set',
                   **dict(sizes, updates_before=0)) == [20, 40]
  assert ht_points('warm', **sizes) == [] and ht_points('ema', **sizes) == []


def test_evaluation_points_the_official_test_every():
  # configs: int(base_test_every / input_data_ratio): 5 / 0.1 = 50 subset epochs, continual
  # 2 / 0.1 = 20; ours: the interval in the unit of --epochs, over the phase's data ratio
  assert schedules.eval_interval_epochs(5, 0.1) == 50
  assert schedules.eval_interval_epochs(5) == 5 and schedules.eval_interval_epochs(20) == 20
  assert schedules.eval_interval_epochs(5, 0.3) == 16  # int(16.67)
  assert schedules.eval_interval_epochs(0.01, 0.1) == 1 and schedules.eval_interval_epochs(0) == 0
  assert schedules.evaluation_points(250, 10, 5) == [0, 50, 100, 150, 200, 250]
  assert schedules.evaluation_points(255, 10, 5) == [0, 50, 100, 150, 200, 250, 255]
  assert schedules.evaluation_points(250, 10, 0) == [250]  # phase ends only
  assert schedules.epochs_done([0, 50, 255], 10) == [0.0, 5.0, 25.5]


def test_redo_runs_at_the_evaluation_points_or_every_n_epochs():
  evals = [0, 50, 100, 120]
  assert schedules.redo_points(methods.parse_method('redo'), evals, 120, 10) == evals
  assert schedules.redo_points(methods.parse_method('redo:redo_every_epochs=5'), evals, 120,
                               10) == [50, 100]  # never at the phase's end
  assert schedules.redo_points(methods.parse_method('warm'), evals, 120, 10) == []


def test_reset_mask_marks_the_update_before_each_point():
  np.testing.assert_array_equal(schedules.reset_mask([1, 4], 5),
                                [True, False, False, True, False])
  assert not schedules.reset_mask([], 3).any()


@pytest.mark.parametrize('spec, message', [
    ('hare_tortoise:ht_reset_clock=global', 'ht_reset_clock must be one of phase, full_set'),
    ('redo:redo_every_epochs=-1', 'redo_every_epochs must be >= 0'),
])
def test_bad_schedule_settings_are_refused(spec, message):
  with pytest.raises(ValueError, match=message):
    methods.parse_method(spec)
