"""``python -m bs_lib``: the same as the ``bs-lib`` console script."""

import sys

from bs_lib.cli import main

sys.exit(main())
