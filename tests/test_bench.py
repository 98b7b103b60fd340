"""``make bench``'s DrQ part runs and reports the full step and the bare update side by side."""

import json

from atari100k import bench


def test_bench_reports_full_steps_and_bare_updates(tmp_path, capsys):
  assert bench.main(['--rounds', '1', '--updates', '2', '--agents', 'stock', 'drq_ht',
                     '--out', str(tmp_path)]) == 0
  report = json.loads((tmp_path / 'drq_bench.json').read_text())
  for key in ('ms_per_update', 'ms_per_bare_update', 'full_step_to_stock_bare_update'):
    assert set(report[key]) == {'stock', 'drq_ht'} and all(v > 0 for v in report[key].values())
  assert 'step / stock bare' in capsys.readouterr().out
