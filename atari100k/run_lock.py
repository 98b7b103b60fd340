"""One run folder, one process: an exclusive ``flock`` on ``<run folder>/run.lock``.

The kernel drops the lock when its process ends, however it ends (kill -9 included), so a lock
is never stale. The file also holds the holder's host, pid and start time, for the message a
second process prints. The sweep's own ``sweep.lock`` (heartbeat-based, for several hosts) sits
beside it and guards the sweep's attempts; this one guards the training process itself.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time

LOCK_FILE = 'run.lock'


class FolderBusy(RuntimeError):
  """Another live process holds the run folder; the message names it."""


class RunLock:
  """``with RunLock(folder):`` holds the folder's lock for the block (or raises FolderBusy)."""

  def __init__(self, folder: str):
    self.folder = folder
    self.path = os.path.join(folder, LOCK_FILE)
    self._fd = None

  def acquire(self) -> 'RunLock':
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _read_holder(fd)
      os.close(fd)
      raise FolderBusy(
          f'{self.folder} is being run by another live process (pid {holder.get("pid", "?")} '
          f'on {holder.get("host", "?")}, since {holder.get("since", "?")}). Two processes '
          'writing one run folder would corrupt its checkpoint and results: wait for that run '
          'to end (or stop it), or use another --seed or --runs.') from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({'host': socket.gethostname(), 'pid': os.getpid(),
                             'since': time.strftime('%Y-%m-%d %H:%M:%S')}).encode())
    self._fd = fd
    return self

  def release(self) -> None:
    if self._fd is not None:
      os.close(self._fd)  # closing drops the flock; the file stays (harmless, reused)
      self._fd = None

  def __enter__(self) -> 'RunLock':
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()


def _read_holder(fd: int) -> dict:
  try:
    os.lseek(fd, 0, os.SEEK_SET)
    return json.loads(os.read(fd, 4096) or b'{}')
  except (OSError, ValueError):
    return {}
