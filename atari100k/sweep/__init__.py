"""Run a grid of Atari-100k runs (agents x games x seeds) on Ray, resumably, then aggregate them.

``python -m atari100k.sweep --agents drq drq_ht --games all --seeds 5 --runs runs/`` expands the
grid into one ``python -m atari100k.run ...`` command per run (``--list`` prints them, one shell
command a line, for GNU parallel, SLURM arrays or any other executor) and runs each command as a
subprocess inside a Ray task that declares its resources (``--cpus-per-run``, ``--gpus-per-run``).
The same command uses a private local Ray instance by default and an existing cluster when
``RAY_ADDRESS`` (or ``--address``) is set.

* Runs with a ``result.json`` are skipped before anything starts; an interrupted run is started
  again with the same command, which resumes it from its checkpoint (``atari100k.run``).
* A lock file in each run folder (``sweep.lock``, created atomically) keeps two attempts, from
  this sweep or another one, from writing the same run. A lock whose process is dead (same host)
  or whose heartbeat is older than ``--stale-lock-hours`` is broken.
* A run that fails is retried ``--retries`` times (not after exit code 2, bad input, or 3,
  finished run), then reported with the tail of its log (``<run folder>/sweep.log``); the other
  runs go on, and the sweep exits with code 1.
* A live summary line: done / running / failed / queued and an ETA from the runs finished so far.
* At the end (or with ``--analyze-only``) ``analysis.aggregate`` over the runs folder.

Each run's CPU threads are pinned to its share: Ray sets ``OMP_NUM_THREADS``, which JAX ignores,
so XLA's own flags (``XLA_FLAGS``) are set as well, with TensorFlow's and the BLAS libraries'.

One module per job: ``grid`` (the runs, the checks of names, seeds and bindings, finished and
diverged runs), ``locks`` (the heartbeat lock files), ``execution`` (the Ray tasks, retries, the
runs' environment), ``summary`` (the live line and the final report) and ``cli`` (the flags and
``main``, which ``__main__`` runs).
"""
