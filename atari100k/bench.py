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


def time_bare_update(agent, num_updates: int) -> float:
  """Seconds per call of the jitted update alone, on one batch sampled and augmented before
  the clock starts: Dopamine's ``full_rainbow_agent.train`` for the stock agent and for our
  agents' stock path, ``train_with_plasticity`` (EMA, H&T) for the others."""
  # pylint: disable=import-outside-toplevel,protected-access
  import jax
  import jax.numpy as jnp
  import numpy as np
  from dopamine.jax.agents.full_rainbow import full_rainbow_agent
  from agents import drq
  agent._sample_from_replay_buffer()
  batch = agent.replay_elements
  rng, rng1, rng2 = jax.random.split(agent._rng, num=3)
  states = jax.device_put(agent.train_preprocess_fn(batch['state'], rng=rng1))
  next_states = jax.device_put(agent.train_preprocess_fn(batch['next_state'], rng=rng2))
  args = [agent.network_def, agent.online_params, agent.target_network_params, agent.optimizer,
          agent.optimizer_state, states, jnp.asarray(batch['action']), next_states,
          jnp.asarray(batch['reward']), jnp.asarray(batch['terminal']),
          jnp.ones(len(batch['action']), np.float32), agent._support, agent.cumulative_gamma,
          agent._double_dqn, agent._distributional, agent._mse_loss, rng]
  tau = getattr(agent, '_target_update_tau', None)
  if getattr(agent, 'uses_stock_update', True):  # True: Dopamine's own agent
    call = lambda: full_rainbow_agent.train(*args)  # noqa: E731
  else:
    call = lambda: drq.train_with_plasticity(  # noqa: E731
        *args, agent._grad_step, jnp.float32(tau or 1.0), use_ema=tau is not None,
        ht_reset_period=agent._ht_reset_period, ht_reset_optimizer=agent._ht_reset_optimizer)
  jax.block_until_ready(call())  # compiled
  start = time.perf_counter()
  for _ in range(num_updates):
    out = call()
  jax.block_until_ready(out)
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
  bare_samples = {name: [] for name in agents}
  for r in range(args.rounds):
    for name, agent in agents.items():
      samples[name].append(time_updates(agent, args.updates))
      bare_samples[name].append(time_bare_update(agent, args.updates))
    print(f'round {r + 1}/{args.rounds} done', file=sys.stderr)
  ms = {name: 1000 * statistics.median(s) for name, s in samples.items()}
  bare = {name: 1000 * statistics.median(s) for name, s in bare_samples.items()}
  base = ms.get('stock')
  bare_base = bare.get('stock')
  report = {'device': str(jax.devices()[0]), 'rounds': args.rounds,
            'updates_per_round': args.updates, 'ms_per_update': ms,
            'ms_per_bare_update': bare,
            'ratio_to_stock': {n: (v / base if base else None) for n, v in ms.items()},
            'full_step_to_stock_bare_update': {
                n: (v / bare_base if bare_base else None) for n, v in ms.items()}}
  if 'drq_sp' in agents:
    report['sp_reset_ms'] = 1000 * time_reset(agents['drq_sp'])
  print(f'{"agent":10s} {"full step ms":>12s} {"updates/s":>10s} {"vs stock step":>14s} '
        f'{"bare update ms":>15s} {"step / stock bare":>18s}')
  for name, v in ms.items():
    ratio = f'{v / base:.3f}' if base else '-'
    to_bare = f'{v / bare_base:.3f}' if bare_base else '-'
    print(f'{name:10s} {v:12.2f} {1000 / v:10.1f} {ratio:>14s} {bare[name]:15.2f} '
          f'{to_bare:>18s}')
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
