"""Tests of ``analysis/``: human normalization, the four aggregates and their intervals against
rliable's own functions, the table over synthetic run folders, bad input, the plots, the
published BBF baselines against the paper's Table 1, and the paper's table (--paper-table)."""

import csv
import dataclasses
import json
import math
import os
import re

import numpy as np
import pytest
from rliable import library as rly
from rliable import metrics as rly_metrics

from analysis import aggregate, loading, metrics, normalization, paper_table
from atari100k import configs
from tests import helpers

RLIABLE_AGGREGATES = (rly_metrics.aggregate_iqm, rly_metrics.aggregate_median,
                      rly_metrics.aggregate_mean, rly_metrics.aggregate_optimality_gap)
FAST = ['--reps', '200', '--curve_reps', '50', '--jobs', '1']


def rliable_statistic(scores):
  return np.array([f(scores) for f in RLIABLE_AGGREGATES])


def published_matrix(name, runs=None):
  """Normalized runs x games matrix of a shipped baseline, computed here without ``loading``
  (``runs``: keep the first ``runs`` listed for each game)."""
  with open(os.path.join(loading.PUBLISHED_DIR, f'{name}.json')) as f:
    raw = json.load(f)
  with open(normalization.HUMAN_RANDOM_CSV) as f:
    table = {r['game']: (float(r['random']), float(r['human'])) for r in csv.DictReader(f)}
  matrix = np.array([[(s - table[g][0]) / (table[g][1] - table[g][0]) for s in raw[g][:runs]]
                     for g in table]).T
  # C order, like the package's matrices: numpy's sums over an axis follow the memory layout,
  # so rliable's median and mean of a Fortran-ordered copy can differ in the last bit.
  return np.ascontiguousarray(matrix)


def write_result(root, agent, game, seed, score, **extra):
  folder = os.path.join(root, agent, game, f'seed_{seed}')
  os.makedirs(folder, exist_ok=True)
  result = {'agent': agent, 'game': game, 'seed': seed, 'env_steps': 100_000,
            'gradient_steps': 98_400, 'eval_returns': [score], 'score': score, **extra}
  with open(os.path.join(folder, 'result.json'), 'w') as f:
    json.dump(result, f)
  return os.path.join(folder, 'result.json')


def make_runs(root, games=('Pong', 'Breakout', 'Boxing'), seeds=None):
  """alpha: 3 seeds on each game; beta: 2 seeds on Pong, 3 elsewhere (unequal)."""
  rng = np.random.default_rng(0)
  seeds = seeds or {'alpha': {g: 3 for g in games},
                    'beta': {g: (2 if g == 'Pong' else 3) for g in games}}
  for agent, per_game in seeds.items():
    for game in games:
      random_score, human_score = normalization.load_table()[game]
      for seed in range(per_game[game]):
        score = random_score + rng.uniform(-0.1, 1.5) * (human_score - random_score)
        write_result(root, agent, game, seed, float(score))
  return root


def run_main(argv, capsys):
  code = aggregate.main(argv)
  out, err = capsys.readouterr()
  assert 'Traceback' not in err
  return code, out, err


# ------------------------------------------------------------------ normalization
def test_normalization_of_known_values():
  assert helpers.normalize(-20.7, 'Pong') == 0.0
  assert helpers.normalize(14.6, 'Pong') == 1.0
  assert helpers.normalize(227.8, 'Alien') == 0.0
  assert helpers.normalize(7127.7, 'Alien') == 1.0
  np.testing.assert_array_equal(
      normalization.normalize_columns([[-20.7, 227.8], [14.6, 7127.7]], ['Pong', 'Alien']),
      [[0.0, 0.0], [1.0, 1.0]])
  assert len(normalization.games()) == 26 and normalization.games()[-1] == 'UpNDown'


