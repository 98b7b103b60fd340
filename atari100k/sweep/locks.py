"""The sweep's lock file in each run folder (``sweep.lock``): one attempt at a run at a time.

The lock is created atomically and names its host, process, the run's child process and a token;
its modification time is a heartbeat that the attempt holding it refreshes every ``HEARTBEAT_S``.
A lock whose heartbeat is older than the stale limit, or whose processes on this host are all
dead, is broken, so that two sweeps (on one machine, or on several sharing the runs folder) never
write the same run and a crashed one does not block it for good.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid

from common.files import write_atomically

LOCK_FILE = 'sweep.lock'
HEARTBEAT_S = 60.0


def _pid_alive(pid) -> bool:
  try:
    os.kill(int(pid), 0)
  except ProcessLookupError:
    return False
  except (PermissionError, TypeError, ValueError, OverflowError):
    return True  # exists but not ours, or unreadable: assume alive
  return True


def read_lock(folder: str) -> dict | None:
  """The lock's content plus ``age_s`` (since its last heartbeat); None if there is none."""
  path = os.path.join(folder, LOCK_FILE)
  try:
    age_s = time.time() - os.path.getmtime(path)
  except FileNotFoundError:
    return None
  # Half-written or unreadable content ({}): judged by its age alone.
  return dict(read_json(path), age_s=age_s)


def lock_is_stale(holder: dict, stale_s: float) -> bool:
  """Stale: heartbeat older than ``stale_s``, or every process it names dead on this host."""
  if holder.get('age_s', 0) > stale_s:
    return True
  if holder.get('host') != socket.gethostname():
    return False
  pids = [p for p in (holder.get('pid'), holder.get('child_pid')) if p]
  return bool(pids) and not any(_pid_alive(p) for p in pids)


def _create_lock(path: str, content: dict) -> bool:
  try:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
  except FileExistsError:
    return False
  with os.fdopen(fd, 'w') as f:
    json.dump(content, f)
  return True


def acquire_lock(folder: str, stale_s: float, what: str = '') -> tuple[dict | None, dict | None]:
  """Takes the run folder's lock: returns (our lock, None), or (None, the live holder)."""
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, LOCK_FILE)
  mine = {'host': socket.gethostname(), 'pid': os.getpid(), 'child_pid': None,
          'since': time.strftime('%Y-%m-%d %H:%M:%S'), 'token': uuid.uuid4().hex, 'what': what}
  for _ in range(3):
    if _create_lock(path, mine):
      return mine, None
    holder = read_lock(folder)
    if holder is None:
      continue  # released meanwhile
    if not lock_is_stale(holder, stale_s):
      return None, holder
    # Break it: move it aside, then check that what moved is the stale lock we judged.
    aside = f'{path}.stale-{mine["token"]}'
    try:
      os.rename(path, aside)
    except FileNotFoundError:
      continue
    moved = read_json(aside)
    if moved.get('token') != holder.get('token'):
      try:  # a live lock taken meanwhile: put it back, or someone else holds a newer one
        os.link(aside, path)
      except FileExistsError:
        pass
      os.remove(aside)
      return None, moved
    os.remove(aside)
  return None, read_lock(folder) or {}


def read_json(path: str) -> dict:
  try:
    with open(path) as f:
      value = json.load(f)
    return value if isinstance(value, dict) else {}
  except (OSError, ValueError):
    return {}


def update_lock(folder: str, lock: dict, **changes) -> None:
  """Rewrites our lock (child pid, heartbeat) if it is still ours."""
  path = os.path.join(folder, LOCK_FILE)
  if read_json(path).get('token') != lock['token']:
    return
  lock.update(changes)
  write_atomically(path, json.dumps(lock))


def release_lock(folder: str, lock: dict) -> None:
  path = os.path.join(folder, LOCK_FILE)
  if read_json(path).get('token') == lock['token']:
    try:
      os.remove(path)
    except FileNotFoundError:
      pass
