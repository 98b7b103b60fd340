"""Benchmark: gradient updates per second of our DrQ agents against Dopamine's stock agent.

``python -m atari100k.bench`` (``make bench``) builds, in one process and with the DrQ(eps)
settings of ``gin/drq_base.gin``, Dopamine's stock ``Atari100kRainbowAgent`` and our
``drq``, ``drq_ht``, ``drq_sp`` (and ``drq_ema``), fills each replay buffer with the same random
transitions, then times full training steps (replay sampling, augmentation, the jitted update,
target sync / EMA / H&T reset) in interleaved rounds, so that machine noise hits every agent
alike. It prints the median milliseconds per update and the ratio to stock, and writes them to
``bench_results/drq_bench.json``. Targets: drq within 3% of stock, drq_ht within 5%.

S&P and head resets fire every 20k steps; their cost per fire is timed separately.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')


def build(name: str, seed: int, bindings):
  """An agent of the named configuration (or 'stock': Dopamine's own class) on DrQ(eps)."""
  # pylint: disable=import-outside-toplevel
  import gin
  from dopamine.labs.atari_100k import atari_100k_rainbow_agent
  from atari100k import configs
  from agents.drq import DrQAgent
  configs.parse_agent_config('drq' if name == 'stock' else name, bindings)
  if name == 'stock':
    gin.bind_parameter('DrQAgent.fix_replay_pipeline', False)
    return atari_100k_rainbow_agent.Atari100kRainbowAgent(num_actions=6, seed=seed)
  return DrQAgent(num_actions=6, seed=seed)


def fill(agent, num_transitions: int, seed: int = 0) -> None:
  import numpy as np  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  agent.eval_mode = False
  agent.reset_all(rng.integers(0, 255, (1, 84, 84, 1), dtype=np.uint8))
  for k in range(num_transitions):
    obs = rng.integers(0, 255, (1, 84, 84, 1), dtype=np.uint8)
    agent.log_transition(obs, np.array([k % 6]), np.array([1.0]),
                         np.array([float(k % 200 == 199)]), np.zeros(1))


def time_updates(agent, num_updates: int) -> float:
  """Seconds per training step (sample + augment + jitted update + sync), device-synced."""
  import jax  # pylint: disable=import-outside-toplevel
  start = time.perf_counter()
  for _ in range(num_updates):
    agent._train_step()  # pylint: disable=protected-access
  jax.block_until_ready(agent.online_params)
  return (time.perf_counter() - start) / num_updates


def time_reset(agent, repeats: int = 5) -> float:
  import jax  # pylint: disable=import-outside-toplevel
  agent._periodic_reset(sp_prefixes=agent._sp_prefixes, reinit_prefixes=(), kind='bench')
  jax.block_until_ready(agent.online_params)
  start = time.perf_counter()
  for _ in range(repeats):
    agent._periodic_reset(sp_prefixes=agent._sp_prefixes, reinit_prefixes=(), kind='bench')
  jax.block_until_ready(agent.online_params)
  return (time.perf_counter() - start) / repeats


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m atari100k.bench', description=__doc__)
  parser.add_argument('--agents', nargs='+',
                      default=['stock', 'drq', 'drq_ht', 'drq_sp', 'drq_ema'])
  parser.add_argument('--rounds', type=int, default=7, help='interleaved timing rounds')
  parser.add_argument('--updates', type=int, default=60, help='updates per agent per round')
  parser.add_argument('--out', default='bench_results', help='folder for drq_bench.json')
  args = parser.parse_args(argv)

  import jax  # pylint: disable=import-outside-toplevel
  bindings = ['JaxDQNAgent.min_replay_history = 1000']
  agents = {}
  for name in args.agents:
    agent = build(name, seed=0, bindings=bindings)
    fill(agent, 1200)
    agent.training_steps = 1  # avoid the periodic S&P/head-reset steps while timing
    agent._train_step = _no_schedule(agent)  # pylint: disable=protected-access
    time_updates(agent, 3)  # compile
    agents[name] = agent
  samples = {name: [] for name in agents}
  for r in range(args.rounds):
    for name, agent in agents.items():
      samples[name].append(time_updates(agent, args.updates))
    print(f'round {r + 1}/{args.rounds} done', file=sys.stderr)
  ms = {name: 1000 * statistics.median(s) for name, s in samples.items()}
  base = ms.get('stock')
  report = {'device': str(jax.devices()[0]), 'rounds': args.rounds,
            'updates_per_round': args.updates, 'ms_per_update': ms,
            'ratio_to_stock': {n: (v / base if base else None) for n, v in ms.items()}}
  if 'drq_sp' in agents:
    report['sp_reset_ms'] = 1000 * time_reset(agents['drq_sp'])
  print(f'{"agent":10s} {"ms/update":>10s} {"updates/s":>10s} {"time vs stock":>14s}')
  for name, v in ms.items():
    ratio = f'{v / base:.3f}' if base else '-'
    print(f'{name:10s} {v:10.2f} {1000 / v:10.1f} {ratio:>14s}')
  if 'sp_reset_ms' in report:
    print(f'one S&P reset (jitted, every 20k steps): {report["sp_reset_ms"]:.1f} ms')
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, 'drq_bench.json'), 'w') as f:
    json.dump(report, f, indent=1)
  return 0


def _no_schedule(agent):
  """The agent's train step with the env-step counter frozen (no periodic resets fire)."""
  original = agent._train_step  # pylint: disable=protected-access

  def step():
    original()
    agent.training_steps = 1
  return step


if __name__ == '__main__':
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  sys.exit(main())
