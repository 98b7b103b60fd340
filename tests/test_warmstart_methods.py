"""Exact math of every warm-start method's operation on small parameter trees."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents import plasticity
from warmstart import methods
from tests import helpers


def tree(a, b, c):
  return {'backbone': {'Dense_0': {'kernel': jnp.asarray(a, jnp.float32)}},
          'head': {'Dense_0': {'kernel': jnp.asarray(b, jnp.float32),
                               'bias': jnp.asarray(c, jnp.float32)}}}


def test_shrink_toward_init_keeps_sp_shrink_of_the_trained_weights():
  params, init = tree([[2.0, 4.0]], [[1.0]], [10.0]), tree([[0.0, 1.0]], [[-1.0]], [0.0])
  out = methods.shrink_toward_init(params, init, 0.2, 0.8)
  np.testing.assert_allclose(out['backbone']['Dense_0']['kernel'], [[0.4, 1.6]], rtol=1e-6)
  np.testing.assert_allclose(out['head']['Dense_0']['kernel'], [[-0.6]], rtol=1e-6)
  np.testing.assert_allclose(out['head']['Dense_0']['bias'], [2.0], rtol=1e-6)


def test_shrink_perturb_preset_is_two_tenths_current_plus_eight_tenths_initial():
  # The factors mean what agents/plasticity.shrink_perturb's mean: sp_shrink on the current
  # weights, sp_perturb on the (here: initial) perturbation.
  for spec in ('shrink_perturb', 'sp_l2_aug'):
    config = methods.parse_method(spec)
    assert (config.sp_shrink, config.sp_perturb) == (0.2, 0.8)
    assert config.uses_shrink_perturb
  config = methods.parse_method('shrink_perturb')
  params, init = tree([[2.0, 4.0]], [[1.0]], [10.0]), tree([[0.0, 1.0]], [[-1.0]], [0.0])
  out = methods.shrink_toward_init(params, init, config.sp_shrink, config.sp_perturb)
  expected = jax.tree_util.tree_map(lambda p, p0: 0.2 * p + 0.8 * p0, params, init)
  for got, want in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(expected)):
    np.testing.assert_array_equal(got, want)
  # Bit-identical to the earlier spelling shrink=0.8, i.e. factors (1 - 0.8, 0.8): the same
  # float32 weights, so the study trains exactly as before the rename.
  before = plasticity.shrink_perturb(params, init, 1.0 - 0.8, 0.8)
  assert helpers.trees_equal(out, before)
  assert not methods.parse_method('warm').uses_shrink_perturb


@pytest.mark.parametrize('spec, conversion', [
    ('warm:shrink=0.8', 'shrink=0.8 is sp_shrink=0.2,sp_perturb=0.8'),
    ('warm:l2=0.1,shrink=0.3', 'shrink=0.3 is sp_shrink=0.7,sp_perturb=0.3'),
    ('warm:shrink=much', 'shrink=a is sp_shrink=1-a,sp_perturb=a'),
])
def test_the_old_shrink_key_is_refused_with_its_conversion(spec, conversion):
  with pytest.raises(ValueError) as error:
    methods.parse_method(spec)
  message = str(error.value)
  for words in (conversion, 'sp_shrink theta + sp_perturb theta_0', 'factor on the current',
                'sp_shrink=0.2,sp_perturb=0.8'):
    assert words in message


def test_reset_head_restores_the_head_and_keeps_the_backbone():
  params, init = tree([[2.0]], [[1.0]], [10.0]), tree([[0.0]], [[-1.0]], [0.5])
  out = methods.reset_head(params, init)
  assert float(out['backbone']['Dense_0']['kernel'][0, 0]) == 2.0
  assert float(out['head']['Dense_0']['kernel'][0, 0]) == -1.0
  assert float(out['head']['Dense_0']['bias'][0]) == 0.5


def test_loss_terms():
  params, init = tree([[1.0, 2.0]], [[3.0]], [0.0]), tree([[0.0, 1.0]], [[1.0]], [1.0])
  assert float(methods.l2_penalty(params)) == pytest.approx(1 + 4 + 9)
  assert float(methods.regen_penalty(params, init)) == pytest.approx(1 + 1 + 4 + 1)
  logits = jnp.array([[1.0, 2.0], [0.0, 3.0]])
  assert float(methods.spectral_penalty(logits)) == pytest.approx(0.5 * (5 + 9) / 2)


def test_distillation_is_the_kl_from_teacher_to_student():
  student, teacher = jnp.array([[0.0, 1.0]]), jnp.array([[2.0, 0.0]])
  p = np.exp([2.0, 0.0]) / np.exp([2.0, 0.0]).sum()
  q = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()
  expected = float(np.sum(p * (np.log(p) - np.log(q))))
  assert float(methods.distillation_loss(student, teacher)) == pytest.approx(expected, rel=1e-5)
  assert float(methods.distillation_loss(teacher, teacher)) == pytest.approx(0.0, abs=1e-6)
  grad = jax.grad(lambda t: methods.distillation_loss(student, t))(teacher)
  assert float(jnp.abs(grad).sum()) == 0.0  # the teacher gets no gradient


def test_augment_is_a_pad4_crop_or_its_mirror_image():
  images = jnp.arange(2 * 6 * 6, dtype=jnp.float32).reshape(2, 6, 6, 1) + 1
  out = np.asarray(methods.augment_images(images, jax.random.PRNGKey(3)))
  padded = np.pad(np.asarray(images), ((0, 0), (4, 4), (4, 4), (0, 0)))
  for i in range(2):
    crops = [padded[i, r:r + 6, c:c + 6] for r in range(9) for c in range(9)]
    candidates = crops + [crop[:, ::-1] for crop in crops]
    assert any(np.array_equal(out[i], c) for c in candidates)
  many = methods.augment_images(jnp.ones((64, 6, 6, 1)), jax.random.PRNGKey(0))
  assert float(many.sum()) < 64 * 36  # some crops moved zero padding in


def test_dormant_units_use_the_score_normalised_by_the_layer_mean():
  features = jnp.array([[0.0, 1.0, 2.0, 0.1], [0.0, 3.0, 2.0, -0.1]])
  # mean |h|: [0, 2, 2, 0.1]; layer mean 1.025; scores [0, 1.95, 1.95, 0.0976]
  assert methods.dormant_units(features, 0.1).tolist() == [True, False, False, True]
  assert methods.dormant_units(features, 0.05).tolist() == [True, False, False, False]


def test_recycle_dormant_redraws_incoming_and_zeroes_outgoing_weights():
  params = {'backbone': {'Dense_1': {'kernel': jnp.ones((2, 3)), 'bias': jnp.ones(3)}},
            'head': {'Dense_0': {'kernel': jnp.ones((3, 2)), 'bias': jnp.ones(2)}}}
  fresh = jax.tree_util.tree_map(lambda x: 5 * jnp.ones_like(x), params)
  dormant = jnp.array([False, True, False])
  out = methods.recycle_dormant(params, fresh, dormant,
                                ('backbone/Dense_1/kernel', 'backbone/Dense_1/bias'),
                                'head/Dense_0/kernel')
  np.testing.assert_array_equal(out['backbone']['Dense_1']['kernel'], [[1, 5, 1], [1, 5, 1]])
  np.testing.assert_array_equal(out['backbone']['Dense_1']['bias'], [1, 5, 1])
  np.testing.assert_array_equal(out['head']['Dense_0']['kernel'], [[1, 1], [0, 0], [1, 1]])
  np.testing.assert_array_equal(out['head']['Dense_0']['bias'], [1, 1])


def test_parse_method_merges_presets_and_overrides():
  config = methods.parse_method('hare_tortoise+aug:ema=0.99,ht_reset_epochs=2')
  assert (config.ema, config.ht_reset_epochs, config.augment, config.warm_start) == (
      0.99, 2.0, True, True)
  assert methods.parse_method('fresh_ema') == methods.MethodConfig(warm_start=False, ema=0.999)
  assert methods.parse_method('shrink_perturb').sp_perturb == 0.8
  assert methods.parse_method('ema:ht_reset_optimizer=true').ht_reset_optimizer is True


@pytest.mark.parametrize('spec, words', [
    ('hare', ['Unknown method', 'hare_tortoise']),
    ('warm:momentum=0.9', ['momentum', 'ema']),
    ('warm:ema=high', ['expected a number']),
    ('warm:distill=1', ['teacher', 'ema']),
    ('warm:ht_reset_epochs=1', ['Tortoise']),
    ('warm:ema=1.0', ['[0, 1)']),
])
def test_parse_method_errors_name_the_problem(spec, words):
  with pytest.raises(ValueError) as error:
    methods.parse_method(spec)
  for word in words:
    assert word in str(error.value)
