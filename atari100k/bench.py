"""Benchmark: gradient updates per second of our DrQ agents against Dopamine's stock agent.

``python -m atari100k.bench`` (``make bench``) builds, in one process and with the DrQ(eps)
settings of ``gin/drq_base.gin``, Dopamine's stock ``Atari100kRainbowAgent`` and our
``drq``, ``drq_ht``, ``drq_sp`` (and ``drq_ema``), fills each replay buffer with the same random
transitions, then times full training steps (replay sampling, augmentation, the jitted update,
target sync / EMA / H&T reset) and each agent's bare jitted update in interleaved rounds. The
frames are logged as Dopamine's runner logs them (a float64 array), so each agent pays the
replay cost it pays in a real run. It prints the median milliseconds per full step and per bare
update, and each agent's full step as a ratio to the stock agent's full step and to the stock
agent's bare update, taken within each round (this machine's speed drifts by up to 30% between
minutes; within a round it hits every agent alike), and writes them to
``bench_results/drq_bench.json``. Target: ``drq_ht``'s full step within 1.05x of the stock
agent's bare update.

S&P and head resets fire every 20k steps; their cost per fire is timed separately.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from common import quiet


def build(name: str, seed: int, bindings):
  """An agent of the named configuration (or 'stock': Dopamine's own class) on DrQ(eps)."""
  # pylint: disable=import-outside-toplevel
  import gin
  from atari100k import configs
  configs.import_configurables()  # TensorFlow and Dopamine, their start-up messages filtered
  from dopamine.labs.atari_100k import atari_100k_rainbow_agent
  from agents.drq import DrQAgent
  configs.parse_agent_config('drq' if name == 'stock' else name, bindings)
  if name == 'stock':
    gin.bind_parameter('DrQAgent.fix_replay_pipeline', False)
    return atari_100k_rainbow_agent.Atari100kRainbowAgent(num_actions=6, seed=seed)
  return DrQAgent(num_actions=6, seed=seed)


def fill(agent, num_transitions: int, seed: int = 0) -> None:
  """Logs random frames as Dopamine's ``DataEfficientAtariRunner`` does: in a float64 array
  of shape (1, 84, 84, 1), so that each agent stores them as it would in a real run."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  agent.eval_mode = False
  agent.reset_all(rng.integers(0, 255, (1, 84, 84, 1)).astype(np.float64))
  for k in range(num_transitions):
    obs = rng.integers(0, 255, (1, 84, 84, 1)).astype(np.float64)
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
  batch_args = [states, jnp.asarray(batch['action']), next_states,
                jnp.asarray(batch['reward']), jnp.asarray(batch['terminal']),
                jnp.ones(len(batch['action']), np.float32), agent._support,
                agent.cumulative_gamma, agent._double_dqn, agent._distributional,
                agent._mse_loss]
  tau = getattr(agent, '_target_update_tau', None)
  if getattr(agent, 'uses_stock_update', True):  # True: Dopamine's own agent
    call = lambda: full_rainbow_agent.train(  # noqa: E731
        agent.network_def, agent.online_params, agent.target_network_params, agent.optimizer,
        agent.optimizer_state, *batch_args, rng)
  else:
    learner = agent.learner.replace(rng=rng)
    call = lambda: drq.train_with_plasticity(  # noqa: E731
        agent.network_def, agent.optimizer, learner, *batch_args, jnp.float32(tau or 1.0),
        use_ema=tau is not None, ht_reset_period=agent._ht_reset_period,
        ht_reset_optimizer=agent._ht_reset_optimizer)
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


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog='python -m atari100k.bench', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--agents', nargs='+',
                      default=['stock', 'drq', 'drq_ht', 'drq_sp', 'drq_ema'])
  parser.add_argument('--rounds', type=int, default=15, help='interleaved timing rounds')
  parser.add_argument('--updates', type=int, default=20, help='updates per agent per round')
  parser.add_argument('--out', default='bench_results', help='folder for drq_bench.json')
  quiet.add_verbose_flag(parser)
  return parser


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  quiet.configure(args.verbose)

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
  report = summarize(samples, bare_samples)
  report.update({'device': str(jax.devices()[0]), 'rounds': args.rounds,
                 'updates_per_round': args.updates})
  if 'drq_sp' in agents:
    report['sp_reset_ms'] = 1000 * time_reset(agents['drq_sp'])
  print(format_table(report))
  if 'sp_reset_ms' in report:
    print(f'one S&P reset (jitted, every 20k steps): {report["sp_reset_ms"]:.1f} ms')
  from common import files  # pylint: disable=import-outside-toplevel
  os.makedirs(args.out, exist_ok=True)
  files.write_atomically(os.path.join(args.out, 'drq_bench.json'),
                         json.dumps(report, indent=1))
  return 0


def round_ratios(times: list[float], reference: list[float]) -> dict:
  """Median and range over rounds of ``times[r] / reference[r]``: each ratio is taken within
  one round, so the machine's drift between rounds (here up to 30%) cancels out."""
  ratios = [t / ref for t, ref in zip(times, reference)]
  return {'median': statistics.median(ratios), 'min': min(ratios), 'max': max(ratios)}


def summarize(samples: dict, bare_samples: dict) -> dict:
  """The report: median ms per full step and per bare update for each agent, and (when the
  stock agent ran) per-round ratios to the stock agent's full step and to its bare update."""
  report = {'ms_per_update': {n: 1000 * statistics.median(s) for n, s in samples.items()},
            'ms_per_bare_update': {n: 1000 * statistics.median(s)
                                   for n, s in bare_samples.items()}}
  if 'stock' in samples:
    report['ratio_to_stock'] = {n: round_ratios(s, samples['stock'])
                                for n, s in samples.items()}
    report['full_step_to_stock_bare_update'] = {
        n: round_ratios(s, bare_samples['stock']) for n, s in samples.items()}
  return report


def format_table(report: dict) -> str:
  def ratio(key, name):
    r = report.get(key, {}).get(name)
    return f'{r["median"]:.3f} ({r["min"]:.2f}-{r["max"]:.2f})' if r else '-'
  lines = [f'{"agent":10s} {"full step ms":>12s} {"updates/s":>10s} {"bare update ms":>15s} '
           f'{"step / stock step":>20s} {"step / stock bare":>20s}']
  for name, v in report['ms_per_update'].items():
    lines.append(f'{name:10s} {v:12.2f} {1000 / v:10.1f} '
                 f'{report["ms_per_bare_update"][name]:15.2f} '
                 f'{ratio("ratio_to_stock", name):>20s} '
                 f'{ratio("full_step_to_stock_bare_update", name):>20s}')
  lines.append('ratios: median over rounds of the ratio within each round (range in brackets)')
  return '\n'.join(lines)


def _no_schedule(agent):
  """The agent's train step with the env-step counter frozen (no periodic resets fire)."""
  original = agent._train_step  # pylint: disable=protected-access

  def step():
    original()
    agent.training_steps = 1
  return step


if __name__ == '__main__':
  sys.exit(main())
