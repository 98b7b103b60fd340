"""The continual memory (warmstart/memory.py): the official rule on hand-worked cases, against
the official code's list-of-a-set written out, and the reservoir's uniform inclusion."""

import numpy as np
import pytest

from warmstart import memory


def test_official_ranks_number_the_training_set_sorted_by_class():
  # ImageFolder: class folders in order, files in the order written; stable sort by label
  np.testing.assert_array_equal(memory.official_ranks([2, 0, 1, 0, 2]), [3, 0, 2, 1, 4])


def test_the_official_rule_keeps_the_lowest_official_indices_ever_seen():
  labels = np.array([2, 0, 1, 0, 2])  # official indices (ranks) 3, 0, 2, 1, 4
  kept = memory.Memory(3, 'official', labels=labels)
  kept.add([4, 0])                   # ranks 4, 3
  np.testing.assert_array_equal(kept.indices, [0, 4])
  kept.add([1, 2])                   # ranks 0, 2: example 4 (rank 4) leaves
  np.testing.assert_array_equal(kept.indices, [1, 2, 0])
  kept.add([3])                      # rank 1: example 0 (rank 3) leaves
  np.testing.assert_array_equal(kept.indices, [1, 3, 2])
  assert kept.seen == 5


def test_the_official_rule_is_the_official_codes_buffer_where_its_set_lists_in_order():
  # src/datasets: each task's buffer is `prev_indices[:buffer_size]` of `prev_indices =
  # list(set(prev_indices + cur_indices))`, written out on official indices, at the paper's
  # scale: 50,000 examples, 10 slices of 5,000, buffer 5,000.
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 10, 50000)
  ranks = memory.official_ranks(labels)
  kept = memory.Memory(5000, 'official', labels=labels)
  prev, in_order, agrees, last = [], [], [], None
  for new in np.array_split(rng.permutation(50000), 10):
    buffer = prev[:5000]
    in_order.append(prev == sorted(prev))
    agrees.append(ranks[kept.indices].tolist() == buffer)
    if len(prev) == 20000:  # CPython's set of ints turns to increasing order here: the
      assert not set(buffer) <= set(last)  # official buffer takes back examples that left it
    kept.add(new)
    prev = list(set(prev + buffer + ranks[new].tolist()))
    last = buffer + ranks[new].tolist()
  assert in_order == agrees == [True, False, False, False] + [True] * 6


def test_a_memory_only_holds_what_it_held_or_was_just_given():
  labels = np.arange(30) % 3
  for rule in memory.RULES:
    kept = memory.Memory(5, rule, labels=labels, rng=np.random.default_rng(1))
    for new in np.array_split(np.random.default_rng(2).permutation(30), 6):
      before = set(kept.indices.tolist())
      kept.add(new)
      now = kept.indices.tolist()
      assert len(now) == len(set(now)) == min(5, kept.seen)
      assert set(now) <= before | set(new.tolist())


def test_the_reservoir_keeps_the_first_n_then_every_example_equally_often():
  kept = memory.Memory(2, 'reservoir', rng=np.random.default_rng(0))
  kept.add([7, 9])
  np.testing.assert_array_equal(kept.indices, [7, 9])
  counts = np.zeros(5)
  for seed in range(4000):
    kept = memory.Memory(2, 'reservoir', rng=np.random.default_rng(seed))
    kept.add([0, 1, 2])
    kept.add([3, 4])  # across two phases, as the slices arrive
    counts[kept.indices] += 1
  np.testing.assert_allclose(counts / 4000, 2 / 5, atol=0.03)  # each kept with p = N / n


@pytest.mark.parametrize('kwargs, message', [
    (dict(capacity=3, rule='fifo'), 'buffer rule must be one of official, reservoir'),
    (dict(capacity=-1, rule='official', labels=[0]), 'buffer size must be >= 0'),
    (dict(capacity=3, rule='official'), 'needs the training labels'),
    (dict(capacity=3, rule='reservoir'), 'needs a random generator'),
])
def test_bad_memories_are_refused(kwargs, message):
  with pytest.raises(ValueError, match=message):
    memory.Memory(**kwargs)