# ------------------------------------------------------------------ metrics against rliable
@pytest.mark.parametrize('name, published_iqm', [('DrQ_eps', 0.280), ('SPR', 0.337)])
def test_published_point_estimates_equal_rliable(name, published_iqm):
  matrices, games = loading.build_matrices([loading.load_baseline(name)])
  assert games == list(normalization.games()) and matrices[0].scores.shape == (100, 26)
  expected_matrix = published_matrix(name)
  np.testing.assert_array_equal(matrices[0].scores, expected_matrix)
  estimates = metrics.aggregate_estimates(name, matrices[0].scores, reps=50)
  for value, rliable_function in zip(estimates.point, RLIABLE_AGGREGATES):
    assert value == rliable_function(expected_matrix)
  assert round(estimates.point[0], 3) == published_iqm
  assert estimates.point[0] == rly_metrics.aggregate_iqm(expected_matrix)


@pytest.mark.parametrize('name', ['DrQ_eps', 'SPR'])
def test_interval_bounds_equal_rliable_for_the_same_seed(name):
  scores = published_matrix(name)
  np.random.seed(7)
  expected_point, expected = rly.get_interval_estimates({name: scores}, rliable_statistic,
                                                        reps=300)
  for reference in (False, True):
    estimates = metrics.aggregate_estimates(name, scores, reps=300, seed=7, reference=reference)
    np.testing.assert_array_equal(estimates.low, expected[name][0])
    np.testing.assert_array_equal(estimates.high, expected[name][1])
    np.testing.assert_array_equal(estimates.point, expected_point[name])
  assert np.all(estimates.low <= estimates.point) and np.all(estimates.point <= estimates.high)
  other_seed = metrics.aggregate_estimates(name, scores, reps=300, seed=8)
  assert not np.array_equal(other_seed.low, estimates.low)


def test_fast_statistics_equal_rliable_bit_for_bit():
  rng = np.random.default_rng(1)
  for shape in [(100, 26), (3, 3), (2, 5), (1, 1), (7, 1), (5, 26), (4, 25)]:
    for _ in range(20):
      x = rng.standard_normal(shape) * rng.uniform(0.1, 5)
      y = rng.standard_normal((shape[0] + 1, shape[1]))
      if rng.random() < 0.5:  # ties
        x, y = np.round(x, 1), np.round(y, 1)
      if rng.random() < 0.3:  # another memory layout
        x = np.asfortranarray(x)
      np.testing.assert_array_equal(metrics.fast_aggregates(x), rliable_statistic(x))
      assert metrics.fast_probability_of_improvement(x, y) == \
          rly_metrics.probability_of_improvement(x, y)
      assert metrics.fast_probability_of_improvement(x, x) == 0.5
      taus = np.linspace(-1, 2, 13)
      np.testing.assert_array_equal(metrics.score_distribution(x, taus),
                                    rly.score_distributions(x, taus))
  drq, spr = published_matrix('DrQ_eps'), published_matrix('SPR')
  assert metrics.fast_probability_of_improvement(spr, drq) == \
      rly_metrics.probability_of_improvement(spr, drq)


def test_probability_of_improvement_and_profiles_equal_rliable():
  drq, spr = published_matrix('DrQ_eps')[:20], published_matrix('SPR')[:30]
  improvement = metrics.probability_of_improvement('SPR', spr, 'DrQ_eps', drq, reps=40, seed=3)
  np.random.seed(3)
  point, interval = rly.get_interval_estimates({'pair': (spr, drq)},
                                               rly_metrics.probability_of_improvement, reps=40)
  assert improvement.point == point['pair']
  assert (improvement.low, improvement.high) == tuple(np.ravel(interval['pair']))
  assert 0.5 < improvement.low < improvement.point < improvement.high < 1

  taus = np.linspace(0, 3, 31)
  profile = metrics.performance_profile('SPR', spr, taus, reps=60, seed=4)
  np.random.seed(4)
  fractions, cis = rly.create_performance_profile({'SPR': spr}, taus, reps=60)
  np.testing.assert_array_equal(profile.fraction, fractions['SPR'])
  np.testing.assert_array_equal(profile.low, cis['SPR'][0])
  np.testing.assert_array_equal(profile.high, cis['SPR'][1])


