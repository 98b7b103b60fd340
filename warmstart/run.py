"""Command line of the warm-start study: methods x seeds (x subset x noise) -> files and plots.

    python -m warmstart.run                       # the default comparison (Fashion-MNIST)
    python -m warmstart.run --methods warm fresh hare_tortoise+aug --seeds 5 --model mlp
    python -m warmstart.run --protocol continual --access buffer
    python -m warmstart.run --subset 0.1 0.5 1.0 --noise 0 0.5 1.0 --methods warm   # Fig. 2 grid

Writes into ``--out``: ``runs/<run>.json`` (one per method x seed x cell, atomically, so an
interrupted study resumes where it stopped: finished runs are skipped), ``results.csv`` (one
row per run and evaluation point: each phase's start, every ``--eval-every`` epochs, its end),
``summary.json`` and ``summary.md`` (mean, spread, paired differences
with standard errors; on a grid, each method's difference from ``fresh`` per cell) and the plots
of warmstart/plots.py. On a grid, a method without a warm phase runs once per seed and its file
is copied to the other cells (``cell_independent``, ``copy_run``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import dataclasses
import io
import itertools
import json
import multiprocessing
import os
import re
import sys
import time

import numpy as np

from common import processes
from common import seeds as seeds_lib
from common.files import write_atomically
from warmstart import data as data_lib
from warmstart import memory as memory_lib
from warmstart import methods as methods_lib
from warmstart import models as models_lib
from warmstart import protocols
from warmstart import stats
from warmstart import train as train_lib

DEFAULT_METHODS = ('warm', 'fresh', 'fresh_ema', 'hare_tortoise', 'shrink_perturb')
# The method every other one is compared with cell by cell in a subset x noise grid (Fig. 2's
# warm-start gap is warm - fresh).
GAP_REFERENCE = 'fresh'
CSV_COLUMNS = (
    'protocol', 'dataset', 'model', 'width', 'method', 'seed', 'subset', 'noise', 'phase',
    'phase_name', 'epoch', 'phase_epochs', 'step', 'phase_noise', 'phase_examples', 'updates',
    'ht_resets', 'train_acc',
    'test_acc', 'weight_magnitude', 'weight_distance', 'zero_activation_ratio',
    'zero_gradient_ratio', 'srank', 'seconds')


def build_parser() -> argparse.ArgumentParser:
  defaults = '\n'.join(f'  {model}: {values}' for model, values in
                       list(MODEL_DEFAULTS.items()) + [('other models', PAPER_DEFAULTS)])
  parser = argparse.ArgumentParser(
      prog='python -m warmstart.run', description=__doc__,
      epilog=f'MODEL DEFAULTS (options left unset):\n{defaults}',
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--protocol', choices=tuple(protocols.PROTOCOLS), default='warmstart',
                      help='warmstart: noisy subset then full clean data; continual: 10 phases.')
  parser.add_argument('--dataset', default='fashion_mnist',
                      help=f'one of {", ".join(data_lib.DATASET_NAMES)} (default fashion_mnist).')
  parser.add_argument('--data-root', default=None,
                      help='folder holding the data set files (MNIST, CIFAR, Tiny ImageNet).')
  parser.add_argument('--model', default='cnn', choices=models_lib.MODEL_NAMES,
                      help='mlp: the official 784-512-256-10 with BN; mlp_paper: the paper\'s '
                      'text, 784-100-100-10; *_nobn: without BN; resnet18: the official GAP '
                      'head (512-ReLU-classes), resnet18_linear: one Dense; see '
                      'warmstart/models.py.')
  parser.add_argument('--width', type=float, default=None,
                      help='width multiplier of the model (default: see MODEL DEFAULTS below).')
  parser.add_argument('--methods', nargs='+', default=list(DEFAULT_METHODS),
                      help='method specs: presets joined by "+", fields after ":" '
                      f'(presets: {", ".join(methods_lib.PRESETS)}). '
                      'Example: hare_tortoise+aug:ema=0.99,ht_reset_epochs=2')
  parser.add_argument('--ema', type=float, default=None,
                      help='momentum m of every method that keeps an EMA network (H&T, EMA, '
                      'fresh_ema, self_distill); default: the default setting\'s (see below), '
                      'the paper\'s 0.999 suits its ~20k updates a phase.')
  parser.add_argument('--seeds', default='3',
                      help=f'{seeds_lib.HELP}, as the sweep\'s --seeds (default 3: seeds 0..2).')
  parser.add_argument('--first-seed', type=int, default=None, metavar='K',
                      help='with a count N in --seeds: seeds K..K+N-1 (default 0).')
  parser.add_argument('--subset', type=float, nargs='+', default=[0.1],
                      help='warm-start subset ratio(s); several make the Fig. 2 grid.')
  parser.add_argument('--noise', type=float, nargs='+', default=[0.5],
                      help='label-noise ratio(s) of the warm phase.')
  parser.add_argument('--epochs', type=float, default=None,
                      help='epochs of the full clean set (warm phase: as many updates); '
                      'continual: epochs per phase. Default: the model\'s (below).')
  parser.add_argument('--train-examples', type=int, default=None,
                      help='train on a fixed random draw of this many examples (0: all; default: '
                      'the model\'s, below).')
  parser.add_argument('--batch-size', type=int, default=256)
  parser.add_argument('--lr', type=float, default=None, help='default: the model\'s (App. A.2).')
  parser.add_argument('--weight-decay', type=float, default=None)
  parser.add_argument('--steps-per-call', type=int, default=None,
                      help='updates per jitted call (0: a whole epoch). Default: 0 for mlp, '
                      '1 for conv nets and ViT (XLA:CPU runs convolutions inside loops slowly).')
  parser.add_argument('--access', choices=('full', 'buffer'), default='full',
                      help='continual: all data seen so far (the official runs), or the new '
                      'slice + a memory of at most --buffer-size earlier examples.')
  parser.add_argument('--buffer-size', type=int, default=5000,
                      help='continual, --access buffer: the memory\'s size (paper: 5000).')
  parser.add_argument('--phases', type=int, default=10, help='continual: number of phases.')
  official = parser.add_argument_group(
      'schedules of the official code', 'Defaults reproduce the code behind the paper\'s '
      'figures (docs/warmstart.md, "Against the official code");\neach option is the '
      'departure one flag away.')
  official.add_argument('--eval-every', type=float, default=None, metavar='K',
                        help='evaluate (a results row) at each phase\'s start and end and every '
                        'K epochs inside it, in the unit of --epochs (warm phase: int(K / '
                        'subset) of its own epochs). ReDo and the side effect below run at '
                        'these points. 0: phase ends only. Default: warmstart 5, continual 20.')
  official.add_argument('--eval-dead-reset', action=argparse.BooleanOptionalAction,
                        default=True,
                        help='at every evaluation, in every method, re-draw the incoming weights '
                        'of dead hidden units of the head, as the official test loop does '
                        '(default: on).')
  official.add_argument('--augment', choices=('all', 'method'), default=None,
                        help='all: every method trains with augmentation; method: only methods '
                        'with aug. Default: all for continual (official configs), method for '
                        'warmstart.')
  official.add_argument('--noise-schedule', choices=protocols.NOISE_SCHEDULES,
                        default='official',
                        help='continual label noise per phase: official (0.5, 0.4, 0.4, ..., '
                        '0.1, 0.0) or linear (0.5 -> 0).')
  official.add_argument('--buffer-rule', choices=memory_lib.RULES, default='official',
                        help='continual memory: official (keeps the lowest official indices: '
                        'class-sorted, deterministic) or reservoir (uniform over all seen).')
  parser.add_argument('--out', default=None,
                      help='output folder (default results/warmstart/<protocol>_<dataset>_<model>).')
  parser.add_argument('--jobs', type=int, default=min(2, os.cpu_count() or 1),
                      help='runs in parallel, one process and one core each (default: up to 2).')
  parser.add_argument('--no-plots', action='store_true')
  parser.add_argument('--no-progress', action='store_true')
  official = parser.add_argument_group(
      'the official code\'s choices (issue 15; docs/warmstart.md "Against the official code"); '
      'each default is the official code\'s')
  official.add_argument('--label-noise', choices=data_lib.LABEL_NOISE_KINDS, default='other',
                        help='a noisy label is always a wrong class (other: official) or drawn '
                        'from all classes (any: at noise 0.5 and 10 classes, 45%% wrong).')
  official.add_argument('--init', choices=models_lib.INIT_SCHEMES, default='torch',
                        help='initialisation of every Dense and Conv: PyTorch\'s defaults, '
                        'U(+-1/sqrt(fan_in)) for weights and biases (torch: official), or flax\'s '
                        '(LeCun normal weights, zero biases).')
  official.add_argument('--normalize', choices=data_lib.NORMALIZATIONS, default='mean_std',
                        help='inputs x/255 normalised by the official per-data-set mean and std '
                        '(mean_std; Fashion-MNIST and digits take MNIST\'s), or x/255 only (unit).')
  for name, help_text in (('b1', 'decay of the first moment'), ('b2', 'decay of the second moment'),
                          ('eps', 'epsilon added to the root of the second moment')):
    official.add_argument(f'--adam-{name}', type=float,
                          default=getattr(train_lib.OptimConfig, name),
                          help=f'AdamW\'s {help_text} (default %(default)g, official; the '
                          'paper\'s Fig. 3 varies them).')
  return parser


# Settings of the defaults: chosen so the default study finishes in minutes on 2 CPU cores.
# Per-model defaults of --width, --train-examples, --epochs and --ema. The cnn's make the default
# study: it shows the warm-start gap beyond the seed spread and finishes in minutes on 2 CPU
# cores (docs/warmstart.md). The others follow the paper (width 1, all data, EMA 0.999)
# with 20 epochs, the setting the project measured the MLP in first; the paper trains 100.
MODEL_DEFAULTS = {
    'cnn': {'width': 0.5, 'train_examples': 20000, 'epochs': 10.0, 'ema': 0.99},
}
PAPER_DEFAULTS = {'width': 1.0, 'train_examples': 0, 'epochs': 20.0, 'ema': 0.999}


def model_default(model: str, name: str):
  return MODEL_DEFAULTS.get(model, PAPER_DEFAULTS)[name]


def apply_model_defaults(args) -> None:
  """Fills the options left unset with the model's defaults (in place)."""
  for name in ('width', 'train_examples', 'epochs', 'ema'):
    if getattr(args, name) is None:
      setattr(args, name, model_default(args.model, name))


