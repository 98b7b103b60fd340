"""The Atari-100k runner: train 100k agent steps, evaluate 100 episodes, write the run outputs.

``Atari100kRunner`` subclasses Dopamine's ``DataEfficientAtariRunner`` and keeps its
vectorised environment loop (``_run_one_phase``), no-op starts, reward clipping, 27,000-step
episode cap and parallel evaluation (100 environments, one episode each). It replaces the
iteration/checkpoint plumbing with what a 100k-step run on a laptop needs:

* training in chunks with a progress bar (steps/s, ETA) and a ``progress.csv`` row per chunk;
* a checkpoint (agent, optimizer, replay buffer, counters) every ``checkpoint_every`` steps,
  written atomically; a restarted run resumes from it (the interrupted episode restarts);
* ``result.json`` (DESIGN.md's run-output contract) written atomically after evaluation,
  ``config.gin`` with the operative gin config, TensorBoard events from Dopamine's writers.

Run folder: ``<base_dir>/<agent>/<Game>/seed_<k>/``.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import platform
import sys
import time
from importlib import metadata

import gin
import jax
import numpy as np
from dopamine.discrete_domains import iteration_statistics
from dopamine.labs.atari_100k import atari_100k_runner
from tqdm import tqdm

from atari100k import environment

CHECKPOINT_FILE = 'checkpoint.pkl'
RESULT_FILE = 'result.json'
PACKAGES = ('dopamine-rl', 'jax', 'jaxlib', 'flax', 'optax', 'gin-config', 'ale-py',
            'gymnasium', 'numpy', 'tensorflow')


def write_atomically(path: str, data) -> None:
  """Writes ``data`` (bytes, or a function writing to a binary file) to ``path`` atomically.

  The content goes to a temporary file in the same folder, is synced, then renamed over
  ``path``: a reader sees the old file or the new one, never a partial one.
  """
  tmp = f'{path}.tmp-{os.getpid()}'
  with open(tmp, 'wb') as f:
    if callable(data):
      data(f)
    else:
      f.write(data)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def format_duration(seconds: float) -> str:
  """'42 min', '5.3 h' or '12.5 days': the progress bar's ETA at the current rate."""
  if seconds < 2 * 3600:
    return f'{seconds / 60:.0f} min'
  if seconds < 2 * 86400:
    return f'{seconds / 3600:.1f} h'
  return f'{seconds / 86400:.1f} days'


def package_versions() -> dict:
  versions = {'python': platform.python_version()}
  for name in PACKAGES:
    try:
      versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      versions[name] = None
  return versions


@gin.configurable
def make_atari100k_agent(num_actions: int, seed: int, summary_writer, agent_class=gin.REQUIRED):
  """Builds the agent named in the gin file (``make_atari100k_agent.agent_class = @DrQAgent``)."""
  return agent_class(num_actions=num_actions, seed=seed, summary_writer=summary_writer)


