"""`python -m domaingate …`, the same as the `domaingate` console script."""

import sys

from domaingate.cli.main import main

sys.exit(main())
