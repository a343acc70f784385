"""`python -m gta`: the same command line as the `gta` script."""

import sys

from .cli import main

sys.exit(main())
