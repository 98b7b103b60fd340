"""Process plumbing shared by the sweep's runs and the warm-start workers.

* ``die_with_parent``: on Linux, ask the kernel to send SIGTERM to this process when its parent
  dies (``prctl(PR_SET_PDEATHSIG)``), so a killed sweep or pool leaves no orphan computing a run
  nobody waits for. ``EXEC_DYING_WITH_PARENT`` does the same for a program started with
  ``python -c EXEC_DYING_WITH_PARENT program args...`` (from the repository root): it arms the
  signal, then execs the program in its place.
* ``xla_thread_flags``: the ``XLA_FLAGS`` that size XLA's CPU thread pools to a share of the
  machine. XLA ignores ``OMP_NUM_THREADS``; it sizes its pools by the machine's cores unless
  told, and several one-core workers would fight over every core.
"""

from __future__ import annotations

import ctypes
import signal

PR_SET_PDEATHSIG = 1

EXEC_DYING_WITH_PARENT = (
    'import os, sys\n'
    'from common.processes import die_with_parent\n'
    'die_with_parent()\n'
    'os.execv(sys.argv[1], sys.argv[1:])\n')


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
  """Arms ``sig`` for when the parent dies; True if armed (Linux), False elsewhere."""
  try:
    return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig)) == 0
  except (OSError, AttributeError):
    return False


def xla_thread_flags(threads: int, user_flags: str = '') -> str:
  """``XLA_FLAGS`` for ``threads`` CPU threads, the user's own flags last (so they win).

  One thread: no Eigen multithreading in XLA at all, and one intra-op thread.
  """
  threads = max(1, int(threads))
  if threads == 1:
    ours = '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'
  else:
    ours = f'intra_op_parallelism_threads={threads}'
  return f'{ours} {user_flags.strip()}'.strip()
