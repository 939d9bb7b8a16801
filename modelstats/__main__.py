"""``python -m modelstats``: the command line, same as the ``modelstats`` console script."""

import sys

from modelstats.cli import main

sys.exit(main())