def seeds_from_args(args) -> list[int]:
  """The seeds of ``--seeds`` (``common.seeds``), a count shifted by ``--first-seed``.

  Raises:
    ValueError: a bad seed spec, or ``--first-seed`` with a range or a list (they name their
      seeds themselves, so a shift would make the seeds run differ from the seeds written).
  """
  seeds = seeds_lib.parse_seeds(args.seeds)
  if args.first_seed is None:
    return seeds
  if not seeds_lib.is_count(args.seeds):
    raise ValueError(
        f'--first-seed applies to a seed count only, and --seeds {args.seeds!r} names its seeds: '
        f'drop --first-seed (seeds {args.seeds} as written), or give a count with it '
        f'(--seeds {len(seeds)} --first-seed {args.first_seed}: seeds {args.first_seed}..'
        f'{args.first_seed + len(seeds) - 1}).')
  if args.first_seed < 0:
    raise ValueError(f'--first-seed must be 0 or more, not {args.first_seed}.')
  return [args.first_seed + seed for seed in seeds]


def configs_from_args(args) -> list[tuple[protocols.ProtocolConfig, str]]:
  """Every (config, method spec) pair the arguments ask for, seeds innermost-last."""
  steps = args.steps_per_call
  if steps is None:
    steps = 0 if args.model.startswith('mlp') else 1
  base = protocols.ProtocolConfig(
      dataset=args.dataset, model=args.model, width=args.width, epochs=args.epochs,
      train_examples=args.train_examples,
      batch_size=args.batch_size, learning_rate=args.lr, weight_decay=args.weight_decay,
      steps_per_call=steps, num_phases=args.phases, access=args.access,
      buffer_size=args.buffer_size, eval_every=args.eval_every,
      eval_dead_reset=args.eval_dead_reset,
      augment_all=None if args.augment is None else args.augment == 'all',
      buffer_rule=args.buffer_rule, noise_schedule=args.noise_schedule,
      label_noise=args.label_noise, init=args.init,
      normalize=args.normalize, adam_b1=args.adam_b1, adam_b2=args.adam_b2,
      adam_eps=args.adam_eps)
  cells = list(itertools.product(args.subset, args.noise))
  if args.protocol == 'continual':
    cells = cells[:1]
  seeds = seeds_from_args(args)
  jobs = []
  for subset, noise in cells:
    for seed in seeds:
      for spec in args.methods:
        jobs.append((dataclasses.replace(base, subset=subset, noise=noise, seed=seed), spec))
  return jobs


