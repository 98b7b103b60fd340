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
TINY = {'mlp': (1 / 32, (8, 8, 1), 8),
        'mlp_nobn': (1 / 32, (8, 8, 1), 8),
        'mlp_paper': (0.1, (8, 8, 1), 10),
        'mlp_paper_nobn': (0.1, (8, 8, 1), 10),
        'cnn': (0.125, (8, 8, 1), 16),
        'resnet18': (1 / 16, (8, 8, 3), 32),
        'resnet18_linear': (1 / 16, (8, 8, 3), 32),
        'vit_tiny': (1 / 64, (8, 8, 3), 3),
        'vgg16': (1 / 16, (8, 8, 3), 32)}
BN_MODELS = ('mlp', 'mlp_paper', 'cnn', 'resnet18', 'resnet18_linear', 'vgg16')
FORWARD = ('mlp', 'cnn', 'resnet18', 'vgg16')  # one of each BN family for the forward passes


def key(seed=0):
  """An 'rbg' key: eager initialisation compiles one random kernel per parameter shape, and
  threefry's take twice as long to compile. The models do not depend on the key's kind."""
  return jax.random.key(seed, impl='rbg')


def images(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(size=(BATCH,) + shape), jnp.float32)


@functools.cache
def tiny(name, crelu_head=False):
  """(model, variables, input shape, feature width) at the tiny size; built once per session.
  With flax's initialisation: these tests do not depend on it, and PyTorch's (tested below)
  re-draws every layer, one more compiled kernel per shape."""
  width, shape, dim = TINY[name]
  model = models.make_model(name, CLASSES, crelu_head=crelu_head, width=width, init_scheme='flax')
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
  assert models.MODEL_NAMES == ('mlp', 'mlp_nobn', 'mlp_paper', 'mlp_paper_nobn', 'cnn',
                                'resnet18', 'resnet18_linear', 'vit_tiny', 'vgg16')
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
  doubled = crelu_head and name in ('cnn', 'resnet18_linear', 'vit_tiny')
  assert head_in == (2 * dim if doubled else dim)


@pytest.mark.parametrize('name', FORWARD)
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


@pytest.mark.parametrize('name', FORWARD)
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
  assert mlp['Dense_0']['kernel'].shape == (16, 128)
  assert mlp['Dense_1']['kernel'].shape == (128, 64)
  mlp = abstract_params('mlp_paper', (4, 4, 1), width=0.25)['backbone']
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
  # The official MLP (configs/model/backbone/mlp2.yaml: hidden_dims [512, 256], norm_type 'bn';
  # configs/model/head/linear.yaml: hidden_dims []): Linear-BN-ReLU twice, then a Linear.
  official = dense(784, 512) + norm(512) + dense(512, 256) + norm(256) + dense(256, 10)
  assert official == 537354
  assert full_count('mlp', (28, 28, 1)) == official
  assert full_count('mlp_nobn', (28, 28, 1)) == official - norm(512) - norm(256) == 535818
  # The paper's text: 784-100-100-10.
  paper = dense(784, 100) + norm(100) + dense(100, 100) + norm(100) + dense(100, 10)
  assert paper == 90010
  assert full_count('mlp_paper', (28, 28, 1)) == paper
  no_bn = dense(784, 100) + dense(100, 100) + dense(100, 10)
  assert full_count('mlp_paper_nobn', (28, 28, 1)) == no_bn == 89610


def test_mlp_crelu_halves_hidden_units_and_keeps_feature_width():
  model = models.make_model('mlp_paper', 10, crelu_head=True)
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
  official = abstract_params('mlp', (28, 28, 1), crelu_head=True)
  assert official['backbone']['Dense_0']['kernel'].shape == (784, 256)
  assert official['backbone']['Dense_1']['kernel'].shape == (512, 128)
  assert official['head']['Dense_0']['kernel'].shape == (256, 10)


def test_cnn_parameter_count_on_28x28():
  expected = (conv(3, 1, 32) + norm(32) + conv(3, 32, 64) + norm(64)
              + dense(7 * 7 * 64, 128) + norm(128) + dense(128, 10))
  assert full_count('cnn', (28, 28, 1)) == expected