def test_results_do_not_depend_on_processes_or_other_agents():
  scores = {'DrQ_eps': published_matrix('DrQ_eps')[:30], 'SPR': published_matrix('SPR')[:30]}
  taus = metrics.profile_taus(list(scores.values()))  # the profiles' common x axis
  both = metrics.compute_all(scores, reps=100, curve_reps=20, compare=('SPR', 'DrQ_eps'), jobs=2,
                             taus=taus)
  alone = metrics.compute_all({'SPR': scores['SPR']}, reps=100, curve_reps=20, jobs=1,
                              taus=taus)
  np.testing.assert_array_equal(both.estimates['SPR'].low, alone.estimates['SPR'].low)
  np.testing.assert_array_equal(both.profiles['SPR'].high, alone.profiles['SPR'].high)
  assert both.improvement.x == 'SPR' and alone.improvement is None


# ------------------------------------------------------------------ the table over run folders
def test_table_over_synthetic_runs(tmp_path, capsys):
  runs = make_runs(str(tmp_path / 'runs'))
  os.makedirs(os.path.join(runs, 'alpha', 'Pong', 'seed_9', 'checkpoints'))  # unfinished
  old = write_result(runs, 'alpha', 'Pong', 0, 1e6)  # superseded by --force: not counted
  os.rename(os.path.dirname(old), os.path.dirname(old) + '.old-20240101-000000')
  make_runs(runs, seeds={'alpha': {g: 1 for g in ('Pong', 'Breakout', 'Boxing')}})  # seed_0 back
  code, out, err = run_main([runs] + FAST, capsys)
  assert code == 0, err

  agents, summary = loading.load_runs(runs)
  assert [a.name for a in agents] == ['alpha', 'beta'] and summary.finished == 17
  assert len(summary.unfinished) == 1 and summary.superseded == 1
  matrices, games = loading.build_matrices(agents)
  assert games == ['Boxing', 'Breakout', 'Pong']  # canonical (alphabetical) order
  alpha, beta = matrices
  assert alpha.scores.shape == (3, 3) and beta.scores.shape == (2, 3)
  # beta keeps its two lowest seeds on every game
  raw_beta_boxing = [s for seed, s in agents[1].scores['Boxing'] if seed < 2]
  np.testing.assert_array_equal(beta.scores[:, 0], helpers.normalize(raw_beta_boxing, 'Boxing'))
  lines = {line.split()[0]: line for line in out.splitlines() if line.startswith(('alpha',
                                                                                 'beta'))}
  for matrix in matrices:
    iqm = rly_metrics.aggregate_iqm(matrix.scores)
    assert f'{iqm:.3f} [' in lines[matrix.name]
  assert lines['alpha'].split()[-1] == '3' and lines['alpha'].split()[-2] == '3'
  assert lines['beta'].rstrip().endswith('2-3 (2 used)') and lines['beta'].split()[-4] == '3'
  assert 'beta: unequal seed counts per game (2-3)' in out
  assert 'lowest-numbered seeds' in out and '2 run(s) are left out' in out
  assert '1 unfinished run(s)' in out and 'alpha/Pong/seed_9' in out
  assert '1 superseded run folder(s)' in out
  assert 'P(alpha > beta)' in out

  out_dir = os.path.join(runs, 'analysis')
  with open(os.path.join(out_dir, 'results.csv')) as f:
    rows = list(csv.DictReader(f))
  assert [r['agent'] for r in rows] == ['alpha', 'beta']
  assert float(rows[0]['iqm']) == rly_metrics.aggregate_iqm(alpha.scores)
  assert (rows[1]['runs_min'], rows[1]['runs_max'], rows[1]['runs_used']) == ('2', '3', '2')
  assert float(rows[1]['iqm_low']) <= float(rows[1]['iqm']) <= float(rows[1]['iqm_high'])
  with open(os.path.join(out_dir, 'results.md')) as f:
    markdown = f.read()
  assert markdown.startswith('| Agent | Source | IQM |') and '2-3 (2 used)' in markdown
  assert sorted(os.listdir(out_dir)) == sorted(
      ['results.txt', 'results.md', 'results.csv', 'per_game_scores.csv'] +
      [f'{s}.{e}' for s in ('interval_estimates', 'performance_profiles', 'per_game_scores',
                            'probability_of_improvement') for e in ('png', 'pdf')])

  # the same folder again: the outputs inside RUNS_DIR do not disturb the loading
  assert run_main([runs, '--no-plots'] + FAST, capsys)[0] == 0


