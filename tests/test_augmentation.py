"""DrQ's two augmentations (agents/augmentation.py) and the switch between them in DrQAgent.

The crop offsets are read off exactly: each padded image holds its own row and column index
(value = 100 row + col), so the top-left pixel of a crop is 100 x + y.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from dopamine.labs.atari_100k import atari_100k_rainbow_agent

from agents import augmentation
from agents import settings


def index_images(n, size=16, pad=4):
  """(n, size + 2 pad, size + 2 pad, 1) images whose pixel (r, c) holds 100 r + c."""
  side = size + 2 * pad
  grid = 100 * np.arange(side)[:, None] + np.arange(side)[None, :]
  return jnp.asarray(np.broadcast_to(grid[None, :, :, None], (n, side, side, 1)), jnp.float32)


def offsets(cropped):
  corner = np.asarray(cropped[:, 0, 0, 0]).astype(int)
  return list(zip(corner // 100, corner % 100))


def test_batch_crop_shifts_the_whole_batch_by_one_offset_from_0_to_7():
  seen = set()
  for k in range(200):
    cropped = augmentation.batch_random_crop(jax.random.PRNGKey(k), index_images(6), 16, 16)
    batch_offsets = offsets(cropped)
    assert len(set(batch_offsets)) == 1  # one shift for the batch
    x, y = batch_offsets[0]
    # the crop is the window at (x, y): every pixel moved by the same offset
    np.testing.assert_array_equal(np.asarray(cropped[0, :, :, 0]),
                                  np.asarray(index_images(1)[0, x:x + 16, y:y + 16, 0]))
    seen.add((x, y))
  assert {x for x, _ in seen} == set(range(8)) == {y for _, y in seen}  # 8 never drawn


def test_dopamine_412_shifts_each_image_by_its_own_offset_from_0_to_7():
  # Dopamine's per-image crop, on the same index images, without the intensity noise.
  crop = atari_100k_rainbow_agent._per_image_random_crop  # pylint: disable=protected-access
  seen = set()
  for k in range(20):
    cropped = crop(jax.random.PRNGKey(k), index_images(32), (32, 16, 16, 1))
    batch_offsets = offsets(cropped)
    assert len(set(batch_offsets)) > 1
    seen.update(batch_offsets)
  assert {x for x, _ in seen} == set(range(8))


def test_batch_shift_augmentation_is_dopamines_2021_code():
  """The 2021 function written out as Dopamine had it (slicing, no jit), against ours."""
  def random_crop_2021(key, img, cropped_shape):
    _, width, height = cropped_shape[:-1]
    key_x, key_y = jax.random.split(key, 2)
    x = jax.random.randint(key_x, shape=(), minval=0, maxval=img.shape[1] - width)
    y = jax.random.randint(key_y, shape=(), minval=0, maxval=img.shape[2] - height)
    return img[:, x:x + width, y:y + height]

  def drq_image_augmentation_2021(key, obs, img_pad=4):
    cropped_shape = obs.shape
    obs = jnp.pad(obs, [(0, 0), (img_pad, img_pad), (img_pad, img_pad), (0, 0)], 'edge')
    key1, key2 = jax.random.split(key, num=2)
    r = jax.random.normal(key1, shape=(obs.shape[0], 1, 1, 1))
    return random_crop_2021(key2, obs, cropped_shape) * (1.0 + 0.05 * jnp.clip(r, -2.0, 2.0))

  obs = jax.random.uniform(jax.random.PRNGKey(0), (8, 84, 84, 4))
  for k in range(5):
    key = jax.random.PRNGKey(100 + k)
    np.testing.assert_array_equal(augmentation.batch_shift_augmentation(key, obs),
                                  drq_image_augmentation_2021(key, obs))
    np.testing.assert_array_equal(jax.jit(augmentation.batch_shift_augmentation)(key, obs),
                                  drq_image_augmentation_2021(key, obs))


def test_per_image_is_dopamines_own_function():
  obs = jax.random.uniform(jax.random.PRNGKey(1), (4, 84, 84, 4))
  key = jax.random.PRNGKey(2)
  np.testing.assert_array_equal(
      augmentation.preprocess(obs * 255.0, True, key, augmentation='per_image'),
      atari_100k_rainbow_agent.preprocess_inputs_with_augmentation(obs * 255.0, True, key))


def test_an_unknown_augmentation_names_the_allowed_ones():
  # pylint: disable=import-outside-toplevel
  from agents.drq import DrQAgent
  with pytest.raises(settings.SettingError,
                     match="DrQAgent.augmentation = 'per_batch': must be one of 'per_image', "
                           "'per_batch_2021'"):
    DrQAgent.check_settings({'augmentation': 'per_batch'})


def test_drq_agent_stock_path_uses_the_chosen_augmentation():
  # pylint: disable=import-outside-toplevel
  from tests.test_drq_agent import NUM_ACTIONS, feed, parse_drq
  from agents.drq import DrQAgent
  parse_drq("DrQAgent.augmentation = 'per_batch_2021'")
  agent = DrQAgent(num_actions=NUM_ACTIONS, seed=3)
  assert agent.uses_stock_update
  frames = np.random.default_rng(0).integers(0, 255, (32, 84, 84, 4)).astype(np.uint8)
  key = jax.random.PRNGKey(4)
  np.testing.assert_array_equal(
      agent.train_preprocess_fn(frames, rng=key),
      augmentation.preprocess(frames, True, key, augmentation='per_batch_2021'))
  assert not np.array_equal(
      agent.train_preprocess_fn(frames, rng=key),
      atari_100k_rainbow_agent.preprocess_inputs_with_augmentation(frames, True, key))
  feed(agent, 25)
  assert agent.gradient_steps >= 1
