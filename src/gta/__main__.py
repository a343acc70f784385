"""`python -m gta`: the same command line as the `gta` script (the rules call it this way)."""

import sys

from .cli import main

sys.exit(main())
