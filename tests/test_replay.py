"""Tests of the replay pipeline: Dopamine 4.1.2's runner + accumulator, and our fix.

The logged convention (what ``DataEfficientAtariRunner._run_parallel`` hands the agent, one
``TransitionElement`` per agent step) is ``(o_k, a_k, r_k, done_k, episode_end_k)``: ``o_k`` the
frame ``a_k`` was chosen on, ``r_k`` its (clipped) reward, ``done_k`` the life ended after
``a_k``, ``episode_end_k`` the game ended (game over or the ``max_steps_per_episode`` cap).

What is here:

* ``FakeEnv``: a deterministic Atari stand-in. Every observation is a new frame filled with a
  fresh id (1, 2, 3, ...; 0 is the zero padding of a frame stack), so a stored stack says
  exactly which frames it holds. Rewards cycle through 1, 0, -1, 0.5 (distinct n-step returns,
  unchanged by reward clipping), lives last a configurable cycle of lengths, the game is over
  after ``lives`` lives, and ``Runner.max_steps_per_episode`` truncates games.
* ``fake_run``: a fixture that builds the real ``DataEfficientAtariRunner`` (base_dir in
  tmp_path) around a ``FakeEnv`` and a tiny DrQ(eps)-like ``Atari100kRainbowAgent`` (n = 3,
  stack 4, 6x6 frames, no training: ``min_replay_history`` is huge, no no-ops), runs training
  chunks the way ``atari100k.runner.Atari100kRunner._train`` does, and records, by spying on
  the replay buffer's ``add`` and the agent's ``step``, the logged stream (copied at call time)
  and the frame stack the agent acted on at each step.
* ``reference_elements``: the expected replay contents, computed by hand from the logged
  stream; the fixed pipeline must match it exactly.
* ``test_stock_dopamine_*``: the wrong behaviour of the stock 4.1.2 pipeline, as observed.
  They pass today and are meant to fail if Dopamine fixes the behaviour (then revisit
  ``agents/replay.py``).
* Unit tests of ``EpisodeTransitionAccumulator.accumulate`` on hand-made transitions.

Gin is global: every test starts and ends with ``gin.clear_config()``.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import pickle
import types
from typing import Any, NamedTuple

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import gin  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from absl import logging  # noqa: E402
from dopamine.jax.replay_memory import accumulator  # noqa: E402
from dopamine.jax.replay_memory import elements  # noqa: E402
from dopamine.labs.atari_100k import atari_100k_rainbow_agent  # noqa: E402
from dopamine.labs.atari_100k import atari_100k_runner  # noqa: E402

from agents.drq import DrQAgent  # noqa: E402
from agents.replay import EpisodeTransitionAccumulator  # noqa: E402

logging.set_verbosity(logging.ERROR)

N = 3            # update horizon
STACK = 4        # frames per state
GAMMA = 0.99
FRAME_SHAPE = (6, 6)
NUM_ACTIONS = 4
# Reward of the t-th environment step: REWARD_CYCLE[t % 4]. Within [-1, 1] (clipping changes
# nothing), and the four 3-step discounted returns differ pairwise by more than 0.4.
REWARD_CYCLE = (1.0, 0.0, -1.0, 0.5)

# DrQ(eps)'s settings (gin/drq_base.gin), shrunk: n = 3, tiny frames, no learning.
GIN_CONFIG = f"""
JaxDQNAgent.gamma = {GAMMA}
JaxDQNAgent.update_horizon = {N}
JaxDQNAgent.stack_size = {STACK}
JaxDQNAgent.observation_shape = {FRAME_SHAPE}
JaxDQNAgent.min_replay_history = 1000000000
JaxDQNAgent.update_period = 1
JaxDQNAgent.target_update_period = 1
JaxDQNAgent.epsilon_train = 0.01
JaxDQNAgent.epsilon_eval = 0.001
JaxDQNAgent.epsilon_decay_period = 5000
JaxDQNAgent.optimizer = 'adam'
JaxFullRainbowAgent.noisy = False
JaxFullRainbowAgent.dueling = True
JaxFullRainbowAgent.double_dqn = True
JaxFullRainbowAgent.distributional = False
JaxFullRainbowAgent.num_atoms = 1
JaxFullRainbowAgent.replay_scheme = 'uniform'
Atari100kRainbowAgent.data_augmentation = True
ReplayBuffer.max_capacity = 100000
ReplayBuffer.batch_size = 32
PrioritizedSamplingDistribution.max_capacity = 100000
Runner.clip_rewards = True
Runner.use_legacy_logger = False
Runner.num_iterations = 1
"""

# name -> FakeEnv / runner settings. Chunks are agent steps per _run_one_phase call (as in
# Atari100kRunner._train); they are even on purpose, see
# test_stock_dopamine_runner_resume_after_odd_chunk_logs_next_frame.
SCENARIOS = {
    # Every life 9 steps (> n + stack), game over after 3 lives.
    'lives': dict(life_lengths=(9,), lives=3, max_steps_per_episode=27000, chunks=(100, 100)),
    # Lives shorter than, equal to and longer than n and n + stack.
    'mixed': dict(life_lengths=(1, 2, 3, 4, 5, 8, 13), lives=4, max_steps_per_episode=27000,
                  chunks=(120, 100)),
    # Games truncated at 13 steps, mid-life and on a life loss.
    'truncation': dict(life_lengths=(4, 7, 2, 10, 3), lives=5, max_steps_per_episode=13,
                       chunks=(100, 100)),
}


# ---------------------------------------------------------------------------- fake Atari
class FakeEnv:
  """A deterministic stand-in for Dopamine's Atari environment (terminal on life loss).

  Frame ids count every observation returned (by ``reset`` or ``step``), starting at 1. The
  t-th ``step`` (over the env's whole life) gives reward ``REWARD_CYCLE[t % 4]``; each life
  lasts the next length of ``life_lengths`` (cycled); ``done`` is a life loss, ``game_over``
  the loss of the last of ``lives`` lives. ``history`` holds, per step, the frame the action
  was chosen on, the action, the reward and ``done``.
  """

  def __init__(self, life_lengths, lives):
    self.action_space = types.SimpleNamespace(n=NUM_ACTIONS)
    self._lengths = itertools.cycle(life_lengths)
    self._lives_per_game = lives
    self._frame = 0
    self._t = 0
    self.current_frame = None
    self.game_over = False
    self.history = []

  def _new_frame(self):
    self._frame += 1
    self.current_frame = self._frame
    return np.full(FRAME_SHAPE + (1,), float(self._frame))

  def reset(self):
    self.lives = self._lives_per_game
    self.game_over = False
    self._life_left = next(self._lengths)
    return self._new_frame()

  def step(self, action):
    reward = REWARD_CYCLE[self._t % len(REWARD_CYCLE)]
    self._t += 1
    self._life_left -= 1
    done = self._life_left == 0
    if done:
      self.lives -= 1
      self.game_over = self.lives == 0
      if not self.game_over:
        self._life_left = next(self._lengths)
    acted_on = self.current_frame
    self.history.append((acted_on, int(np.asarray(action).item()), reward, done))
    return self._new_frame(), reward, done, {}


def frame_ids(stack):
  """Frame ids of a stored (1, H, W, STACK) state, oldest first (0 = zero padding)."""
  return [int(v) for v in np.asarray(stack)[0, 0, 0, :]]


def fid(obs):
  """Frame id of a logged (1, H, W) observation."""
  return int(np.asarray(obs)[0, 0, 0])


# ---------------------------------------------------------------------------- recording
class Logged(NamedTuple):
  """One logged step as the replay buffer received it (copied at call time)."""
  obs: np.ndarray      # o_k, shape (1, H, W)
  action: np.ndarray   # shape (1,)
  reward: np.ndarray   # shape (1,)
  done: bool
  end: bool
  emitted: range       # replay keys (add_count values) created while accumulating this step


def _transition(step):
  """A ``Logged`` step back as the TransitionElement the buffer got (own arrays)."""
  return elements.TransitionElement(step.obs, step.action, step.reward,
                                    np.array([float(step.done)]), np.array([float(step.end)]))


@dataclasses.dataclass
class Run:
  runner: Any
  agent: Any
  env: FakeEnv
  log: list            # [Logged]
  acting_states: list  # agent.state (1, H, W, STACK) when a_k was chosen
  memory: list         # unpacked ReplayElements, in insertion order
  raw_memory: list     # the ReplayElements as stored (packed)


def _spy(agent, log, acting_states):
  replay = agent._replay  # pylint: disable=protected-access
  original_add, original_step = replay.add, agent.step

  def add(transition, **kwargs):
    copied = [np.array(x, copy=True) for x in transition]
    before = replay.add_count
    original_add(transition, **kwargs)
    log.append(Logged(copied[0], copied[1], copied[2], bool(np.any(copied[3])),
                      bool(np.any(copied[4])), range(before, replay.add_count)))

  def step(*args, **kwargs):
    acting_states.append(np.array(agent.state, copy=True))
    return original_step(*args, **kwargs)

  replay.add = add
  agent.step = step


def build_and_run(base_dir, agent_kind, life_lengths, lives, max_steps_per_episode, chunks):
  """Builds the real runner around a FakeEnv, runs training chunks, returns a ``Run``.

  agent_kind: 'drq' (agents.drq.DrQAgent, which builds its buffer with the fixed accumulator),
  'swap' (Atari100kRainbowAgent with EpisodeTransitionAccumulator swapped in) or 'stock'
  (Atari100kRainbowAgent as Dopamine ships it).
  """
  gin.clear_config()
  gin.parse_config(GIN_CONFIG + f'Runner.max_steps_per_episode = {max_steps_per_episode}\n')

  def create_env():
    return FakeEnv(life_lengths, lives)

  def create_agent(unused_sess, env, summary_writer=None):
    if agent_kind == 'drq':
      return DrQAgent(num_actions=env.action_space.n, seed=0, summary_writer=summary_writer)
    agent = atari_100k_rainbow_agent.Atari100kRainbowAgent(
        num_actions=env.action_space.n, seed=0, summary_writer=summary_writer)
    if agent_kind == 'swap':
      agent._replay._transition_accumulator = EpisodeTransitionAccumulator(  # pylint: disable=protected-access
          stack_size=STACK, update_horizon=N, gamma=GAMMA)
    else:
      assert agent_kind == 'stock'
    return agent

  runner = atari_100k_runner.DataEfficientAtariRunner(
      str(base_dir), create_agent, create_environment_fn=create_env, max_noops=0,
      num_train_envs=1)
  agent = runner._agent  # pylint: disable=protected-access
  accumulator_type = type(agent._replay._transition_accumulator)  # pylint: disable=protected-access
  if agent_kind == 'stock':
    assert accumulator_type is accumulator.TransitionAccumulator
  else:
    assert accumulator_type is EpisodeTransitionAccumulator
  assert agent.update_horizon == N and agent.stack_size == STACK and agent.gamma == GAMMA

  log, acting_states = [], []
  _spy(agent, log, acting_states)
  agent.eval_mode = False
  for chunk in chunks:  # as Atari100kRunner._train: _run_parallel takes steps + 1 steps
    stats = atari_100k_runner.iteration_statistics.IterationStatistics()
    _, _, _, state, runner.train_envs = runner._run_one_phase(  # pylint: disable=protected-access
        runner.train_envs, chunk - 1, None, stats, 'train',
        needs_reset=runner.train_state is None, resume_state=runner.train_state)
    runner.train_state = (*state[:4], [], [])
  assert len(log) == sum(chunks) == len(acting_states)
  assert agent.training_steps == sum(chunks) and getattr(agent, 'gradient_steps', 0) == 0

  raw_memory = list(agent._replay._memory.values())  # pylint: disable=protected-access
  assert list(agent._replay._memory.keys()) == list(range(len(raw_memory)))  # pylint: disable=protected-access
  memory = [element.unpack() for element in raw_memory]
  return Run(runner, agent, runner.train_envs[0], log, acting_states, memory, raw_memory)


@pytest.fixture(autouse=True)
def clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


@pytest.fixture
def fake_run(tmp_path):
  """Factory: ``fake_run(agent_kind, scenario, **overrides)`` -> ``Run`` (base_dir in tmp_path)."""
  counter = itertools.count()

  def make(agent_kind, scenario, **overrides):
    settings = dict(SCENARIOS[scenario], **overrides)
    try:
      return build_and_run(tmp_path / f'run{next(counter)}', agent_kind, **settings)
    finally:
      gin.clear_config()

  return make


# ---------------------------------------------------------------------------- reference
class Expected(NamedTuple):
  step: int                # global index of step k in the log
  state: np.ndarray
  action: np.ndarray
  reward: float
  next_state: np.ndarray | None  # None for terminal elements (no bootstrap)
  terminal: bool


def split_segments(log):
  """[(global indices of a segment's steps, 'terminal' | 'truncated' | 'open')]."""
  segments, current = [], []
  for index, step in enumerate(log):
    current.append(index)
    if step.done or step.end:
      segments.append((current, 'terminal' if step.done else 'truncated'))
      current = []
  if current:
    segments.append((current, 'open'))
  return segments


def stack_frames(frames, k, stack_size=STACK):
  """Frames k - s + 1 .. k of a segment on a new last axis, zeros before the segment start."""
  zero = np.zeros_like(frames[0])
  return np.stack([frames[i] if i >= 0 else zero for i in range(k - stack_size + 1, k + 1)],
                  axis=-1)


def reference_elements(log, n=N, gamma=GAMMA, stack_size=STACK):
  """The replay contents the logged stream should give, in insertion order.

  One element per step k of each segment (segments end at ``done`` or ``episode_end``):
  state = frames k-s+1..k (zeros before the segment start); if step k+n is in the segment the
  element is not terminal, its return is sum_{i<n} gamma^i r_{k+i} and next_state = frames of
  step k+n; otherwise, if the segment terminated, it is terminal with the return up to the
  terminal step inclusive; otherwise (truncated, or still open) there is no element. So a
  truncated segment loses its last n steps (their bootstrap frame was replaced by the reset
  frame), an open one keeps its last n pending.
  """
  expected = []
  for indices, how in split_segments(log):
    frames = [log[i].obs for i in indices]
    length = len(indices)
    for k in range(length):
      if k + n <= length - 1:
        terminal, horizon = False, n
      elif how == 'terminal':
        terminal, horizon = True, length - k
      else:
        continue
      ret = sum(gamma ** i * float(log[indices[k + i]].reward.item()) for i in range(horizon))
      expected.append(Expected(
          step=indices[k], state=stack_frames(frames, k, stack_size),
          action=log[indices[k]].action, reward=ret,
          next_state=None if terminal else stack_frames(frames, k + n, stack_size),
          terminal=terminal))
  return expected


def assert_memory_matches(memory, expected):
  assert len(memory) == len(expected)
  for position, (got, want) in enumerate(zip(memory, expected)):
    where = f'element {position} (log step {want.step})'
    np.testing.assert_array_equal(got.state, want.state, err_msg=where)
    np.testing.assert_array_equal(got.action, want.action, err_msg=where)
    np.testing.assert_allclose(got.reward, want.reward, rtol=0, atol=1e-6, err_msg=where)
    assert bool(np.all(got.is_terminal)) == want.terminal and (
        bool(np.any(got.is_terminal)) == want.terminal), where
    if not want.terminal:
      np.testing.assert_array_equal(got.next_state, want.next_state, err_msg=where)


# ---------------------------------------------------------------------------- fixed pipeline
@pytest.mark.parametrize('scenario', sorted(SCENARIOS))
def test_fixed_pipeline_matches_reference(fake_run, scenario):
  """DrQAgent (fixed accumulator) in the real runner stores exactly the reference elements.

  Also checks the logged stream against the env's own record, that each stored state is the
  stack the agent acted on, that every terminal step's own transition is stored, and when
  each element is added (two training chunks, resumed as Atari100kRunner does)."""
  run = fake_run('drq', scenario)
  log = run.log

  # The logged stream is the documented convention (checked against the env's own record):
  # o_k = the frame a_k was chosen on, r_k = its reward, done_k = life lost after a_k.
  assert len(run.env.history) == len(log)
  for k, (step, (acted_on, action, reward, done)) in enumerate(zip(log, run.env.history)):
    assert fid(step.obs) == acted_on and np.all(step.obs == acted_on), k
    assert int(step.action.item()) == action and float(step.reward.item()) == reward, k
    assert step.done == done, k
  # ... and the stack stored for step k is the one the agent acted on.
  expected = reference_elements(log)
  for want in expected:
    np.testing.assert_array_equal(want.state, run.acting_states[want.step])

  segments = split_segments(log)
  terminated = [s for s, how in segments if how == 'terminal']
  assert len(terminated) >= 5
  if scenario == 'mixed':  # terminals after fewer than n, exactly n, and > n + stack steps
    lengths = {len(s) for s in terminated}
    assert {1, 2, 3, 4, 8, 13} <= lengths
  if scenario == 'truncation':
    assert sum(how == 'truncated' for _, how in segments) >= 3
    assert any(log[s[-1]].done and log[s[-1]].end for s in terminated)  # cap on a life loss

  assert_memory_matches(run.memory, expected)

  # Every terminal step's own transition (o_T, a_T, r_T) is stored, terminal, return r_T.
  by_step = {want.step: got for got, want in zip(run.memory, expected)}
  for indices in terminated:
    last = by_step[indices[-1]]
    assert bool(np.all(last.is_terminal))
    np.testing.assert_allclose(last.reward, log[indices[-1]].reward, atol=1e-6)
    assert frame_ids(last.state)[-1] == fid(log[indices[-1]].obs)
  # Elements are added when their n-step window closes: step k at step k + n, the last ones
  # at the terminal step T of their segment.
  end_of = {i: indices[-1] for indices, _ in segments for i in indices}
  emitted_at = {key: j for j, step in enumerate(log) for key in step.emitted}
  assert sorted(emitted_at) == list(range(len(expected)))
  for key, want in enumerate(expected):
    assert emitted_at[key] == (end_of[want.step] if want.terminal else want.step + N), key


def test_swapped_accumulator_on_stock_agent_matches_reference(fake_run):
  """Atari100kRainbowAgent with EpisodeTransitionAccumulator swapped in also matches."""
  run = fake_run('swap', 'mixed')
  assert_memory_matches(run.memory, reference_elements(run.log))


# ---------------------------------------------------------------------------- stock bugs
def test_stock_dopamine_runner_aliasing_zeroes_terminal_flags(fake_run):
  """Stock pipeline: every stored ``is_terminal`` reads 0 although lives were lost.

  The runner reuses one ``terminals`` array for every step and the stock accumulator stores
  that very array as ``is_terminal``; each stored flag therefore shows the runner's *current*
  ``done`` (0 after the last, non-terminal, step). Fed copies of the same stream, the stock
  accumulator does emit terminal elements, so the zeros come from the aliasing alone.
  """
  run = fake_run('stock', 'lives')
  assert sum(step.done for step in run.log) >= 10
  assert not run.log[-1].done
  terminals_buffer = run.runner.train_state[2]
  assert all(element.is_terminal is terminals_buffer for element in run.raw_memory)
  assert all(not np.any(element.is_terminal) for element in run.memory)

  fresh = accumulator.TransitionAccumulator(stack_size=STACK, update_horizon=N, gamma=GAMMA)
  from_copies = [e for step in run.log for e in fresh.accumulate(_transition(step))]
  assert sum(bool(np.any(e.is_terminal)) for e in from_copies) >= 10


def ordinary_steps(log, first_k):
  """(j, k, key) for each logged step j that is neither terminal nor an episode end, has a
  successor, and completes the element of step k = j - n (k >= first_k, same segment); key is
  the replay key of the one element the stock pipeline emitted at step j."""
  segment_of = {i: n for n, (indices, _) in enumerate(split_segments(log)) for i in indices}
  for j, step in enumerate(log):
    k = j - N
    if step.done or step.end or k < first_k or j + 1 >= len(log):
      continue
    if segment_of[k] != segment_of[j]:
      continue
    (key,) = step.emitted  # one element per ordinary step
    yield j, k, key


def test_stock_dopamine_runner_aliasing_stores_later_frames(fake_run):
  """Stock pipeline: stored states hold frames from *later* steps.

  The runner writes observations into a two-slot buffer (``new_obses[step % 2]``), the agent
  logs views into it, and the stock accumulator keeps the views and builds the stack of step
  k only when step k + n arrives. By then each slot holds one of the two newest frames: the
  state stored for step k (k >= 1, emitted at a non-terminal step k + n of the same segment)
  ends with the frame o_{k+n+1} (here o_{k+4}) instead of o_k, its slots are not in time
  order, and it is not a state the agent ever acted on.
  """
  run = fake_run('stock', 'lives')
  log = run.log
  acted = {tuple(frame_ids(s)) for s in run.acting_states}
  checked = 0
  for j, k, key in ordinary_steps(log, first_k=1):
    ids = frame_ids(run.memory[key].state)
    assert ids[-1] == fid(log[j + 1].obs), (j, ids)
    assert ids[-1] != fid(log[k].obs)
    checked += 1
  assert checked >= 100
  stored = [frame_ids(e.state) for e in run.memory]
  out_of_order = [ids for ids in stored if any(0 < b < a for a, b in zip(ids, ids[1:]))]
  assert len(out_of_order) >= 50
  assert sum(tuple(ids) not in acted for ids in stored) >= 100


def test_stock_dopamine_runner_aliasing_shifts_rewards(fake_run):
  """Stock pipeline with reward clipping: stored returns are those of the *next* step.

  ``np.clip`` gives the runner a new ``rewards`` array each step, but the runner writes the
  next step's reward into the array it just logged before clipping it again; the stock
  accumulator keeps the logged arrays, so the return stored for step k is
  sum_{i<n} gamma^i r_{k+1+i} instead of sum_{i<n} gamma^i r_{k+i}.
  """
  run = fake_run('stock', 'lives')
  log = run.log
  checked = 0
  for j, k, key in ordinary_steps(log, first_k=0):
    right = sum(GAMMA ** i * float(log[k + i].reward.item()) for i in range(N))
    shifted = sum(GAMMA ** i * float(log[k + 1 + i].reward.item()) for i in range(N))
    assert abs(right - shifted) > 0.4
    np.testing.assert_allclose(run.memory[key].reward, shifted, atol=1e-6)
    checked += 1
  assert checked >= 100


def test_stock_dopamine_accumulator_mishandles_terminals(fake_run):
  """Stock ``TransitionAccumulator``, fed *copies* of the runner's stream (no aliasing).

  On every terminal step T (lives of 9 steps, n = 3, stack 4) it, unlike the reference:
  * emits the element of step T-n four times (stack_size times), every copy terminal, with the
    n-step return r_{T-3} + g r_{T-2} + g^2 r_{T-1} (no r_T, no bootstrap from o_T), and with
    0, 1, 2, 3 of its oldest frames zeroed;
  * emits steps T-2 and T-1 with their three oldest frames zeroed;
  * never emits the terminal step's own transition (o_T, a_T, r_T);
  so a segment of L steps gives L + 2 elements instead of L.
  """
  run = fake_run('stock', 'lives')  # only its logged stream (copied at call time) is used
  log = run.log
  stock = accumulator.TransitionAccumulator(stack_size=STACK, update_horizon=N, gamma=GAMMA)
  per_step = [list(stock.accumulate(_transition(step))) for step in log]
  expected = reference_elements(log)

  terminated = [s for s, how in split_segments(log) if how == 'terminal']
  assert len(terminated) >= 10 and all(len(s) == 9 for s in terminated)
  for indices in terminated:
    T = indices[-1]
    at_terminal = per_step[T]
    frames = [fid(log[i].obs) for i in indices]
    f = dict(zip(indices, frames))
    assert len(at_terminal) == STACK + N - 1
    # Step T-n, four times, terminal, return without r_T, progressively zeroed.
    n_step = sum(GAMMA ** i * float(log[T - N + i].reward.item()) for i in range(N))
    full = [f[T - N - 3], f[T - N - 2], f[T - N - 1], f[T - N]]
    for copy_index, element in enumerate(at_terminal[:STACK]):
      assert frame_ids(element.state) == [0] * copy_index + full[copy_index:]
      np.testing.assert_array_equal(element.action, log[T - N].action)
      np.testing.assert_allclose(element.reward, n_step, atol=1e-6)
      assert bool(np.all(element.is_terminal))
    # The reference stores step T-n once, not terminal, bootstrapping from o_T.
    reference = [e for e in expected if e.step == T - N]
    assert len(reference) == 1 and not reference[0].terminal
    assert frame_ids(reference[0].next_state)[-1] == f[T]
    # Steps T-2, T-1: only the newest frame survives.
    for element, k in zip(at_terminal[STACK:], (T - 2, T - 1)):
      assert frame_ids(element.state) == [0, 0, 0, f[k]]
      np.testing.assert_array_equal(element.action, log[k].action)
    # Step T itself is missing: no stored state ends with o_T.
    assert not any(frame_ids(e.state)[-1] == f[T] for step in per_step for e in step)
    assert sum(len(per_step[i]) for i in indices) == len(indices) + 2


def test_stock_dopamine_runner_resume_after_odd_chunk_logs_next_frame(fake_run):
  """Stock runner: resuming ``_run_parallel`` after an odd number of steps corrupts o_k.

  ``_run_parallel`` restarts its step counter at 0 on every call but keeps the two-slot
  observation buffer; Dopamine's agent keeps a view of that buffer as its current frame, so
  after an odd number of steps the first step of the next call writes the new frame into the
  slot the agent's frame lives in before ``log_transition`` reads it: the step at the boundary
  is logged with o_{k+1} instead of o_k, and no accumulator can undo that (shown with the fixed
  one). Dopamine's ``_run_train_phase`` runs ``training_steps + 1`` steps per iteration (odd for
  the usual even values); ``Atari100kRunner._train`` runs even chunks (1000 steps) and is not
  affected; and ``DrQAgent`` keeps its own (uint8) copy of each frame, so it is immune anyway.
  """
  run = fake_run('swap', 'lives', chunks=(101, 100))
  k = 101  # first step of the second chunk
  ids = [fid(step.obs) for step in run.log]
  acted_on = [h[0] for h in run.env.history]
  assert ids[:k] == acted_on[:k] and ids[k + 1:] == acted_on[k + 1:]
  assert acted_on[k] + 1 == acted_on[k + 1]
  assert ids[k] == acted_on[k + 1] == ids[k + 1]  # o_k logged as o_{k+1}
  # The agent acted on the right stack; the replay stores the wrong one for step k.
  assert frame_ids(run.acting_states[k])[-1] == acted_on[k]
  stored = [e for e in run.memory if frame_ids(e.state)[-1] == acted_on[k + 1]]
  assert len(stored) == 2  # steps k and k+1 both claim frame o_{k+1}

  ours = fake_run('drq', 'lives', chunks=(101, 100))
  assert [fid(step.obs) for step in ours.log] == [h[0] for h in ours.env.history]


# ---------------------------------------------------------------------------- unit tests
def make_steps(length, terminal=False, truncated=False, first_frame=1, first_reward=0):
  """A segment of hand-made transitions: 2x2 frames filled with their id, rewards 2^i."""
  steps = []
  for k in range(length):
    last = k == length - 1
    steps.append(elements.TransitionElement(
        observation=np.full((2, 2), float(first_frame + k), np.float32),
        action=(first_frame + k) % NUM_ACTIONS,
        reward=float(2 ** (first_reward + k)),
        is_terminal=bool(last and terminal),
        episode_end=bool(last and truncated)))
  return steps


def as_logged(transitions):
  """Hand-made transitions as ``Logged`` steps with a batch axis, for reference_elements."""
  return [Logged(np.asarray(t.observation)[None], np.array([t.action]), np.array([t.reward]),
                 bool(t.is_terminal), bool(t.episode_end), range(0)) for t in transitions]


def feed(acc, transitions):
  return [list(acc.accumulate(t)) for t in transitions]


def check_against_reference(emitted, transitions):
  expected = reference_elements(as_logged(transitions))
  flat = [e for per_step in emitted for e in per_step]
  assert len(flat) == len(expected)
  for got, want in zip(flat, expected):
    np.testing.assert_array_equal(got.state, want.state[0])
    assert int(got.action) == int(want.action.item())
    np.testing.assert_allclose(got.reward, want.reward, rtol=0, atol=1e-9)
    assert bool(got.is_terminal) == want.terminal
    if not want.terminal:
      np.testing.assert_array_equal(got.next_state, want.next_state[0])
  return flat


def ids2(stack):
  return [int(v) for v in np.asarray(stack)[0, 0, :]]


def new_acc():
  return EpisodeTransitionAccumulator(stack_size=STACK, update_horizon=N, gamma=GAMMA)


def test_unit_terminal_after_fewer_than_n_steps():
  """A life of 2 steps (< n): both steps stored, terminal, short returns; nothing leaks."""
  first = make_steps(2, terminal=True)
  second = make_steps(5, first_frame=10)
  acc = new_acc()
  emitted = feed(acc, first + second)
  assert emitted[0] == []
  assert len(emitted[1]) == 2
  e0, e1 = emitted[1]
  assert ids2(e0.state) == [0, 0, 0, 1] and ids2(e1.state) == [0, 0, 1, 2]
  assert (int(e0.action), int(e1.action)) == (1, 2)
  np.testing.assert_allclose([e0.reward, e1.reward], [1 + GAMMA * 2, 2])
  assert bool(e0.is_terminal) and bool(e1.is_terminal)
  # The next segment starts from zeros: step 0 of it, emitted at its step n.
  assert [len(x) for x in emitted[2:]] == [0, 0, 0, 1, 1]
  assert ids2(emitted[5][0].state) == [0, 0, 0, 10]
  assert ids2(emitted[5][0].next_state) == [10, 11, 12, 13]
  check_against_reference(emitted, first + second)

  single = make_steps(1, terminal=True, first_frame=50)  # a life of one step
  (only,) = feed(new_acc(), single)[0]
  assert ids2(only.state) == [0, 0, 0, 50] and bool(only.is_terminal) and only.reward == 1.0


def test_unit_terminal_after_more_than_n_plus_stack_steps():
  """A life of 10 steps (> n + stack): step k at step k + n; at T: T-n (bootstrap o_T), then
  T-2, T-1, T terminal; full stacks throughout."""
  T = 9
  steps = make_steps(T + 1, terminal=True)
  emitted = feed(new_acc(), steps)
  assert [len(x) for x in emitted] == [0, 0, 0, 1, 1, 1, 1, 1, 1, 4]
  for j in range(N, T):
    (element,) = emitted[j]
    k = j - N
    assert int(element.action) == (k + 1) % NUM_ACTIONS
    assert ids2(element.state) == [max(0, i + 1) for i in range(k - 3, k + 1)]
    assert ids2(element.next_state) == [max(0, i + 1) for i in range(j - 3, j + 1)]
    assert not bool(element.is_terminal)
  at_t = emitted[T]
  assert [ids2(e.state)[-1] for e in at_t] == [T - N + 1, T - 1, T, T + 1]
  assert [bool(e.is_terminal) for e in at_t] == [False, True, True, True]
  assert ids2(at_t[0].next_state) == [7, 8, 9, 10]  # o_{T-3..T}
  np.testing.assert_allclose(at_t[0].reward, 2 ** 6 + GAMMA * 2 ** 7 + GAMMA ** 2 * 2 ** 8)
  np.testing.assert_allclose(at_t[-1].reward, 2.0 ** T)
  np.testing.assert_allclose(at_t[1].reward, 2 ** 7 + GAMMA * 2 ** 8 + GAMMA ** 2 * 2 ** 9)
  assert ids2(at_t[-1].state) == [7, 8, 9, 10]
  check_against_reference(emitted, steps)


def test_unit_truncation_drops_steps_without_bootstrap_frame():
  """``episode_end`` without terminal after 8 steps: steps 0..4 stored (k + n <= 7), steps
  5, 6, 7 (the last n) are dropped: the frame after step 7 was replaced by the reset frame, so
  step 5 has no o_{5+n}; no element is terminal; the next segment starts from zeros.

  (agents/replay.py's docstring says "the last n-1 steps ... are dropped"; the code drops the
  last n, which is what it must do, and what Dopamine's accumulator does too.)"""
  first = make_steps(8, truncated=True)
  second = make_steps(4, terminal=True, first_frame=20)
  emitted = feed(new_acc(), first + second)
  assert [len(x) for x in emitted[:8]] == [0, 0, 0, 1, 1, 1, 1, 1]
  assert [ids2(x[0].state)[-1] for x in emitted[3:8]] == [1, 2, 3, 4, 5]
  assert not any(bool(e.is_terminal) for x in emitted[:8] for e in x)
  assert ids2(emitted[7][0].next_state) == [5, 6, 7, 8]
  assert [len(x) for x in emitted[8:]] == [0, 0, 0, 4]
  assert ids2(emitted[11][0].state) == [0, 0, 0, 20]
  check_against_reference(emitted, first + second)


@pytest.mark.parametrize('split', [1, 3, 5, 8, 11])
def test_unit_state_dict_round_trip_mid_segment(split):
  """to_state_dict / from_state_dict (through pickle, as a checkpoint) mid-segment: the
  restored accumulator emits exactly what the original emits from then on."""
  steps = make_steps(11, terminal=True) + make_steps(9, first_frame=30) + make_steps(
      6, truncated=True, first_frame=60)
  original = new_acc()
  before = feed(original, steps[:split])
  restored = new_acc()
  restored.from_state_dict(pickle.loads(pickle.dumps(original.to_state_dict())))
  after_original = feed(original, steps[split:])
  after_restored = feed(restored, steps[split:])
  assert len(after_original) == len(after_restored)
  for got_step, want_step in zip(after_restored, after_original):
    assert len(got_step) == len(want_step)
    for got, want in zip(got_step, want_step):
      for field in elements.ReplayElement.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)
  check_against_reference(before + after_original, steps)


def test_unit_copies_inputs():
  """Mutating the caller's arrays after ``accumulate`` (as Dopamine's runner does with its
  observation, reward and terminal buffers) changes nothing the accumulator emits."""
  acc = new_acc()
  obs = np.zeros((2, 2), np.float32)
  reward = np.zeros((1,))
  terminal = np.zeros((1,))
  end = np.zeros((1,))
  emitted = []
  for k in range(7):
    obs[...] = k + 1
    reward[...] = 2.0 ** k
    terminal[...] = float(k == 6)
    emitted.append(list(acc.accumulate(
        elements.TransitionElement(obs, np.array([k % NUM_ACTIONS]), reward, terminal, end))))
  obs[...] = -1
  reward[...] = -1
  terminal[...] = 0
  flat = [e for x in emitted for e in x]
  assert len(flat) == 7
  assert [ids2(e.state)[-1] for e in flat] == [1, 2, 3, 4, 5, 6, 7]
  assert ids2(flat[3].state) == [1, 2, 3, 4]
  assert [bool(np.all(e.is_terminal)) for e in flat] == [False] * 4 + [True] * 3
  np.testing.assert_allclose(flat[0].reward, 1 + GAMMA * 2 + GAMMA ** 2 * 4)
  np.testing.assert_allclose(flat[-1].reward, 64.0)
  # Nothing the caller still holds is shared with what was emitted.
  for e in flat:
    for value in (e.state, e.next_state, e.reward, e.is_terminal):
      assert not np.shares_memory(value, obs) and not np.shares_memory(value, reward)
      assert not np.shares_memory(value, terminal)