def test_resnet18_cifar10_parameter_count():
  # The official GAP head (configs/model/head/gap.yaml: hidden_dims [512], activ_type relu):
  # pool, Linear(512, 512), ReLU, Linear(512, 10); resnet18_linear: pool, Linear(512, 10).
  backbone = 11_173_962 - dense(512, 10)
  assert full_count('resnet18', (32, 32, 3)) == backbone + dense(512, 512) + dense(512, 10)
  assert full_count('resnet18', (32, 32, 3)) == 11_436_618
  assert full_count('resnet18_linear', (32, 32, 3)) == 11_173_962
  head = dense(512, 512) + dense(512, 10)
  assert round(100 * head / 11_436_618, 2) == 2.34  # a head reset's share (linear: 0.05%)
  crelu = abstract_params('resnet18', (32, 32, 3), crelu_head=True)['head']
  assert crelu['Dense_0']['kernel'].shape == (512, 256)
  assert crelu['Dense_1']['kernel'].shape == (512, 10)


def test_resnet18_head_is_dense_relu_dense_on_the_features():
  model, variables, shape, dim = tiny('resnet18')
  features = jnp.asarray(np.random.default_rng(0).normal(size=(BATCH, dim)), jnp.float32)
  logits = model.apply(variables, features, train=False, method=model.classify)
  head = variables['params']['head']
  hidden = np.maximum(features @ head['Dense_0']['kernel'] + head['Dense_0']['bias'], 0)
  np.testing.assert_allclose(logits, hidden @ head['Dense_1']['kernel'] + head['Dense_1']['bias'],
                             rtol=1e-5, atol=1e-6)


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
  model = models.make_model('mlp_paper', 3, width=0.02)  # 2 hidden units
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


@pytest.mark.parametrize('name, crelu_head', [(name, False) for name in models.MODEL_NAMES]
                         + [('resnet18', True), ('vgg16', True)])  # heads with hidden layers
def test_last_parameter_paths_are_the_last_created_of_backbone_and_head(name, crelu_head):
  # The official regenerative term's arrays: the last of backbone.parameters() and of
  # head.parameters() (warmstart/methods.py regen_penalty).
  width, shape, _ = TINY[name]
  model = models.make_model(name, CLASSES, crelu_head=crelu_head, width=width)
  order = creation_order(model, shape)
  last = tuple([p for p in order if p.startswith(part + '/')][-1] for part in ('backbone', 'head'))
  assert model.last_parameter_paths() == last
  assert all(path.endswith('/bias') for path in last)


def torch_bound(fan_in):
  """PyTorch's documented bound of nn.Linear / nn.Conv2d's weight and bias: sqrt(k), k = 1 /
  fan_in; the weight's kaiming_uniform_(a=sqrt(5)) gives gain * sqrt(3 / fan_in) with gain =
  sqrt(2 / (1 + a^2)), the same number."""
  gain = np.sqrt(2.0 / (1.0 + 5.0))
  assert np.isclose(gain * np.sqrt(3.0 / fan_in), np.sqrt(1.0 / fan_in))
  return np.sqrt(1.0 / fan_in)


def test_torch_init_draws_every_dense_and_conv_from_pytorchs_uniform():
  model = models.make_model('cnn', 10)  # init_scheme 'torch' is the default
  params = models.init_variables(model, key(), (28, 28, 1))['params']
  layers = {  # path -> fan_in: conv kh * kw * in_channels, dense in_features
      ('backbone', 'Conv_0'): 3 * 3 * 1, ('backbone', 'Conv_1'): 3 * 3 * 32,
      ('backbone', 'Dense_0'): 7 * 7 * 64, ('head', 'Dense_0'): 128}
  for (part, layer), fan_in in layers.items():
    bound = torch_bound(fan_in)
    for leaf in ('kernel', 'bias'):
      values = np.asarray(params[part][layer][leaf])
      assert np.all(np.abs(values) <= bound), (layer, leaf)
      if values.size >= 1000:  # uniform: std bound / sqrt(3), extremes near the bound
        assert np.std(values) == pytest.approx(bound / np.sqrt(3), rel=0.05), (layer, leaf)
        assert np.max(np.abs(values)) > 0.99 * bound
    assert np.any(np.asarray(params[part][layer]['bias']) != 0)  # flax's would be zeros
  for i in range(3):  # norm layers as in both libraries: scale 1, bias 0
    np.testing.assert_array_equal(params['backbone'][f'BatchNorm_{i}']['scale'], 1.0)
    np.testing.assert_array_equal(params['backbone'][f'BatchNorm_{i}']['bias'], 0.0)


