"""Run files: the names of the files a run folder holds, and atomic writes for them.

The names are the contract between the runner, the sweep and the analysis (this module imports
nothing heavy, so the sweep and the analysis read them without JAX or TensorFlow).

Atomic writes: a reader sees the old file or the new one, never a part. The content goes to a temporary file in the same folder, is flushed and fsynced, then renamed
over the target and the folder entry fsynced. If writing fails (disk full, a crash in the
writer), the temporary file is removed and the previous file is left as it was.
"""

from __future__ import annotations

import os

RESULT_FILE = 'result.json'  # written once the final evaluation ends
FAILED_FILE = 'failed.json'  # written instead when the run diverged


def write_atomically(path: str, data) -> None:
  """Writes ``data`` (bytes, or a function writing to a binary file object) to ``path``.

  Raises:
    OSError: the write failed; ``path`` still holds its previous content (if any).
  """
  tmp = f'{path}.tmp-{os.getpid()}'
  try:
    with open(tmp, 'wb') as f:
      if callable(data):
        data(f)
      else:
        f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    try:
      os.remove(tmp)
    except OSError:
      pass
    raise
  _fsync_folder(os.path.dirname(path) or '.')


def _fsync_folder(folder: str) -> None:
  """Makes the rename itself durable (POSIX); a no-op where folders cannot be opened."""
  try:
    fd = os.open(folder, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)