def cell_independent(protocol: str, method: methods_lib.MethodConfig) -> bool:
  """Whether a run reads nothing of its (subset, noise) cell: a warm-start run without a warm
  phase (``fresh``, ``fresh_aug``, ``fresh_ema``) trains on the full clean set alone, from
  weights, data order and keys set by the seed, so one run per seed serves every cell of a
  Fig. 2 grid (tests/test_warmstart_protocols.py pins its rows equal across cells)."""
  return protocol == 'warmstart' and not method.warm_start


def shared_run_groups(protocol: str, jobs: list[tuple], parsed: dict) -> list[list[tuple]]:
  """``[[(config, spec), ...]]``: the jobs of each (seed, method) of a cell-independent method
  across the cells, in job order, when there are two or more; one run serves a whole group."""
  groups: dict[tuple, list] = {}
  for config, spec in jobs:
    if cell_independent(protocol, parsed[spec]):
      groups.setdefault((config.seed, spec), []).append((config, spec))
  return [group for group in groups.values() if len(group) > 1]


def copy_run(out: str, protocol: str, source: tuple, target: tuple) -> None:
  """Writes the run file of job ``target`` from the finished run of job ``source`` of the same
  group (``shared_run_groups``): the same rows with the target's subset and noise, its config,
  and ``copied_from`` naming the source run."""
  (source_config, source_spec), (config, spec) = source, target
  source_name = run_name(protocol, source_config, source_spec)
  with open(run_path(out, protocol, source_config, source_spec)) as f:
    record = json.load(f)
  record.update(
      config=dataclasses.asdict(config), copied_from=source_name,
      rows=[dict(row, subset=config.subset, noise=config.noise) for row in record['rows']])
  write_atomically(run_path(out, protocol, config, spec), json.dumps(record, indent=1))


