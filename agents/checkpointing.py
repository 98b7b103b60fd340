"""The resumable state every agent of this suite shares, for the runner's checkpoints.

Both agent families keep online and target parameters, an optax state, agent and gradient step
counters, the jitted step counter ``_grad_step``, a PRNG key, a log of resets and a replay
buffer with ``to_state_dict``/``from_state_dict``. Each agent adds what is its own (BBF: the
annealing cycle) and drops the interrupted episode's partial data after a load.
"""

from __future__ import annotations

import jax.numpy as jnp


def agent_state(agent) -> dict:
  """The shared part of ``agent.checkpoint_state()``."""
  return {
      'online_params': agent.online_params,
      'target_params': agent.target_network_params,
      'optimizer_state': agent.optimizer_state,
      'training_steps': agent.training_steps,
      'gradient_steps': agent.gradient_steps,
      'grad_step': agent._grad_step,  # pylint: disable=protected-access
      'rng': agent._rng,  # pylint: disable=protected-access
      'reset_log': list(agent.reset_log),
      'replay': agent._replay.to_state_dict(),  # pylint: disable=protected-access
  }


def restore_agent_state(agent, state: dict) -> None:
  """Loads what ``agent_state`` saved into ``agent``."""
  # pylint: disable=protected-access
  agent.online_params = state['online_params']
  agent.target_network_params = state['target_params']
  agent.optimizer_state = state['optimizer_state']
  agent.training_steps = state['training_steps']
  agent.gradient_steps = state['gradient_steps']
  agent._grad_step = jnp.asarray(state['grad_step'])
  agent._rng = state['rng']
  agent.reset_log = list(state['reset_log'])
  agent._replay.from_state_dict(state['replay'])