def test_plots_are_written_as_png_and_pdf(tmp_path, capsys):
  score_file = tmp_path / 'mine.json'
  drq = json.load(open(os.path.join(loading.PUBLISHED_DIR, 'DrQ_eps.json')))
  score_file.write_text(json.dumps({g: [v * 1.1 for v in runs[:5]] for g, runs in drq.items()}))
  out_dir = tmp_path / 'out'
  code, out, err = run_main(['--baselines', 'DrQ_eps', 'SPR', '--score_files', str(score_file),
                             '--compare', 'mine', 'DrQ_eps', '--out', str(out_dir)] + FAST,
                            capsys)
  assert code == 0, err
  assert 'P(mine > DrQ_eps)' in out and 'score file' in out
  for stem in ('interval_estimates', 'performance_profiles', 'per_game_scores',
               'probability_of_improvement'):
    png, pdf = out_dir / f'{stem}.png', out_dir / f'{stem}.pdf'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and png.stat().st_size > 5000
    assert pdf.read_bytes()[:5] == b'%PDF-' and pdf.stat().st_size > 2000
  assert not [p for p in os.listdir(out_dir) if '.tmp-' in p]  # atomic writes leave nothing


def test_baselines_only_default_output_folder(tmp_path, capsys, monkeypatch):
  monkeypatch.chdir(tmp_path)
  code, out, err = run_main(['--baselines', 'DrQ_eps', '--no-plots'] + FAST, capsys)
  assert code == 0, err
  assert out.splitlines()[2].startswith('DrQ_eps')
  assert os.path.isfile(tmp_path / aggregate.DEFAULT_OUT_WITHOUT_RUNS / 'results.csv')


# ------------------------------------------------------------------ bad input
def test_missing_game_fails_and_common_games_aggregates(tmp_path, capsys):
  runs = make_runs(str(tmp_path / 'runs'), seeds={
      'alpha': {'Pong': 2, 'Breakout': 2, 'Boxing': 2}, 'beta': {'Pong': 2, 'Breakout': 2,
                                                                 'Boxing': 0}})
  code, out, err = run_main([runs] + FAST, capsys)
  assert code == 2 and out == ''
  assert 'beta lacks Boxing (has 2 of the 3)' in err and '--common-games' in err
  code, out, err = run_main([runs, '--common-games'] + FAST, capsys)
  assert code == 0, err
  assert '--common-games: aggregated over the 2 games all agents have (Breakout, Pong)' in out

  code, _, err = run_main([runs, '--baselines', 'SPR'] + FAST, capsys)
  assert code == 2 and 'alpha has only Boxing, Breakout, Pong (3 of the 26 games)' in err


