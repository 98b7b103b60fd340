"""Aggregate Atari-100k scores: human-normalized IQM, median, mean and optimality gap with 95%
stratified-bootstrap confidence intervals (rliable), as a table and plots.

Reads every result.json under RUNS_DIR (<RUNS_DIR>/<AGENT>/<Game>/seed_<k>/result.json), and/or
published baselines shipped with the package (--baselines) and score files in the same
{"Game": [raw score per run, ...]} JSON format (--score-files, agent named after the file stem).
Prints the table and writes, into --out: results.csv, results.md, per_game_scores.csv and
interval_estimates, performance_profiles, per_game_scores, probability_of_improvement as PNG
and PDF. With --paper-table, the Hare & Tortoise paper's Table 1 (its own numbers) is printed
under ours and written beside it (paper_table1.txt, paper_table1.md). With --standing NAME,
each run is placed among the published runs of baseline NAME on its game (median, IQR, share
of published runs below it), printed and written as standing_NAME.md/.csv.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from analysis import AnalysisError, DATA_DIR, loading, metrics
from common.files import write_atomically

DEFAULT_OUT_WITHOUT_RUNS = 'analysis_results'


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m analysis.aggregate',
      description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog=(
          'published baselines (--baselines): ' + ', '.join(loading.available_baselines()) +
          '\n\n'
          'outputs (in --out): results.txt/.md/.csv (the table), per_game_scores.csv, and as PNG\n'
          'and PDF: interval_estimates, performance_profiles, per_game_scores,\n'
          'probability_of_improvement; with --paper-table also paper_table1.txt/.md; with\n'
          '--standing NAME also standing_NAME.md/.csv.\n\n'
          'Unequal seed counts: rliable needs a runs x games matrix, so an agent with different\n'
          'numbers of runs on different games is aggregated over its n lowest-numbered seeds of\n'
          'every game (score files and published baselines: the first n listed; n = its\n'
          'smallest count); the table says so ("3-5 (3 used)"), e.g. BBF_RR8\'s 52-60 runs.\n'
          'Bad input (a game missing for an agent without --common-games, NaN or non-numeric\n'
          'scores, unknown games or baselines, no result.json) exits with status 2.\n\n'
          'examples:\n'
          '  python -m analysis.aggregate runs/ --baselines DrQ_eps SPR\n'
          '  python -m analysis.aggregate --baselines DrQ_eps SPR DER OTRainbow --out /tmp/a\n'
          '  python -m analysis.aggregate runs/ --baselines BBF BBF_noSPR --paper-table\n'
          '  python -m analysis.aggregate runs/drq_2021 --common-games --standing DrQ_eps\n'
          '  python -m analysis.aggregate runs/ --score-files my_agent.json --common-games \\\n'
          '      --compare my_agent DrQ_eps --reps 10000'))
  parser.add_argument('runs_dir', nargs='?', metavar='RUNS_DIR',
                      help='root of the run folders; may be left out when --baselines or '
                           '--score-files give the agents')
  parser.add_argument('--baselines', nargs='+', default=[], metavar='NAME',
                      help='published baselines to include (file stems of '
                           'analysis/data/published/*.json)')
  parser.add_argument('--score-files', '--score_files', nargs='+', default=[], metavar='FILE',
                      help='JSON score files {"Game": [raw score per run, ...]}; the agent is '
                           'named after the file stem')
  parser.add_argument('--reps', type=int, default=metrics.DEFAULT_REPS, metavar='N',
                      help='bootstrap replicates for the four aggregates (default %(default)s, '
                           'rliable\'s; 4 agents x 100 runs x 26 games take about 45 s on 2 '
                           'busy cores)')
  parser.add_argument('--curve-reps', '--curve_reps', type=int,
                      default=metrics.DEFAULT_CURVE_REPS, metavar='N',
                      help='bootstrap replicates for performance profiles and probability of '
                           'improvement (default %(default)s, rliable\'s default for profiles)')
  parser.add_argument('--out', metavar='DIR',
                      help='output folder (default RUNS_DIR/analysis, or '
                           f'./{DEFAULT_OUT_WITHOUT_RUNS} without RUNS_DIR)')
  parser.add_argument('--seed', type=int, default=0, metavar='S',
                      help='seeds numpy\'s global RNG before each bootstrap, for repeatable '
                           'intervals (default %(default)s)')
  parser.add_argument('--common-games', '--common_games', action='store_true',
                      dest='common_games',
                      help='when some agent lacks games, aggregate over the games all agents '
                           'have (default: stop with an error naming the missing games)')
  parser.add_argument('--compare', nargs=2, metavar=('X', 'Y'),
                      help='agents for the probability of improvement P(X > Y) (default: the '
                           'first two agents: run agents sorted by name, then --baselines, then '
                           '--score-files, in the order given)')
  parser.add_argument('--jobs', type=int, default=None, metavar='N',
                      help='processes for the bootstraps (default: the number of CPUs)')
  parser.add_argument('--reference-statistics', '--reference_statistics', action='store_true',
                      dest='reference',
                      help='hand rliable\'s own metric functions to its bootstrap instead of the '
                           'bit-for-bit equal fast versions (same numbers, several times slower)')
  parser.add_argument('--paper-table', '--paper_table', action='store_true', dest='paper_table',
                      help='print the Hare & Tortoise paper\'s Table 1 (the paper\'s point '
                           'estimates and GPU hours, with the named configuration and published '
                           'baseline of each row) under our table, and write it as '
                           'paper_table1.txt/.md')
  parser.add_argument('--standing', metavar='NAME',
                      help='place each run (RUNS_DIR and --score-files) among the published '
                           'runs of baseline NAME on its game: the baseline\'s median, '
                           'interquartile range and share of runs below ours; printed and '
                           'written as standing_NAME.md/.csv')
  parser.add_argument('--no-plots', '--no_plots', action='store_true', dest='no_plots',
                      help='write the table only')
  parser.add_argument('--skip-failed', '--skip_failed', action='store_true', dest='skip_failed',
                      help='leave out runs that diverged (failed.json) instead of stopping with '
                           'an error naming them; the table\'s notes count them')
  return parser


def _check_args(args) -> None:
  if not args.runs_dir and not args.baselines and not args.score_files:
    raise AnalysisError('Nothing to analyze: give RUNS_DIR (the root of the run folders), '
                        '--baselines NAME ... (' + ', '.join(loading.available_baselines()) +
                        ') or --score-files FILE.json ...')
  for flag, value in (('--reps', args.reps), ('--curve-reps', args.curve_reps)):
    if value < 1:
      raise AnalysisError(f'{flag} must be a positive number of bootstrap replicates, got '
                          f'{value}.')
  if not 0 <= args.seed < 2 ** 32:
    raise AnalysisError(f'--seed must be in [0, 2**32), got {args.seed}.')
  if args.jobs is not None and args.jobs < 1:
    raise AnalysisError(f'--jobs must be at least 1, got {args.jobs}.')


def _output_dir(args) -> str:
  out = args.out or (os.path.join(args.runs_dir, 'analysis') if args.runs_dir
                     else DEFAULT_OUT_WITHOUT_RUNS)
  package_dir = os.path.dirname(DATA_DIR)
  if os.path.realpath(out) in (os.path.realpath(package_dir), os.path.realpath(DATA_DIR)):
    raise AnalysisError(f'--out {out!r} is the analysis package itself; choose another folder.')
  try:
    os.makedirs(out, exist_ok=True)
  except OSError as e:
    raise AnalysisError(f'Cannot create the output folder {out!r} ({e.strerror}).') from None
  return out


def _load(args):
  agents, summary = [], None
  if args.runs_dir:
    agents, summary = loading.load_runs(args.runs_dir, skip_failed=args.skip_failed)
  agents += [loading.load_baseline(name) for name in args.baselines]
  agents += [loading.load_score_file(path) for path in args.score_files]
  return agents, summary


def _standings(args, agents):
  """The --standing rows of every agent that is not a published baseline ([] without it)."""
  if not args.standing:
    return []
  from analysis import standing  # pylint: disable=import-outside-toplevel
  baseline = next((a for a in agents if a.source == 'published' and a.name == args.standing),
                  None) or loading.load_baseline(args.standing)
  ours = [a for a in agents if a.source != 'published']
  if not ours:
    raise AnalysisError(f'--standing {args.standing} places runs among the published ones: '
                        'give RUNS_DIR or --score-files.')
  return [row for agent in ours for row in standing.standings(agent, baseline)]


def _compare_pair(args, names):
  if args.compare:
    unknown = [n for n in args.compare if n not in names]
    if unknown:
      raise AnalysisError(f'--compare: no agent named {", ".join(map(repr, unknown))}; the '
                          f'agents are {", ".join(names)}.')
    if args.compare[0] == args.compare[1]:
      raise AnalysisError('--compare needs two different agents.')
    return tuple(args.compare)
  return (names[0], names[1]) if len(names) >= 2 else None


def main(argv=None) -> int:
  """Runs the analysis; returns 0, or 2 after a one-paragraph error on stderr for bad input."""
  args = build_parser().parse_args(argv)
  start = time.perf_counter()
  try:
    _check_args(args)
    agents, summary = _load(args)
    matrices, games = loading.build_matrices(agents, common_games=args.common_games)
    names = [m.name for m in matrices]
    compare = _compare_pair(args, names)
    standing_rows = _standings(args, agents)
    out = _output_dir(args)
  except AnalysisError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2

  all_games = len({g for a in agents for g in a.scores})
  jobs = args.jobs or os.cpu_count() or 1
  print(f'Bootstrapping {len(matrices)} agent(s) over {len(games)} game(s): {args.reps} '
        f'replicates for the aggregates, {args.curve_reps} for profiles and P(X > Y), seed '
        f'{args.seed}, {jobs} process(es) ...', file=sys.stderr, flush=True)
  from analysis import report  # pylint: disable=import-outside-toplevel
  results = metrics.compute_all({m.name: m.scores for m in matrices}, reps=args.reps,
                                curve_reps=args.curve_reps, seed=args.seed, compare=compare,
                                jobs=jobs, reference=args.reference)
  bootstrap_s = time.perf_counter() - start
  table = report.build_table(matrices, results, args.reps, args.curve_reps, args.seed,
                             all_games=all_games, summary=summary)
  text = report.to_text(table)
  outputs = [('results.txt', text), ('results.md', report.to_markdown(table)),
             ('results.csv', report.to_csv(table)),
             ('per_game_scores.csv', report.per_game_csv(matrices))]
  if args.paper_table:
    from analysis import paper_table  # pylint: disable=import-outside-toplevel
    paper_text = paper_table.to_text()
    outputs += [(f'{paper_table.FILE_STEM}.txt', paper_text),
                (f'{paper_table.FILE_STEM}.md', paper_table.to_markdown())]
  if standing_rows:
    from analysis import standing  # pylint: disable=import-outside-toplevel
    standing_text = standing.to_markdown(standing_rows, args.standing)
    outputs += [(f'standing_{args.standing}.md', standing_text),
                (f'standing_{args.standing}.csv', standing.to_csv(standing_rows))]
  written = []
  for name, content in outputs:
    path = os.path.join(out, name)
    write_atomically(path, content)
    written.append(path)
  if not args.no_plots:
    from analysis import plots  # pylint: disable=import-outside-toplevel
    subtitle = f'{len(games)} games' + (' in common' if all_games > len(games) else '')
    written += plots.write_all(matrices, results, out, subtitle)
  print(text)
  if args.paper_table:
    print(paper_text)
  if standing_rows:
    print(standing_text)
  print('Wrote ' + ', '.join(os.path.basename(p) for p in written) + f' into {out}/')
  print(f'Took {time.perf_counter() - start:.1f} s (loading and bootstrap {bootstrap_s:.1f} s).',
        file=sys.stderr)
  return 0


if __name__ == '__main__':
  sys.exit(main())