def test_flax_init_keeps_flaxs_defaults_and_both_follow_the_key():
  torch_model = models.make_model('mlp_paper', 10)
  flax_model = models.make_model('mlp_paper', 10, init_scheme='flax')
  flax_params = models.init_variables(flax_model, key(), (28, 28, 1))['params']
  kernel = np.asarray(flax_params['backbone']['Dense_0']['kernel'])
  assert not np.any(flax_params['backbone']['Dense_0']['bias'])
  # LeCun normal (truncated): std 1 / sqrt(fan_in), sqrt(3) times PyTorch's.
  assert np.std(kernel) == pytest.approx(1 / np.sqrt(784), rel=0.05)
  torch_params = models.init_variables(torch_model, key(), (28, 28, 1))['params']
  assert np.std(torch_params['backbone']['Dense_0']['kernel']) == pytest.approx(
      np.std(kernel) / np.sqrt(3), rel=0.05)
  again = models.init_variables(torch_model, key(), (28, 28, 1))['params']
  assert helpers.trees_equal(torch_params, again)
  other = models.init_variables(torch_model, key(1), (28, 28, 1))['params']
  assert not np.array_equal(other['head']['Dense_0']['kernel'], again['head']['Dense_0']['kernel'])


def test_torch_init_redraws_layers_only():
  # A sub-tree with a 'kernel' is a Dense or Conv; tokens and norm parameters are kept.
  params = {'cls_token': jnp.full((1, 1, 4), 0.5),
            'LayerNorm_0': {'scale': jnp.ones(4), 'bias': jnp.zeros(4)},
            'Conv_0': {'kernel': jnp.zeros((2, 2, 3, 4))},  # no bias, as ResNet's convs
            'Dense_0': {'kernel': jnp.zeros((4, 100)), 'bias': jnp.zeros(100)}}
  out = models.torch_default_init(params, key())
  np.testing.assert_array_equal(out['cls_token'], 0.5)
  np.testing.assert_array_equal(out['LayerNorm_0']['scale'], 1.0)
  np.testing.assert_array_equal(out['LayerNorm_0']['bias'], 0.0)
  assert set(out['Conv_0']) == {'kernel'}
  conv = np.asarray(out['Conv_0']['kernel'])
  assert np.all(np.abs(conv) <= torch_bound(2 * 2 * 3)) and np.max(np.abs(conv)) > 0.2
  for leaf in ('kernel', 'bias'):
    values = np.asarray(out['Dense_0'][leaf])
    assert np.all(np.abs(values) <= torch_bound(4)) and np.max(np.abs(values)) > 0.45


def test_inputs_are_normalised_per_channel_before_the_backbone():
  shape = (4, 4, 3)
  mean, std = (0.5, 0.25, 0.0), (0.5, 2.0, 1.0)
  model = models.make_model('mlp_paper', CLASSES, width=0.1, init_scheme='flax',
                            input_mean=mean, input_std=std)
  plain = models.make_model('mlp_paper', CLASSES, width=0.1, init_scheme='flax')
  variables = models.init_variables(plain, key(), shape)
  x = images(shape)
  by_hand = (x - jnp.array(mean)) / jnp.array(std)
  np.testing.assert_allclose(model.apply(variables, x, train=False, method=model.embed),
                             plain.apply(variables, by_hand, train=False, method=plain.embed),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('kwargs, words', [
    ({'init_scheme': 'lecun'}, 'init_scheme must be one of torch, flax'),
    ({'input_mean': (0.5,), 'input_std': ()}, 'one value per channel'),
    ({'input_mean': (0.5,), 'input_std': (0.0,)}, 'every std > 0'),
])
def test_bad_init_scheme_or_statistics_are_refused(kwargs, words):
  with pytest.raises(ValueError, match=words):
    models.make_model('mlp', 10, **kwargs)
