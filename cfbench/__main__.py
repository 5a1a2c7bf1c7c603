"""``python -m cfbench`` (what torchrun and accelerate launch run with ``-m cfbench``)."""

import sys

from cfbench.cli import main

sys.exit(main())
