"""Run files: where a run's folder is and the names of the files it holds.

The contract between the runner, the sweep and the analysis (this module imports nothing heavy,
so the sweep and the analysis use it without JAX or TensorFlow). Every run file is written with
``common.files.write_atomically``.
"""

from __future__ import annotations

import os

RESULT_FILE = 'result.json'  # written once the final evaluation ends
FAILED_FILE = 'failed.json'  # written instead when the run diverged


def run_folder(base_dir: str, agent: str, game: str, seed: int) -> str:
  """``<base_dir>/<agent>/<game>/seed_<seed>``: the folder of one run."""
  return os.path.join(base_dir, agent, game, f'seed_{seed}')
