"""``python -m energy_bench.cli``: the ``energy-bench`` command without its console script."""

import sys

from energy_bench.cli import main

sys.exit(main())
