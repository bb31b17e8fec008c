"""``python -m infra.bench [--quick]``: see :mod:`infra.bench`."""

import sys

from infra.bench.runner import main

sys.exit(main())
