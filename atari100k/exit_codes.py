"""Exit codes of ``python -m atari100k.run``, shared with the sweep (which must not import JAX
or TensorFlow to read them). docs/runner.md lists them."""

FINISHED = 0            # the run trained, evaluated and wrote result.json
ERROR = 1               # an unexpected error (a Python traceback)
BAD_INPUT = 2           # unknown agent or game, a bad binding or value, an unwritable run folder
ALREADY_FINISHED = 3    # result.json exists; nothing was changed (--force redoes the run)
DIVERGED = 4            # a non-finite loss or parameter: failed.json written, no result.json
FOLDER_BUSY = 5         # another live process is running this run folder
BAD_CHECKPOINT = 6      # the checkpoint cannot be read or belongs to another run (--restart)
CANNOT_WRITE = 7        # a run file could not be written mid-run (disk full?); resumable
INTERRUPTED = 130       # Ctrl-C or SIGTERM; the same command resumes from the last checkpoint

MEANING = {
    FINISHED: 'finished',
    ERROR: 'unexpected error',
    BAD_INPUT: 'bad input',
    ALREADY_FINISHED: 'finished run exists',
    DIVERGED: 'diverged (deterministic: failed.json)',
    FOLDER_BUSY: 'run folder busy (another live process)',
    BAD_CHECKPOINT: 'unreadable checkpoint',
    CANNOT_WRITE: 'cannot write run files',
    INTERRUPTED: 'interrupted',
}
