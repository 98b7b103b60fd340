"""What the sweep prints while it runs and at its end: the live line (done / running / failed /
queued, ETA), a line of its own for each event, and the final report with the log tail of each
failed run.
"""

from __future__ import annotations

import math
import sys
import time

from atari100k import exit_codes

# Deterministic outcomes: another attempt would end the same way (execution does not retry them;
# a failure report names their meaning).
NO_RETRY_CODES = {code: exit_codes.MEANING[code] for code in (
    exit_codes.BAD_INPUT, exit_codes.ALREADY_FINISHED, exit_codes.DIVERGED,
    exit_codes.BAD_CHECKPOINT)}


def clock(seconds: float | None) -> str:
  if seconds is None or not math.isfinite(seconds):
    return '?'
  seconds = int(round(seconds))
  days, rest = divmod(seconds, 86400)
  text = f'{rest // 3600}:{rest % 3600 // 60:02d}:{rest % 60:02d}'
  return f'{days}d {text}' if days else text


class Summary:
  """Counts of the grid's runs and the live line: done / running / failed / queued, ETA."""

  def __init__(self, total: int, finished_before: int, out=None, every_s: float = 300.0):
    self.total = total
    self.finished_before = finished_before
    self.durations: list[float] = []
    self.done = self.failed = self.locked = self.running = self.queued = 0
    self.slots = 1
    self.out = out or sys.stdout
    self.tty = self.out.isatty()
    self.every_s = every_s
    self._last_line = ''
    self._last_time = 0.0

  def eta_s(self) -> float | None:
    """Remaining runs x mean duration of the runs finished in this sweep / parallel slots."""
    if not self.durations:
      return None
    remaining = self.running + self.queued
    return remaining * (sum(self.durations) / len(self.durations)) / max(1, self.slots)

  def line(self) -> str:
    done = self.finished_before + self.done
    text = (f'[sweep] done {done}/{self.total} ({self.finished_before} before this sweep) | '
            f'running {self.running} | failed {self.failed} | queued {self.queued}')
    if self.locked:
      text += f' | locked elsewhere {self.locked}'
    return text + f' | ETA {clock(self.eta_s())}'

  def refresh(self, force: bool = False) -> None:
    line = self.line()
    now = time.time()
    if not force and line == self._last_line and now - self._last_time < self.every_s:
      return
    if self.tty:
      self.out.write('\r\033[K' + line)
    else:
      self.out.write(line + '\n')
    self.out.flush()
    self._last_line, self._last_time = line, now

  def event(self, text: str) -> None:
    """A line of its own (a run finished, failed, retried), above the live line."""
    self.out.write(('\r\033[K' if self.tty else '') + text + '\n')
    self.out.flush()
    self._last_line = ''

  def close(self) -> None:
    """The last state of the live line, kept on screen."""
    self.refresh(force=True)
    if self.tty:
      self.out.write('\n')
      self.out.flush()


def describe_failure(result: dict) -> str:
  code = result.get('returncode')
  why = (f'exit code {code}' + (f' ({NO_RETRY_CODES[code]})' if code in NO_RETRY_CODES else '')
         if code is not None else result.get('error', 'the Ray task failed'))
  tail = result.get('log_tail') or '(empty log)'
  return (f'FAILED {result["run"]} after {result["attempt"]} attempt(s): {why}; log '
          f'{result["log"]}, last lines:\n' + '\n'.join('    | ' + l for l in tail.splitlines()))


def final_report(results: list[dict], summary: Summary, elapsed: float, where: str) -> None:
  failed = [r for r in results if r['status'] == 'failed']
  print(f'[sweep] finished in {clock(elapsed)} on {where}: {summary.total} runs, '
        f'{summary.finished_before + summary.done} done ({summary.finished_before} before this '
        f'sweep), {summary.failed} failed, {summary.locked} locked by another live attempt.')
  if failed:
    print('[sweep] failed runs (the same command retries them, from their checkpoints):')
    for result in failed:
      print(describe_failure(result))
  sys.stdout.flush()
