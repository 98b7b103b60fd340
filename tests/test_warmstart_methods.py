"""Exact math of every warm-start method's operation on small parameter trees."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents import plasticity
from warmstart import methods
from warmstart import models
from warmstart import train
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


# The loss terms on a fixed batch of 2 examples x 3 classes, each form computed by numpy from its
# formula. The official forms are src/trainers/base.py's of the official code (quoted per test).
LOGITS = np.array([[1.0, 2.0, -2.0], [0.0, 3.0, 1.0]], np.float32)
TEACHER = np.array([[2.0, 0.0, 1.0], [0.5, -1.0, 0.0]], np.float32)


def test_l2_penalty_is_the_sum_of_squares():
  params = tree([[1.0, 2.0]], [[3.0]], [0.0])
  assert float(methods.l2_penalty(params)) == 1 + 4 + 9


def test_spectral_official_is_the_mean_over_examples_and_classes():
  # Official: spectral_loss = (y_pred ** 2).mean(). The rows' squares sum to 9 and 10.
  official = float(methods.spectral_penalty(jnp.asarray(LOGITS)))
  assert official == pytest.approx(np.mean(LOGITS ** 2)) == pytest.approx(19 / 6)
  # Pezeshki et al.: ||y||^2 / 2 per example, averaged: 0.5 * 19 / 2.
  pezeshki = float(methods.spectral_penalty(jnp.asarray(LOGITS), 'pezeshki'))
  assert pezeshki == pytest.approx(0.5 * np.mean(np.sum(LOGITS ** 2, -1))) == pytest.approx(4.75)
  assert official / pezeshki == pytest.approx(2 / 3)  # 2 / num_classes


def log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


@pytest.mark.parametrize('temperature', [1.0, 2.0])
def test_distillation_official_is_kldivloss_mean_over_every_element(temperature):
  # Official: nn.KLDivLoss()(F.log_softmax(y_pred / temp), F.softmax(y_pred_t / temp)), whose
  # default reduction 'mean' averages target * (log target - input) over all N x C elements.
  log_p, log_q = log_softmax(TEACHER / temperature), log_softmax(LOGITS / temperature)
  pointwise = np.exp(log_p) * (log_p - log_q)
  student, teacher = jnp.asarray(LOGITS), jnp.asarray(TEACHER)
  official = float(methods.distillation_loss(student, teacher, temperature))
  assert official == pytest.approx(pointwise.mean(), rel=1e-5)
  per_example = float(methods.distillation_loss(student, teacher, temperature, 'per_example'))
  assert per_example == pytest.approx(pointwise.sum(-1).mean(), rel=1e-5)
  assert official == pytest.approx(per_example / 3, rel=1e-5)  # 1 / num_classes
  for form in methods.DISTILL_FORMS:
    assert float(methods.distillation_loss(teacher, teacher, temperature, form)) == (
        pytest.approx(0.0, abs=1e-6))
    grad = jax.grad(lambda t: methods.distillation_loss(student, t, temperature, form))(teacher)
    assert float(jnp.abs(grad).sum()) == 0.0  # the teacher gets no gradient


def regen_trees():
  """A backbone Dense + BatchNorm and a head Dense; the initial values 0 but one kernel entry."""
  params = {'backbone': {'Dense_0': {'kernel': jnp.array([[1.0, 2.0]]), 'bias': jnp.zeros(2)},
                         'BatchNorm_0': {'scale': jnp.ones(2), 'bias': jnp.array([3.0, 4.0])}},
            'head': {'Dense_0': {'kernel': jnp.array([[3.0]]),
                                 'bias': jnp.array([1.0, 2.0, 2.0])}}}
  init = jax.tree_util.tree_map(jnp.zeros_like, params)
  init['backbone']['Dense_0']['kernel'] = jnp.array([[0.0, 1.0]])
  return params, init


LAST = ('backbone/BatchNorm_0/bias', 'head/Dense_0/bias')


def test_regen_official_is_the_unsquared_distance_of_the_last_arrays_only():
  # Official: for param, init_param in zip(self.model.backbone.parameters(), ...):
  # backbone_regen_loss = torch.norm(param - init_param, 2), the loop keeping the last; the
  # same for the head. Distances: ||(3, 4)|| = 5 and ||(1, 2, 2)|| = 3.
  params, init = regen_trees()
  assert float(methods.regen_penalty(params, init, 'official', LAST)) == pytest.approx(5 + 3)
  grads = jax.grad(lambda p: methods.regen_penalty(p, init, 'official', LAST))(params)
  np.testing.assert_allclose(grads['backbone']['BatchNorm_0']['bias'], [0.6, 0.8], rtol=1e-6)
  np.testing.assert_allclose(grads['head']['Dense_0']['bias'], [1 / 3, 2 / 3, 2 / 3], rtol=1e-6)
  for other in (grads['backbone']['Dense_0']['kernel'], grads['backbone']['BatchNorm_0']['scale'],
                grads['head']['Dense_0']['kernel']):
    assert not np.any(other)
  # At theta = theta_0, where every run starts, the gradient is 0 (as torch.norm's backward),
  # not sqrt's NaN.
  at_init = jax.grad(lambda p: methods.regen_penalty(p, init, 'official', LAST))(init)
  assert all(not np.any(g) for g in jax.tree_util.tree_leaves(at_init))
  with pytest.raises(ValueError, match='last_parameter_paths'):
    methods.regen_penalty(params, init)


def test_regen_kumar_is_the_squared_distance_of_every_parameter():
  params, init = regen_trees()
  # Dense kernel 1 + 1; BN scale 1 + 1; BN bias 9 + 16; head kernel 9; head bias 1 + 4 + 4.
  assert float(methods.regen_penalty(params, init, 'kumar')) == 2 + 2 + 25 + 9 + 9


class LastArrays:
  """Stands for a model: names the arrays of the official regenerative term."""

  def last_parameter_paths(self):
    return LAST


def test_loss_terms_add_each_term_in_the_methods_form():
  params, init = regen_trees()
  logits, teacher = jnp.asarray(LOGITS), jnp.asarray(TEACHER)
  def total(spec):
    return float(methods.loss_terms(methods.parse_method(spec), LastArrays(), params, init,
                                    logits, teacher))
  assert total('warm') == 0.0
  assert total('regen:regen=0.5') == pytest.approx(0.5 * 8)
  assert total('regen:regen=0.5,regen_form=kumar') == pytest.approx(0.5 * 47)
  assert total('spectral:spectral=2') == pytest.approx(2 * 19 / 6)
  assert total('spectral:spectral=2,spectral_form=pezeshki') == pytest.approx(2 * 4.75)
  kl = float(methods.distillation_loss(logits, teacher, form='per_example'))
  assert total('self_distill') == pytest.approx(kl / 3, rel=1e-5)
  assert total('self_distill:distill_form=per_example') == pytest.approx(kl, rel=1e-5)
  assert total('l2_penalty') == pytest.approx(1e-4 * (1 + 4 + 2 + 25 + 9 + 9))
  assert total('l2') == 0.0  # the official L2 is AdamW's weight decay, not a loss term
  assert total('regen+spectral:regen=1,spectral=1') == pytest.approx(8 + 19 / 6)


def test_l2_preset_is_adamws_decoupled_weight_decay():
  # Official "L2": scripts/paper/warm_start_aug/l2.sh runs trainer.optimizer.weight_decay=0.1
  # (warm_start_wo_aug/l2.sh sweeps 1.0 .. 0.0001) of optim.AdamW.
  assert methods.parse_method('l2') == methods.MethodConfig(weight_decay=0.1)
  assert methods.parse_method('l2:weight_decay=0.01').weight_decay == 0.01
  assert methods.parse_method('sp_l2_aug').weight_decay == 0.1
  assert methods.parse_method('sp_l2_aug').l2 == 0.0
  assert methods.parse_method('l2_penalty') == methods.MethodConfig(l2=1e-4)
  # The Trainer's AdamW takes the method's decay: with zero gradients Adam's part is 0 and the
  # update (before the -lr step) is exactly weight_decay * theta.
  model = models.make_model('mlp', 3, width=0.02)
  params, _ = regen_trees()
  zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
  for spec, decay in (('l2', 0.1), ('warm', 1e-4), ('l2:weight_decay=0.5', 0.5)):
    trainer = train.Trainer(model, methods.parse_method(spec),
                            train.OptimConfig(weight_decay=1e-4), (2, 2, 1))
    assert trainer.optim.weight_decay == decay
    updates, _ = trainer.transform.update(zeros, trainer.transform.init(params), params)
    for u, p in zip(jax.tree_util.tree_leaves(updates), jax.tree_util.tree_leaves(params)):
      np.testing.assert_allclose(u, decay * p, rtol=1e-6)


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
    ('regen:regen_form=squared', ['regen_form', 'official, kumar', "'squared'"]),
    ('spectral:spectral_form=half', ['spectral_form', 'official, pezeshki']),
    ('self_distill:distill_form=sum', ['distill_form', 'official, per_example']),
    ('l2:weight_decay=-1', ['weight_decay must be >= 0']),
])
def test_parse_method_errors_name_the_problem(spec, words):
  with pytest.raises(ValueError) as error:
    methods.parse_method(spec)
  for word in words:
    assert word in str(error.value)