@pytest.mark.parametrize('score, expected', [
    (float('nan'), 'the score is nan, not a finite number'),
    ('12.5', "the score is '12.5' (str), not a number"),
    (None, 'the score is None (NoneType), not a number'),
])
def test_bad_scores_name_the_file(tmp_path, capsys, score, expected):
  runs = make_runs(str(tmp_path / 'runs'))
  bad = write_result(runs, 'beta', 'Boxing', 1, score)
  code, out, err = run_main([runs] + FAST, capsys)
  assert code == 2 and out == ''
  assert err.startswith(f'error: {bad}: {expected}')


def test_unknown_game_names_the_file_and_lists_the_games(tmp_path, capsys):
  runs = make_runs(str(tmp_path / 'runs'))
  bad = write_result(runs, 'beta', 'Pongg', 0, 3.0)
  code, _, err = run_main([runs] + FAST, capsys)
  assert code == 2
  assert f"{bad}: unknown game 'Pongg'. Did you mean 'Pong'?" in err
  assert all(game in err for game in normalization.games())

  score_file = tmp_path / 'other.json'
  score_file.write_text(json.dumps({'Pong': [1.0], 'Space Invaders': [3.0]}))
  code, _, err = run_main(['--score_files', str(score_file)] + FAST, capsys)
  assert code == 2 and f"{score_file}: unknown game 'Space Invaders'" in err


def test_empty_folder_and_unfinished_runs_only(tmp_path, capsys):
  code, _, err = run_main([str(tmp_path)] + FAST, capsys)
  assert code == 2 and 'No result.json under' in err and 'no finished run' in err
  os.makedirs(tmp_path / 'drq' / 'Pong' / 'seed_0')
  code, _, err = run_main([str(tmp_path)] + FAST, capsys)
  assert code == 2 and '1 run folder(s) without result.json (unfinished runs)' in err
  code, _, err = run_main([str(tmp_path / 'nowhere')] + FAST, capsys)
  assert code == 2 and 'does not exist' in err


def test_unknown_baseline_and_other_argument_errors(tmp_path, capsys):
  code, _, err = run_main(['--baselines', 'drq_eps'] + FAST, capsys)
  assert code == 2 and "Unknown baseline 'drq_eps'. Did you mean 'DrQ_eps'?" in err
  assert ', '.join(loading.available_baselines()) in err
  code, _, err = run_main(FAST, capsys)
  assert code == 2 and 'Nothing to analyze' in err
  code, _, err = run_main(['--baselines', 'SPR', 'DER', '--compare', 'SPR', 'BBF'] + FAST,
                          capsys)
  assert code == 2 and "no agent named 'BBF'" in err
  code, _, err = run_main(['--baselines', 'SPR', '--reps', '0'], capsys)
  assert code == 2 and '--reps must be a positive' in err
  runs = make_runs(str(tmp_path / 'runs'), seeds={'SPR': {'Pong': 1, 'Breakout': 1,
                                                          'Boxing': 1}})
  code, _, err = run_main([runs, '--baselines', 'SPR'] + FAST, capsys)
  assert code == 2 and 'same agent name (SPR)' in err
  with pytest.raises(SystemExit) as exit_info:
    aggregate.main(['--help'])
  assert exit_info.value.code == 0
  assert '--common-games' in capsys.readouterr().out


def test_unequal_published_run_counts_across_agents(capsys, tmp_path):
  """SimPLe has 5 runs per game, SPR 100: each agent is bootstrapped over its own runs."""
  code, out, err = run_main(['--baselines', 'SPR', 'SimPLe', '--no-plots', '--out',
                             str(tmp_path)] + FAST, capsys)
  assert code == 0, err
  assert out.splitlines()[3].split()[-1] == '5'
  assert not math.isnan(float(out.splitlines()[3].split()[2]))


