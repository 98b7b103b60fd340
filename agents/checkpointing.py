"""The resumable state every agent of this suite shares, for the runner's checkpoints.

Both agent families keep their learner (``agents.learner_state.LearnerState``: online and
target parameters, optax state, gradient-step counter, PRNG key), an agent-step counter, a log
of resets and a replay buffer. ``agent_state`` returns them as a tree of plain values and
numpy arrays (pytrees flattened to ``{leaf path: array}``), which ``atari100k.checkpoint_file``
writes without pickle; ``restore_agent_state`` puts them back into a freshly built agent, using its own pytrees as
templates, and raises ``CheckpointMismatch`` naming the first difference when the saved state
belongs to another configuration (other widths, another optimizer, another game's actions).
Each agent adds what is its own (the replay buffer, BBF's annealing cycle) and drops the
interrupted episode's partial data after a load.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from agents import plasticity


class CheckpointMismatch(ValueError):
  """A saved state that does not fit the agent it is loaded into."""


def flatten_tree(tree) -> dict[str, np.ndarray]:
  """``{leaf path: numpy array}`` of a pytree, in flattening order ('params/Dense_0/kernel')."""
  leaves = jax.device_get(jax.tree_util.tree_leaves(tree))
  return dict(zip(plasticity.leaf_paths(tree), (np.asarray(leaf) for leaf in leaves)))


def unflatten_like(template, flat: dict, what: str):
  """The pytree of ``template``'s structure holding the arrays of ``flat`` (from flatten_tree).

  Raises:
    CheckpointMismatch: a leaf missing, extra, or of another shape or dtype.
  """
  paths = plasticity.leaf_paths(template)
  template_leaves, treedef = jax.tree_util.tree_flatten(template)
  missing = [p for p in paths if p not in flat]
  extra = [p for p in flat if p not in set(paths)]
  if missing or extra:
    raise CheckpointMismatch(
        f'{what}: the saved state has {len(flat)} arrays, this agent {len(paths)}'
        + (f'; missing here: {", ".join(missing[:3])}' if missing else '')
        + (f'; not in this agent: {", ".join(extra[:3])}' if extra else ''))
  leaves = []
  for path, leaf in zip(paths, template_leaves):
    saved = np.asarray(flat[path])
    if saved.shape != np.shape(leaf) or saved.dtype != np.asarray(leaf).dtype:
      raise CheckpointMismatch(
          f'{what}: {path} was saved with shape {saved.shape} {saved.dtype}, this agent has '
          f'{np.shape(leaf)} {np.asarray(leaf).dtype}')
    leaves.append(jnp.asarray(saved))
  return jax.tree_util.tree_unflatten(treedef, leaves)


def agent_state(agent, replay: dict) -> dict:
  """The shared part of ``agent.checkpoint_state()``; ``replay`` is the buffer's own state.

  The gradient-step counter is written twice ('gradient_steps', 'grad_step'), as files
  written before the learner state was one pytree hold it.
  """
  learner = agent.learner
  grad_step = np.asarray(jax.device_get(learner.grad_step))
  return {
      'online_params': flatten_tree(learner.online),
      'target_params': flatten_tree(learner.target),
      'optimizer_state': flatten_tree(learner.opt_state),
      'training_steps': int(agent.training_steps),
      'gradient_steps': int(grad_step),
      'grad_step': grad_step,
      'rng': np.asarray(jax.device_get(learner.rng)),
      'reset_log': [[int(step), str(kind)] for step, kind in agent.reset_log],
      'replay': replay,
  }


def restore_agent_state(agent, state: dict) -> None:
  """Loads what ``agent_state`` saved into ``agent`` (not the replay buffer).

  Raises:
    CheckpointMismatch: the state does not fit this agent.
  """
  learner = agent.learner
  online = unflatten_like(learner.online, state['online_params'], 'online parameters')
  target = unflatten_like(learner.target, state['target_params'], 'target parameters')
  optimizer_state = unflatten_like(learner.opt_state, state['optimizer_state'],
                                   'optimizer state')
  rng = np.asarray(state['rng'])
  if rng.shape != np.shape(learner.rng):
    raise CheckpointMismatch(
        f'rng: saved shape {rng.shape}, this agent {np.shape(learner.rng)}')
  # 'gradient_steps' is the count: files of Dopamine's stock DrQ update written before the
  # learner state was one pytree kept 'grad_step' at 0 there.
  agent.learner = learner.replace(
      online=online, target=target, opt_state=optimizer_state,
      grad_step=jnp.asarray(int(state['gradient_steps']), jnp.int32), rng=jnp.asarray(rng))
  agent.training_steps = int(state['training_steps'])
  agent.reset_log = [(int(step), str(kind)) for step, kind in state['reset_log']]
