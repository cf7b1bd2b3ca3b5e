"""``python -m percept``: the ``percept`` command (see :mod:`percept.cli`)."""

import sys

from percept.cli import main

sys.exit(main())