def run_name(protocol: str, config: protocols.ProtocolConfig, spec: str) -> str:
  safe = ''.join(c if c.isalnum() or c in '._-' else '_' for c in spec)
  return f'{protocol}_{safe}_sub{config.subset:g}_noise{config.noise:g}_seed{config.seed}'


def run_path(out: str, protocol: str, config: protocols.ProtocolConfig, spec: str) -> str:
  """The file of one run in the study folder ``out``: ``runs/<run_name>.json``."""
  return os.path.join(out, 'runs', run_name(protocol, config, spec) + '.json')


def rows_to_csv(rows: list[dict]) -> str:
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction='ignore')
  writer.writeheader()
  for row in rows:
    writer.writerow(row)
  return buffer.getvalue()


def summarize(rows: list[dict]) -> dict:
  """Final test accuracy per method (mean, std, n), paired differences between methods and,
  with several (subset, noise) cells, each method's paired difference from ``fresh`` per cell.

  A paired difference uses the seeds (and subset/noise cells) both methods ran
  (``stats.paired_difference``: standard error ``std(d, ddof=1) / sqrt(n)``); the pooled one
  of a grid counts each cell's seeds as pairs.
  """
  final = {}
  for row in rows:  # a run's rows come in order: its last row of its last phase is its end
    key = (row['method'], row['subset'], row['noise'], row['seed'])
    if key not in final or row['phase'] >= final[key]['phase']:
      final[key] = row
  by_method: dict[str, dict] = {}
  for (method, subset, noise, seed), row in final.items():
    by_method.setdefault(method, {})[(subset, noise, seed)] = row['test_acc']
  methods = list(dict.fromkeys(row['method'] for row in rows))
  summary = {'methods': {}, 'paired_differences': [], 'cell_differences': []}
  for method in methods:
    values = np.array(list(by_method[method].values()))
    summary['methods'][method] = {
        'mean': float(values.mean()), 'std': float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        'n': int(len(values))}
  for a, b in itertools.combinations(methods, 2):
    diff = stats.paired_difference(by_method[a], by_method[b])
    if diff is not None:
      summary['paired_differences'].append({'a': a, 'b': b, **diff})
  cells = {key[:2] for values in by_method.values() for key in values}
  if len(cells) > 1 and GAP_REFERENCE in by_method:
    for a in methods:
      if a == GAP_REFERENCE:
        continue
      for (subset, noise), diff in stats.cell_differences(
          by_method[a], by_method[GAP_REFERENCE]).items():
        summary['cell_differences'].append(
            {'a': a, 'b': GAP_REFERENCE, 'subset': subset, 'noise': noise, **diff})
  return summary


