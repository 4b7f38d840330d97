"""``python -m pinctl``."""

import sys

from pinctl.main import main

sys.exit(main())
