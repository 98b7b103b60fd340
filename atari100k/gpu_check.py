"""The GPU check: ``make gpu-check`` (``python -m atari100k.gpu_check``), under 10 minutes.

On the machine it runs on it prints, and writes to ``bench_results/gpu_check.json``:

1. the JAX device (``atari100k.devices.describe``) and what TensorFlow sees (nothing: hidden);
2. the BBF update benchmark at width 4 (``atari100k.bench_bbf``: ms per gradient step of the
   four BBF configurations);
3. a short real run of ``bbf_ssl_ht`` and of ``drq`` on Pong (``--steps`` agent steps each,
   the warm-up shortened to ``--warmup``), their training speed after the warm-up in agent
   steps/s, and the projected hours of a full 100k-step run beside the paper's GPU hours
   (Table 1: DrQ 0.5, BBF 1.4, BBF with SSL 2.8).

The projection counts training only (the final 100-episode evaluation is extra). On a CPU the
same command runs, slowly; ``--bbf-width 1 --steps 400`` makes it a quick try-out.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time

from common.files import write_atomically
from common import quiet

PAPER_GPU_HOURS = {'drq': 0.5, 'bbf': 1.4, 'bbf_ht': 1.4, 'bbf_ssl': 2.8, 'bbf_ssl_ht': 2.8}
FULL_RUN_STEPS = 100_000


def training_speed(progress_csv: str, warmup: int) -> float:
  """Agent steps per second over the rows of ``progress.csv`` after ``warmup`` steps."""
  with open(progress_csv, newline='') as f:
    rows = [(int(r['env_steps']), float(r['wall_time_s'])) for r in csv.DictReader(f)]
  after = [(s, t) for s, t in rows if s > warmup]
  before = [(s, t) for s, t in rows if s <= warmup]
  if not after:
    raise ValueError(f'{progress_csv} has no row after the warm-up ({warmup} steps)')
  start = before[-1] if before else (0, 0.0)
  steps, seconds = after[-1][0] - start[0], after[-1][1] - start[1]
  return steps / max(seconds, 1e-9)


def short_run(agent: str, steps: int, warmup: int, folder: str, bindings=()) -> dict:
  """A real ``atari100k.run`` of ``agent`` on Pong; its training speed and projection."""
  from atari100k import files, run  # pylint: disable=import-outside-toplevel
  chunk = max(2, (steps - warmup) // 4 // 2 * 2)
  argv = ['--agent', agent, '--game', 'Pong', '--runs', folder, '--steps', str(steps),
          '--eval-episodes', '1', '--no-progress', *(['--verbose'] if quiet.is_verbose() else []),
          '--gin', ';'.join([
              f'JaxDQNAgent.min_replay_history = {warmup}', 'Runner.max_steps_per_episode = 1000',
              f'Atari100kRunner.chunk_steps = {chunk}',
              f'Atari100kRunner.checkpoint_every = {chunk * 1000}', *bindings])]
  start = time.time()
  code = run.main(argv)
  if code != 0:
    raise RuntimeError(f'the {agent} run ended with exit code {code}')
  speed = training_speed(os.path.join(files.run_folder(folder, agent, 'Pong', 0), 'progress.csv'),
                         warmup)
  return {'agent': agent, 'steps': steps, 'warmup': warmup, 'wall_s': round(time.time() - start, 1),
          'steps_per_s': round(speed, 2),
          'projected_hours': round(FULL_RUN_STEPS / speed / 3600, 2),
          'paper_gpu_hours': PAPER_GPU_HOURS.get(agent)}


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog='python -m atari100k.gpu_check',
                                   description=__doc__.split('\n\n')[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog=__doc__.split('\n\n', 1)[1])
  parser.add_argument('--steps', type=int, default=3000, help='agent steps of each short run')
  parser.add_argument('--warmup', type=int, default=1600, help='replay warm-up of each run')
  parser.add_argument('--bbf-width', type=int, default=4, help='BBF encoder width (4: BBF)')
  parser.add_argument('--skip-bench', action='store_true', help='no BBF update benchmark')
  parser.add_argument('--out', default='bench_results', help='folder for gpu_check.json')
  quiet.add_verbose_flag(parser)
  return parser


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  quiet.configure(args.verbose)
  if not 2 <= args.warmup < args.steps - 8:
    print('error: need 2 <= --warmup < --steps - 8', file=sys.stderr)
    return 2
  # pylint: disable=import-outside-toplevel
  from atari100k import bench_bbf, configs, devices
  configs.import_configurables()  # TensorFlow imported and kept off the GPU
  import tensorflow as tf
  report = {'device': devices.describe(),
            'tensorflow_gpus': len(tf.config.get_visible_devices('GPU')), 'runs': []}
  print(f'[gpu-check] JAX on {report["device"]}; TensorFlow sees '
        f'{report["tensorflow_gpus"]} GPU(s)', flush=True)
  if not args.skip_bench:
    bench_bbf.main(['--widths', str(args.bbf_width), '--rounds', '2', '--calls', '3',
                    '--out', args.out])
  with tempfile.TemporaryDirectory() as folder:
    for agent, bindings in (('bbf_ssl_ht', [f'BBFSettings.width_scale = {args.bbf_width}']),
                            ('drq', [])):
      result = short_run(agent, args.steps, args.warmup, folder, bindings)
      report['runs'].append(result)
      print(f'[gpu-check] {agent}: {result["steps_per_s"]:.1f} agent steps/s after the warm-up '
            f'-> a full run {result["projected_hours"]:.2f} h (paper: '
            f'{result["paper_gpu_hours"]} GPU h)', flush=True)
  os.makedirs(args.out, exist_ok=True)
  write_atomically(os.path.join(args.out, 'gpu_check.json'), json.dumps(report, indent=1))
  return 0


if __name__ == '__main__':
  sys.exit(main())
