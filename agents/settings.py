"""Range checks for the numeric settings of gin-configurable classes, named by their binding.

Each configurable declares a table ``{parameter: rule}``; ``check`` applies it to the values the
class receives and raises one ``SettingError`` listing every bad value as the binding a user
writes (``DrQAgent.ht_reset_period = -5``) with the range it must lie in. The command line
applies the same tables to the parsed gin config before it builds anything
(``settings_from_gin``), so a bad value stops a run in its first second, not at step 20,000.
"""

from __future__ import annotations

import inspect
import numbers
from typing import Callable, Mapping

import gin


class SettingError(ValueError):
  """A setting outside its range; the message names each binding."""


Rule = tuple[Callable[[float], bool], str]

PERIOD: Rule = (lambda v: _is_int(v) and v >= 0,
                'an integer >= 0 (0 turns it off)')
POSITIVE_INT: Rule = (lambda v: _is_int(v) and v >= 1, 'an integer >= 1')
NON_NEGATIVE_INT: Rule = (lambda v: _is_int(v) and v >= 0, 'an integer >= 0')
FRACTION: Rule = (lambda v: _is_real(v) and 0.0 <= v <= 1.0, 'a number in [0, 1]')
RATE: Rule = (lambda v: _is_real(v) and 0.0 < v <= 1.0, 'a number in (0, 1]')
POSITIVE: Rule = (lambda v: _is_real(v) and v > 0.0, 'a number > 0')
NON_NEGATIVE: Rule = (lambda v: _is_real(v) and v >= 0.0, 'a number >= 0')


def one_of(*choices) -> Rule:
  """The rule of a setting that takes one of ``choices`` (names of behaviours, switches)."""
  return (lambda v: v in choices, 'one of ' + ', '.join(repr(c) for c in choices))


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
  return (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and value == value and abs(value) != float('inf'))


def check(owner: str, values: Mapping[str, object], rules: Mapping[str, Rule],
          optional: tuple[str, ...] = ()) -> None:
  """Raises SettingError naming every ``owner.name = value`` that breaks its rule.

  Args:
    owner: str, the configurable's gin name ('DrQAgent').
    values: {parameter: value}; parameters without a rule are not checked.
    rules: {parameter: (predicate, description of the allowed range)}.
    optional: parameters for which None is allowed (e.g. a tau of None = off).
  """
  problems = []
  for name, (ok, allowed) in rules.items():
    if name not in values:
      continue
    value = values[name]
    if value is None and name in optional:
      continue
    if not ok(value):
      problems.append(f'{owner}.{name} = {value!r}: must be {allowed}'
                      + (' or None' if name in optional else ''))
  if problems:
    raise SettingError('Bad setting' + ('s' if len(problems) > 1 else '') + ': '
                       + '; '.join(problems) + '. Change the binding (GIN=... with make, '
                       '--gin on the command line) or the gin file that sets it.')


def settings_from_gin(cls) -> dict:
  """The values ``cls`` (a gin configurable) will receive: its defaults, then the parsed gin
  bindings. Values that gin resolves only at call time (references, macros) are left out."""
  values = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}
  for name, value in gin.get_bindings(cls).items():
    if isinstance(value, (numbers.Number, str, type(None), tuple, list)):
      values[name] = value
    else:
      values.pop(name, None)
  return values
