"""``make bench``'s DrQ part runs and reports the full step and the bare update side by side."""

import json

import pytest

from atari100k import bench


def test_bench_reports_full_steps_and_bare_updates(tmp_path, capsys):
  assert bench.main(['--rounds', '1', '--updates', '2', '--agents', 'stock', 'drq_ht',
                     '--out', str(tmp_path)]) == 0
  report = json.loads((tmp_path / 'drq_bench.json').read_text())
  for key in ('ms_per_update', 'ms_per_bare_update'):
    assert set(report[key]) == {'stock', 'drq_ht'} and all(v > 0 for v in report[key].values())
  for key in ('ratio_to_stock', 'full_step_to_stock_bare_update'):
    assert set(report[key]) == {'stock', 'drq_ht'}
    for r in report[key].values():
      assert 0 < r['min'] <= r['median'] <= r['max']
  assert report['ratio_to_stock']['stock'] == {'median': 1.0, 'min': 1.0, 'max': 1.0}
  assert 'step / stock bare' in capsys.readouterr().out


def test_round_ratios_are_taken_within_each_round():
  # A machine twice as slow in round 2 leaves the within-round ratio unchanged.
  r = bench.round_ratios([0.066, 0.132, 0.066], [0.060, 0.120, 0.066])
  assert r == pytest.approx({'median': 1.1, 'min': 1.0, 'max': 1.1})
