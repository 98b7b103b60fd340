"""Benchmark of BBF's jitted update: milliseconds per gradient step, with and without H&T.

``python -m atari100k.bench_bbf`` (part of ``make bench``) times ``agents.bbf_learning.
train_groups`` (C51 + double DQN loss, optional SPR loss, AdamW, EMA target, optional Hare &
Tortoise reset under ``lax.cond``) on random uint8 batches of the real shapes (batch 32,
sub-sequences of 6 stacked 84x84x4 frames, 2 gradient steps per jitted call as BBF groups
them), passed from host memory as the agent passes them. For each width it times the four
named configurations in interleaved rounds (machine noise hits all alike) and prints

* ms per gradient step of ``bbf`` (no SPR), ``bbf_ht``, ``bbf_ssl`` (SPR), ``bbf_ssl_ht``;
* the ratio H&T / no H&T (target: within 5%), H&T resetting every 4000 gradient steps;
* the cost of one H&T reset and of one periodic BBF reset (S&P + re-init), timed apart.

Replay sampling (numpy, host side) is not included. This module imports only jax, flax,
optax and numpy (no TensorFlow, Dopamine or gin), so it runs on machines with JAX alone.
Results go to ``bench_results/bbf_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from common import files

CONFIGS = {  # name: (spr_weight, ht_reset_period), as in gin/bbf*.gin
    'bbf': (0.0, 0),
    'bbf_ht': (0.0, 4000),
    'bbf_ssl': (5.0, 0),
    'bbf_ssl_ht': (5.0, 4000),
}


def random_batches(groups: int, batch: int, jumps: int, seed: int = 0) -> dict:
  import numpy as np  # pylint: disable=import-outside-toplevel
  r = np.random.default_rng(seed)
  return {
      'state': r.integers(0, 255, (groups, batch, jumps + 1, 84, 84, 4), dtype=np.uint8),
      'action': r.integers(0, 18, (groups, batch, jumps + 1)).astype(np.int32),
      'next_state': r.integers(0, 255, (groups, batch, 84, 84, 4), dtype=np.uint8),
      'return': r.normal(size=(groups, batch)).astype(np.float32),
      'terminal': r.random((groups, batch)) < 0.05,
      'discount': np.full((groups, batch), 0.97 ** 10, np.float32),
      'same_trajectory': np.ones((groups, batch, jumps + 1), np.float32),
      'loss_weights': np.ones((groups, batch), np.float32),
  }


class Learner:
  """One configuration's parameters, optimizer state and jitted update."""

  def __init__(self, width: int, spr_weight: float, ht_reset_period: int, num_actions: int):
    # pylint: disable=import-outside-toplevel
    import jax
    import jax.numpy as jnp
    from agents import bbf_learning, bbf_networks
    from agents.learner_state import LearnerState
    self.jax, self.jnp, self.bl = jax, jnp, bbf_learning
    network = bbf_networks.BBFNetwork(num_actions=num_actions, width_scale=width)
    frozen = () if spr_weight > 0 else bbf_learning.SPR_ONLY_PREFIXES
    optimizer = bbf_learning.make_optimizer(frozen_prefixes=frozen)
    self.frozen = frozen
    self.config = bbf_learning.LearnerConfig(
        network=network, optimizer=optimizer, spr_weight=spr_weight,
        ht_reset_period=ht_reset_period, frozen_prefixes=frozen)
    online = bbf_networks.init_params(network, jax.random.PRNGKey(0))
    self.learner = LearnerState(
        online=online, target=jax.tree_util.tree_map(jnp.copy, online),
        opt_state=optimizer.init(online), grad_step=jnp.zeros((), jnp.int32),
        rng=jax.random.PRNGKey(1))
    self.support = jnp.linspace(-10.0, 10.0, 51)
    self.num_params = bbf_networks.count_params(online)

  def update(self, batches):
    self.learner, metrics = self.bl.train_groups(self.config, self.learner, batches,
                                                 self.support, self.jnp.float32(0.005))
    return metrics

  def time_updates(self, batches, calls: int) -> float:
    """Seconds per gradient step over ``calls`` jitted calls (device-synchronised)."""
    start = time.perf_counter()
    for _ in range(calls):
      self.update(batches)
    self.jax.block_until_ready(self.learner)
    groups = batches['state'].shape[0]
    return (time.perf_counter() - start) / (calls * groups)

  def time_periodic_reset(self, repeats: int = 3) -> float:
    sp = ('params/encoder',) + (('params/transition_model',) if not self.frozen else ())
    reinit = ('params/projection', 'params/head') + (
        ('params/predictor',) if not self.frozen else ())

    def reset():
      out = self.bl.reset_networks(
          self.config.network, self.config.optimizer, self.learner, 0.5, 0.5,
          sp_prefixes=sp, reinit_prefixes=reinit, frozen_prefixes=self.frozen)
      self.jax.block_until_ready(out)
    reset()  # compile
    start = time.perf_counter()
    for _ in range(repeats):
      reset()
    return (time.perf_counter() - start) / repeats


