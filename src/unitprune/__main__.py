"""``python -m unitprune``: same as the ``unitprune`` command."""

import sys

from .cli import main

sys.exit(main())
