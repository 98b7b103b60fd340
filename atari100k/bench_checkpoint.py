"""Checkpoint size and time: ``python -m atari100k.bench_checkpoint --steps 10000``.

Fills a ``drq`` agent's replay buffer by acting (no training: the warm-up is set past the last
step) on a real game through the runner, then measures the runner's checkpoint
(``checkpoints/checkpoint.npz``: its size, a save that indexes every element, a save with the
index kept, a load) beside a pickle of what the earlier format held (Dopamine's
``ReplayBuffer.to_state_dict`` plus the same parameters and optimizer state).
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time

from common import quiet


def measure(steps: int, game: str, folder: str) -> dict:
  """Returns the sizes (bytes) and times (s) of the measurement described above."""
  # pylint: disable=import-outside-toplevel,protected-access
  import jax
  from agents import replay_state
  from atari100k import configs, runner
  configs.parse_agent_config('drq', [f'Runner.training_steps = {steps}',
                                     f'JaxDQNAgent.min_replay_history = {steps + 1}',
                                     'Atari100kRunner.chunk_steps = 100',
                                     f'Atari100kRunner.checkpoint_every = {steps * 100}'])
  run = runner.Atari100kRunner(folder, game=game, seed=0, agent_name='drq', progress=False)
  run._train(0, [], 0.0)  # ends with a checkpoint (the last step): it indexes every element
  agent = run._agent
  agent._replay_frames = replay_state.FrameStore()
  start = time.time()
  run._save_checkpoint(steps, [], 0.0)
  full_save = time.time() - start
  start = time.time()
  run._save_checkpoint(steps, [], 0.0)
  kept_save = time.time() - start
  start = time.time()
  run._load_checkpoint()
  load = time.time() - start
  replay = agent.checkpoint_state()['replay']
  old = {'format': 1, 'agent': jax.device_get({
      'online_params': agent.online_params, 'target_params': agent.target_network_params,
      'optimizer_state': agent.optimizer_state, 'replay': agent._replay.to_state_dict()})}
  start = time.time()
  old_bytes = len(pickle.dumps(old, protocol=4))
  old_save = time.time() - start
  return {
      'steps': steps, 'elements': len(replay['keys']),
      'frames': sum(len(chunk) for chunk in replay['frames']),
      'frame_bytes': sum(chunk.nbytes for chunk in replay['frames']),
      'new_bytes': os.path.getsize(run.checkpoint_path), 'old_bytes': old_bytes,
      'new_save_full_s': full_save, 'new_save_kept_index_s': kept_save, 'new_load_s': load,
      'old_pickle_s': old_save,
  }


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog='python -m atari100k.bench_checkpoint',
                                   description=__doc__.split('\n\n')[0])
  parser.add_argument('--steps', type=int, default=10_000, help='agent steps of acting')
  parser.add_argument('--game', default='Pong')
  quiet.add_verbose_flag(parser)
  return parser


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  quiet.configure(args.verbose)
  if args.steps < 2 or args.steps % 100:
    print('error: --steps must be a positive multiple of 100', file=sys.stderr)
    return 2
  with tempfile.TemporaryDirectory() as folder:
    m = measure(args.steps, args.game, folder)
  mb = lambda b: f'{b / 1e6:.1f} MB'  # noqa: E731
  print(f'{args.game}, {m["steps"]} steps: {m["elements"]} replay elements, {m["frames"]} '
        f'distinct frames ({mb(m["frame_bytes"])})')
  print(f'checkpoint.npz {mb(m["new_bytes"])} (old pickle format {mb(m["old_bytes"])}, '
        f'{m["old_bytes"] / m["new_bytes"]:.2f}x)')
  print(f'save indexing every element {m["new_save_full_s"]:.2f} s, save with the index kept '
        f'{m["new_save_kept_index_s"]:.2f} s, load {m["new_load_s"]:.2f} s; old pickle '
        f'{m["old_pickle_s"]:.2f} s (in memory, not written)')
  return 0


if __name__ == '__main__':
  sys.exit(main())
