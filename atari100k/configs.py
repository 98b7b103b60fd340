"""The registry of named configurations: one ``gin/<name>.gin`` file per ``AGENT=`` name.

Base files (``*_base.gin``) and the files in ``gin/includes/`` (the Atari-100k protocol, the
corrections of the public BBF code) are included by the named files or by a binding
(``include "includes/bbf_corrections.gin"``) and are not agents themselves.
``parse_agent_config`` parses a named configuration plus command-line bindings and turns gin's
errors into messages that name the problem and the fix.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import gin

from common import quiet
from common.suggest import did_you_mean

GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'gin')


class ConfigError(ValueError):
  """A named configuration or a gin binding that cannot be used."""


def available_agents() -> list[str]:
  """Names of the named configurations (gin files that are not ``*_base.gin``)."""
  return sorted(f[:-4] for f in os.listdir(GIN_DIR)
                if f.endswith('.gin') and not f.endswith('_base.gin'))


def check_agent(name: str) -> str:
  agents = available_agents()
  if name in agents:
    return name
  raise ConfigError(
      f'Unknown agent {name!r}.{did_you_mean(name, agents)} Named configurations: {", ".join(agents)}. '
      f'Each is a file in {GIN_DIR}; pass one with AGENT=<name> (make) or --agent <name>.')


def gin_file(name: str) -> str:
  return os.path.join(GIN_DIR, f'{check_agent(name)}.gin')


def import_configurables() -> None:
  """Imports every module whose classes the gin files reference (which imports TensorFlow,
  through Dopamine), then hides the GPU from TensorFlow before it can run anything.

  The one place every entry point imports TensorFlow, Dopamine and gym through, so their
  start-up noise is filtered here (``common.quiet``; shown with the entry points' -v).
  """
  # pylint: disable=import-outside-toplevel,unused-import
  with quiet.library_imports():
    from atari100k import devices
    import agents.drq  # noqa: F401
    import agents.drq_network  # noqa: F401
    devices.hide_gpu_from_tensorflow()
    import atari100k.runner  # noqa: F401
    import agents.bbf  # noqa: F401


def _dopamine_rules() -> dict:
  """Ranges of the Dopamine settings our gin files bind (Dopamine's own defaults are valid)."""
  from agents import settings as s  # pylint: disable=import-outside-toplevel
  return {
      'Runner': {'training_steps': s.POSITIVE_INT, 'max_steps_per_episode': s.POSITIVE_INT},
      'DataEfficientAtariRunner': {'num_eval_episodes': s.POSITIVE_INT,
                                   'num_eval_envs': s.POSITIVE_INT,
                                   'max_noops': s.NON_NEGATIVE_INT},
      'JaxDQNAgent': {'gamma': s.FRACTION, 'update_horizon': s.POSITIVE_INT,
                      'min_replay_history': s.NON_NEGATIVE_INT,
                      'update_period': s.POSITIVE_INT, 'target_update_period': s.POSITIVE_INT,
                      'epsilon_train': s.FRACTION, 'epsilon_eval': s.FRACTION,
                      'epsilon_decay_period': s.NON_NEGATIVE_INT},
      'create_optimizer': {'learning_rate': s.POSITIVE, 'eps': s.POSITIVE},
      'ReplayBuffer': {'max_capacity': s.POSITIVE_INT, 'batch_size': s.POSITIVE_INT},
  }


def check_settings() -> None:
  """Applies the range checks of every configurable with a ``check_settings`` classmethod,
  and of the Dopamine settings in ``_dopamine_rules``, to the parsed gin config (defaults plus
  bindings), before anything is built.

  Raises:
    agents.settings.SettingError: the first configurable with a bad value, naming each binding.
  """
  # pylint: disable=import-outside-toplevel
  import agents.bbf
  import agents.drq
  import atari100k.runner
  from agents import settings
  from atari100k import environment
  for cls in (agents.drq.DrQAgent, agents.bbf.BBFSettings, atari100k.runner.Atari100kRunner):
    cls.check_settings(settings.settings_from_gin(cls))
  environment.check_settings(gin.get_bindings(environment.create_atari100k_environment))
  for name, rules in _dopamine_rules().items():
    settings.check(name, gin.get_bindings(name), rules)


def _moved_to(binding: str) -> str:
  """The new spelling of a binding of a BBF setting written on ``BBFAgent``, as before the
  settings became ``BBFSettings`` fields; '' for any other binding."""
  import agents.bbf  # pylint: disable=import-outside-toplevel
  target, _, value = binding.partition('=')
  configurable, _, parameter = target.strip().rpartition('.')
  fields = {f.name for f in dataclasses.fields(agents.bbf.BBFSettings)}
  if configurable == 'BBFAgent' and parameter in fields:
    return (f" BBF's settings are fields of BBFSettings: write "
            f"'BBFSettings.{parameter} = {value.strip()}'.")
  return ''


def parse_agent_config(name: str, bindings=()) -> None:
  """Clears gin, then parses ``gin/<name>.gin`` and ``bindings`` (a list of 'A.b = v').

  Raises:
    ConfigError: unknown agent name, or a binding gin cannot apply, with the reason.
  """
  path = gin_file(name)
  import_configurables()
  gin.clear_config()
  gin.add_config_file_search_path(GIN_DIR)
  level = logging.getLogger().level
  logging.getLogger().setLevel(logging.CRITICAL)  # gin logs each include path it tries
  try:
    gin.parse_config_file(path)
    for binding in bindings:
      _parse_binding(binding, path)
  finally:
    logging.getLogger().setLevel(level)


def _parse_binding(binding: str, path: str) -> None:
  """``gin.parse_config(binding)``; a binding gin cannot apply is a ConfigError naming why."""
  try:
    gin.parse_config(binding)
  except (ValueError, SyntaxError, KeyError, OSError) as e:
    message = str(e).strip().splitlines()[0].rstrip('.')
    raise ConfigError(
        f'The gin binding {binding!r} cannot be applied: {message}.{_moved_to(binding)} '
        "A binding has the form 'Configurable.parameter = value', e.g. "
        "'DrQAgent.ht_reset_period = 8000' (or an include of a file in gin/, "
        '\'include "includes/bbf_corrections.gin"\'); '
        f'see {path} and the files it includes for the configurables and their '
        'parameters.') from None