# ------------------------------------------------------------------ BBF and the paper's Table 1
# The paper's Table 1 rows (IQM, median, mean, optimality gap) that the public BBF code's runs at
# replay ratio 2 reproduce: "BBF" with SSL from BBF.json, "BBF" without it from BBF_noSPR.json.
PAPER_BBF_ROWS = {'BBF': (0.940, 0.755, 2.175, 0.377), 'BBF_noSPR': (0.826, 0.711, 1.737, 0.397)}
# The whole table as the paper prints it: row, configuration, published baseline, GPU hours, IQM,
# median, mean, optimality gap.
PAPER_TABLE1 = [
    ('DrQ', 'drq', '', '0.5', '0.243', '0.193', '0.468', '0.642'),
    ('DrQ, S&P', 'drq_sp', '', '', '0.139', '0.138', '0.458', '0.728'),
    ('DrQ, H&T', 'drq_ht', '', '', '0.287', '0.260', '0.471', '0.617'),
    ('DrQ, HR 20k', 'drq_hr20k', '', '', '0.332', '0.254', '0.694', '0.580'),
    ('DrQ, HR 40k', 'drq_hr40k', '', '', '0.288', '0.241', '0.532', '0.607'),
    ('DrQ, HR 40k, H&T', 'drq_hr40k_ht', '', '', '0.328', '0.329', '0.584', '0.583'),
    ('BBF (S&P, HR)', 'bbf', 'BBF_noSPR', '1.4', '0.826', '0.711', '1.737', '0.397'),
    ('BBF (S&P, HR), H&T', 'bbf_ht', '', '', '0.891', '0.749', '1.719', '0.372'),
    ('BBF (S&P, HR), SSL', 'bbf_ssl', 'BBF', '2.8', '0.940', '0.755', '2.175', '0.377'),
]


def test_bbf_baselines_reproduce_the_papers_rows(tmp_path, capsys):
  """Through the command line's code path: the table's CSV holds rliable's point estimates."""
  code, out, err = run_main(['--baselines', 'BBF', 'BBF_noSPR', '--no-plots', '--out',
                             str(tmp_path)] + FAST, capsys)
  assert code == 0, err
  with open(tmp_path / 'results.csv') as f:
    rows = {r['agent']: r for r in csv.DictReader(f)}
  paper = {r.baseline: r for r in paper_table.TABLE1 if r.baseline}
  assert sorted(paper) == sorted(PAPER_BBF_ROWS)
  for name, expected in PAPER_BBF_ROWS.items():
    row = rows[name]
    assert (row['games'], row['runs_min'], row['runs_max']) == ('26', '14', '14')
    values = [float(row[k]) for k in ('iqm', 'median', 'mean', 'optimality_gap')]
    assert [round(v, 3) for v in values] == list(expected)
    # the package's copy of the paper's table names the baseline of the same numbers
    assert [paper[name].iqm, paper[name].median, paper[name].mean,
            paper[name].optimality_gap] == [f'{v:.3f}' for v in values]
    assert values == list(metrics.point_estimates(published_matrix(name)))


def test_bbf_rr8_uneven_runs_keep_the_first_listed(tmp_path, capsys):
  """BBF_RR8 has 52-60 runs per game: the first 52 listed of each game are aggregated
  (truncated, never padded), and rliable's stratified bootstrap resamples those 52 per game."""
  agent = loading.load_baseline('BBF_RR8')
  counts = {g: len(v) for g, v in agent.scores.items()}
  assert len(counts) == 26 and (min(counts.values()), max(counts.values())) == (52, 60)
  (matrix,), games = loading.build_matrices([agent])
  assert matrix.scores.shape == (52, 26) and games == list(normalization.games())
  expected = published_matrix('BBF_RR8', runs=52)
  np.testing.assert_array_equal(matrix.scores, expected)
  assert matrix.runs_label() == '52-60 (52 used)'
  assert matrix.runs_left_out == sum(counts.values()) - 52 * 26 == 156
  assert round(rly_metrics.aggregate_iqm(matrix.scores), 3) == 1.033

  estimates = metrics.aggregate_estimates('BBF_RR8', matrix.scores, reps=100, seed=5)
  np.random.seed(5)
  point, interval = rly.get_interval_estimates({'BBF_RR8': expected}, rliable_statistic,
                                               reps=100)
  np.testing.assert_array_equal(estimates.point, point['BBF_RR8'])
  np.testing.assert_array_equal(estimates.low, interval['BBF_RR8'][0])
  np.testing.assert_array_equal(estimates.high, interval['BBF_RR8'][1])

  code, out, err = run_main(['--baselines', 'BBF_RR8', 'BBF', '--out', str(tmp_path)] + FAST,
                            capsys)
  assert code == 0, err
  assert (tmp_path / 'per_game_scores.png').stat().st_size > 5000  # the plots take it too
  line = next(line for line in out.splitlines() if line.startswith('BBF_RR8'))
  assert line.split()[-4:] == ['26', '52-60', '(52', 'used)']
  assert ('BBF_RR8: unequal seed counts per game (52-60). rliable needs a rectangular runs x '
          'games matrix (every game weighs the same), so the 52 runs listed first in its file '
          'for each game are used and 156 run(s) are left out (per game: Alien 4, Amidar 8,'
          ) in out