def bench_width(width: int, args) -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  batches = random_batches(args.groups, args.batch, args.jumps)
  learners = {}
  for name, (spr, period) in CONFIGS.items():
    learner = Learner(width, spr, period, args.num_actions)
    t0 = time.perf_counter()
    learner.update(batches)
    jax.block_until_ready(learner.learner)
    print(f'width {width} {name}: compiled in {time.perf_counter() - t0:.1f} s',
          file=sys.stderr)
    learners[name] = learner
  samples = {name: [] for name in learners}
  for r in range(args.rounds):
    for name, learner in learners.items():
      samples[name].append(learner.time_updates(batches, args.calls))
    print(f'width {width}: round {r + 1}/{args.rounds} done', file=sys.stderr)
  ms = {name: 1000 * statistics.median(s) for name, s in samples.items()}

  # One H&T reset: the same update with a reset at every gradient step, minus the update.
  every_step = Learner(width, 0.0, 1, args.num_actions)
  every_step.update(batches)
  jax.block_until_ready(every_step.learner)
  with_reset = 1000 * statistics.median(
      [every_step.time_updates(batches, args.calls) for _ in range(args.rounds)])
  return {
      'params': {n: l.num_params for n, l in learners.items()},
      'ms_per_gradient_step': ms,
      'ht_ratio': {'no_spr': ms['bbf_ht'] / ms['bbf'],
                   'spr': ms['bbf_ssl_ht'] / ms['bbf_ssl']},
      'one_ht_reset_ms': with_reset - ms['bbf'],
      'one_periodic_reset_ms': {
          'no_spr': 1000 * learners['bbf'].time_periodic_reset(),
          'spr': 1000 * learners['bbf_ssl'].time_periodic_reset()},
  }


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog='python -m atari100k.bench_bbf', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--widths', type=int, nargs='+', default=[1, 4],
                      help='encoder width scales to time (BBF: 4)')
  parser.add_argument('--rounds', type=int, default=3, help='interleaved timing rounds')
  parser.add_argument('--calls', type=int, default=3,
                      help='jitted calls per configuration per round (2 gradient steps each)')
  parser.add_argument('--groups', type=int, default=2, help='gradient steps per jitted call')
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--jumps', type=int, default=5)
  parser.add_argument('--num-actions', '--num_actions', dest='num_actions', type=int,
                      default=18, metavar='N',
                      help='actions of the Q head (default 18, the full Atari set)')
  parser.add_argument('--out', default='bench_results', help='folder for bbf_bench.json')
  return parser


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)

  import jax  # pylint: disable=import-outside-toplevel
  report = {'device': str(jax.devices()[0]), 'jax': jax.__version__, 'rounds': args.rounds,
            'calls_per_round': args.calls, 'gradient_steps_per_call': args.groups,
            'batch': args.batch, 'widths': {}}
  for width in args.widths:
    report['widths'][str(width)] = bench_width(width, args)

  print(f'BBF update on {report["device"]} (batch {args.batch}, {args.groups} gradient steps '
        'per jitted call, replay sampling excluded)')
  print(f'{"width":>5s} {"config":12s} {"params":>11s} {"ms/step":>9s} {"H&T ratio":>10s}')
  for width, r in report['widths'].items():
    for name, ms in r['ms_per_gradient_step'].items():
      ratio = ''
      if name.endswith('_ht'):
        ratio = f'{r["ht_ratio"]["spr" if "ssl" in name else "no_spr"]:.3f}'
      print(f'{width:>5s} {name:12s} {r["params"][name]:11,d} {ms:9.1f} {ratio:>10s}')
    print(f'{width:>5s} one H&T reset: {r["one_ht_reset_ms"]:.1f} ms; one periodic reset: '
          f'{r["one_periodic_reset_ms"]["no_spr"]:.1f} ms (no SPR), '
          f'{r["one_periodic_reset_ms"]["spr"]:.1f} ms (SPR)')
  os.makedirs(args.out, exist_ok=True)
  files.write_atomically(os.path.join(args.out, 'bbf_bench.json'), json.dumps(report, indent=1))
  return 0


if __name__ == '__main__':
  sys.exit(main())