def _cell_tables(differences: list[dict]) -> list[str]:
  """Markdown grids (noise rows x subset columns) of ``summary['cell_differences']``, one per
  method: the paired difference in points, its standard error and the number of seeds."""
  lines = []
  for a in dict.fromkeys(d['a'] for d in differences):
    mine = {(d['subset'], d['noise']): d for d in differences if d['a'] == a}
    subsets = sorted({s for s, _ in mine})
    noises = sorted({n for _, n in mine})
    b = next(iter(mine.values()))['b']
    lines += ['', f'{a} - {b} per cell (points, mean +/- s.e. over n seeds; rows: label noise '
                  'of the warm phase, columns: subset ratio)', '',
              '| noise \\ subset | ' + ' | '.join(f'{s:g}' for s in subsets) + ' |',
              '|---' * (len(subsets) + 1) + '|']
    for noise in noises:
      cells = []
      for subset in subsets:
        d = mine.get((subset, noise))
        cells.append('' if d is None else
                     f'{100 * d["mean"]:+.2f} +/- {100 * d["se"]:.2f} (n={d["n"]})')
      lines.append(f'| {noise:g} | ' + ' | '.join(cells) + ' |')
  return lines


def summary_markdown(summary: dict, title: str) -> str:
  lines = [f'## {title}', '', '| method | final test acc (mean) | std over seeds | n |',
           '|---|---|---|---|']
  for method, s in summary['methods'].items():
    lines.append(f'| {method} | {100 * s["mean"]:.2f} | {100 * s["std"]:.2f} | {s["n"]} |')
  lines += ['', '| a - b | mean (points) | s.e. | n |', '|---|---|---|---|']
  for d in summary['paired_differences']:
    lines.append(f'| {d["a"]} - {d["b"]} | {100 * d["mean"]:+.2f} | {100 * d["se"]:.2f} | '
                 f'{d["n"]} |')
  if summary.get('cell_differences'):
    lines += ['', 'The tables above pool every subset x noise cell; a method without a warm phase '
                  'ran once per seed and counts in each cell.']
  lines += _cell_tables(summary.get('cell_differences', []))
  return '\n'.join(lines) + '\n'


class Progress:
  """One bar over every update of the study (steps/s and ETA), redrawn at most 4 times a second."""

  def __init__(self, total: int, enabled: bool):
    self.bar = None
    if enabled:
      from tqdm import tqdm  # pylint: disable=import-outside-toplevel
      self.bar = tqdm(total=total, unit='upd', dynamic_ncols=True, mininterval=0.25)
    self.last_draw = 0.0

  def describe(self, text: str):
    if self.bar is not None:
      self.bar.set_description(text)

  def __call__(self, updates, loss, accuracy):
    if self.bar is None:
      return
    self.bar.update(updates)
    now = time.time()
    if loss is not None and now - self.last_draw > 2.0:  # reading the scalars waits for the device: do it seldom
      self.bar.set_postfix(loss=f'{float(loss):.3f}', acc=f'{float(accuracy):.3f}')
      self.last_draw = now

  def close(self):
    if self.bar is not None:
      self.bar.close()


def _save_run(out: str, protocol: str, parsed: dict, config, spec: str, rows: list) -> None:
  method = protocols.protocol_method(parsed[spec], config, protocol)  # as it ran (augmentation)
  record = {'config': dataclasses.asdict(config), 'method_spec': spec,
            'method': dataclasses.asdict(method), 'rows': rows}
  write_atomically(run_path(out, protocol, config, spec), json.dumps(record, indent=1))


_WORKER_DATASET = {}
_WORKER_PROGRESS = []  # the progress queue of this worker process


def _init_worker(queue) -> None:
  """Worker initializer: keep the progress queue; on Linux, end the worker when the parent dies
  (e.g. killed) instead of leaving it computing an orphaned run."""
  _WORKER_PROGRESS[:] = [queue]
  processes.die_with_parent()


def _worker_run(protocol, config, spec, method, dataset_name, data_root):
  """One run in a worker process; progress goes back through the queue."""
  key = (dataset_name, data_root)
  if key not in _WORKER_DATASET:
    _WORKER_DATASET.clear()
    _WORKER_DATASET[key] = data_lib.load_dataset(dataset_name, data_root)
  queue = _WORKER_PROGRESS[0]
  report = lambda updates, loss, accuracy: queue.put(updates)
  return protocols.PROTOCOLS[protocol](config, spec, method, _WORKER_DATASET[key],
                                       on_progress=report)


