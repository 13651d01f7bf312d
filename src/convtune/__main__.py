"""`python -m convtune ...`, and what torchrun starts: `torchrun --nproc-per-node N -m convtune train ...`."""

import sys

from convtune.cli import main

sys.exit(main())
