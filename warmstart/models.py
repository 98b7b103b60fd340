"""Networks of the warm-start study (paper Appendix A.2), in flax.linen, each a backbone + a head.

Every model is a :class:`Classifier` with two submodules, ``backbone`` and ``head``, so its
``params`` (and ``batch_stats``, which only backbones have) sit under those two top-level keys:
the head can be re-initialised on its own and the backbone's output is the feature vector the
plasticity metrics look at. Methods: ``embed(x, train)`` -> features (batch, d),
``classify(features, train)`` -> logits (batch, num_classes), ``__call__`` = both.
Inputs are float32 NHWC images (batch, H, W, C) in [0, 1]; ``embed`` first normalises them with
the model's ``input_mean``/``input_std`` when it has them (warmstart/data.py's per-data-set
statistics, as the official code's transforms; after augmentation, as there).

Models (``make_model(name, num_classes)``), as the official code builds them
(``configs/model/``, ``src/models/``) unless said:

* ``mlp``        the official 3-layer MLP (configs/b_mnist_mlp3.yaml: backbone mlp2, head linear):
                 Dense(512)-BN-ReLU-Dense(256)-BN-ReLU | Dense(classes).
* ``mlp_nobn``   the same without batch norm.
* ``mlp_paper``, ``mlp_paper_nobn``  the paper's text: 100 and 100 hidden units, with / without BN.
* ``cnn``        ours, for fast CPU runs: Conv32-BN-ReLU-Conv64-BN-ReLU (stride 2) -Dense128-BN-ReLU
                 | Dense(classes).
* ``resnet18``   CIFAR ResNet-18 (3x3 stride-1 stem, no 7x7 conv nor max-pool), global average
                 pool | Dense(512)-ReLU-Dense(classes) (the official GAP head,
                 configs/model/head/gap.yaml: hidden_dims [512]). 11,436,618 parameters for
                 CIFAR-10.
* ``resnet18_linear``  the same backbone | Dense(classes) (ours before issue 15).
* ``vit_tiny``   DeiT-Ti on 4x4 patches: dim 192, depth 12, 3 heads, MLP ratio 4, pre-LN, class
                 token, dropout 0.1; features = class token after the final LayerNorm
                 | Dense(classes).
* ``vgg16``      VGG-16 (config D) convs, each Conv3x3-BN-ReLU, global average pool
                 | Dense(1024)-ReLU-Dense(1024)-ReLU-Dense(classes).

Initialisation (``init_scheme``): 'torch' (default) is PyTorch's default of nn.Linear and
nn.Conv2d, which the official code keeps: every Dense and Conv kernel and bias from
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (:func:`torch_default_init`); 'flax' keeps flax's defaults
(LeCun normal kernels, zero biases: weights about sqrt(3) = 1.7 times larger). Norm layers start
at scale 1 and bias 0 in both.

Choices of ours where the official code or the paper is silent:

* ``crelu_head``: the paper uses CReLU, concat(relu(x), relu(-x)), in the head. For the MLPs it
  replaces every activation (both backbone layers), with half the hidden units so the features
  keep their width. Heads with hidden layers (resnet18, vgg16) use CReLU for their ReLUs with
  half the hidden units, as the official heads do. Heads without a hidden layer (cnn,
  resnet18_linear, vit_tiny) apply CReLU to their input, the features, so the head's Dense sees
  twice the width.
* ``width`` scales every hidden width and channel count (rounded, at least 1; ViT: dim
  3 * round(64 * width) so it stays divisible by 3 heads); depth never changes. For tests and
  CPU runs. Halved CReLU widths are the scaled width // 2 (at least 1).
* VGG-16 skips a max-pool once the feature map is down to 1 pixel, so tiny inputs work; its
  global average pool is the identity on the 1x1 maps of 32x32 inputs.
* Biases follow the usual PyTorch definitions: ResNet-18's convs have none (they precede BN);
  every other Dense and Conv has one. The ViT's attention is written out as in DeiT (one qkv
  Dense, one output Dense); its class token and position embedding start from a truncated
  normal of std 0.02 as in DeiT, and so do its Dense layers under ``init_scheme='flax'``.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

MODEL_NAMES = ('mlp', 'mlp_nobn', 'mlp_paper', 'mlp_paper_nobn', 'cnn', 'resnet18',
               'resnet18_linear', 'vit_tiny', 'vgg16')
INIT_SCHEMES = ('torch', 'flax')

VGG16_CONFIG = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M',
                512, 512, 512, 'M', 512, 512, 512, 'M')


def scaled(n: float, width: float) -> int:
  """``n * width`` rounded, at least 1: the width of a hidden layer at width scale ``width``."""
  return max(1, round(n * width))


def crelu(x):
  """Concatenated ReLU (Shang et al., 2016): concat(relu(x), relu(-x)) on the last axis."""
  return jnp.concatenate([nn.relu(x), nn.relu(-x)], axis=-1)


class CReLU(nn.Module):
  """:func:`crelu` as a module, so ``capture_intermediates`` records its output."""

  @nn.compact
  def __call__(self, x):
    return crelu(x)


def batch_norm(train: bool) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=0.9)


class Head(nn.Module):
  """Dense layers from the features to the logits: ``hidden`` widths with ReLU (or CReLU)."""
  num_classes: int
  hidden: Sequence[int] = ()
  crelu: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # no BN or dropout in any head
    if self.crelu and not self.hidden:
      x = CReLU()(x)
    for units in self.hidden:
      x = nn.Dense(units)(x)
      x = CReLU()(x) if self.crelu else nn.relu(x)
    return nn.Dense(self.num_classes)(x)


# Backbones: (batch, H, W, C) images -> (batch, d) features.

class MLPBackbone(nn.Module):
  hidden: Sequence[int] = (100, 100)
  crelu: bool = False
  use_batch_norm: bool = True

  @nn.compact
  def __call__(self, x, train: bool):
    x = x.reshape((x.shape[0], -1))
    for units in self.hidden:
      x = nn.Dense(units)(x)
      if self.use_batch_norm:
        x = batch_norm(train)(x)
      x = CReLU()(x) if self.crelu else nn.relu(x)
    return x


class CNNBackbone(nn.Module):
  channels: Sequence[int] = (32, 64)
  dense: int = 128

  @nn.compact
  def __call__(self, x, train: bool):
    for c in self.channels:
      # Stride-2 convs rather than max-pooling: the same parameters, and ~3x faster to train on
      # XLA:CPU, whose max-pool gradient (select-and-scatter) is slow.
      x = nn.relu(batch_norm(train)(nn.Conv(c, (3, 3), strides=2)(x)))
    x = x.reshape((x.shape[0], -1))
    return nn.relu(batch_norm(train)(nn.Dense(self.dense)(x)))


class BasicBlock(nn.Module):
  """ResNet basic block: two 3x3 convs; 1x1 conv + BN shortcut when the shape changes."""
  channels: int
  stride: int = 1

  @nn.compact
  def __call__(self, x, train: bool):
    strides = (self.stride, self.stride)
    y = nn.Conv(self.channels, (3, 3), strides, use_bias=False)(x)
    y = nn.relu(batch_norm(train)(y))
    y = nn.Conv(self.channels, (3, 3), use_bias=False)(y)
    y = batch_norm(train)(y)
    if self.stride != 1 or x.shape[-1] != self.channels:
      x = nn.Conv(self.channels, (1, 1), strides, use_bias=False)(x)
      x = batch_norm(train)(x)
    return nn.relu(x + y)


class ResNet18Backbone(nn.Module):
  stage_channels: Sequence[int] = (64, 128, 256, 512)

  @nn.compact
  def __call__(self, x, train: bool):
    x = nn.Conv(self.stage_channels[0], (3, 3), use_bias=False)(x)
    x = nn.relu(batch_norm(train)(x))
    for i, c in enumerate(self.stage_channels):
      x = BasicBlock(c, stride=1 if i == 0 else 2)(x, train)
      x = BasicBlock(c)(x, train)
    return jnp.mean(x, axis=(1, 2))


class VGGBackbone(nn.Module):
  config: Sequence = VGG16_CONFIG

  @nn.compact
  def __call__(self, x, train: bool):
    for c in self.config:
      if c == 'M':
        if min(x.shape[1:3]) >= 2:
          x = nn.max_pool(x, (2, 2), strides=(2, 2))
      else:
        x = nn.relu(batch_norm(train)(nn.Conv(c, (3, 3))(x)))
    return jnp.mean(x, axis=(1, 2))


VIT_INIT = nn.initializers.truncated_normal(0.02)


class SelfAttention(nn.Module):
  """Multi-head self-attention as in DeiT: one Dense for q, k, v, softmax(q k^T / sqrt(c)) v,
  then an output Dense."""
  num_heads: int

  @nn.compact
  def __call__(self, x):
    b, n, d = x.shape
    qkv = nn.Dense(3 * d, kernel_init=VIT_INIT, name='qkv')(x)
    q, k, v = jnp.moveaxis(qkv.reshape(b, n, 3, self.num_heads, d // self.num_heads), 2, 0)
    logits = jnp.einsum('bqhc,bkhc->bhqk', q, k) / np.sqrt(q.shape[-1])
    y = jnp.einsum('bhqk,bkhc->bqhc', jax.nn.softmax(logits, axis=-1), v)
    return nn.Dense(d, kernel_init=VIT_INIT, name='proj')(y.reshape(b, n, d))


class EncoderBlock(nn.Module):
  """Pre-LayerNorm transformer block: x + attention(LN(x)), then x + MLP(LN(x))."""
  num_heads: int
  mlp_dim: int
  dropout: float

  @nn.compact
  def __call__(self, x, train: bool):
    drop = lambda y: nn.Dropout(self.dropout, deterministic=not train)(y)
    x = x + drop(SelfAttention(self.num_heads)(nn.LayerNorm()(x)))
    y = nn.Dense(self.mlp_dim, kernel_init=VIT_INIT)(nn.LayerNorm()(x))
    y = nn.Dense(x.shape[-1], kernel_init=VIT_INIT)(drop(nn.gelu(y, approximate=False)))
    return x + drop(y)


class ViTBackbone(nn.Module):
  dim: int = 192
  depth: int = 12
  num_heads: int = 3
  mlp_ratio: int = 4
  patch: int = 4
  dropout: float = 0.1

  @nn.compact
  def __call__(self, x, train: bool):
    p = (self.patch, self.patch)
    x = nn.Conv(self.dim, p, strides=p, padding='VALID', name='patch_embed')(x)
    x = x.reshape((x.shape[0], -1, self.dim))
    cls = self.param('cls_token', VIT_INIT, (1, 1, self.dim))
    x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, self.dim)), x], axis=1)
    x = x + self.param('pos_embedding', VIT_INIT, (1,) + x.shape[1:])
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    for _ in range(self.depth):
      x = EncoderBlock(self.num_heads, self.mlp_ratio * self.dim, self.dropout)(x, train)
    return nn.LayerNorm()(x)[:, 0]


# Classifiers: a backbone and a head.

class Classifier(nn.Module):
  """Base of every model: ``setup`` builds ``self.backbone`` and ``self.head``.

  ``init_scheme`` is read by :func:`init_variables`; ``input_mean``/``input_std`` (one value per
  channel, or both empty: no normalisation) by ``embed``.
  """
  num_classes: int
  crelu_head: bool = False
  width: float = 1.0
  init_scheme: str = 'torch'
  input_mean: tuple[float, ...] = ()
  input_std: tuple[float, ...] = ()

  head_hidden = ()  # hidden widths of the head at width 1 (a class constant, not a field)

  def embed(self, x, train: bool):
    if self.input_mean:
      x = (x - jnp.asarray(self.input_mean, x.dtype)) / jnp.asarray(self.input_std, x.dtype)
    return self.backbone(x, train)

  def make_head(self) -> Head:
    """The head of ``head_hidden`` widths; with CReLU each hidden layer has half the units (its
    CReLU doubles them back, as the official heads' ``h_out // 2``)."""
    units = [scaled(n, self.width) for n in self.head_hidden]
    if self.crelu_head:
      units = [max(1, n // 2) for n in units]
    return Head(self.num_classes, hidden=tuple(units), crelu=self.crelu_head)

  def classify(self, features, train: bool):
    return self.head(features, train)

  def __call__(self, x, train: bool):
    return self.classify(self.embed(x, train), train)

  def feature_layer_paths(self) -> tuple[tuple[str, ...], str]:
    """For ReDo: (paths of the arrays whose last axis indexes the feature units, path of the
    head kernel whose first axis does). Only models whose features come out of one
    dense + BN + ReLU layer have them (mlp, cnn without CReLU)."""
    raise NotImplementedError(
        f'ReDo is implemented on the feature layer of the mlp and cnn models (without CReLU); '
        f'{type(self).__name__} has none. Drop the redo method or use --model mlp/cnn.')

  def last_parameter_paths(self) -> tuple[str, str]:
    """The last parameter array the backbone creates and the head's (its last Dense's bias):
    the official regenerative term's two arrays (PyTorch's last of ``parameters()``, which
    follows creation order as flax does). tests/test_warmstart_models.py checks each model's
    against its creation order."""
    return (f'backbone/{self._last_backbone_parameter}',
            f'head/Dense_{len(self.head_hidden)}/bias')

  _last_backbone_parameter = ''  # per model below (a class constant)

  def _dense_feature_paths(self, dense: str, norm: str | None):
    """Paths for ReDo when the features come out of ``dense`` (+ the BatchNorm ``norm``)."""
    if self.crelu_head:
      Classifier.feature_layer_paths(self)
    leaves = [(dense, 'kernel'), (dense, 'bias')]
    if norm is not None:
      leaves += [(norm, 'scale'), (norm, 'bias')]
    incoming = tuple(f'backbone/{layer}/{leaf}' for layer, leaf in leaves)
    return incoming, 'head/Dense_0/kernel'


class MLP(Classifier):
  """The official MLP: hidden widths 512 and 256, each Dense-BN-ReLU (src/models/backbones/mlp.py
  appends ``init_normalization(h_out, one_d=True)``, a BatchNorm1d, after every Linear)."""
  hidden_sizes = (512, 256)  # class constants, not module fields: the variants override them
  batch_norm = True

  def setup(self):
    units = [scaled(n, self.width) for n in self.hidden_sizes]
    if self.crelu_head:
      units = [max(1, n // 2) for n in units]
    self.backbone = MLPBackbone(tuple(units), crelu=self.crelu_head,
                                use_batch_norm=self.batch_norm)
    self.head = Head(self.num_classes)  # CReLU is in the backbone

  def feature_layer_paths(self):
    return self._dense_feature_paths('Dense_1', 'BatchNorm_1' if self.batch_norm else None)

  @property
  def _last_backbone_parameter(self):
    return 'BatchNorm_1/bias' if self.batch_norm else 'Dense_1/bias'


class MLPNoBN(MLP):
  """The official MLP's widths without batch norm."""
  batch_norm = False


class MLPPaper(MLP):
  """The paper's text: 784-100-100-10 with BN."""
  hidden_sizes = (100, 100)


class MLPPaperNoBN(MLPPaper):
  """784-100-100-10 without batch norm (the setting the project measured first)."""
  batch_norm = False


class CNN(Classifier):
  _last_backbone_parameter = 'BatchNorm_2/bias'

  def feature_layer_paths(self):
    return self._dense_feature_paths('Dense_0', 'BatchNorm_2')

  def setup(self):
    self.backbone = CNNBackbone((scaled(32, self.width), scaled(64, self.width)),
                                scaled(128, self.width))
    self.head = self.make_head()


class ResNet18(Classifier):
  """The official ResNet-18 with its GAP head: pool, Linear(512)-ReLU-Linear(classes)."""
  _last_backbone_parameter = 'BasicBlock_7/BatchNorm_1/bias'
  head_hidden = (512,)

  def setup(self):
    self.backbone = ResNet18Backbone(tuple(scaled(c, self.width) for c in (64, 128, 256, 512)))
    self.head = self.make_head()


class ResNet18Linear(ResNet18):
  """ResNet-18 with one Dense from the pooled features to the logits."""
  head_hidden = ()


class ViTTiny(Classifier):
  _last_backbone_parameter = 'LayerNorm_0/bias'

  def setup(self):
    self.backbone = ViTBackbone(dim=3 * scaled(64, self.width))
    self.head = self.make_head()


class VGG16(Classifier):
  _last_backbone_parameter = 'BatchNorm_12/bias'
  head_hidden = (1024, 1024)

  def setup(self):
    self.backbone = VGGBackbone(tuple(c if c == 'M' else scaled(c, self.width)
                                      for c in VGG16_CONFIG))
    self.head = self.make_head()


_MODELS = {'mlp': MLP, 'mlp_nobn': MLPNoBN, 'mlp_paper': MLPPaper,
           'mlp_paper_nobn': MLPPaperNoBN, 'cnn': CNN, 'resnet18': ResNet18,
           'resnet18_linear': ResNet18Linear, 'vit_tiny': ViTTiny, 'vgg16': VGG16}
assert tuple(_MODELS) == MODEL_NAMES


def make_model(name: str, num_classes: int, *, crelu_head: bool = False, width: float = 1.0,
               init_scheme: str = 'torch', input_mean: Sequence[float] = (),
               input_std: Sequence[float] = ()) -> nn.Module:
  """The model called ``name`` (one of ``MODEL_NAMES``) with a ``num_classes``-way head.

  ``init_scheme``: one of ``INIT_SCHEMES``; ``input_mean``, ``input_std``: per-channel
  statistics the model normalises its [0, 1] inputs with (both empty: none).
  """
  if name not in _MODELS:
    raise ValueError(f'Unknown model {name!r}; choose one of {", ".join(MODEL_NAMES)}.')
  if width <= 0:
    raise ValueError(f'width must be positive, got {width}.')
  if init_scheme not in INIT_SCHEMES:
    raise ValueError(f'init_scheme must be one of {", ".join(INIT_SCHEMES)}, got '
                     f'{init_scheme!r}.')
  if len(input_mean) != len(input_std) or any(s <= 0 for s in input_std):
    raise ValueError(f'input_mean {tuple(input_mean)} and input_std {tuple(input_std)} need one '
                     'value per channel each, every std > 0.')
  return _MODELS[name](num_classes=num_classes, crelu_head=crelu_head, width=width,
                       init_scheme=init_scheme, input_mean=tuple(map(float, input_mean)),
                       input_std=tuple(map(float, input_std)))


def init_variables(model: nn.Module, rng, input_shape: Sequence[int]) -> dict:
  """``model``'s variables for one (H, W, C) image: {'params': ..., ['batch_stats': ...]}.

  Under the model's ``init_scheme`` 'torch' the Dense and Conv parameters are then re-drawn by
  :func:`torch_default_init` (from a key folded from ``rng``).
  """
  x = jnp.zeros((1,) + tuple(input_shape), jnp.float32)
  variables = model.init({'params': rng, 'dropout': rng}, x, train=False)
  if model.init_scheme == 'torch':
    variables = {**variables,
                 'params': torch_default_init(variables['params'], jax.random.fold_in(rng, 1))}
  return variables


def torch_default_init(params: dict, rng) -> dict:
  """PyTorch's default initialisation of every Dense and Conv in ``params``.

  nn.Linear and nn.Conv2d's ``reset_parameters`` draw the weight by ``kaiming_uniform_(a=
  sqrt(5))``, whose bound is gain * sqrt(3 / fan_in) with gain sqrt(2 / (1 + a^2)) = sqrt(1/3),
  i.e. 1 / sqrt(fan_in), and the bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)): both from
  U(-sqrt(k), sqrt(k)), k = 1 / fan_in, as PyTorch's documentation of both layers says. Here
  fan_in is the product of a kernel's axes but the last (flax: in_features; kh * kw *
  in_channels). A sub-tree holding a 'kernel' is a Dense or Conv; everything else (norm
  layers, the ViT's tokens) is kept.
  """
  params = jax.tree_util.tree_map(lambda leaf: leaf, params)  # fresh dicts to fill in
  layers = []
  def find(node):
    if 'kernel' in node and not isinstance(node['kernel'], dict):
      layers.append(node)
      return
    for name in sorted(node):
      if isinstance(node[name], dict):
        find(node[name])
  find(params)
  targets = [(layer, name, 1.0 / np.sqrt(np.prod(layer['kernel'].shape[:-1])))
             for layer in layers for name in ('kernel', 'bias') if name in layer]
  sizes = [layer[name].size for layer, name, _ in targets]
  # One draw split among the arrays: a draw per array compiled one random kernel per shape
  # when run eagerly (3 s instead of 0.3 s for a small CNN on a busy CPU).
  draws = jnp.split(jax.random.uniform(rng, (sum(sizes),), jnp.float32, -1.0, 1.0),
                    np.cumsum(sizes)[:-1])
  for (layer, name, bound), draw in zip(targets, draws):
    layer[name] = (bound * draw).reshape(layer[name].shape).astype(layer[name].dtype)
  return params
