"""The methods of the warm-start study (paper sections 3.4 and 5.1), one switch each.

A method is a :class:`MethodConfig`: a frozen record of switches that combine freely
(``warm`` + ``aug`` + ``l2`` + ``hare_tortoise`` ...). :data:`PRESETS` names the ones the paper
compares; :func:`parse_method` turns ``"hare_tortoise+aug"`` or ``"ema:momentum=0.99"`` into a
config. The operations themselves are pure functions on parameter pytrees, safe inside
``jax.jit``; the parameter-space ones reuse ``agents/plasticity.py`` (shared with the RL agents):

* L2              as the official code: AdamW's decoupled weight decay (``weight_decay``, preset
                  0.1); a loss penalty ``l2 * sum theta^2`` is the field ``l2``;
* loss terms      (:func:`loss_terms`) each in the official code's form by default
                  (``src/trainers/base.py``), the form of the term's own paper one field away:
                  spectral decoupling (official ``mean(logits^2)`` over every element; Pezeshki et
                  al. 2021: ``mean_i ||logits_i||^2 / 2``), regenerative regularisation (official
                  ``||theta - theta_0||`` of the last parameter array of the backbone and of the
                  head; Kumar et al. 2023: ``sum (theta - theta_0)^2`` over all), self-distillation
                  toward the EMA network (official ``nn.KLDivLoss()``: the KL averaged over examples
                  and classes; per example: averaged over examples only);
* augmentation    pad-4 random crop + horizontal flip (per example, inside the jitted step);
* between phases  Shrink & Perturb toward the stored initial weights (``theta <- sp_shrink theta +
                  sp_perturb theta_0``, paper: 0.2 and 0.8; the factors mean what the agents'
                  ``sp_shrink``/``sp_perturb`` mean) and head reset (head <- its initial weights);
* every step      EMA / Tortoise update ``tortoise <- m tortoise + (1 - m) hare``;
* periodically    Hare & Tortoise reset ``hare <- tortoise`` and ReDo (dormant feature units
                  re-initialised, their outgoing head weights zeroed).

With ``ema > 0`` (EMA, self-distillation, H&T, fresh + EMA) the EMA network is the one that is
evaluated ("the Tortoise predicts"); otherwise the trained network is.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from agents import plasticity

PyTree = Any

# The forms of the loss terms: the official code's first (the default), then the term's paper's.
DISTILL_FORMS = ('official', 'per_example')
SPECTRAL_FORMS = ('official', 'pezeshki')
REGEN_FORMS = ('official', 'kumar')


@dataclasses.dataclass(frozen=True)
class MethodConfig:
  """Switches of one method; every default is "off" (plain warm start).

  Attributes:
    warm_start: bool, train on the noisy subset first (False: "fresh", the second phase only).
    weight_decay: float or None, AdamW's decoupled weight decay for this method (None: the
      model's, or ``--weight-decay``). The official code's "L2" is this (preset ``l2``: 0.1).
    l2: float, coefficient of a loss penalty ``sum theta^2`` (on top of the weight decay).
    augment: bool, pad-4 random crop + horizontal flip of training images.
    spectral: float, spectral decoupling strength (see spectral_form).
    spectral_form: str, 'official' (``mean(logits^2)`` over examples and classes) or
      'pezeshki' (``mean_i ||logits_i||^2 / 2``).
    regen: float, regenerative regularisation strength (see regen_form).
    regen_form: str, 'official' (``||theta - theta_0||`` of the last parameter array of the
      backbone, plus the same of the head) or 'kumar' (``sum (theta - theta_0)^2`` over all).
    redo_tau: float, ReDo's dormancy threshold on the feature units (0: off).
    redo_every_epochs: float, 0 (default): ReDo at every evaluation point of the phase, as the
      official code runs it inside its test loop (warmstart/schedules.py); > 0: every this
      many epochs of the current phase's data instead (the paper's text: 5).
    crelu_head: bool, CReLU in the model's head (see warmstart/models.py).
    head_reset: bool, head <- initial head weights before every phase after the first.
    sp_shrink: float, Shrink & Perturb before every phase after the first,
      ``theta <- sp_shrink theta + sp_perturb theta_0``: the factor on the current (trained)
      weights (paper: 0.2; 1 with sp_perturb 0 is off). Same meaning as DrQ's ``sp_shrink``
      and BBF's ``shrink_factor`` in agents/, whose perturbation is a fresh init instead.
    sp_perturb: float, the factor on the stored initial weights theta_0 (paper: 0.8; 0 off).
    ema: float, momentum m of an EMA network that predicts (0: no EMA network).
    distill: float, self-distillation strength toward the EMA network (needs ema > 0).
    distill_temperature: float, softmax temperature of the distillation targets.
    distill_form: str, 'official' (the KL averaged over examples and classes, as
      ``nn.KLDivLoss()``) or 'per_example' (the KL summed over classes, averaged over examples).
    ht_reset_epochs: float, Hare & Tortoise: hare <- tortoise every this many epochs, on the
      clock ``ht_reset_clock`` (needs ema > 0; 0: off).
    ht_reset_clock: str, 'phase' (official code): after local epochs 1, 1 + R, 1 + 2R, ... of
      each phase's own data (R = ht_reset_epochs); 'full_set': every R epochs of the full
      clean set's length in updates (continual: of one slice's), on the update counter of the
      whole run (warmstart/schedules.py).
    ht_reset_optimizer: bool, also re-initialise the optimizer state at an H&T reset (the
      official supervised code does not).
  """
  warm_start: bool = True
  weight_decay: float | None = None
  l2: float = 0.0
  augment: bool = False
  spectral: float = 0.0
  spectral_form: str = 'official'
  regen: float = 0.0
  regen_form: str = 'official'
  redo_tau: float = 0.0
  redo_every_epochs: float = 0.0
  crelu_head: bool = False
  head_reset: bool = False
  sp_shrink: float = 1.0
  sp_perturb: float = 0.0
  ema: float = 0.0
  distill: float = 0.0
  distill_temperature: float = 1.0
  distill_form: str = 'official'
  ht_reset_epochs: float = 0.0
  ht_reset_clock: str = 'phase'
  ht_reset_optimizer: bool = False

  def __post_init__(self):
    if not 0.0 <= self.ema < 1.0:
      raise ValueError(f'ema (the momentum m) must lie in [0, 1), got {self.ema}.')
    for name in ('sp_shrink', 'sp_perturb'):
      if not 0.0 <= getattr(self, name) <= 1.0:
        raise ValueError(f'{name} must lie in [0, 1], got {getattr(self, name)}; the paper\'s '
                         'Shrink & Perturb is sp_shrink=0.2, sp_perturb=0.8.')
    if self.distill > 0 and self.ema == 0:
      raise ValueError('distill > 0 needs a teacher: set ema > 0 (e.g. ema=0.999).')
    if self.ht_reset_epochs > 0 and self.ema == 0:
      raise ValueError('ht_reset_epochs > 0 needs a Tortoise: set ema > 0 (e.g. ema=0.999).')
    for name in ('l2', 'spectral', 'regen', 'redo_tau', 'distill', 'ht_reset_epochs'):
      if getattr(self, name) < 0:
        raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}.')
    if self.distill_temperature <= 0:
      raise ValueError('distill_temperature must be > 0.')
    if self.redo_every_epochs < 0:
      raise ValueError('redo_every_epochs must be >= 0 (0: at every evaluation point).')
    if self.ht_reset_clock not in HT_RESET_CLOCKS:
      raise ValueError(f'ht_reset_clock must be one of {", ".join(HT_RESET_CLOCKS)}, got '
                       f'{self.ht_reset_clock!r}.')
    if self.weight_decay is not None and self.weight_decay < 0:
      raise ValueError(f'weight_decay must be >= 0, got {self.weight_decay}.')
    for name, forms in (('distill_form', DISTILL_FORMS), ('spectral_form', SPECTRAL_FORMS),
                        ('regen_form', REGEN_FORMS)):
      if getattr(self, name) not in forms:
        raise ValueError(f'{name} must be one of {", ".join(forms)}, got '
                         f'{getattr(self, name)!r}.')

  @property
  def uses_ema(self) -> bool:
    return self.ema > 0.0

  @property
  def uses_shrink_perturb(self) -> bool:
    """False for the identity (sp_shrink 1, sp_perturb 0), which the phase start skips."""
    return (self.sp_shrink, self.sp_perturb) != (1.0, 0.0)


# Momentum and reset interval of H&T as the official supervised code runs them: m = 0.999
# (scripts/paper/*/hare_tortoise.sh: trainer.ema=0.999) and the Hare reset after local epochs
# 1, 11, 21, ... of each phase's data (trainer.hare_tortoise.reset_every=10, src/trainers/base.py:
# `epoch % cfg.hare_tortoise.reset_every == 0` after each epoch). The paper's text says every
# epoch: hare_tortoise:ht_reset_epochs=1. Other strengths: the paper tuned them over grids that
# its text lost; these are our defaults and every one is settable (``name:key=value``).
HT_MOMENTUM = 0.999
HT_RESET_CLOCKS = ('phase', 'full_set')
# The official "L2" is AdamW's weight decay: scripts/paper/warm_start_wo_aug/l2.sh sweeps
# weight_decay=(1.0 0.1 0.01 0.001 0.0001), scripts/paper/warm_start_aug/l2.sh runs 0.1.
L2_WEIGHT_DECAY = 0.1
PRESETS: dict[str, dict] = {
    'warm': {},
    'fresh': {'warm_start': False},
    'fresh_aug': {'warm_start': False, 'augment': True},
    'fresh_ema': {'warm_start': False, 'ema': HT_MOMENTUM},
    'l2': {'weight_decay': L2_WEIGHT_DECAY},
    'l2_penalty': {'l2': 1e-4},  # ours before issue 15: a loss penalty on top of the decay
    'aug': {'augment': True},
    'spectral': {'spectral': 1e-3},
    'regen': {'regen': 1e-4},
    'redo': {'redo_tau': 0.1},
    'crelu': {'crelu_head': True},
    'head_reset': {'head_reset': True},
    # Paper: theta <- 0.2 theta + 0.8 theta_0 (keeps 20% of the trained weights).
    'shrink_perturb': {'sp_shrink': 0.2, 'sp_perturb': 0.8},
    'sp_l2_aug': {'sp_shrink': 0.2, 'sp_perturb': 0.8, 'weight_decay': L2_WEIGHT_DECAY,
                  'augment': True},
    'ema': {'ema': HT_MOMENTUM},
    'self_distill': {'ema': HT_MOMENTUM, 'distill': 1.0},
    'hare_tortoise': {'ema': HT_MOMENTUM, 'ht_reset_epochs': 10.0},
}


def parse_method(spec: str) -> MethodConfig:
  """``"hare_tortoise+aug:ema=0.99,ht_reset_epochs=2"`` -> MethodConfig.

  Preset names joined by ``+`` are merged left to right; ``key=value`` pairs after ``:``
  override single fields (any :class:`MethodConfig` field). The key ``shrink`` of earlier
  versions (``theta <- (1 - shrink) theta + shrink theta_0``) is refused with its conversion to
  ``sp_shrink``/``sp_perturb`` rather than read with either meaning.
  """
  names, _, overrides = spec.partition(':')
  settings: dict[str, Any] = {}
  for name in names.split('+'):
    name = name.strip()
    if name not in PRESETS:
      raise ValueError(f'Unknown method {name!r} in {spec!r}. Known methods: '
                       f'{", ".join(PRESETS)}; combine them with "+" (e.g. "hare_tortoise+aug") '
                       'and set fields with ":key=value" (e.g. "ema:ema=0.99").')
    settings.update(PRESETS[name])
  fields = {f.name: f for f in dataclasses.fields(MethodConfig)}
  for pair in filter(None, (p.strip() for p in overrides.split(','))):
    key, eq, value = pair.partition('=')
    if key == 'shrink':
      raise ValueError(_old_shrink_message(value, spec))
    if not eq or key not in fields:
      raise ValueError(f'Bad method setting {pair!r} in {spec!r}: use key=value with key one of '
                       f'{", ".join(fields)}.')
    settings[key] = _parse_value(value, fields[key].type, pair)
  return MethodConfig(**settings)


def _old_shrink_message(value: str, spec: str) -> str:
  try:
    old = float(value)
    conversion = f'shrink={value} is sp_shrink={1.0 - old:g},sp_perturb={old:g}'
  except ValueError:
    conversion = 'shrink=a is sp_shrink=1-a,sp_perturb=a'
  return (f'{spec!r}: the key "shrink" is no longer read: it named the factor on the initial '
          'weights (theta <- (1 - shrink) theta + shrink theta_0) while sp_shrink in agents/ '
          'names the factor on the current ones. Set both factors of theta <- sp_shrink theta '
          f'+ sp_perturb theta_0 instead: {conversion} (the paper\'s shrink=0.8 is '
          'sp_shrink=0.2,sp_perturb=0.8, the "shrink_perturb" preset).')


def _parse_value(text: str, type_name, pair: str):
  type_name = str(type_name)
  if type_name == 'str':  # a name, checked by MethodConfig (ht_reset_clock, the forms)
    return text
  if 'bool' in type_name:
    if text.lower() in ('1', 'true', 'yes'):
      return True
    if text.lower() in ('0', 'false', 'no'):
      return False
    raise ValueError(f'{pair!r}: expected true/false.')
  try:
    return float(text)
  except ValueError:
    raise ValueError(f'{pair!r}: expected a number.') from None


# --------------------------------------------------------------------------- loss terms

def loss_terms(method: MethodConfig, model, params: PyTree, initial_params: PyTree,
               logits: jax.Array, teacher_logits: jax.Array | None = None) -> jax.Array:
  """Everything the method adds to the cross-entropy, each term in the method's form.

  ``model`` names the last parameter arrays for the official regenerative term
  (``last_parameter_paths()`` of a warmstart.models classifier); ``teacher_logits`` are the
  EMA network's on the same batch (needed when ``method.distill`` > 0).
  """
  total = jnp.zeros((), jnp.float32)
  if method.l2:
    total += method.l2 * l2_penalty(params)
  if method.regen:
    total += method.regen * regen_penalty(params, initial_params, method.regen_form,
                                          model.last_parameter_paths())
  if method.spectral:
    total += method.spectral * spectral_penalty(logits, method.spectral_form)
  if method.distill:
    total += method.distill * distillation_loss(logits, teacher_logits,
                                                method.distill_temperature, method.distill_form)
  return total


def l2_penalty(params: PyTree) -> jax.Array:
  """``sum theta^2`` over every parameter."""
  return sum(jnp.sum(jnp.square(p)) for p in jax.tree_util.tree_leaves(params))


def regen_penalty(params: PyTree, initial_params: PyTree, form: str = 'official',
                  last_paths: tuple[str, ...] = ()) -> jax.Array:
  """L2 toward the initial weights (regenerative regularisation).

  'official': ``sum_path ||theta[path] - theta_0[path]||`` over ``last_paths`` (unsquared
  norms). The official code means Kumar et al.'s term but its loops keep only the last
  parameter of the backbone and of the head (src/trainers/base.py: ``for param, init_param in
  zip(self.model.backbone.parameters(), ...): backbone_regen_loss = torch.norm(param -
  init_param, 2)``, the same for the head), with one weight each (we use ``regen`` for both).
  'kumar': ``sum (theta - theta_0)^2`` over every parameter (Kumar et al. 2023).
  """
  if form == 'kumar':
    return sum(jnp.sum(jnp.square(p - p0)) for p, p0 in
               zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(initial_params)))
  if not last_paths:
    raise ValueError('the official regenerative term needs the paths of its arrays '
                     '(last_paths: a model\'s last_parameter_paths()).')
  return sum(_norm(_leaf(params, path) - _leaf(initial_params, path)) for path in last_paths)


def _leaf(tree: PyTree, path: str):
  for key in path.split('/'):
    tree = tree[key]
  return tree


def _norm(x: jax.Array) -> jax.Array:
  """``||x||`` with gradient 0 at x = 0, as torch.norm's backward (sqrt's would be NaN there,
  and every run starts at theta = theta_0)."""
  squared = jnp.sum(jnp.square(x))
  positive = squared > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def spectral_penalty(logits: jax.Array, form: str = 'official') -> jax.Array:
  """Spectral decoupling's penalty on the logits (the strength multiplies it).

  'official': ``mean(logits^2)`` over examples and classes (src/trainers/base.py:
  ``spectral_loss = (y_pred ** 2).mean()``), 2 / num_classes times 'pezeshki':
  ``mean_i ||logits_i||^2 / 2`` (Pezeshki et al. 2021).
  """
  if form == 'official':
    return jnp.mean(jnp.square(logits))
  return 0.5 * jnp.mean(jnp.sum(jnp.square(logits), axis=-1))


def distillation_loss(student_logits, teacher_logits, temperature: float = 1.0,
                      form: str = 'official') -> jax.Array:
  """KL(softmax(teacher / T) || softmax(student / T)); the teacher gets no gradient.

  'official': averaged over examples and classes, as ``nn.KLDivLoss()`` (reduction 'mean')
  in src/trainers/base.py, so 1 / num_classes times 'per_example': the KL summed over
  classes, averaged over examples.
  """
  teacher = jax.nn.softmax(jax.lax.stop_gradient(teacher_logits) / temperature)
  log_teacher = jax.nn.log_softmax(jax.lax.stop_gradient(teacher_logits) / temperature)
  log_student = jax.nn.log_softmax(student_logits / temperature)
  pointwise = teacher * (log_teacher - log_student)
  if form == 'official':
    return jnp.mean(pointwise)
  return jnp.mean(jnp.sum(pointwise, axis=-1))


# --------------------------------------------------------------------------- augmentation

def augment_images(images: jax.Array, rng: jax.Array, pad: int = 4) -> jax.Array:
  """Pad-``pad`` random crop (zero padding) and random horizontal flip, per example."""
  n, h, w, _ = images.shape
  crop_rng, flip_rng = jax.random.split(rng)
  padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  offsets = jax.random.randint(crop_rng, (n, 2), 0, 2 * pad + 1)
  crop = lambda img, off: jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, img.shape[-1]))
  cropped = jax.vmap(crop)(padded, offsets)
  flip = jax.random.bernoulli(flip_rng, 0.5, (n, 1, 1, 1))
  return jnp.where(flip, cropped[:, :, ::-1, :], cropped)


# --------------------------------------------------------------------------- parameter operations

def shrink_toward_init(params: PyTree, initial_params: PyTree, sp_shrink, sp_perturb) -> PyTree:
  """Shrink & Perturb as the paper runs it: ``sp_shrink * theta + sp_perturb * theta_0``.

  The perturbation is the stored initialisation rather than a fresh draw (paper: 0.2 and 0.8,
  which keeps 20% of the trained weights).
  """
  return plasticity.shrink_perturb(params, initial_params, sp_shrink, sp_perturb)


def reset_head(params: PyTree, initial_params: PyTree) -> PyTree:
  """Head reset: the ``head`` sub-tree takes its initial weights; the backbone is kept."""
  return plasticity.reinitialize(params, initial_params, plasticity.select_mask(params, ('head',)))


def dormant_units(features: jax.Array, tau: float) -> jax.Array:
  """ReDo's tau-dormant units of a feature layer (Sokar et al. 2023).

  The score of unit i is ``mean_x |h_i(x)|`` divided by the layer's mean of those means; a unit
  is dormant when its score is <= tau. ``features`` is (N, D); returns a bool mask (D,).
  """
  activity = jnp.mean(jnp.abs(features), axis=0)
  score = activity / (jnp.mean(activity) + 1e-9)
  return score <= tau


def recycle_dormant(params: PyTree, fresh: PyTree, dormant: jax.Array,
                    incoming: tuple[str, ...], outgoing: str) -> PyTree:
  """ReDo on the feature layer: incoming weights of dormant units re-drawn, outgoing zeroed.

  Args:
    params: the model's parameters (a dict with 'backbone' and 'head').
    fresh: a fresh initialisation of the same tree (the re-drawn incoming weights).
    dormant: bool (D,), the dormant feature units.
    incoming: paths ('backbone/<layer>/<leaf>') of the arrays whose LAST axis indexes the feature
      units (the last dense kernel and bias of the backbone, its norm's scale and bias).
    outgoing: path of the head's first kernel, whose FIRST axis indexes the feature units.
  """
  def visit(path, leaf, fresh_leaf):
    name = '/'.join(plasticity._key_name(k) for k in path)  # pylint: disable=protected-access
    if name in incoming:
      return jnp.where(dormant, fresh_leaf, leaf)
    if name == outgoing:
      return jnp.where(dormant[:, None], 0.0, leaf)
    return leaf
  return jax.tree_util.tree_map_with_path(visit, params, fresh)
