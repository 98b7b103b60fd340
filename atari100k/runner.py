"""The Atari-100k runner: train 100k agent steps, evaluate 100 episodes, write the run outputs.

``Atari100kRunner`` subclasses Dopamine's ``DataEfficientAtariRunner`` and keeps its
vectorised environment loop (``_run_one_phase``), no-op starts, reward clipping, 27,000-step
episode cap and parallel evaluation (100 environments, one episode each). It replaces the
iteration/checkpoint plumbing with what a 100k-step run on a laptop needs:

* training in chunks with a progress bar (steps/s, ETA) and a ``progress.csv`` row per chunk;
* a checkpoint (agent, optimizer, replay buffer, counters) every ``checkpoint_every`` steps,
  written atomically in a format that loads no code (``atari100k.checkpoint_file``); a
  restarted run resumes from it (the interrupted episode restarts, ``progress.csv`` is cut
  back to the checkpoint's step);
* a divergence check after every chunk (``agents.divergence``): a non-finite loss or
  parameter stops the run with ``RunDiverged`` and writes ``failed.json`` instead of a result;
* ``result.json`` (DESIGN.md's run-output contract) written atomically after evaluation,
  ``config.gin`` with the operative gin config, TensorBoard events from Dopamine's writers.

Run folder: ``<base_dir>/<agent>/<Game>/seed_<k>/``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import sys
import time
from importlib import metadata

import gin
import numpy as np
from dopamine.discrete_domains import iteration_statistics
from dopamine.labs.atari_100k import atari_100k_runner
from tqdm import tqdm

from agents import checkpointing
from agents import settings
from atari100k import checkpoint_file
from atari100k import devices
from atari100k import environment
from atari100k.files import FAILED_FILE, RESULT_FILE
from common.files import write_atomically

CHECKPOINT_FILE = 'checkpoint.npz'
OLD_PICKLE_CHECKPOINT = 'checkpoint.pkl'  # format 1, refused (a pickle can run code)
PROGRESS_FILE = 'progress.csv'
PACKAGES = ('dopamine-rl', 'jax', 'jaxlib', 'flax', 'optax', 'gin-config', 'ale-py',
            'gymnasium', 'numpy', 'tensorflow')


class RunDiverged(RuntimeError):
  """The loss or the parameters went non-finite; ``failed.json`` has been written."""

  def __init__(self, message: str, failure: dict):
    super().__init__(message)
    self.failure = failure


class RunFilesError(OSError):
  """A run file (checkpoint, progress, result) could not be written; the message says what is
  left intact and how to go on."""


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


def check_checkpoint(folder: str, expected: dict) -> dict | None:
  """The header of the run folder's checkpoint (None if there is none), checked against the
  run (``expected``: agent, game, seed and, when known, agent_class).

  Raises:
    checkpoint_file.CheckpointError: unreadable, of another format, or of another run.
  """
  path = os.path.join(folder, 'checkpoints', CHECKPOINT_FILE)
  old = os.path.join(folder, 'checkpoints', OLD_PICKLE_CHECKPOINT)
  if not os.path.exists(path):
    if os.path.exists(old):
      raise checkpoint_file.CheckpointError(
          old, 'a checkpoint in the pickle format of earlier versions, which this version '
          'does not load (unpickling can run any code the file holds)')
    return None
  info = checkpoint_file.read_info(path)
  for key in ('agent', 'game', 'seed', 'agent_class'):
    if key in expected and info.get(key) != expected[key]:
      raise checkpoint_file.CheckpointError(
          path, f'it belongs to another run ({key} {info.get(key)!r}, this run '
          f'{expected[key]!r})')
  return info


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
    self.check_settings(locals())
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
    self._last_good_gradient_step = None  # gradient step of the last divergence check passed
    self._device = None  # devices.describe(), set when the run starts
    os.makedirs(base_dir, exist_ok=True)

    def make_env():
      self._env_count += 1  # a distinct, repeatable ALE seed per environment
      return environment.create_atari100k_environment(
          self.game, seed=self.seed * 1000 + self._env_count)

    def make_agent(unused_sess, env, summary_writer=None):
      agent = make_atari100k_agent(num_actions=env.action_space.n, seed=self.seed,
                                   summary_writer=summary_writer)
      # A periodic reset on the last training step would be evaluated untrained: none then.
      agent.stop_resets_at(self.training_steps)
      return agent

    super().__init__(base_dir, make_agent, create_environment_fn=make_env)

  @classmethod
  def check_settings(cls, values: dict) -> None:
    """Raises ``settings.SettingError`` naming a chunk or checkpoint period that cannot work."""
    settings.check('Atari100kRunner', values, {'chunk_steps': settings.POSITIVE_INT,
                                               'checkpoint_every': settings.POSITIVE_INT})
    chunk, every = values.get('chunk_steps', 1000), values.get('checkpoint_every', 10_000)
    if chunk < 2 or chunk % 2:
      # Dopamine's _run_parallel restarts its step counter at every call but keeps its two-slot
      # observation buffer: after an odd-length call the next step logs the wrong frame.
      raise settings.SettingError(f'Atari100kRunner.chunk_steps must be even and >= 2, got '
                                  f'{chunk}.')
    if every % chunk:
      raise settings.SettingError(
          f'Atari100kRunner.checkpoint_every ({every}) must be a multiple of '
          f'Atari100kRunner.chunk_steps ({chunk}).')

  # Dopamine's iteration checkpointer is replaced by ``_save_checkpoint``/``_load_checkpoint``.
  def _initialize_checkpointer_and_maybe_resume(self, checkpoint_file_prefix):
    self._start_iteration = 0

  @property
  def training_steps(self) -> int:
    return int(self._training_steps)

  @property
  def checkpoint_path(self) -> str:
    return os.path.join(self._base_dir, 'checkpoints', CHECKPOINT_FILE)

  @property
  def progress_path(self) -> str:
    return os.path.join(self._base_dir, PROGRESS_FILE)

  def _run_info(self, steps_done: int) -> dict:
    return {'agent': self.agent_name, 'game': self.game, 'seed': self.seed,
            'steps_done': int(steps_done), 'agent_class': type(self._agent).__name__}

  # ------------------------------------------------------------------ checkpoints
  def _save_checkpoint(self, steps_done: int, train_returns: list, wall_time: float) -> None:
    os.makedirs(os.path.dirname(self.checkpoint_path), exist_ok=True)
    tree = {
        'runner': {'steps_done': int(steps_done),
                   'train_returns': [float(r) for r in train_returns],
                   'wall_time': float(wall_time)},
        'agent': self._agent.checkpoint_state(),
    }
    try:
      checkpoint_file.save(self.checkpoint_path, tree, self._run_info(steps_done))
    except OSError as e:
      previous = ('the previous checkpoint is intact and the same command resumes from it'
                  if os.path.exists(self.checkpoint_path) else 'no earlier checkpoint exists')
      raise RunFilesError(
          e.errno, f'cannot write the checkpoint {self.checkpoint_path} at step {steps_done} '
          f'({e.strerror or e}); {previous}. Free disk space (a DrQ checkpoint at 100k steps '
          'is under 1 GB) or check the folder\'s permissions.') from e

  def _remove_partial_writes(self) -> None:
    """Deletes the temporary files of writes that a killed process left
    (``*.tmp-<host>-<pid>``): the files they were to replace are intact."""
    for folder in (self._base_dir, os.path.dirname(self.checkpoint_path)):
      if os.path.isdir(folder):
        for name in os.listdir(folder):
          if '.tmp-' in name:
            os.remove(os.path.join(folder, name))

  def _load_checkpoint(self):
    """The saved runner state (``steps_done``, ``train_returns``, ``wall_time``), after loading
    the agent's state; None without a checkpoint.

    Raises:
      checkpoint_file.CheckpointError: unreadable, of another format, or of another run.
    """
    if check_checkpoint(self._base_dir, self._run_info(0)) is None:
      return None
    _, tree = checkpoint_file.load(self.checkpoint_path)
    try:
      runner_state = tree['runner']
      steps_done = int(runner_state['steps_done'])
      self._agent.load_checkpoint_state(tree['agent'])
    except (checkpointing.CheckpointMismatch, KeyError, TypeError, ValueError) as e:
      raise checkpoint_file.CheckpointError(
          self.checkpoint_path, f'it does not fit this run\'s agent (written with other '
          f'settings or another version?): {e}') from None
    if steps_done > self.training_steps:
      raise checkpoint_file.CheckpointError(
          self.checkpoint_path, f'it is at step {steps_done}, past this run\'s '
          f'{self.training_steps} training steps')
    return {'steps_done': steps_done,
            'train_returns': [float(r) for r in runner_state['train_returns']],
            'wall_time': float(runner_state['wall_time'])}

  # ------------------------------------------------------------------ outputs
  def _write_config(self) -> None:
    write_atomically(os.path.join(self._base_dir, 'config.gin'),
                     gin.operative_config_str().encode())

  def _append_progress(self, row: dict) -> None:
    new = not os.path.exists(self.progress_path)
    try:
      with open(self.progress_path, 'a', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
          writer.writeheader()
        writer.writerow(row)
    except OSError as e:
      raise RunFilesError(
          e.errno, f'cannot append to {self.progress_path} at step {row["env_steps"]} '
          f'({e.strerror or e}); the same command resumes from the last checkpoint once the '
          'folder is writable again.') from e

  def _truncate_progress(self, steps_done: int) -> None:
    """Keeps the rows up to ``steps_done`` (the checkpoint resumed from): the steps after it
    are trained again and get their rows again."""
    if not os.path.exists(self.progress_path):
      return
    try:
      with open(self.progress_path, newline='') as f:
        rows = list(csv.reader(f))
      if not rows:
        return
      kept = [rows[0]] + [r for r in rows[1:]
                          if r and r[0].isdigit() and int(r[0]) <= steps_done]
      if len(kept) == len(rows):
        return
      text = io.StringIO()
      csv.writer(text).writerows(kept)
      write_atomically(self.progress_path, text.getvalue().encode())
    except OSError as e:
      raise RunFilesError(e.errno, f'cannot rewrite {self.progress_path} ({e.strerror or e}); '
                          'fix the file or its folder and run the same command.') from e

  def _write_failure(self, steps_done: int, train_returns: list, wall_time: float,
                     found) -> dict:
    last_checkpoint = None
    if os.path.exists(self.checkpoint_path):
      last_checkpoint = checkpoint_file.read_info(self.checkpoint_path).get('steps_done')
    failure = {
        'status': 'diverged',
        'why': found.describe(),
        'quantity': found.quantity,
        'gradient_step': found.gradient_step,
        'last_good_gradient_step': found.last_good_gradient_step,
        'detected_at_env_step': int(steps_done),
        'detected_at_gradient_step': int(self._agent.gradient_steps),
        'last_finite_loss': found.last_finite_loss,
        'last_finite_loss_step': found.last_finite_loss_step,
        'last_checkpoint_step': last_checkpoint,
        'agent': self.agent_name,
        'game': self.game,
        'seed': self.seed,
        'train_episodes': len(train_returns),
        'wall_time_s': round(wall_time, 1),
        'device': getattr(self, '_device', None),
        'versions': package_versions(),
        'gin_bindings': self.gin_overrides,
    }
    write_atomically(os.path.join(self._base_dir, FAILED_FILE),
                     json.dumps(failure, indent=1).encode())
    return failure

  def _check_divergence(self, steps_done: int, train_returns: list, wall_time: float) -> None:
    check = getattr(self._agent, 'divergence', None)
    if check is None:
      return
    found = check(self._last_good_gradient_step)
    if found is None:
      self._last_good_gradient_step = int(self._agent.gradient_steps)
      return
    failure = self._write_failure(steps_done, train_returns, wall_time, found)
    raise RunDiverged(
        f'{self.agent_name} {self.game} seed {self.seed} diverged: {found.describe()} '
        f'(detected at agent step {steps_done}). No result was written; '
        f'{os.path.join(self._base_dir, FAILED_FILE)} says why. The run is deterministic: '
        'rerunning it gives the same divergence; change its settings (or seed) and pass '
        '--force to redo it.', failure)

  def _maybe_save_single_summary(self, iteration, ep_return, length, save_if_eval=False):
    super()._maybe_save_single_summary(iteration, ep_return, length, save_if_eval)
    if self._eval_bar is not None and self._agent.eval_mode:
      self._eval_bar.update(1)

  # ------------------------------------------------------------------ the run
  def _bar(self, **kwargs):
    # No tqdm "<remaining": it would extrapolate the fast warm-up to the whole run. The
    # training bar's ETA is ours, in its postfix, from the rate of the last chunk.
    return tqdm(disable=not self._progress, dynamic_ncols=True, file=sys.stderr,
                smoothing=0.05,
                bar_format='{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]', **kwargs)

  def _announce_device(self) -> None:
    """Says where the run computes, once; a full-width BBF run on a CPU also hears how long
    that takes and how to install the GPU build."""
    self._device = devices.describe()
    print(f'{self.agent_name} {self.game} seed {self.seed}: JAX on '
          f'{self._device["backend"]} ({self._device["device_kind"]}, '
          f'{self._device["device_count"]} device(s))', file=sys.stderr)
    width = getattr(self._agent, 'width_scale', None)
    if self._device['backend'] == 'cpu' and width is not None and width >= 4:
      steps = self.training_steps * getattr(self._agent, 'replay_ratio', 2)
      print(f'note: BBF at width {width} on a CPU costs about 10 s per gradient step (measured '
            f'on 2 cores), so {steps:,} gradient steps take about {steps * 10 / 86400:.0f} '
            'days. On a machine with an NVIDIA GPU: make install GPU=1, then the same command '
            '(the paper: a few GPU hours per run). A CPU try-out: '
            "GIN='BBFSettings.width_scale = 1' STEPS=3000.", file=sys.stderr)

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
        self._check_divergence(steps_done, train_returns, time.time() - start)
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
    self._remove_partial_writes()
    self._announce_device()
    checkpoint = self._load_checkpoint()
    steps_done, train_returns, wall_time = 0, [], 0.0
    if checkpoint is not None:
      steps_done = checkpoint['steps_done']
      train_returns = checkpoint['train_returns']
      wall_time = checkpoint['wall_time']
      print(f'Resuming {self._base_dir} from step {steps_done}.', file=sys.stderr)
    self._truncate_progress(steps_done)
    # A checkpoint is written only after a passed check: its parameters are finite.
    self._last_good_gradient_step = (int(self._agent.gradient_steps) if checkpoint else None)
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
        'device': self._device,
        'versions': package_versions(),
        'gin_bindings': self.gin_overrides,
    }
    result_path = os.path.join(self._base_dir, RESULT_FILE)
    try:
      write_atomically(result_path, json.dumps(result, indent=1).encode())
    except OSError as e:
      raise RunFilesError(
          e.errno, f'cannot write {result_path} ({e.strerror or e}) after the evaluation; '
          'the final checkpoint is kept: the same command re-runs only the evaluation once '
          'the folder is writable again.') from e
    self._write_config()
    if not self._keep_checkpoint and os.path.exists(self.checkpoint_path):
      os.remove(self.checkpoint_path)
    return result
