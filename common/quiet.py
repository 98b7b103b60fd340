"""Quiet start-up for the entry points that import TensorFlow, Dopamine and Gym.

Importing Dopamine (which imports TensorFlow and gym) next to JAX prints lines that say nothing
about the run:

* absl's C++ log, written straight to the stderr file descriptor before ``absl::InitializeLog()``
  whatever ``TF_CPP_MIN_LOG_LEVEL`` says: cuDNN/cuFFT/cuBLAS "Unable to register factory" (the
  CUDA plugins are registered by TensorFlow and again by jaxlib) and XLA's "computation placer
  already registered";
* gym 0.2x's "Gym has been unmaintained" banner, printed at ``import gym``;
* DeprecationWarnings raised inside those libraries (TensorFlow Probability's at import), ignored
  from the first quiet block on (``LIBRARIES``);
* ALE's "A.L.E: Arcade Learning Environment" banner, logged when the first game is built.

Entry points call ``configure(verbose)`` once (their ``-v/--verbose`` flag) and wrap the imports
of those libraries in ``library_imports()``. Quiet (the default), that block sets
``TF_CPP_MIN_LOG_LEVEL=3`` unless it is set, captures what is written to the stderr file
descriptor and to ``sys.stderr`` meanwhile, and writes back every line that is not one of the
known ``NOISE`` lines: a real warning or error, ours or a library's, still shows. Verbose, the
block does nothing and the libraries print what they print.

Standard library only, like the rest of ``common``: ale_py is touched only once it is imported.
The module state is one flag, like ``logging``'s level: the mode is the process's.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
import tempfile
import warnings

NOISE = tuple(re.compile(pattern) for pattern in (
    # absl's C++ log before its initialisation, written at TensorFlow's import.
    r'^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR',
    r'Unable to register cu(DNN|FFT|BLAS) factory: Attempting to register factory for plugin',
    r'computation placer already registered\. Please check linkage',
    # TensorFlow's notes on the CPU instructions and oneDNN it could use.
    r'cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized',
    r'^To enable the following instructions: .* rebuild TensorFlow',
    r'oneDNN custom operations are on',
    # gym's banner (gym_notices), printed at `import gym`, which Dopamine does.
    r'^Gym has been unmaintained since 2022',
    r'^Please upgrade to Gymnasium, the maintained drop-in replacement of Gym',
    r'^See the migration guide at https://gymnasium\.farama\.org/',
))

# Packages whose DeprecationWarnings are theirs to fix, not ours; ours still show.
LIBRARIES = ('tensorflow', 'tensorflow_probability', 'tf_keras', 'keras', 'dopamine', 'gym',
             'gymnasium', 'jax', 'jaxlib', 'flax', 'optax', 'gin', 'absl', 'baselines')

_verbose = False


def configure(verbose: bool) -> None:
  """Sets the mode of every later ``library_imports()`` block: verbose shows the noise.

  Args:
    verbose: bool, True for an entry point's -v/--verbose.
  """
  global _verbose  # pylint: disable=global-statement
  _verbose = verbose


def is_verbose() -> bool:
  """The mode ``configure`` set (for an entry point that starts others, e.g. the GPU check)."""
  return _verbose


def add_verbose_flag(parser: argparse.ArgumentParser) -> None:
  """Adds -v/--verbose, the same flag on every entry point that imports these libraries."""
  parser.add_argument('-v', '--verbose', action='store_true',
                      help="show the libraries' start-up messages (TensorFlow, XLA, gym, ALE), "
                           'hidden by default')


def configure_from_argv(argv=None) -> None:
  """``configure`` from -v/--verbose in ``argv`` (``sys.argv[1:]`` when None), read before the
  entry point's own parser is built: building it may already import the libraries."""
  parser = argparse.ArgumentParser(add_help=False)
  add_verbose_flag(parser)
  known, _ = parser.parse_known_args(argv)
  configure(known.verbose)


def drop_noise(text: str) -> str:
  """``text`` without its lines that match ``NOISE`` (line endings kept)."""
  return ''.join(line for line in text.splitlines(keepends=True)
                 if not any(pattern.search(line) for pattern in NOISE))


@contextlib.contextmanager
def library_imports():
  """Wraps imports of TensorFlow, Dopamine and gym: see the module docstring."""
  if _verbose:
    _set_ale_logging('Info')
    yield
    return
  # Read by TensorFlow when it is first imported: a later setting has no effect.
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  for library in LIBRARIES:
    warnings.filterwarnings('ignore', category=DeprecationWarning, module=rf'{library}(\.|$)')
  python_stderr = io.StringIO()
  with tempfile.TemporaryFile() as fd_stderr:
    saved = _redirect_fd(2, fd_stderr.fileno())
    try:
      with contextlib.redirect_stderr(python_stderr):
        yield
    finally:
      if saved is not None:
        _flush_stderr()
        os.dup2(saved, 2)
        os.close(saved)
      fd_stderr.seek(0)
      captured = fd_stderr.read().decode('utf-8', 'replace') + python_stderr.getvalue()
      sys.stderr.write(drop_noise(captured))
      sys.stderr.flush()
      _set_ale_logging('Warning')  # ALE's banner is at Info level; its warnings still show


def _redirect_fd(fd: int, target: int):
  """Points ``fd`` at ``target``; returns a copy of the old ``fd`` (None if ``fd`` is closed)."""
  _flush_stderr()
  try:
    saved = os.dup(fd)
  except OSError:
    return None
  os.dup2(target, fd)
  return saved


def _flush_stderr() -> None:
  for stream in (sys.stderr, sys.__stderr__):
    if stream is not None:
      with contextlib.suppress(OSError, ValueError):
        stream.flush()


def _set_ale_logging(level: str) -> None:
  ale_py = sys.modules.get('ale_py')
  if ale_py is not None:
    ale_py.ALEInterface.setLoggerMode(getattr(ale_py.LoggerMode, level))
