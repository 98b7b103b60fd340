"""agents/divergence.py (loss watch, non-finite leaves) and agents/settings.py (range checks
named by their binding), on small hand-made cases."""

import gin
import jax.numpy as jnp
import numpy as np
import pytest

from agents import divergence
from agents import settings


def watch_after(*steps):
  watch = divergence.LossWatch.create()
  for losses, step in steps:
    watch = divergence.observe_loss(watch, jnp.asarray(losses, jnp.float32), step)
  return watch


def test_watch_keeps_the_first_non_finite_step_and_the_last_finite_loss():
  watch = watch_after((0.5, 1), (0.25, 2), (np.nan, 3), (0.125, 4), (np.inf, 5))
  assert int(watch.first_nonfinite_step) == 3
  assert float(watch.last_finite_loss) == 0.125 and int(watch.last_finite_step) == 4


def test_watch_of_grouped_steps_names_the_step_inside_the_group():
  # BBF: losses of gradient steps 9 and 10 come in one call ending at step 10.
  watch = watch_after(([0.5, 0.25], 8), ([0.75, np.nan], 10))
  assert int(watch.first_nonfinite_step) == 10
  assert float(watch.last_finite_loss) == 0.75 and int(watch.last_finite_step) == 9
  watch = watch_after(([np.nan, 0.5], 2))
  assert int(watch.first_nonfinite_step) == 1 and int(watch.last_finite_step) == 2


def test_a_finite_run_has_no_divergence():
  watch = watch_after((0.5, 1), (0.25, 2))
  assert int(watch.first_nonfinite_step) == -1
  trees = {'online parameters': {'a': jnp.ones(3)}, 'target parameters': {'a': jnp.zeros(3)}}
  assert divergence.find(watch, trees, 2) is None


def test_first_nonfinite_leaf_names_its_path():
  tree = {'params': {'Conv_0': {'bias': jnp.ones(2), 'kernel': jnp.ones((2, 2))},
                     'Dense_0': {'bias': jnp.array([1.0, jnp.inf]), 'kernel': jnp.ones(2)}}}
  assert divergence.first_nonfinite_leaf(tree) == 'params/Dense_0/bias'
  assert divergence.first_nonfinite_leaf({'x': jnp.ones(2)}) is None


def test_find_reports_the_loss_first_then_the_parameters():
  trees = {'online parameters': {'w': jnp.array([jnp.nan])}}
  found = divergence.find(watch_after((0.5, 1), (np.nan, 2)), trees, 0)
  assert (found.quantity, found.gradient_step) == ('loss', 2)
  assert found.describe() == ('non-finite loss at gradient step 2; last finite loss 0.5 at '
                              'gradient step 1')
  found = divergence.find(None, trees, 40)
  assert found.quantity == 'online parameters (w)' and found.gradient_step is None
  assert found.describe() == ('non-finite online parameters (w) after gradient step 40 (the '
                              'last check it passed); no finite loss was observed')


RULES = {'period': settings.PERIOD, 'shrink': settings.FRACTION, 'tau': settings.RATE,
         'lr': settings.POSITIVE, 'batch': settings.POSITIVE_INT}


@pytest.mark.parametrize('values', [
    {'period': 0, 'shrink': 0.0, 'tau': 1.0, 'lr': 1e-4, 'batch': 1},
    {'period': 4000, 'shrink': 1.0, 'tau': None, 'lr': 3, 'batch': 32},
    {'unchecked': -1},
])
def test_values_in_range_pass(values):
  settings.check('Thing', values, RULES, optional=('tau',))


@pytest.mark.parametrize('values, message', [
    ({'period': -5}, 'Thing.period = -5: must be an integer >= 0 (0 turns it off)'),
    ({'period': 2.5}, 'Thing.period = 2.5: must be an integer'),
    ({'period': True}, 'Thing.period = True: must be an integer'),
    ({'shrink': 1.5}, 'Thing.shrink = 1.5: must be a number in [0, 1]'),
    ({'tau': 0.0}, 'Thing.tau = 0.0: must be a number in (0, 1] or None'),
    ({'lr': float('nan')}, 'Thing.lr = nan: must be a number > 0'),
    ({'batch': 0}, 'Thing.batch = 0: must be an integer >= 1'),
    ({'lr': 'fast'}, "Thing.lr = 'fast': must be a number > 0"),
])
def test_values_out_of_range_name_the_binding(values, message):
  with pytest.raises(settings.SettingError) as error:
    settings.check('Thing', values, RULES, optional=('tau',))
  assert message in str(error.value) and 'GIN=' in str(error.value)


def test_every_bad_value_is_listed_at_once():
  with pytest.raises(settings.SettingError, match=r'Bad settings: Thing.period = -1.*'
                                                  r'Thing.batch = 0'):
    settings.check('Thing', {'period': -1, 'batch': 0}, RULES)


@gin.configurable
class Configurable:
  def __init__(self, period: int = 10, shrink: float = 0.5, fn=None):
    del period, shrink, fn


def test_settings_from_gin_merges_defaults_and_bindings():
  gin.parse_config('Configurable.shrink = 0.9\nConfigurable.fn = @Configurable')
  assert settings.settings_from_gin(Configurable) == {'period': 10, 'shrink': 0.9}
