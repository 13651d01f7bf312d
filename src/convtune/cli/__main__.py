"""`python -m convtune.cli ...` (the server's test helper starts it this way)."""

import sys

from convtune.cli import main

sys.exit(main())
