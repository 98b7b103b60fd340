"""DrQ's image augmentation in the two versions Dopamine has shipped, by name.

DrQ(eps) pads each 84x84 frame stack by 4 pixels (edge values), crops it back to 84x84 at a
random offset and multiplies it by a random intensity ``1 + 0.05 * clip(N(0, 1), -2, 2)``.
Dopamine changed how the offset is drawn in February 2022 (commit 1bb064b, "Jit data
augmentation functions"):

* ``'per_image'``       Dopamine 4.1.2 (``atari_100k_rainbow_agent.drq_image_augmentation``):
                        each image of the batch has its own offset, 0..7 on each axis.
* ``'per_batch_2021'``  Dopamine before that commit (``_random_crop``), which produced the
                        published DrQ(eps) runs (Agarwal et al. 2021): one offset, 0..7 on each
                        axis, for the whole batch; the intensity is still drawn per image.

Both draw their random numbers from the key the same way (intensity from the first half of a
split, the offsets from the second), so they differ only in the crop.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from dopamine.labs.atari_100k import atari_100k_rainbow_agent

IMAGE_PAD = 4


def batch_random_crop(key, padded, height: int, width: int):
  """One random crop of every image of ``padded`` (N, H + 2 pad, W + 2 pad, C) to (N, height,
  width, C): the offsets x, y are drawn once for the batch, from 0 to 2 pad - 1 (an exclusive
  maximum, as Dopamine's 2021 ``_random_crop``)."""
  key_x, key_y = jax.random.split(key, 2)
  x = jax.random.randint(key_x, shape=(), minval=0, maxval=padded.shape[1] - height)
  y = jax.random.randint(key_y, shape=(), minval=0, maxval=padded.shape[2] - width)
  return jax.lax.dynamic_slice(padded, (0, x, y, 0), (padded.shape[0], height, width,
                                                      padded.shape[3]))


@functools.partial(jax.jit, static_argnames=('img_pad',))
def batch_shift_augmentation(key, obs, img_pad: int = IMAGE_PAD):
  """Dopamine's 2021 ``drq_image_augmentation``: pad, one crop for the batch, intensity.

  Jitted, as Dopamine 4.1.2 jits its per-image version (the values are the same as op by op;
  run op by op it took about half of a CPU training step).

  Args:
    key: PRNG key.
    obs: float array (..., H, W, C), the scaled frame stacks.
    img_pad: int, pixels of edge padding on each side.
  Returns:
    An array of ``obs``'s shape.
  """
  flat = obs.reshape(-1, *obs.shape[-3:])
  _, height, width, _ = flat.shape
  padded = jnp.pad(flat, [(0, 0), (img_pad, img_pad), (img_pad, img_pad), (0, 0)], 'edge')
  key_intensity, key_crop = jax.random.split(key, num=2)
  cropped = batch_random_crop(key_crop, padded, height, width)
  noise = 1.0 + 0.05 * jnp.clip(jax.random.normal(key_intensity, (flat.shape[0], 1, 1, 1)),
                                -2.0, 2.0)
  return (cropped * noise).reshape(obs.shape)


AUGMENTATIONS = {
    'per_image': atari_100k_rainbow_agent.drq_image_augmentation,
    'per_batch_2021': batch_shift_augmentation,
}


def preprocess(x, data_augmentation: bool = False, rng=None, *, augmentation: str):
  """Dopamine's ``preprocess_inputs_with_augmentation`` with the augmentation chosen by name:
  ``x / 255`` as float32, then the augmentation if ``data_augmentation``."""
  out = x.astype(jnp.float32) / 255.0
  if data_augmentation:
    if rng is None:
      raise ValueError('Pass rng when using data augmentation')
    out = AUGMENTATIONS[augmentation](rng, out)
  return out