def _run_in_workers(args, pending, parsed, progress, save) -> None:
  """Runs ``pending`` in ``args.jobs`` processes (one XLA thread each); saves each as it ends."""
  # Each worker gets one core: XLA's own thread pool would fight the other workers for it.
  os.environ['XLA_FLAGS'] = processes.xla_thread_flags(1, os.environ.get('XLA_FLAGS', ''))
  context = multiprocessing.get_context('spawn')
  queue = context.Queue()
  with concurrent.futures.ProcessPoolExecutor(
      max_workers=args.jobs, mp_context=context, initializer=_init_worker,
      initargs=(queue,)) as pool:
    futures = {pool.submit(_worker_run, args.protocol, config, spec, parsed[spec], args.dataset,
                           args.data_root): (config, spec) for config, spec in pending}
    progress.describe(f'{len(pending)} runs in {args.jobs} processes')
    remaining = set(futures)
    while remaining:
      done, remaining = concurrent.futures.wait(remaining, timeout=0.5)
      while not queue.empty():
        progress(queue.get(), None, None)
      for future in done:
        config, spec = futures[future]
        save(config, spec, future.result())


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  apply_model_defaults(args)
  try:
    jobs = configs_from_args(args)
    parsed = {spec: methods_lib.parse_method(spec) for spec in args.methods}
    parsed = {spec: dataclasses.replace(m, ema=args.ema)
              if m.uses_ema and not re.search(r'(^|,)\s*ema=', spec.partition(':')[2]) else m
              for spec, m in parsed.items()}
    dataset = data_lib.load_dataset(args.dataset, args.data_root)
  except (ValueError, FileNotFoundError) as error:
    print(f'error: {error}', file=sys.stderr)
    return 2
  out = args.out or os.path.join('results', 'warmstart',
                                 f'{args.protocol}_{args.dataset}_{args.model}')
  os.makedirs(os.path.join(out, 'runs'), exist_ok=True)
  finished = lambda job: os.path.exists(run_path(out, args.protocol, *job))
  pending = [job for job in jobs if not finished(job)]
  if len(pending) < len(jobs):
    print(f'{len(jobs) - len(pending)} of {len(jobs)} runs already finished in {out}: skipped.')
  copies = {}  # a job that runs -> the jobs of its group its run serves
  for group in shared_run_groups(args.protocol, jobs, parsed):
    missing = [job for job in group if not finished(job)]
    done = [job for job in group if finished(job)]
    if done:  # finished in an earlier, interrupted invocation
      for job in missing:
        copy_run(out, args.protocol, done[0], job)
    elif missing:
      copies[missing[0]] = missing[1:]
    pending = [job for job in pending if job not in missing or job in copies]
  if copies:
    print(f'{sum(map(len, copies.values()))} runs of methods without a warm phase are copies: '
          'one run per seed serves every subset x noise cell.')
  total = sum(protocols.planned_updates(c, parsed[s], args.protocol, len(dataset.x_train))
              for c, s in pending)
  progress = Progress(total, not args.no_progress)

  def run_one(config, spec, rows):
    _save_run(out, args.protocol, parsed, config, spec, rows)
    for job in copies.get((config, spec), []):
      copy_run(out, args.protocol, (config, spec), job)
  try:
    if args.jobs <= 1 or len(pending) <= 1:
      run_protocol = protocols.PROTOCOLS[args.protocol]
      for config, spec in pending:
        progress.describe(f'{spec} seed {config.seed}')
        run_one(config, spec, run_protocol(config, spec, parsed[spec], dataset,
                                           on_progress=progress))
    else:
      _run_in_workers(args, pending, parsed, progress, run_one)
  finally:
    progress.close()
  rows = []
  for config, spec in jobs:
    with open(run_path(out, args.protocol, config, spec)) as f:
      rows.extend(json.load(f)['rows'])
  write_atomically(os.path.join(out, 'results.csv'), rows_to_csv(rows))
  summary = summarize(rows)
  write_atomically(os.path.join(out, 'summary.json'), json.dumps(summary, indent=1))
  title = (f'{args.protocol}, {args.dataset}, {args.model} (width {args.width:g}), '
           f'subset {args.subset} noise {args.noise}')
  markdown = summary_markdown(summary, title)
  write_atomically(os.path.join(out, 'summary.md'), markdown)
  print(markdown)
  if not args.no_plots:
    from warmstart import plots  # pylint: disable=import-outside-toplevel
    for path in plots.plot_all(os.path.join(out, 'results.csv'), out):
      print('plot:', path)
  print(f'results in {out}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
