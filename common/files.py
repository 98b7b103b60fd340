"""Atomic file writes: a reader sees the old file or the new one, never a part.

The content goes to a temporary file in the same folder, is flushed and fsynced, then renamed
over the target and the folder entry fsynced, so that the rename itself survives a power cut.
If writing fails (disk full, an exception in the writer, a kill), the temporary file is
removed where possible and the previous file is left as it was; a temporary file a killed
process left behind is named ``<target>.tmp-<host>-<pid>`` and can be cleaned up by its owner.
"""

from __future__ import annotations

import os
import socket
from typing import BinaryIO, Callable, Union

Content = Union[bytes, str, Callable[[BinaryIO], object]]


def temporary_path(path: str) -> str:
  """The temporary file ``write_atomically`` writes before renaming it to ``path``: named by
  host and pid, so that two machines sharing a folder (a sweep's lock on NFS) never collide."""
  return f'{path}.tmp-{socket.gethostname()}-{os.getpid()}'


def write_atomically(path: str, data: Content) -> None:
  """Writes ``data`` to ``path`` atomically and durably.

  Args:
    path: the target file; its folder must exist.
    data: bytes, a str (written as UTF-8), or a function that writes to the binary file
      object it is given (``lambda f: fig.savefig(f, format='png')``, ``np.save``...).

  Raises:
    OSError: the write failed; ``path`` still holds its previous content (if any).
  """
  tmp = temporary_path(path)
  try:
    with open(tmp, 'wb') as f:
      if callable(data):
        data(f)
      else:
        f.write(data.encode() if isinstance(data, str) else data)
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
