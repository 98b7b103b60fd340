"""Every command quoted in README.md and docs/*.md parses, so the documentation cannot rot.

A command is a line of a fenced code block, or an inline `code` span, that starts (after
`VAR=value` environment prefixes and a `.venv/bin/` prefix) with `python -m <module>` or
`make <target>`. For `python -m M ARGS`, with M one of this repository's modules,
``M.build_parser().parse_args(ARGS)`` must not exit (a `--help` line only needs the parser).
For `make T VARS`, `make -n T VARS` must know the target, and every `python -m` line of this
repository it would run is parsed the same way. Nothing is trained or downloaded: parsing only.
Each case is named `<file>:<line>` so that a failure says where the command is written.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import importlib.util
import os
import re
import shlex
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC_FILES = ['README.md'] + sorted(
    os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, 'docs', '*.md')))
SHELL_OPERATORS = {'|', '||', '&&', ';', '&', '>', '>>', '<', '2>', '2>&1'}
ENV_PREFIX = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*=')
FENCE = re.compile(r'^\s*```')
INLINE = re.compile(r'(?<!`)`([^`\n]+)`(?!`)')


def _words(text: str) -> list[str] | None:
  """Shell words of one command up to the first operator (`|`, `>`, `&&` ...); None if the
  text is not valid shell quoting (then it is prose, not a command)."""
  try:
    words = shlex.split(text, comments=True)
  except ValueError:
    return None
  for i, word in enumerate(words):
    if word in SHELL_OPERATORS or word.startswith('>'):
      return words[:i]
  return words


def _command(words: list[str]) -> tuple[str, list[str]] | None:
  """('python', [module, args...]) or ('make', [target, vars...]) or None for other commands."""
  while words and ENV_PREFIX.match(words[0]):
    words = words[1:]
  if not words:
    return None
  program = words[0]
  if program.startswith('.venv/bin/'):
    program = program[len('.venv/bin/'):]
  if program in ('python', 'python3') and len(words) >= 3 and words[1] == '-m':
    return 'python', words[2:]
  if program == 'make' and len(words) >= 2:
    return 'make', words[1:]
  return None


def _is_ours(module: str) -> bool:
  """True for a module of this repository (pytest, pip or ray are not ours to check)."""
  top = module.split('.')[0]
  return (os.path.isfile(os.path.join(REPO, top, '__init__.py'))
          or os.path.isfile(os.path.join(REPO, top + '.py')))


def _commands_in(path: str):
  """Yields (line number, shell text) of every candidate command in a Markdown file."""
  with open(os.path.join(REPO, path), encoding='utf-8') as f:
    lines = f.read().split('\n')
  in_fence = False
  pending, start = '', 0
  for number, line in enumerate(lines, start=1):
    if FENCE.match(line):
      in_fence, pending = not in_fence, ''
      continue
    if in_fence:
      if not pending:
        start = number
      if line.rstrip().endswith('\\'):  # a continued command: join it with the next line
        pending += line.rstrip()[:-1] + ' '
        continue
      yield start, pending + line
      pending = ''
    else:
      for span in INLINE.findall(line):
        yield number, span


def _cases():
  cases = []
  for path in DOC_FILES:
    seen = {}
    for number, text in _commands_in(path):
      words = _words(text)
      command = _command(words) if words else None
      if command is None:
        continue
      kind, rest = command
      if kind == 'python' and not _is_ours(rest[0]):
        continue
      name = f'{path}:{number}'
      seen[name] = seen.get(name, 0) + 1
      if seen[name] > 1:
        name += f'#{seen[name]}'
      cases.append(pytest.param(kind, rest, id=name))
  return cases


def _parser_of(module: str) -> argparse.ArgumentParser:
  """The module's build_parser(); for a package run by its __main__, that of its `cli` module."""
  candidates = [module]
  if importlib.util.find_spec(module).submodule_search_locations is not None:
    candidates.append(module + '.cli')
  for name in candidates:
    try:
      mod = importlib.import_module(name)
    except ModuleNotFoundError as error:
      if error.name != name:
        raise
      continue
    if hasattr(mod, 'build_parser'):
      return mod.build_parser()
  raise AssertionError(f'python -m {module}: no build_parser() in {" or ".join(candidates)}')


def _check_python(module: str, args: list[str]) -> None:
  parser = _parser_of(module)
  if not args or '--help' in args or '-h' in args:
    return  # `python -m M` alone names the command line in prose; --help needs only the parser
  try:
    parser.parse_args(args)
  except SystemExit as exit_:
    raise AssertionError(f'python -m {module} {shlex.join(args)}: the parser refused it '
                         f'(exit {exit_.code}; its message is above)') from None


def _check_make(arguments: list[str]) -> None:
  targets = [a for a in arguments if not ENV_PREFIX.match(a)]
  assert targets, f'make {shlex.join(arguments)}: no target'
  env = {k: v for k, v in os.environ.items() if k not in ('MAKEFLAGS', 'MAKELEVEL', 'MFLAGS')}
  done = subprocess.run(['make', '-n', *arguments], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=60, check=False)
  assert done.returncode == 0, f'make -n {shlex.join(arguments)}:\n{done.stderr}'
  # make -n prints a recipe line continued with backslash-newline as written: join them.
  for line in done.stdout.replace('\\\n', ' ').split('\n'):
    words = _words(line)
    command = _command(words) if words else None
    if command and command[0] == 'python' and _is_ours(command[1][0]):
      _check_python(command[1][0], command[1][1:])


CASES = _cases()


def test_the_check_refuses_what_does_not_parse():
  with pytest.raises(AssertionError, match='refused'):
    _check_python('analysis.aggregate', ['--no-such-flag'])
  with pytest.raises(AssertionError, match='no-such-target'):
    _check_make(['no-such-target'])


def test_the_docs_quote_commands():
  assert len(CASES) > 20, [c.id for c in CASES]


@pytest.mark.parametrize('kind, words', CASES)
def test_command_parses(kind, words):
  if kind == 'python':
    _check_python(words[0], words[1:])
  else:
    _check_make(words)