def test_bbf_baselines_are_listed_and_misspellings_suggested(capsys):
  assert {'BBF', 'BBF_noSPR', 'BBF_RR8'} <= set(loading.available_baselines())
  code, _, err = run_main(['--baselines', 'bbf_nospr'] + FAST, capsys)
  assert code == 2 and "Unknown baseline 'bbf_nospr'. Did you mean 'BBF_noSPR'?" in err
  code, _, err = run_main(['--baselines', 'BBF_RR4'] + FAST, capsys)
  assert code == 2 and "Did you mean 'BBF_RR8'?" in err
  with pytest.raises(SystemExit):
    aggregate.main(['--help'])
  assert 'BBF, BBF_RR8, BBF_noSPR' in capsys.readouterr().out


def test_paper_table_rows_name_real_configurations_and_baselines():
  assert [dataclasses.astuple(r) for r in paper_table.TABLE1] == PAPER_TABLE1
  assert {r.agent for r in paper_table.TABLE1} <= set(configs.available_agents())
  assert {r.baseline for r in paper_table.TABLE1} - {''} <= set(loading.available_baselines())


def test_paper_table_under_ours_and_nothing_changes_without_it(tmp_path, capsys):
  with_dir, without_dir = tmp_path / 'with', tmp_path / 'without'
  argv = ['--baselines', 'BBF_noSPR', 'BBF', '--no-plots'] + FAST
  code, out, err = run_main(argv + ['--paper-table', '--out', str(with_dir)], capsys)
  assert code == 0, err
  code, plain, err = run_main(argv + ['--out', str(without_dir)], capsys)
  assert code == 0, err

  title = "The paper's Table 1 (the paper's own numbers, not computed here)"
  lines = out.splitlines()
  ours_at = next(i for i, line in enumerate(lines) if line.startswith('BBF_noSPR'))
  assert lines.index(title) > ours_at  # under our table
  header = lines[lines.index(title) + 2]
  assert re.split(r'\s{2,}', header)[:4] == [
      'Row (paper)', 'Configuration', 'Published scores', 'GPU hours']
  for row, agent, baseline, hours, *values in PAPER_TABLE1:
    line = next(line for line in lines if line.startswith(row + '  '))
    assert line.split('  ')[0] == row
    assert [c for c in line[len(row):].split(' ') if c] == [
        c for c in (agent, baseline, hours, *values) if c]
  assert '(Lee et al., ICML 2024)' in out and 'exactly as the paper prints them' in out
  assert 'BBF_noSPR gives "BBF (S&P, HR)", BBF gives "BBF (S&P, HR), SSL"' in out
  assert 'paper_table1.txt, paper_table1.md into' in out

  paper_text = (with_dir / 'paper_table1.txt').read_text()
  assert paper_text.startswith(title + '\n\n') and paper_text + '\n' in out
  markdown = (with_dir / 'paper_table1.md').read_text()
  assert markdown.startswith(f'**{title}**\n\n| Row (paper) | Configuration | Published scores '
                             '| GPU hours | IQM | Median | Mean | Optimality gap |\n'
                             '|---|---|---|--:|--:|--:|--:|--:|\n')
  assert '| BBF (S&P, HR), SSL | bbf_ssl | BBF | 2.8 | 0.940 | 0.755 | 2.175 | 0.377 |' in markdown

  # without the option: the same table and files, and no trace of the paper's
  assert sorted(os.listdir(with_dir)) == sorted(os.listdir(without_dir) +
                                                ['paper_table1.txt', 'paper_table1.md'])
  for name in os.listdir(without_dir):
    assert (with_dir / name).read_bytes() == (without_dir / name).read_bytes(), name

  def drop_wrote(text):  # the "Wrote ..." line names the folder and the files
    return [line for line in text.splitlines() if not line.startswith('Wrote ')]

  assert drop_wrote(out.replace(paper_text + '\n', '', 1)) == drop_wrote(plain)
  assert not [line for line in drop_wrote(plain) if 'paper' in line.lower()]


