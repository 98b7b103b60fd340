"""``python -m atari100k.sweep``: the sweep's command line (``atari100k.sweep.cli``).

Nothing the Ray tasks run is defined here, in ``__main__``: they live in modules that the
workers import by name.
"""

import sys

from atari100k.sweep import cli

if __name__ == '__main__':
  sys.exit(cli.main())
