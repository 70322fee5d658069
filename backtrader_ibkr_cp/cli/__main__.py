"""``python -m backtrader_ibkr_cp.cli``: the same as ``ibkr-cp``."""

from __future__ import annotations

import sys

from .app import main

sys.exit(main())