# ------------------------------------------------------------------ --standing
def test_standing_places_each_run_among_the_published_runs_of_its_game(tmp_path, capsys):
  published = loading.load_baseline('DrQ_eps').scores
  breakout = np.array([s for _, s in published['Breakout']])
  assault = np.array([s for _, s in published['Assault']])
  tie = float(np.sort(assault)[50])  # a score equal to a published run
  runs = str(tmp_path / 'runs')
  write_result(runs, 'drq', 'Breakout', 0, 19.3)
  write_result(runs, 'drq', 'Assault', 0, tie)
  write_result(runs, 'drq', 'Assault', 1, -1.0)  # below every published run
  out_dir = tmp_path / 'out'
  code, out, err = run_main([runs, '--common-games', '--standing', 'DrQ_eps', '--no-plots',
                             '--out', str(out_dir)] + FAST, capsys)
  assert code == 0, err
  with open(out_dir / 'standing_DrQ_eps.csv', newline='') as f:
    rows = {(r['game'], int(r['seed'])): r for r in csv.DictReader(f)}
  assert set(rows) == {('Breakout', 0), ('Assault', 0), ('Assault', 1)}
  row = rows[('Breakout', 0)]
  assert float(row['below']) == pytest.approx(np.mean(breakout < 19.3)) == 0.77
  assert float(row['median']) == pytest.approx(np.median(breakout))
  assert (float(row['q25']), float(row['q75'])) == pytest.approx(
      tuple(np.percentile(breakout, [25, 75])))
  assert int(row['baseline_runs']) == 100
  tied = rows[('Assault', 0)]
  assert float(tied['below']) == np.mean(assault < tie)
  assert float(tied['ties']) == np.mean(assault == tie) > 0
  assert float(rows[('Assault', 1)]['below']) == 0.0
  text = (out_dir / 'standing_DrQ_eps.md').read_text()
  assert text in out + '\n' and '| drq | Breakout | 0 | 19.3 | 16.2 | [14.7, 19.0] | 77% of 100 |' in text


def test_standing_needs_our_runs_and_a_known_baseline(tmp_path, capsys):
  code, _, err = run_main(['--baselines', 'SPR', '--standing', 'DrQ_eps'] + FAST, capsys)
  assert code == 2 and 'give RUNS_DIR or --score-files' in err
  runs = str(tmp_path / 'runs')
  write_result(runs, 'drq', 'Breakout', 0, 19.3)
  code, _, err = run_main([runs, '--standing', 'drq_eps'] + FAST, capsys)
  assert code == 2 and 'DrQ_eps' in err
  assert not (tmp_path / 'runs' / 'analysis').exists()
