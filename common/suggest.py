"""The "did you mean" hint of every unknown-name error (agent, game, baseline, data set)."""

from __future__ import annotations

import difflib
from typing import Iterable


def did_you_mean(name: object, choices: Iterable[str]) -> str:
  """``" Did you mean 'Pong'?"`` for the choice closest to ``name``, or '' if none is close.

  A choice equal to ``name`` but for letter case wins over spelling neighbours ('drq_eps' ->
  'DrQ_eps'). The result starts with a space, ready to follow the error's first sentence.
  """
  choices = list(choices)
  text = str(name)
  same_but_case = [c for c in choices if c.lower() == text.lower()]
  close = same_but_case or difflib.get_close_matches(text, choices, n=1)
  return f' Did you mean {close[0]!r}?' if close else ''
