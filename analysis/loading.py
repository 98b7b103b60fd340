"""Loading scores: run folders (``result.json``), published baselines and score files, into one
runs x games matrix of human-normalized scores per agent.

Sources:

* run folders following the run-output contract, ``<RUNS_DIR>/<AGENT>/<Game>/seed_<k>/result.json``
  (searched recursively; the agent, game, seed and ``score`` are read from the file itself). A
  ``seed_<k>`` folder without ``result.json`` is an unfinished run: counted, not an error. A
  folder with ``failed.json`` holds a run that diverged: an error naming it, unless
  ``skip_failed`` (then left out and counted: dropping runs biases the aggregate). Folders
  named ``*.old-*`` hold runs superseded by ``--force`` (see ``atari100k.run``): skipped, counted.
* published baselines shipped with the package, ``analysis/data/published/<NAME>.json``;
* score files in the same format, ``{"Game": [score_run_1, score_run_2, ...]}`` (raw scores),
  the agent being named after the file stem.

Unequal seed counts. rliable's metrics and its stratified bootstrap need a rectangular
runs x games matrix (each game weighs the same in IQM, mean and optimality gap, and NaN is not
accepted). When an agent has different numbers of runs on different games, its matrix keeps, for
every game, the ``n`` runs with the lowest seed numbers (for score files: the first ``n`` in the
file), ``n`` being the agent's smallest count over the games aggregated. The choice of runs
depends only on seed numbers, never on scores, so it cannot favour an agent; the table states the
range of counts and ``n`` (e.g. ``3-5 (3 used)``) and a footnote names the runs left out.
Different agents may have different ``n``: rliable bootstraps each agent separately.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import numbers
import os
import re

import numpy as np

from analysis import DATA_DIR, AnalysisError, normalization
from atari100k.files import FAILED_FILE, RESULT_FILE
from common.suggest import did_you_mean

PUBLISHED_DIR = os.path.join(DATA_DIR, 'published')
_SEED_DIR = re.compile(r'^seed_\d+$')
_SUPERSEDED_DIR = re.compile(r'\.old-')
_MAX_LISTED_ERRORS = 3


@dataclasses.dataclass
class AgentScores:
  """Raw scores of one agent, as loaded.

  Attributes:
    name: the agent's name in tables and plots.
    source: 'runs', 'published' or 'score file'.
    origin: the folder or file the scores came from.
    scores: ``{game: [(seed, raw score), ...]}`` sorted by seed (score files: list position).
  """
  name: str
  source: str
  origin: str
  scores: dict[str, list[tuple[int, float]]]


@dataclasses.dataclass
class AgentMatrix:
  """The normalized runs x games matrix of one agent, ready for rliable.

  Attributes:
    name: the agent's name.
    source: 'runs', 'published' or 'score file'.
    games: the column names (the games aggregated, common to all agents).
    scores: float64 array (runs_used, len(games)) of human-normalized scores.
    run_counts: ``{game: runs available}`` for the aggregated games.
    runs_used: rows of ``scores``: the smallest of ``run_counts``.
  """
  name: str
  source: str
  games: list[str]
  scores: np.ndarray
  run_counts: dict[str, int]
  runs_used: int

  @property
  def equal_seeds(self) -> bool:
    return len(set(self.run_counts.values())) == 1

  @property
  def runs_left_out(self) -> int:
    return sum(self.run_counts.values()) - self.runs_used * len(self.games)

  def runs_label(self) -> str:
    """``'100'``, or ``'3-5 (3 used)'`` for unequal seed counts per game."""
    low, high = min(self.run_counts.values()), max(self.run_counts.values())
    return str(high) if low == high else f'{low}-{high} ({self.runs_used} used)'


@dataclasses.dataclass
class RunsSummary:
  """What was found under a runs folder besides the finished runs."""
  runs_dir: str
  finished: int = 0
  unfinished: list[str] = dataclasses.field(default_factory=list)
  failed: list[str] = dataclasses.field(default_factory=list)
  superseded: int = 0
  devices: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)


def _raise_collected(errors: list[str]) -> None:
  if not errors:
    return
  if len(errors) == 1:
    raise AnalysisError(errors[0])
  shown = ' '.join(errors[:_MAX_LISTED_ERRORS])
  more = len(errors) - _MAX_LISTED_ERRORS
  tail = f' ... and {more} more problem(s) of this kind.' if more > 0 else ''
  raise AnalysisError(f'{len(errors)} problems in the input: {shown}{tail}')


def _check_number(value, source: str, what: str) -> float:
  """Returns ``value`` as a finite float, or raises ``AnalysisError`` naming ``source``."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise AnalysisError(f'{source}: {what} is {value!r} ({type(value).__name__}), not a number. '
                        'Scores must be JSON numbers (raw game scores).')
  value = float(value)
  if not math.isfinite(value):
    raise AnalysisError(f'{source}: {what} is {value}, not a finite number (a run whose '
                        'evaluation produced no episode writes NaN). Re-run it, or remove the '
                        'file to leave the run out.')
  return value