@gin.configurable
class Atari100kRunner(atari_100k_runner.DataEfficientAtariRunner):
  """Dopamine's data-efficient runner with progress, checkpoints and result files."""

  def __init__(self, base_dir: str, game: str, seed: int, agent_name: str,
               gin_overrides=(), chunk_steps: int = 1000, checkpoint_every: int = 10_000,
               keep_checkpoint: bool = False, progress: bool = True):
    """Args:
      base_dir: str, the run folder (created).
      game: str, an Atari-100k game.
      seed: int, seeds the agent and, offset per environment, the ALE.
      agent_name: str, the named configuration (recorded in result.json).
      gin_overrides: sequence of str, the bindings given on top of the named configuration.
      chunk_steps: int, agent steps between progress updates.
      checkpoint_every: int, agent steps between checkpoints (a multiple of chunk_steps).
      keep_checkpoint: bool, keep the checkpoint after result.json is written.
      progress: bool, show progress bars.
    Dopamine's settings stay on Dopamine's classes and are set by gin:
    ``Runner.training_steps``, ``DataEfficientAtariRunner.num_eval_episodes``, ...
    """
    if chunk_steps < 2 or chunk_steps % 2:
      # Dopamine's _run_parallel restarts its step counter at every call but keeps its two-slot
      # observation buffer: after an odd-length call the next step logs the wrong frame.
      raise ValueError(f'chunk_steps must be even and >= 2, got {chunk_steps}.')
    if checkpoint_every % chunk_steps:
      raise ValueError(f'checkpoint_every ({checkpoint_every}) must be a multiple of '
                       f'chunk_steps ({chunk_steps}).')
    self.game = environment.check_game(game)
    self.seed = int(seed)
    self.agent_name = agent_name
    self.gin_overrides = list(gin_overrides)
    self._chunk_steps = int(chunk_steps)
    self._checkpoint_every = int(checkpoint_every)
    self._keep_checkpoint = keep_checkpoint
    self._progress = progress
    self._env_count = 0
    self._eval_bar = None
    os.makedirs(base_dir, exist_ok=True)

    def make_env():
      self._env_count += 1  # a distinct, repeatable ALE seed per environment
      return environment.create_atari100k_environment(
          self.game, seed=self.seed * 1000 + self._env_count)

    def make_agent(unused_sess, env, summary_writer=None):
      return make_atari100k_agent(num_actions=env.action_space.n, seed=self.seed,
                          summary_writer=summary_writer)

    super().__init__(base_dir, make_agent, create_environment_fn=make_env)

  # Dopamine's iteration checkpointer is replaced by ``_save_checkpoint``/``_load_checkpoint``.
  def _initialize_checkpointer_and_maybe_resume(self, checkpoint_file_prefix):
    self._start_iteration = 0

  @property
  def training_steps(self) -> int:
    return int(self._training_steps)

  @property
  def checkpoint_path(self) -> str:
    return os.path.join(self._base_dir, 'checkpoints', CHECKPOINT_FILE)

  # ------------------------------------------------------------------ checkpoints
  def _save_checkpoint(self, steps_done: int, train_returns: list, wall_time: float) -> None:
    os.makedirs(os.path.dirname(self.checkpoint_path), exist_ok=True)
    payload = {
        'format': 1,
        'steps_done': steps_done,
        'train_returns': list(train_returns),
        'wall_time': wall_time,
        'agent': jax.device_get(self._agent.checkpoint_state()),
    }
    # Streamed: the replay buffer makes this file large (about 3 GB at 100k steps).
    write_atomically(self.checkpoint_path, lambda f: pickle.dump(payload, f, protocol=4))

  def _load_checkpoint(self):
    if not os.path.exists(self.checkpoint_path):
      return None
    with open(self.checkpoint_path, 'rb') as f:
      payload = pickle.load(f)
    self._agent.load_checkpoint_state(payload['agent'])
    return payload

  # ------------------------------------------------------------------ outputs
  def _write_config(self) -> None:
    write_atomically(os.path.join(self._base_dir, 'config.gin'),
                     gin.operative_config_str().encode())

  def _append_progress(self, row: dict) -> None:
    path = os.path.join(self._base_dir, 'progress.csv')
    new = not os.path.exists(path)
    with open(path, 'a', newline='') as f:
      writer = csv.DictWriter(f, fieldnames=list(row))
      if new:
        writer.writeheader()
      writer.writerow(row)

  def _maybe_save_single_summary(self, iteration, ep_return, length, save_if_eval=False):
    super()._maybe_save_single_summary(iteration, ep_return, length, save_if_eval)
    if self._eval_bar is not None and self._agent.eval_mode:
      self._eval_bar.update(1)

  # ------------------------------------------------------------------ the run
  def _bar(self, **kwargs):
    return tqdm(disable=not self._progress, dynamic_ncols=True, file=sys.stderr,
                smoothing=0.05, **kwargs)

  def _train(self, steps_done: int, train_returns: list, wall_time: float) -> float:
    total = self.training_steps
    self._agent.eval_mode = False
    start = time.time() - wall_time
    desc = f'{self.agent_name} {self.game} seed {self.seed}'
    with self._bar(total=total, initial=steps_done, unit='step', desc=desc) as bar:
      while steps_done < total:
        chunk = min(self._chunk_steps, total - steps_done)
        chunk_start = time.time()
        stats = iteration_statistics.IterationStatistics()
        # _run_parallel stops once it has taken more than ``steps`` steps: ask for chunk - 1.
        _, _, _, state, self.train_envs = self._run_one_phase(
            self.train_envs, chunk - 1, None, stats, 'train',
            needs_reset=self.train_state is None, resume_state=self.train_state)
        # Keep the environment state, drop the per-chunk episode lists.
        self.train_state = (*state[:4], [], [])
        steps_done += chunk
        train_returns.extend(stats.data_lists.get('train_episode_returns', []))
        rate = chunk / max(time.time() - chunk_start, 1e-9)
        recent = float(np.mean(train_returns[-10:])) if train_returns else float('nan')
        bar.update(chunk)
        eta = (format_duration((total - steps_done) / rate)
               if getattr(self._agent, 'gradient_steps', 1)
               else 'after warm-up')
        bar.set_postfix_str(f'{rate:.1f} steps/s, ETA at this rate {eta}, '
                            f'{len(train_returns)} episodes, return(last 10) {recent:.1f}')
        self._append_progress({
            'env_steps': steps_done,
            'gradient_steps': self._agent.gradient_steps,
            'episodes': len(train_returns),
            'train_return_last10': recent,
            'steps_per_second': round(rate, 2),
            'wall_time_s': round(time.time() - start, 1),
        })
        if steps_done % self._checkpoint_every == 0 or steps_done == total:
          self._save_checkpoint(steps_done, train_returns, time.time() - start)
    return time.time() - start

  def _evaluate(self) -> list:
    stats = iteration_statistics.IterationStatistics()
    with self._bar(total=self._num_eval_episodes, unit='episode',
                   desc=f'evaluating {self.game}') as bar:
      self._eval_bar = bar
      try:
        self._run_eval_phase(stats)
      finally:
        self._eval_bar = None
    return [float(r) for r in stats.data_lists.get('eval_episode_returns', [])]

  def run_experiment(self) -> dict:
    """Trains (resuming from a checkpoint if one exists), evaluates, writes result.json."""
    checkpoint = self._load_checkpoint()
    steps_done, train_returns, wall_time = 0, [], 0.0
    if checkpoint is not None:
      steps_done = checkpoint['steps_done']
      train_returns = checkpoint['train_returns']
      wall_time = checkpoint['wall_time']
      print(f'Resuming {self._base_dir} from step {steps_done}.', file=sys.stderr)
    self._write_config()
    wall_time = self._train(steps_done, train_returns, wall_time)
    eval_start = time.time()
    returns = self._evaluate()
    result = {
        'agent': self.agent_name,
        'game': self.game,
        'seed': self.seed,
        'env_steps': self.training_steps,
        'gradient_steps': int(self._agent.gradient_steps),
        'eval_episodes': len(returns),
        'eval_returns': returns,
        'score': float(np.mean(returns)) if returns else float('nan'),
        'train_episodes': len(train_returns),
        'train_returns': [float(r) for r in train_returns],
        'resets': [list(r) for r in getattr(self._agent, 'reset_log', [])],
        'wall_time_s': round(wall_time + time.time() - eval_start, 1),
        'versions': package_versions(),
        'gin_bindings': self.gin_overrides,
    }
    write_atomically(os.path.join(self._base_dir, RESULT_FILE),
                     json.dumps(result, indent=1).encode())
    self._write_config()
    if not self._keep_checkpoint and os.path.exists(self.checkpoint_path):
      os.remove(self.checkpoint_path)
    return result
