"""Where a run computes: TensorFlow kept off the GPU, and the JAX device a run reports.

TensorFlow is here only as Dopamine's summary writer. Where CUDA libraries are installed (the
GPU install puts them in .venv for JAX) it would see the GPU too and take nearly all of its
memory at its first operation, so every entry point hides the GPU from it first thing (the
public BBF code's ``train.py`` does the same). ``describe`` names the JAX backend and device
kind for the run's start-up line and its ``result.json``.
"""

from __future__ import annotations


def hide_gpu_from_tensorflow() -> None:
  """Makes TensorFlow see no GPU. Call before TensorFlow runs anything (building an agent or a
  summary writer); harmless when there is no GPU."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  if not tf.config.get_visible_devices('GPU'):
    return  # no GPU, or hidden already
  try:
    tf.config.set_visible_devices([], 'GPU')
  except RuntimeError as e:  # TensorFlow already initialised its devices
    raise RuntimeError('TensorFlow initialised its devices before the GPU could be hidden '
                       'from it; call atari100k.devices.hide_gpu_from_tensorflow() before '
                       f'any TensorFlow operation ({e}).') from e


def describe() -> dict:
  """``{'backend': 'gpu', 'device_kind': 'NVIDIA H200', 'device_count': 1}`` of JAX's default
  devices (``'cpu'`` and the CPU's name where there is no accelerator)."""
  import jax  # pylint: disable=import-outside-toplevel
  devices = jax.devices()
  kind = devices[0].device_kind
  if jax.default_backend() == 'cpu':
    kind = _cpu_model() or kind
  return {'backend': jax.default_backend(), 'device_kind': kind, 'device_count': len(devices)}


def _cpu_model() -> str | None:
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return None