def _read_json(path: str):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, UnicodeDecodeError, ValueError) as e:
    raise AnalysisError(f'{path}: cannot be read as JSON ({e}).') from None


def _read_result(path: str) -> tuple[str, str, int, float, str]:
  """Returns (agent, game, seed, score, device) of one ``result.json``."""
  data = _read_json(path)
  if not isinstance(data, dict):
    raise AnalysisError(f'{path}: expected a JSON object (the run-output contract), '
                        f'found {type(data).__name__}.')
  missing = [k for k in ('agent', 'game', 'seed', 'score') if k not in data]
  if missing:
    raise AnalysisError(f'{path}: the key(s) {", ".join(missing)} are missing; a result.json '
                        'holds at least agent, game, seed and score.')
  agent = data['agent']
  if not isinstance(agent, str) or not agent.strip():
    raise AnalysisError(f'{path}: "agent" is {agent!r}, expected a non-empty name.')
  game = normalization.check_game(data['game'], path)
  seed = data['seed']
  if isinstance(seed, bool) or not isinstance(seed, int):
    raise AnalysisError(f'{path}: "seed" is {seed!r}, expected an integer.')
  score = _check_number(data['score'], path, 'the score')
  return agent.strip(), game, seed, score, _device_of(data)


def _device_of(result: dict) -> str:
  """'gpu (NVIDIA H200)' from a result.json's ``device`` (runs before it was recorded:
  'unrecorded')."""
  device = result.get('device')
  if not isinstance(device, dict) or 'backend' not in device:
    return 'unrecorded'
  return f'{device["backend"]} ({device.get("device_kind", "?")})'


def load_runs(runs_dir: str, skip_failed: bool = False
              ) -> tuple[list[AgentScores], RunsSummary]:
  """Reads every ``result.json`` under ``runs_dir``; one ``AgentScores`` per agent, sorted by name.

  Args:
    runs_dir: str, the root of the run folders.
    skip_failed: bool, leave diverged runs (``failed.json``) out instead of refusing them.

  Raises:
    AnalysisError: no such folder, no finished run in it, a diverged run (unless
      ``skip_failed``), or unusable result files (all the files at fault are counted, the first
      few named).
  """
  if not os.path.isdir(runs_dir):
    raise AnalysisError(f'The runs folder {runs_dir!r} does not exist or is not a folder. Give '
                        'the root of the run folders (<RUNS_DIR>/<AGENT>/<Game>/seed_<k>/), or '
                        'leave RUNS_DIR out and compare --baselines/--score-files only.')
  summary = RunsSummary(runs_dir=runs_dir)
  found: dict[tuple[str, str, int], str] = {}
  by_agent: dict[str, dict[str, list[tuple[int, float]]]] = {}
  errors: list[str] = []
  for folder, subfolders, files in os.walk(runs_dir):
    superseded = [d for d in subfolders if _SUPERSEDED_DIR.search(d)]
    summary.superseded += len(superseded)
    subfolders[:] = sorted(d for d in subfolders if d not in superseded)
    if RESULT_FILE not in files:
      if FAILED_FILE in files:
        summary.failed.append(folder)
      elif _SEED_DIR.match(os.path.basename(folder)):
        summary.unfinished.append(folder)
      continue
    path = os.path.join(folder, RESULT_FILE)
    try:
      agent, game, seed, score, device = _read_result(path)
    except AnalysisError as e:
      errors.append(str(e))
      continue
    key = (agent, game, seed)
    if key in found:
      errors.append(f'{path} and {found[key]} both hold agent {agent!r}, game {game}, seed '
                    f'{seed}: keep one of them.')
      continue
    found[key] = path
    by_agent.setdefault(agent, {}).setdefault(game, []).append((seed, score))
    where = summary.devices.setdefault(agent, {})
    where[device] = where.get(device, 0) + 1
  if summary.failed and not skip_failed:
    names = [os.path.relpath(p, runs_dir) for p in sorted(summary.failed)]
    shown = ', '.join(names[:_MAX_LISTED_ERRORS]) + (
        f' and {len(names) - _MAX_LISTED_ERRORS} more' if len(names) > _MAX_LISTED_ERRORS else '')
    errors.append(
        f'{len(names)} run(s) under {runs_dir!r} diverged (failed.json, no result): {shown}. '
        'An aggregate without them is biased toward the runs that survived; pass '
        '--skip-failed to leave them out anyway (the table then says how many).')
  _raise_collected(errors)
  summary.finished = len(found)
  if not found:
    unfinished = (f' It holds {len(summary.unfinished)} run folder(s) without result.json '
                  '(unfinished runs).' if summary.unfinished else '')
    raise AnalysisError(
        f'No result.json under {runs_dir!r}: there is no finished run to analyze.{unfinished} '
        'A run writes <RUNS_DIR>/<AGENT>/<Game>/seed_<k>/result.json when its final evaluation '
        'ends (make atari ...). To look at published agents only, leave RUNS_DIR out: '
        'python -m analysis.aggregate --baselines DrQ_eps SPR.')
  agents = []
  for agent in sorted(by_agent):
    scores = {g: sorted(v) for g, v in by_agent[agent].items()}
    agents.append(AgentScores(agent, 'runs', runs_dir, scores))
  return agents, summary


