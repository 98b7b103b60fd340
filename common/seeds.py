"""The seed syntax of every command line that runs several seeds (atari100k.sweep, warmstart.run).

``--seeds 5`` means seeds 0..4, ``3-6`` seeds 3, 4, 5, 6, ``0,2,7`` those three, and ``7,`` the
one seed 7 (a lone number is a count, so a single seed needs the comma).
"""

from __future__ import annotations

# The option's help, without its default (each command line says its own).
HELP = 'a count N (seeds 0..N-1), a range A-B or a list 0,3,7'


def is_count(spec: str) -> bool:
  """Whether ``spec`` is written as a seed count ('5'), not as a range ('3-6') or a list ('0,2,7').

  Looks at the form only; ``parse_seeds`` says whether the value is valid.
  """
  text = str(spec).strip()
  return ',' not in text and '-' not in text.lstrip('-')


def parse_seeds(spec: str) -> list[int]:
  """'5' -> seeds 0..4; '3-6' -> 3, 4, 5, 6; '0,2,7' -> those (a lone seed: '7,').

  Raises:
    ValueError: not one of these forms, no seed, a negative seed or a seed twice.
  """
  text = str(spec).strip()
  try:
    if ',' in text:
      seeds = [int(s) for s in text.split(',') if s.strip()]
    elif '-' in text.lstrip('-'):
      low, high = (int(s) for s in text.split('-', 1))
      seeds = list(range(low, high + 1))
    else:
      seeds = list(range(int(text)))
  except ValueError:
    seeds = []
  if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
    raise ValueError(f'--seeds {spec!r} is not a seed count or list: give a count N (seeds '
                     '0..N-1, e.g. 5), a range A-B (e.g. 5-9) or a comma list (e.g. 0,3,7; one '
                     'seed alone: 7,), with distinct non-negative seeds.')
  return seeds
