"""Aggregate-score analysis of Atari-100k runs: human-normalized IQM, median, mean and optimality
gap with 95% stratified-bootstrap confidence intervals (through ``rliable``), tables and plots.

Modules, in the order the data flows:

* ``normalization``: the 26-game random/human table (package data) and human normalization.
* ``loading``: ``result.json`` run folders, published baselines and ``{Game: [scores]}`` score
  files -> one runs x games matrix of normalized scores per agent.
* ``metrics``: the four aggregates and their interval estimates, performance profiles and
  probability of improvement, all through ``rliable``.
* ``report``: the table (terminal text, CSV, Markdown).
* ``plots``: interval estimates, performance profiles, per-game scores, probability of improvement
  (PNG and PDF, matplotlib's Agg backend).
* ``paper_table``: the Hare & Tortoise paper's Table 1 (its own numbers), printed under ours by
  ``--paper-table``.
* ``aggregate``: the command line, ``python -m analysis.aggregate RUNS_DIR [options]``.

Package data (``analysis/data/``: the human/random table and published score files) is found
relative to this file, so the package works from any working directory. ``analysis/examples/``
holds the figures and table that the default command gives for the published DrQ_eps, SPR, DER
and OTRainbow scores (shown in docs/analysis.md).
"""

import os

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data')


class AnalysisError(Exception):
  """Bad input: the message is a complete, one-paragraph explanation for the user."""
