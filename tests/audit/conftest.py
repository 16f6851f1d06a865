"""The audit tests share ``audit_forge``: the steps of a forger's attack on the database."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
