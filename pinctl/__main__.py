"""``python -m pinctl``."""

import sys

from pinctl.cli.main import main

sys.exit(main())
