"""The warm-start networks (warmstart/models.py): shapes, backbone/head split, BN statistics,
parameter counts worked out by hand, the CReLU head and ViT dropout.

Tiny widths and inputs wherever something is computed; shapes and full-size parameter counts go
through ``jax.eval_shape``, which traces the model but builds no arrays. Forward passes of the
12-block ViT cost most of this file's time, so the tests make few of them.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests import helpers
from warmstart import models

BATCH = 3
CLASSES = 5
# name -> (width, input shape, feature width at that width)
TINY = {'mlp': (0.1, (8, 8, 1), 10),
        'mlp_nobn': (0.1, (8, 8, 1), 10),
        'cnn': (0.125, (8, 8, 1), 16),
        'resnet18': (1 / 16, (8, 8, 3), 32),
        'vit_tiny': (1 / 64, (8, 8, 3), 3),
        'vgg16': (1 / 16, (8, 8, 3), 32)}
BN_MODELS = ('mlp', 'cnn', 'resnet18', 'vgg16')


def key(seed=0):
  """An 'rbg' key: eager initialisation compiles one random kernel per parameter shape, and
  threefry's take twice as long to compile. The models do not depend on the key's kind."""
  return jax.random.key(seed, impl='rbg')


def images(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(size=(BATCH,) + shape), jnp.float32)


@functools.cache
def tiny(name, crelu_head=False):
  """(model, variables, input shape, feature width) at the tiny size; built once per session."""
  width, shape, dim = TINY[name]
  model = models.make_model(name, CLASSES, crelu_head=crelu_head, width=width)
  return model, models.init_variables(model, key(), shape), shape, dim


def abstract_variables(model, shape):
  return jax.eval_shape(lambda r: models.init_variables(model, r, shape), key())


def abstract_params(name, shape, num_classes=10, **kwargs):
  return abstract_variables(models.make_model(name, num_classes, **kwargs), shape)['params']


def full_count(name, shape, **kwargs):
  return helpers.param_count(abstract_params(name, shape, **kwargs))


def dense(n_in, n_out):
  return n_in * n_out + n_out


def conv(k, c_in, c_out, bias=True):
  return k * k * c_in * c_out + (c_out if bias else 0)


def norm(c):
  return 2 * c  # BatchNorm / LayerNorm scale and bias; running statistics are not parameters


def embed_and_classify(module, x, train):
  features = module.embed(x, train)
  return features, module.classify(features, train)


def test_model_names():
  assert models.MODEL_NAMES == ('mlp', 'mlp_nobn', 'cnn', 'resnet18', 'vit_tiny', 'vgg16')
  assert set(TINY) == set(models.MODEL_NAMES)


@pytest.mark.parametrize('crelu_head', [False, True])
@pytest.mark.parametrize('name', models.MODEL_NAMES)
def test_shapes_and_backbone_head_split(name, crelu_head):
  width, shape, dim = TINY[name]
  model = models.make_model(name, CLASSES, crelu_head=crelu_head, width=width)
  variables = abstract_variables(model, shape)
  assert set(variables['params']) == {'backbone', 'head'}
  if name in BN_MODELS:
    assert set(variables['batch_stats']) == {'backbone'}  # no head has BN
  else:
    assert set(variables) == {'params'}
  x = jax.ShapeDtypeStruct((BATCH,) + shape, jnp.float32)
  features, logits = jax.eval_shape(
      lambda v, x: model.apply(v, x, False, method=embed_and_classify), variables, x)
  assert features.shape == (BATCH, dim)
  assert logits.shape == (BATCH, CLASSES)
  # The head starts with a Dense on the features (on CReLU(features) when it has no hidden layer).
  head_in = variables['params']['head']['Dense_0']['kernel'].shape[0]
  doubled = crelu_head and name in ('cnn', 'resnet18', 'vit_tiny')
  assert head_in == (2 * dim if doubled else dim)


@pytest.mark.parametrize('name', BN_MODELS)
def test_call_is_classify_of_embed(name):
  model, variables, shape, dim = tiny(name)
  x = images(shape)
  features = model.apply(variables, x, train=False, method=model.embed)
  logits = model.apply(variables, x, train=False)
  assert features.shape == (BATCH, dim) and logits.shape == (BATCH, CLASSES)
  assert np.all(np.isfinite(logits)) and np.any(features != 0)
  np.testing.assert_allclose(
      model.apply(variables, features, train=False, method=model.classify), logits,
      rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('name', BN_MODELS)
def test_train_mode_updates_batch_stats(name):
  model, variables, shape, _ = tiny(name)
  x = images(shape)
  logits, updates = model.apply(variables, x, train=True, mutable=['batch_stats'])
  assert logits.shape == (BATCH, CLASSES)
  old = jax.tree_util.tree_leaves(variables['batch_stats'])
  new = jax.tree_util.tree_leaves(updates['batch_stats'])
  assert len(old) == len(new) > 0
  assert all(not np.allclose(a, b) for a, b in zip(old, new))
  # Eval mode reads the running statistics and changes nothing.
  _, same = model.apply(variables, x, train=False, mutable=['batch_stats'])
  for a, b in zip(old, jax.tree_util.tree_leaves(same['batch_stats'])):
    np.testing.assert_array_equal(a, b)


def test_width_scales_hidden_layers_but_not_depth():
  mlp = abstract_params('mlp', (4, 4, 1), width=0.25)['backbone']
  assert mlp['Dense_0']['kernel'].shape == (16, 25)
  assert mlp['Dense_1']['kernel'].shape == (25, 25)
  resnet = abstract_params('resnet18', (8, 8, 3), width=0.5)['backbone']
  assert resnet['Conv_0']['kernel'].shape == (3, 3, 3, 32)
  assert sorted(k for k in resnet if k.startswith('BasicBlock')) == [
      f'BasicBlock_{i}' for i in range(8)]
  assert resnet['BasicBlock_7']['Conv_1']['kernel'].shape == (3, 3, 256, 256)
  vit = abstract_params('vit_tiny', (8, 8, 3), width=0.5)['backbone']
  assert len([k for k in vit if k.startswith('EncoderBlock')]) == 12
  assert vit['cls_token'].shape == (1, 1, 96)
  assert vit['EncoderBlock_0']['Dense_0']['kernel'].shape == (96, 384)
  vgg = abstract_params('vgg16', (8, 8, 3), width=0.25)
  assert len([k for k in vgg['backbone'] if k.startswith('Conv')]) == 13
  assert vgg['head']['Dense_0']['kernel'].shape == (128, 256)


def test_mlp_parameter_count():
  expected = dense(784, 100) + norm(100) + dense(100, 100) + norm(100) + dense(100, 10)
  assert expected == 90010
  assert full_count('mlp', (28, 28, 1)) == expected
  no_bn = dense(784, 100) + dense(100, 100) + dense(100, 10)
  assert full_count('mlp_nobn', (28, 28, 1)) == no_bn == 89610


def test_mlp_crelu_halves_hidden_units_and_keeps_feature_width():
  model = models.make_model('mlp', 10, crelu_head=True)
  variables = models.init_variables(model, key(), (28, 28, 1))
  backbone = variables['params']['backbone']
  assert backbone['Dense_0']['kernel'].shape == (784, 50)
  assert backbone['Dense_1']['kernel'].shape == (100, 50)
  assert variables['params']['head']['Dense_0']['kernel'].shape == (100, 10)
  expected = dense(784, 50) + norm(50) + dense(100, 50) + norm(50) + dense(100, 10)
  assert helpers.param_count(variables['params']) == expected
  features = model.apply(variables, images((28, 28, 1)), train=False, method=model.embed)
  assert features.shape == (BATCH, 100)
  # CReLU output: for each unit exactly one of relu(x), relu(-x) can be non-zero.
  assert np.all((features[:, :50] == 0) | (features[:, 50:] == 0))
  assert np.any(features[:, :50] > 0) and np.any(features[:, 50:] > 0)


def test_cnn_parameter_count_on_28x28():
  expected = (conv(3, 1, 32) + norm(32) + conv(3, 32, 64) + norm(64)
              + dense(7 * 7 * 64, 128) + norm(128) + dense(128, 10))
  assert full_count('cnn', (28, 28, 1)) == expected


def test_resnet18_cifar10_parameter_count():
  assert full_count('resnet18', (32, 32, 3)) == 11_173_962


def test_vgg16_parameter_count():
  convs, c_in = 0, 3
  for c in models.VGG16_CONFIG:
    if c != 'M':
      convs += conv(3, c_in, c) + norm(c)
      c_in = c
  head = dense(512, 1024) + dense(1024, 1024) + dense(1024, 10)
  assert full_count('vgg16', (32, 32, 3)) == convs + head
  # 64x64 inputs end on 2x2 maps, pooled to the same 512 features: same count.
  assert full_count('vgg16', (64, 64, 3)) == convs + head
  crelu_head = dense(512, 512) + dense(1024, 512) + dense(1024, 10)
  assert full_count('vgg16', (32, 32, 3), crelu_head=True) == convs + crelu_head


def test_vit_tiny_parameter_count():
  d, tokens = 192, (32 // 4) ** 2 + 1
  block = (2 * norm(d)                      # two LayerNorms
           + dense(d, 3 * d) + dense(d, d)  # q, k, v and output projections
           + dense(d, 4 * d) + dense(4 * d, d))
  expected = (conv(4, 3, d) + d + tokens * d  # patch embedding, class token, positions
              + 12 * block + norm(d) + dense(d, 10))
  assert full_count('vit_tiny', (32, 32, 3)) == expected


def test_crelu_on_a_hand_built_input():
  x = jnp.array([[1.0, -2.0, 0.0, 3.0]])
  np.testing.assert_array_equal(models.crelu(x), [[1.0, 0.0, 0.0, 3.0, 0.0, 2.0, 0.0, 0.0]])


def test_vgg_crelu_head_hidden_activation_is_crelu():
  model, variables, _, dim = tiny('vgg16', crelu_head=True)
  head = variables['params']['head']
  units = models.scaled(1024, TINY['vgg16'][0]) // 2
  assert head['Dense_0']['kernel'].shape == (dim, units)
  assert head['Dense_1']['kernel'].shape == (2 * units, units)
  assert head['Dense_2']['kernel'].shape == (2 * units, CLASSES)
  features = jnp.asarray(np.random.default_rng(0).normal(size=(BATCH, dim)), jnp.float32)
  _, state = model.apply(variables, features, train=False, method=model.classify,
                         capture_intermediates=True)
  seen = state['intermediates']['head']
  for i in range(2):
    pre = seen[f'Dense_{i}']['__call__'][0]
    assert np.any(pre < 0) and np.any(pre > 0)
    np.testing.assert_allclose(seen[f'CReLU_{i}']['__call__'][0],
                               jnp.concatenate([jnp.maximum(pre, 0), jnp.maximum(-pre, 0)], -1))
  # Without crelu_head the same head uses plain ReLUs.
  plain_model, plain, _, _ = tiny('vgg16')
  _, plain_state = plain_model.apply(plain, features, train=False, method=plain_model.classify,
                                     capture_intermediates=True)
  assert not any(k.startswith('CReLU') for k in plain_state['intermediates']['head'])


def test_crelu_on_the_features_of_heads_without_hidden_layers():
  model, variables, shape, _ = tiny('cnn', crelu_head=True)
  features = model.apply(variables, images(shape), train=False, method=model.embed)
  logits = model.apply(variables, features, train=False, method=model.classify)
  kernel = variables['params']['head']['Dense_0']['kernel']
  bias = variables['params']['head']['Dense_0']['bias']
  expected = jnp.concatenate([jnp.maximum(features, 0), jnp.maximum(-features, 0)], -1) @ kernel
  np.testing.assert_allclose(logits, expected + bias, rtol=1e-5, atol=1e-6)


def test_vit_forward_and_dropout_only_in_train_mode():
  model, variables, shape, dim = tiny('vit_tiny')
  x = images(shape)
  # Eval mode: the dropout rng is ignored (none is even needed) and __call__ = classify(embed).
  logits = model.apply(variables, x, train=False, rngs={'dropout': key(1)})
  features, classified = model.apply(variables, x, False, method=embed_and_classify)
  assert features.shape == (BATCH, dim) and logits.shape == (BATCH, CLASSES)
  np.testing.assert_allclose(classified, logits, rtol=1e-5, atol=1e-6)
  # Train mode: dropout masks follow the rng.
  train_1, train_2 = (model.apply(variables, x, train=True, rngs={'dropout': key(seed)})
                      for seed in (1, 2))
  assert not np.allclose(train_1, train_2)
  assert not np.allclose(train_1, logits)


def test_unknown_name_is_refused_with_the_valid_names():
  with pytest.raises(ValueError) as error:
    models.make_model('nope', 10)
  for name in models.MODEL_NAMES:
    assert name in str(error.value)
  with pytest.raises(ValueError, match='width'):
    models.make_model('mlp', 10, width=0)


def test_init_variables_and_param_count():
  model = models.make_model('mlp', 3, width=0.02)  # 2 hidden units
  variables = models.init_variables(model, jax.random.key(0), (2, 2, 1))  # default key kind
  assert set(variables) == {'params', 'batch_stats'}
  assert helpers.param_count(variables['params']) == (dense(4, 2) + norm(2) + dense(2, 2)
                                                      + norm(2) + dense(2, 3))
  assert helpers.param_count({'a': np.zeros((2, 3)), 'b': [np.zeros(4)]}) == 10
  again = models.init_variables(model, jax.random.key(0), (2, 2, 1))
  for a, b in zip(jax.tree_util.tree_leaves(variables), jax.tree_util.tree_leaves(again)):
    np.testing.assert_array_equal(a, b)


def creation_order(model, shape):
  """Paths of the model's parameters in the order flax creates them (which is PyTorch's
  ``parameters()`` order for the same layers), read while ``eval_shape`` traces the init."""
  order = []
  def walk(tree, prefix):
    for name, child in tree.items():  # insertion order: jax sorts keys only when it rebuilds
      if isinstance(child, dict):
        walk(child, f'{prefix}{name}/')
      else:
        order.append(f'{prefix}{name}')
  def init(rng):
    variables = model.init({'params': rng, 'dropout': rng},
                           jnp.zeros((1,) + shape, jnp.float32), train=False)
    walk(variables['params'], '')
    return variables
  jax.eval_shape(init, key())
  return order


@pytest.mark.parametrize('crelu_head', [False, True])
@pytest.mark.parametrize('name', models.MODEL_NAMES)
def test_last_parameter_paths_are_the_last_created_of_backbone_and_head(name, crelu_head):
  # The official regenerative term's arrays: the last of backbone.parameters() and of
  # head.parameters() (warmstart/methods.py regen_penalty).
  width, shape, _ = TINY[name]
  model = models.make_model(name, CLASSES, crelu_head=crelu_head, width=width)
  order = creation_order(model, shape)
  last = tuple([p for p in order if p.startswith(part + '/')][-1] for part in ('backbone', 'head'))
  assert model.last_parameter_paths() == last
  assert all(path.endswith('/bias') for path in last)