def load_score_file(path: str, name: str | None = None, source: str = 'score file') -> AgentScores:
  """Reads a ``{"Game": [raw score per run, ...]}`` JSON file; the agent is named ``name`` or,
  by default, after the file stem."""
  if not os.path.isfile(path):
    raise AnalysisError(f'The score file {path!r} does not exist. A score file is a JSON object '
                        '{"Game": [score_run_1, score_run_2, ...], ...} of raw game scores.')
  data = _read_json(path)
  if not isinstance(data, dict) or not data:
    raise AnalysisError(f'{path}: expected a non-empty JSON object {{"Game": [score_run_1, ...], '
                        f'...}} of raw game scores, found {type(data).__name__}.')
  errors = []
  scores = {}
  for game, values in data.items():
    try:
      game = normalization.check_game(game, path)
      if not isinstance(values, list) or not values:
        raise AnalysisError(f'{path}: the value of {game!r} is {values!r}, expected a non-empty '
                            'list of raw scores, one per run.')
      scores[game] = [(i, _check_number(v, path, f'score {i} of {game}'))
                      for i, v in enumerate(values)]
    except AnalysisError as e:
      errors.append(str(e))
  _raise_collected(errors)
  if name is None:
    name = os.path.splitext(os.path.basename(path))[0]
  return AgentScores(name, source, path, scores)


def available_baselines() -> list[str]:
  """Names (file stems) of the published baselines shipped in ``analysis/data/published/``."""
  return sorted(os.path.splitext(os.path.basename(p))[0]
                for p in glob.glob(os.path.join(PUBLISHED_DIR, '*.json')))


def load_baseline(name: str) -> AgentScores:
  """The shipped published scores of baseline ``name`` (a file stem, e.g. ``DrQ_eps``)."""
  available = available_baselines()
  if name not in available:
    raise AnalysisError(f'Unknown baseline {name!r}.{did_you_mean(name, available)} '
                        'The published baselines shipped with '
                        f'the package are: {", ".join(available)}. For other agents pass a '
                        'score file with --score-files FILE.json.')
  return load_score_file(os.path.join(PUBLISHED_DIR, f'{name}.json'), name, 'published')


def _describe_missing(agent: AgentScores, union: list[str]) -> str:
  """'beta lacks Boxing (has 2 of the 3)', or 'drq has only Pong, Boxing (2 of the 26 games)'."""
  has = [g for g in union if g in agent.scores]
  missing = [g for g in union if g not in agent.scores]
  if len(missing) > len(has):
    return f'{agent.name} has only {", ".join(has)} ({len(has)} of the {len(union)} games)'
  return f'{agent.name} lacks {", ".join(missing)} (has {len(has)} of the {len(union)})'


def build_matrices(agents: list[AgentScores], common_games: bool = False
                   ) -> tuple[list[AgentMatrix], list[str]]:
  """Normalized runs x games matrices over the games every agent has.

  Args:
    agents: the loaded agents (distinct names).
    common_games: aggregate over the games all agents share when some agent lacks games;
      otherwise that is an error.
  Returns:
    (matrices in the order of ``agents``, the games aggregated in canonical order).
  Raises:
    AnalysisError: no agent, duplicate names, games missing without ``common_games``, or no
      game common to all agents.
  """
  if not agents:
    raise AnalysisError('Nothing to analyze: give a RUNS_DIR with finished runs, --baselines '
                        'NAME ... or --score-files FILE ...')
  names = [a.name for a in agents]
  duplicates = sorted({n for n in names if names.count(n) > 1})
  if duplicates:
    origins = '; '.join(f'{a.name} from {a.origin}' for a in agents if a.name in duplicates)
    raise AnalysisError(f'Two sources give the same agent name ({", ".join(duplicates)}): '
                        f'{origins}. Rename a score file (the agent is named after its stem) or '
                        'leave one of the sources out.')
  order = normalization.games()
  union = [g for g in order if any(g in a.scores for a in agents)]
  common = [g for g in union if all(g in a.scores for a in agents)]
  if len(common) < len(union):
    lacking = '; '.join(_describe_missing(a, union) for a in agents if len(a.scores) < len(union))
    if not common:
      raise AnalysisError(f'No game is common to all agents ({lacking}), so they cannot be '
                          'compared. Analyze them separately, or add the missing runs.')
    if not common_games:
      raise AnalysisError(
          f'Not every agent has every game: {lacking}. Aggregates are only comparable over the '
          f'same games: pass --common-games to aggregate over the {len(common)} '
          f'game{"s" if len(common) > 1 else ""} all agents have ({", ".join(common)}), or add '
          'the missing runs.')
  matrices = []
  for agent in agents:
    counts = {g: len(agent.scores[g]) for g in common}
    used = min(counts.values())
    raw = np.array([[score for _, score in agent.scores[g][:used]] for g in common]).T
    matrices.append(AgentMatrix(agent.name, agent.source, list(common),
                                np.ascontiguousarray(normalization.normalize_columns(raw, common)),
                                counts, used))
  return matrices, common
