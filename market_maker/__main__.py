"""``python -m market_maker``: the same as the ``market-maker`` console script."""

import sys

from market_maker.cli import main

sys.exit(main())
