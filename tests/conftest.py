"""Shared pytest fixtures: quiet TensorFlow, gin cleared around every test.

The repository root is importable through ``pythonpath = .`` in ``pytest.ini``.
"""

import os
import warnings

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')
warnings.filterwarnings('ignore', category=DeprecationWarning)

import gin  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def clear_gin():
  """Gin state is global: every test starts and ends with an empty config."""
  gin.clear_config()
  yield
  gin.clear_config()
