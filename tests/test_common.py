"""The shared pieces in ``common/``: atomic writes, "did you mean", process plumbing, the seed
syntax."""

import os
import subprocess
import sys
import time

import pytest

from common import processes, seeds
from common.files import temporary_path, write_atomically
from common.suggest import did_you_mean

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('data, expected', [
    (b'\x00bytes', b'\x00bytes'), ('text é', 'text é'.encode()),
    (lambda f: f.write(b'by a writer'), b'by a writer')])
def test_write_atomically_writes_bytes_text_or_a_writer(tmp_path, data, expected):
  path = str(tmp_path / 'out.bin')
  write_atomically(path, data)
  assert open(path, 'rb').read() == expected
  assert os.listdir(tmp_path) == ['out.bin']


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
  path = str(tmp_path / 'result.json')
  write_atomically(path, '{"old": 1}')

  def failing_writer(f):
    f.write(b'{"new": ')
    raise OSError(28, 'No space left on device')
  with pytest.raises(OSError, match='No space left'):
    write_atomically(path, failing_writer)
  assert open(path).read() == '{"old": 1}'
  assert os.listdir(tmp_path) == ['result.json']
  assert not os.path.exists(temporary_path(path))


def test_temporary_names_differ_by_host_and_process(tmp_path):
  name = os.path.basename(temporary_path(str(tmp_path / 'sweep.lock')))
  assert name.startswith('sweep.lock.tmp-') and name.endswith(f'-{os.getpid()}')


def test_did_you_mean():
  choices = ['Pong', 'Breakout', 'DrQ_eps']
  assert did_you_mean('Pongg', choices) == " Did you mean 'Pong'?"
  assert did_you_mean('drq_eps', choices) == " Did you mean 'DrQ_eps'?"  # case first
  assert did_you_mean('Zaxxon', choices) == ''
  assert did_you_mean(42, choices) == ''



@pytest.mark.parametrize('spec, expected', [
    ('5', [0, 1, 2, 3, 4]), (' 2 ', [0, 1]), (3, [0, 1, 2]), ('3-6', [3, 4, 5, 6]),
    ('4-4', [4]), ('0,2,7', [0, 2, 7]), ('7,2', [7, 2]), ('7,', [7]), ('1, 3', [1, 3])])
def test_seed_specs(spec, expected):
  assert seeds.parse_seeds(spec) == expected


@pytest.mark.parametrize('spec', ['x', '0', '', '-1', '-1,2', '1,1', '4-2', '2-x', '1.5', ','])
def test_bad_seed_specs_name_the_three_forms(spec):
  with pytest.raises(ValueError) as error:
    seeds.parse_seeds(spec)
  assert str(error.value) == (
      f'--seeds {spec!r} is not a seed count or list: give a count N (seeds 0..N-1, e.g. 5), a '
      'range A-B (e.g. 5-9) or a comma list (e.g. 0,3,7; one seed alone: 7,), with distinct '
      'non-negative seeds.')


def test_a_count_is_told_from_a_range_or_a_list():
  assert seeds.is_count('5') and seeds.is_count(' 12 ') and seeds.is_count(3)
  assert not seeds.is_count('3-6') and not seeds.is_count('0,2,7') and not seeds.is_count('7,')

def test_xla_thread_flags_put_the_users_flags_last():
  assert processes.xla_thread_flags(1) == (
      '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1')
  assert processes.xla_thread_flags(4, ' --xla_dump_to=/tmp/x ') == (
      'intra_op_parallelism_threads=4 --xla_dump_to=/tmp/x')
  assert processes.xla_thread_flags(0) == processes.xla_thread_flags(1)


def _alive(pid: int) -> bool:
  try:
    with open(f'/proc/{pid}/status') as f:
      return not any(line.startswith('State:') and 'Z' in line for line in f)
  except FileNotFoundError:
    return False


def _start_orphan(tmp_path, through_shim: bool) -> int:
  """Starts `sleep 60` from a parent process that exits at once; returns the sleep's pid."""
  pid_file = tmp_path / 'pid'
  argv = ('[sys.executable, "-c", ' + repr(processes.EXEC_DYING_WITH_PARENT) + ', '
          if through_shim else '[') + '"/bin/sleep", "60"]'
  parent = (
      'import subprocess, sys, time\n'
      f'p = subprocess.Popen({argv}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, '
      'stderr=subprocess.DEVNULL)\n'
      f'open({str(pid_file)!r}, "w").write(str(p.pid))\n'
      'time.sleep(1.0)\n')  # long enough for the child to arm the signal
  subprocess.run([sys.executable, '-c', parent], cwd=REPO_ROOT, timeout=30, check=True)
  return int(pid_file.read_text())


def _wait_until_gone(pid: int, seconds: float) -> bool:
  deadline = time.time() + seconds
  while _alive(pid) and time.time() < deadline:
    time.sleep(0.1)
  return not _alive(pid)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='prctl is Linux only')
def test_a_program_started_through_the_shim_dies_with_its_parent(tmp_path):
  plain = _start_orphan(tmp_path, through_shim=False)
  try:
    assert not _wait_until_gone(plain, 1.0)  # without the shim the orphan lives on
  finally:
    os.kill(plain, 9)
  assert _wait_until_gone(_start_orphan(tmp_path, through_shim=True), 10.0), (
      'the child outlived its parent')
