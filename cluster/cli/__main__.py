"""`python -m cluster.cli …` is `callfleet …` (for `ray job submit` without the console script)."""

import sys

from cluster.cli.main import main

sys.exit(main())
